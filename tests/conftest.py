import os

# Set before any test imports TensorFlow (directly or through mtcnn), so that the
# recommender's TensorFlow Recommenders code always meets Keras 2.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
