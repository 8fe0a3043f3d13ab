"""The shipped AgeGenderNet graph (vision/models/agegender.onnx) against the original tfjs network and
against an independent numpy implementation of the same layers. The npm tarball is not needed:
the tfjs outputs below were recorded by scripts/rebuild_agegender.sh (tfjs 4.22.0, CPU backend)."""

import json

import numpy as np
import pytest

from vision.agegender_export import (INPUT_SIZE, MODELS_DIR, ONNX_NAME, build_model, check_images, dequantise,
                                     read_tfjs_weights, reference_forward)

# face-api.js's own AgeGenderNet.forwardInput on check_images(), recorded by scripts/rebuild_agegender.sh.
TFJS_OUTPUTS = [
    {"age": 28.29242515563965, "gender": [0.869086503982544, 0.13091348111629486]},
    {"age": 37.24550247192383, "gender": [0.9765958786010742, 0.023404156789183617]},
    {"age": 35.73493576049805, "gender": [0.9461705684661865, 0.05382943153381348]},
    {"age": 29.16908836364746, "gender": [0.8181735277175903, 0.18182644248008728]},
]


def _session(model_bytes_or_path):
    import onnxruntime as ort

    return ort.InferenceSession(model_bytes_or_path, providers=["CPUExecutionProvider"])


def test_shipped_graph_matches_the_tfjs_network():
    age, gender = _session(str(MODELS_DIR / ONNX_NAME)).run(["age", "gender"], {"image": check_images()})
    assert np.abs(age - [r["age"] for r in TFJS_OUTPUTS]).max() < 1e-4
    assert np.abs(gender - [r["gender"] for r in TFJS_OUTPUTS]).max() < 1e-5


def test_dequantise_uint8_and_float32():
    quantised = {"name": "w", "shape": [2, 2], "dtype": "float32",
                 "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0}}
    values, used = dequantise(bytes([0, 1, 2, 255]) + b"tail", quantised)
    assert used == 4
    np.testing.assert_allclose(values, [[-1.0, -0.5], [0.0, 126.5]])  # q * 0.5 - 1
    plain = {"name": "b", "shape": [2], "dtype": "float32"}
    values, used = dequantise(np.array([1.5, -2.0], dtype="<f4").tobytes(), plain)
    assert used == 8 and values.tolist() == [1.5, -2.0]


def test_a_manifest_that_does_not_cover_the_bytes_is_refused():
    manifest = [{"weights": [{"name": "b", "shape": [2], "dtype": "float32"}]}]
    with pytest.raises(ValueError, match="describes 8 bytes but the weights file has 12"):
        read_tfjs_weights(manifest, bytes(12))


def _random_weights(rng):
    """Tensors of the shipped shapes (read from the shipped graph's own manifest-free layout) but random."""
    shapes = {"entry_flow/conv_in/filters": (3, 3, 3, 32), "entry_flow/conv_in/bias": (32,)}

    def separable(prefix, c_in, c_out):
        shapes.update({f"{prefix}/depthwise_filter": (3, 3, c_in, 1), f"{prefix}/pointwise_filter": (1, 1, c_in, c_out),
                       f"{prefix}/bias": (c_out,)})

    def reduction(prefix, c_in, c_out):
        separable(f"{prefix}/separable_conv0", c_in, c_out)
        separable(f"{prefix}/separable_conv1", c_out, c_out)
        shapes.update({f"{prefix}/expansion_conv/filters": (1, 1, c_in, c_out), f"{prefix}/expansion_conv/bias": (c_out,)})

    reduction("entry_flow/reduction_block_0", 32, 64)
    reduction("entry_flow/reduction_block_1", 64, 128)
    for i in range(2):
        for j in range(3):
            separable(f"middle_flow/main_block_{i}/separable_conv{j}", 128, 128)
    reduction("exit_flow/reduction_block", 128, 256)
    separable("exit_flow/separable_conv", 256, 512)
    shapes.update({"fc/age/weights": (512, 1), "fc/age/bias": (1,), "fc/gender/weights": (512, 2), "fc/gender/bias": (2,)})
    return {name: rng.normal(0, 0.2, size=shape).astype(np.float32) for name, shape in shapes.items()}


def test_graph_builder_equals_the_numpy_layers_on_random_weights():
    # Random weights exercise every layer's layout (HWIO -> OIHW, grouped depthwise, "same" padding at
    # the end) far from the trained values, where a transposed kernel could hide.
    rng = np.random.default_rng(1)
    weights = _random_weights(rng)
    images = rng.uniform(0, 255, size=(2, INPUT_SIZE, INPUT_SIZE, 3)).astype(np.float32)
    age, gender = _session(build_model(weights).SerializeToString()).run(["age", "gender"], {"image": images})
    ref_age, ref_gender = reference_forward(weights, images)
    np.testing.assert_allclose(age, ref_age, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(ref_age).max()))
    np.testing.assert_allclose(gender, ref_gender, atol=1e-4)
    assert json.dumps(gender.tolist())  # plain floats out
