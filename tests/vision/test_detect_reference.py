"""Parity with the reference: ipazc/mtcnn 1.0.0 (TensorFlow). Slow: imports TensorFlow."""

import importlib.util
import os

import numpy as np
import pytest

from vision.detect import MtcnnDetector
from vision.devset import DEFAULT_FACES_DIR
from vision.image import detection_copy, load_rgb

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("mtcnn") is None, reason="mtcnn (reference) not installed"),
]

DEV_SAMPLES = ["d0000.jpg", "d0007.jpg", "d0084.jpg"]  # wild, aligned chip, wild with two faces


@pytest.fixture(scope="module")
def reference():
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    from mtcnn import MTCNN

    return MTCNN()


def _images(astronaut_path):
    paths = [astronaut_path] + [DEFAULT_FACES_DIR / name for name in DEV_SAMPLES if (DEFAULT_FACES_DIR / name).is_file()]
    return [(p.name, detection_copy(load_rgb(p)).rgb) for p in paths]


def test_networks_match_keras(reference):
    import onnxruntime as ort

    from vision.detect import MODELS_DIR

    rng = np.random.default_rng(0)
    shapes = {"pnet": (2, 57, 73, 3), "rnet": (5, 24, 24, 3), "onet": (5, 48, 48, 3)}
    for stage in reference.stages:
        name = stage.model.__class__.__name__.lower()
        x = rng.uniform(-1, 1, shapes[name]).astype(np.float32)
        expected = [np.asarray(t) for t in stage.model(x)]
        session = ort.InferenceSession(str(MODELS_DIR / f"{name}.onnx"), providers=["CPUExecutionProvider"])
        got = session.run(None, {"input": x})
        for e, g in zip(expected, got):
            assert e.shape == g.shape
            assert np.abs(e - g).max() < 1e-5, name


def test_boxes_and_landmarks_match_reference(reference, astronaut_path):
    ours = MtcnnDetector()
    for name, rgb in _images(astronaut_path):
        expected = reference.detect_faces(rgb)
        got = ours.detect(rgb)
        assert len(got) == len(expected), name
        for e, g in zip(expected, got):
            box = [g.box.x, g.box.y, g.box.width, g.box.height]
            # The reference rounds to whole pixels; OpenCV's area resize differs from TF's by float rounding.
            assert np.abs(np.array(e["box"]) - np.array(box)).max() <= 1.0, name
            assert abs(e["confidence"] - g.confidence) < 1e-3, name
            kp = e["keypoints"]
            ref_points = [kp[k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")]
            assert np.abs(np.array(ref_points) - np.array(g.landmarks.as_pairs())).max() <= 1.0, name


def test_shipped_onnx_files_match_the_package_weights():
    from onnx import numpy_helper
    import onnx

    from vision.mtcnn_export import MODELS_DIR, NETWORKS, build_model

    for name in NETWORKS:
        shipped = onnx.load(MODELS_DIR / f"{name}.onnx")
        rebuilt = build_model(name)
        a = [numpy_helper.to_array(t) for t in shipped.graph.initializer]
        b = [numpy_helper.to_array(t) for t in rebuilt.graph.initializer]
        assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b)), name
