"""Rebuild MTCNN's three networks (P-Net, R-Net, O-Net) as ONNX graphs from the mtcnn package's weights.

Offline tool, not part of the serving path. The `mtcnn` package (ipazc/mtcnn 1.0.0, MIT) ships its
weights as joblib/lz4-compressed lists of numpy arrays in `tf.keras` `get_weights()` order; its
network code needs TensorFlow (7+ s to import). We rebuild the same layers with `onnx.helper` so
onnxruntime can serve them, and ship the resulting files in `vision/models/` (about 2 MB; the MIT
licence allows it with the notice kept beside them). Serving therefore needs neither TensorFlow nor
the mtcnn package at run time; `tests/vision/test_mtcnn_export.py` rebuilds the graphs and checks
that the shipped files still match the package's weights.

The package is located with `importlib.util.find_spec("mtcnn")`, which finds its files without
running its `__init__` (which imports TensorFlow).

Usage:

    python -m vision.mtcnn_export            # rewrite vision/models/{pnet,rnet,onet}.onnx
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).parent / "models"
NETWORKS = ("pnet", "rnet", "onet")
OPSET = 17


def mtcnn_weights_dir() -> Path:
    """Folder of the installed mtcnn package's weight files, found without importing the package."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            "the mtcnn package is not installed: expected mtcnn==1.0.0 "
            "(pip install mtcnn==1.0.0) to rebuild the MTCNN ONNX graphs"
        )
    return Path(spec.origin).parent / "assets" / "weights"


def load_keras_weights(name: str) -> list[np.ndarray]:
    """The weight list of one network (`pnet`, `rnet` or `onet`) as stored by the mtcnn package."""
    import joblib  # only the offline rebuild needs joblib/lz4

    path = mtcnn_weights_dir() / f"{name}.lz4"
    if not path.is_file():
        raise FileNotFoundError(f"expected the mtcnn weight file {path}; is mtcnn==1.0.0 installed?")
    return [np.asarray(w, dtype=np.float32) for w in joblib.load(path)]


class _GraphBuilder:
    """Collects nodes and initializers; layers are written in NCHW, the graph's input/outputs are NHWC
    like the Keras models, so the ONNX outputs can be compared with the package's one to one."""

    def __init__(self, name: str):
        self.name = name
        self.nodes = []
        self.initializers = []
        self._count = 0

    def _fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper

        name = self._fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str, **attrs) -> str:
        from onnx import helper

        out = self._fresh(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, kernel: np.ndarray, bias: np.ndarray) -> str:
        # Keras kernels are (kh, kw, in, out); ONNX wants (out, in, kh, kw). Keras "valid" = no padding.
        w = self.const(kernel.transpose(3, 2, 0, 1), "W")
        b = self.const(bias, "B")
        return self.node("Conv", [x, w, b], "conv", kernel_shape=list(kernel.shape[:2]))

    def prelu_channels(self, x: str, alpha: np.ndarray) -> str:
        # Keras PReLU(shared_axes=[1, 2]) stores alpha as (1, 1, C); in NCHW it broadcasts as (C, 1, 1).
        return self.node("PRelu", [x, self.const(alpha.reshape(-1, 1, 1), "alpha")], "prelu")

    def prelu_dense(self, x: str, alpha: np.ndarray) -> str:
        return self.node("PRelu", [x, self.const(alpha.reshape(-1), "alpha")], "prelu")

    def maxpool(self, x: str, size: int, stride: int, same: bool) -> str:
        # TensorFlow's "same" pads the extra row/column at the end, which is ONNX's SAME_UPPER.
        attrs = {"kernel_shape": [size, size], "strides": [stride, stride]}
        if same:
            attrs["auto_pad"] = "SAME_UPPER"
        return self.node("MaxPool", [x], "pool", **attrs)

    def dense(self, x: str, kernel: np.ndarray, bias: np.ndarray) -> str:
        # Keras Dense kernels are (in, out), which is Gemm's B without transposition.
        return self.node("Gemm", [x, self.const(kernel, "W"), self.const(bias, "B")], "dense")

    def flatten_like_keras(self, x: str) -> str:
        # The Keras models apply Permute((2, 1, 3)) to NHWC before Flatten, i.e. flatten in (W, H, C)
        # order; from NCHW that is a transpose to (N, W, H, C).
        t = self.node("Transpose", [x], "permute", perm=[0, 3, 2, 1])
        return self.node("Flatten", [t], "flatten", axis=1)

    def model(self, input_shape: list, outputs: list[tuple[str, str, list]]):
        from onnx import TensorProto, helper

        graph = helper.make_graph(
            self.nodes,
            self.name,
            [helper.make_tensor_value_info("input", TensorProto.FLOAT, input_shape)],
            [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, _, shape in outputs],
            self.initializers,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            producer_name="vision.mtcnn_export",
            doc_string="MTCNN weights from ipazc/mtcnn 1.0.0 (MIT licence, see MTCNN-LICENSE.txt)",
        )
        model.ir_version = 8
        return model

    def output(self, x: str, name: str) -> None:
        from onnx import helper

        self.nodes.append(helper.make_node("Identity", [x], [name], name=name))


def build_pnet(w: list[np.ndarray]):
    g = _GraphBuilder("pnet")
    x = g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    x = g.prelu_channels(g.conv(x, w[0], w[1]), w[2])
    x = g.maxpool(x, 2, 2, same=True)
    x = g.prelu_channels(g.conv(x, w[3], w[4]), w[5])
    x = g.prelu_channels(g.conv(x, w[6], w[7]), w[8])
    reg = g.conv(x, w[9], w[10])
    prob = g.node("Softmax", [g.conv(x, w[11], w[12])], "softmax", axis=1)
    g.output(g.node("Transpose", [reg], "to_nhwc", perm=[0, 2, 3, 1]), "bbox_reg")
    g.output(g.node("Transpose", [prob], "to_nhwc", perm=[0, 2, 3, 1]), "face_prob")
    return g.model(["N", "H", "W", 3], [("bbox_reg", None, ["N", "h", "w", 4]), ("face_prob", None, ["N", "h", "w", 2])])


def build_rnet(w: list[np.ndarray]):
    g = _GraphBuilder("rnet")
    x = g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    x = g.maxpool(g.prelu_channels(g.conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = g.prelu_channels(g.conv(x, w[6], w[7]), w[8])
    x = g.prelu_dense(g.dense(g.flatten_like_keras(x), w[9], w[10]), w[11])
    g.output(g.dense(x, w[12], w[13]), "bbox_reg")
    g.output(g.node("Softmax", [g.dense(x, w[14], w[15])], "softmax", axis=1), "face_prob")
    return g.model(["N", 24, 24, 3], [("bbox_reg", None, ["N", 4]), ("face_prob", None, ["N", 2])])


def build_onet(w: list[np.ndarray]):
    g = _GraphBuilder("onet")
    x = g.node("Transpose", ["input"], "to_nchw", perm=[0, 3, 1, 2])
    x = g.maxpool(g.prelu_channels(g.conv(x, w[0], w[1]), w[2]), 3, 2, same=True)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[3], w[4]), w[5]), 3, 2, same=False)
    x = g.maxpool(g.prelu_channels(g.conv(x, w[6], w[7]), w[8]), 2, 2, same=True)
    x = g.prelu_channels(g.conv(x, w[9], w[10]), w[11])
    x = g.prelu_dense(g.dense(g.flatten_like_keras(x), w[12], w[13]), w[14])
    g.output(g.dense(x, w[15], w[16]), "bbox_reg")
    g.output(g.dense(x, w[17], w[18]), "landmarks")
    g.output(g.node("Softmax", [g.dense(x, w[19], w[20])], "softmax", axis=1), "face_prob")
    return g.model(
        ["N", 48, 48, 3],
        [("bbox_reg", None, ["N", 4]), ("landmarks", None, ["N", 10]), ("face_prob", None, ["N", 2])],
    )


BUILDERS = {"pnet": build_pnet, "rnet": build_rnet, "onet": build_onet}


def build_model(name: str):
    """The ONNX ModelProto of one network, built from the installed mtcnn package's weights."""
    import onnx

    model = BUILDERS[name](load_keras_weights(name))
    onnx.checker.check_model(model)
    return model


def main() -> None:
    import onnx

    MODELS_DIR.mkdir(exist_ok=True)
    for name in NETWORKS:
        path = MODELS_DIR / f"{name}.onnx"
        onnx.save(build_model(name), path)
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
