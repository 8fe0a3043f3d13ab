"""Two-tower recommender: features, towers, training, evaluation and the serving bundle.

TensorFlow Recommenders needs Keras 2, so the legacy Keras switch must be set before
TensorFlow is first imported anywhere in the process. This is the one import-time side
effect the package allows; the TensorFlow-free modules (``age_bands``, ``serving``) stay
cheap to import.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ info and warning lines (oneDNN notes, "no GPU") are noise on a CPU box; a
# user who wants them sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
