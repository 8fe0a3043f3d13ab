"""Rebuild face-api.js's AgeGenderNet as an ONNX graph from the npm package's tfjs weights.

Offline tool, not part of the serving path. The npm package `@vladmandic/face-api` 1.7.15 (MIT,
`AGEGENDER-LICENSE.txt`) ships the network's weights as TensorFlow.js files:
`model/age_gender_model-weights_manifest.json` (each tensor's name, shape, dtype and uint8
quantisation) and `model/age_gender_model.bin` (the bytes, in manifest order). Dequantised,
value = q * scale + min. The architecture is the package's own source (src/xception/TinyXception.ts,
src/ageGenderNet/AgeGenderNet.ts), rebuilt here layer by layer with `onnx.helper`:

- input: a 112 x 112 RGB face (the face box padded to a square, then resized), minus the mean RGB
  (122.782, 117.001, 104.298), divided by 255 (this version divides by 255; face-api.js upstream
  used 256);
- TinyXception(2): conv 3x3/2 + ReLU; reduction blocks (two separable 3x3 convs, max-pool 3x3/2
  "same", plus a 1x1/2 expansion conv on the block's input); two residual main blocks of three
  separable convs; an exit reduction block; a separable conv to 512 channels + ReLU;
- average-pool 7x7/2 "valid" (the whole 7 x 7 map), then two dense heads: age in years (one value)
  and gender logits, softmaxed; column 0 is male, column 1 female (predictAgeAndGender reads
  column 0 as "probMale").

TensorFlow's "same" padding puts the odd extra row/column at the end, which is ONNX's SAME_UPPER.
`reference_forward` is an independent numpy implementation of the same layers (NHWC, explicit
padding) used to check the graph; `scripts/agegender_reference.mjs` runs the original tfjs code.

Usage:

    npm pack @vladmandic/face-api@1.7.15       # -> vladmandic-face-api-1.7.15.tgz
    python -m vision.agegender_export vladmandic-face-api-1.7.15.tgz
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODELS_DIR = Path(__file__).parent / "models"
ONNX_NAME = "agegender.onnx"
LICENSE_NAME = "AGEGENDER-LICENSE.txt"
PACKAGE = "@vladmandic/face-api@1.7.15"
MANIFEST_MEMBER = "package/model/age_gender_model-weights_manifest.json"
WEIGHTS_MEMBER = "package/model/age_gender_model.bin"
LICENSE_MEMBER = "package/LICENSE"
INPUT_SIZE = 112
MEAN_RGB = np.array([122.782, 117.001, 104.298], dtype=np.float32)
PIXEL_SCALE = 255.0
MAIN_BLOCKS = 2
OPSET = 17


@dataclass(frozen=True)
class TfjsWeights:
    """The dequantised tensors (name -> float32 array, HWIO layouts as in tfjs) and where they came from."""

    tensors: dict
    license_text: str
    sha256: dict  # member name -> sha256 of its bytes, for the provenance note


def dequantise(raw: bytes, spec: dict) -> tuple[np.ndarray, int]:
    """One tensor from the start of `raw`, per its manifest entry; returns (array, bytes used)."""
    shape = spec["shape"]
    size = int(np.prod(shape)) if shape else 1
    quant = spec.get("quantization")
    if quant is None:
        if spec["dtype"] != "float32":
            raise ValueError(f"{spec['name']}: expected float32 or uint8-quantised weights, got {spec['dtype']}")
        return np.frombuffer(raw, dtype="<f4", count=size).reshape(shape).copy(), 4 * size
    if quant["dtype"] != "uint8":
        raise ValueError(f"{spec['name']}: expected uint8 quantisation, got {quant['dtype']}")
    q = np.frombuffer(raw, dtype=np.uint8, count=size).astype(np.float64)
    return (q * quant["scale"] + quant["min"]).astype(np.float32).reshape(shape), size


def read_tfjs_weights(manifest: list, data: bytes) -> dict:
    """All tensors of a tfjs weights manifest (one group, one .bin) as float32 arrays."""
    if len(manifest) != 1:
        raise ValueError(f"expected one weight group in the manifest, got {len(manifest)}")
    tensors, offset = {}, 0
    for spec in manifest[0]["weights"]:
        tensors[spec["name"]], used = dequantise(data[offset:], spec)
        offset += used
    if offset != len(data):
        raise ValueError(f"the manifest describes {offset} bytes but the weights file has {len(data)}")
    return tensors


def read_package(tgz: Path) -> TfjsWeights:
    """The weights and licence from an `npm pack` tarball of @vladmandic/face-api."""
    with tarfile.open(tgz, "r:gz") as archive:
        members = {}
        for name in (MANIFEST_MEMBER, WEIGHTS_MEMBER, LICENSE_MEMBER):
            try:
                members[name] = archive.extractfile(name).read()
            except KeyError as e:
                raise FileNotFoundError(f"{tgz} has no {name}; expected the npm tarball of {PACKAGE}") from e
    tensors = read_tfjs_weights(json.loads(members[MANIFEST_MEMBER]), members[WEIGHTS_MEMBER])
    return TfjsWeights(tensors, members[LICENSE_MEMBER].decode("utf-8"),
                       {name: hashlib.sha256(b).hexdigest() for name, b in members.items()})


# ---------------------------------------------------------------------------------------------- ONNX

class _GraphBuilder:
    def __init__(self):
        self.nodes, self.initializers, self._count = [], [], 0

    def _fresh(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def const(self, array: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper

        name = self._fresh(prefix)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str, outputs: list[str] | None = None, **attrs) -> str:
        from onnx import helper

        out = outputs or [self._fresh(prefix)]
        self.nodes.append(helper.make_node(op, inputs, out, name=self._fresh(op), **attrs))
        return out[0]

    def conv(self, x: str, filters: np.ndarray, bias: np.ndarray | None, stride: int) -> str:
        # tfjs filters are (kh, kw, in, out); ONNX wants (out, in, kh, kw).
        inputs = [x, self.const(filters.transpose(3, 2, 0, 1), "W")]
        if bias is not None:
            inputs.append(self.const(bias, "B"))
        return self.node("Conv", inputs, "conv", kernel_shape=list(filters.shape[:2]),
                         strides=[stride, stride], auto_pad="SAME_UPPER")

    def separable(self, x: str, w: dict, prefix: str) -> str:
        # tf.separableConv2d: depthwise (kh, kw, C, 1) as a grouped conv, then pointwise 1x1, then bias.
        depthwise = w[f"{prefix}/depthwise_filter"]
        channels = depthwise.shape[2]
        dw = self.node("Conv", [x, self.const(depthwise.transpose(2, 3, 0, 1), "DW")], "dw",
                       kernel_shape=list(depthwise.shape[:2]), group=channels, auto_pad="SAME_UPPER")
        return self.conv(dw, w[f"{prefix}/pointwise_filter"], w[f"{prefix}/bias"], 1)

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], "relu")

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b], "add")

    def reduction_block(self, x: str, w: dict, prefix: str, activate_input: bool = True) -> str:
        out = self.relu(x) if activate_input else x
        out = self.separable(out, w, f"{prefix}/separable_conv0")
        out = self.separable(self.relu(out), w, f"{prefix}/separable_conv1")
        out = self.node("MaxPool", [out], "pool", kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
        return self.add(out, self.conv(x, w[f"{prefix}/expansion_conv/filters"], w[f"{prefix}/expansion_conv/bias"], 2))

    def main_block(self, x: str, w: dict, prefix: str) -> str:
        out = self.separable(self.relu(x), w, f"{prefix}/separable_conv0")
        out = self.separable(self.relu(out), w, f"{prefix}/separable_conv1")
        out = self.separable(self.relu(out), w, f"{prefix}/separable_conv2")
        return self.add(out, x)


def build_model(tensors: dict, provenance: str = ""):
    """The ONNX ModelProto: input `image` [N, 112, 112, 3] float RGB 0..255 (NHWC, as tfjs);
    outputs `age` [N] (years) and `gender` [N, 2] (softmax; column 0 male, column 1 female)."""
    import onnx
    from onnx import TensorProto, helper

    w = tensors
    g = _GraphBuilder()
    x = g.node("Sub", ["image", g.const(MEAN_RGB, "mean_rgb")], "centred")
    x = g.node("Div", [x, g.const(np.array(PIXEL_SCALE, dtype=np.float32), "scale")], "normalised")
    x = g.node("Transpose", [x], "nchw", perm=[0, 3, 1, 2])
    x = g.relu(g.conv(x, w["entry_flow/conv_in/filters"], w["entry_flow/conv_in/bias"], 2))
    x = g.reduction_block(x, w, "entry_flow/reduction_block_0", activate_input=False)
    x = g.reduction_block(x, w, "entry_flow/reduction_block_1")
    for i in range(MAIN_BLOCKS):
        x = g.main_block(x, w, f"middle_flow/main_block_{i}")
    x = g.reduction_block(x, w, "exit_flow/reduction_block")
    x = g.relu(g.separable(x, w, "exit_flow/separable_conv"))
    x = g.node("AveragePool", [x], "avgpool", kernel_shape=[7, 7], strides=[2, 2])
    pooled = g.node("Flatten", [x], "pooled", axis=1)
    age = g.node("Gemm", [pooled, g.const(w["fc/age/weights"], "W"), g.const(w["fc/age/bias"], "B")], "age_fc")
    g.node("Reshape", [age, g.const(np.array([-1], dtype=np.int64), "shape")], "age", outputs=["age"])
    logits = g.node("Gemm", [pooled, g.const(w["fc/gender/weights"], "W"), g.const(w["fc/gender/bias"], "B")],
                    "gender_fc")
    g.node("Softmax", [logits], "gender", outputs=["gender"], axis=1)
    graph = helper.make_graph(
        g.nodes, "agegender",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", INPUT_SIZE, INPUT_SIZE, 3])],
        [helper.make_tensor_value_info("age", TensorProto.FLOAT, ["N"]),
         helper.make_tensor_value_info("gender", TensorProto.FLOAT, ["N", 2])],
        g.initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="vision.agegender_export",
                              doc_string=f"face-api.js AgeGenderNet, weights from {PACKAGE} (MIT licence, "
                                         f"see {LICENSE_NAME}). {provenance}".strip())
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


# ------------------------------------------------------------------------------- numpy reference

def _pad_same(x: np.ndarray, k: int, stride: int, value: float = 0.0) -> np.ndarray:
    """TensorFlow "same" padding of an NHWC batch: the odd extra row/column goes at the end."""
    size = x.shape[1]
    out = -(-size // stride)
    total = max(0, (out - 1) * stride + k - size)
    before, after = total // 2, total - total // 2
    return np.pad(x, ((0, 0), (before, after), (before, after), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: int, stride: int) -> np.ndarray:
    """[N, out, out, C, k, k] views of the k x k windows of an already padded NHWC batch."""
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))
    return view[:, ::stride, ::stride]


def _conv(x, filters, bias, stride):
    k = filters.shape[0]
    win = _windows(_pad_same(x, k, stride), k, stride)[:, : -(-x.shape[1] // stride), : -(-x.shape[1] // stride)]
    return np.einsum("nhwcij,ijco->nhwo", win, filters, optimize=True) + bias


def _separable(x, w, prefix):
    depthwise = w[f"{prefix}/depthwise_filter"][:, :, :, 0]
    win = _windows(_pad_same(x, 3, 1), 3, 1)
    dw = np.einsum("nhwcij,ijc->nhwc", win, depthwise, optimize=True)
    return np.einsum("nhwc,co->nhwo", dw, w[f"{prefix}/pointwise_filter"][0, 0], optimize=True) + w[f"{prefix}/bias"]


def _relu(x):
    return np.maximum(x, 0)


def _reduction(x, w, prefix, activate_input=True):
    out = _relu(x) if activate_input else x
    out = _separable(out, w, f"{prefix}/separable_conv0")
    out = _separable(_relu(out), w, f"{prefix}/separable_conv1")
    size = -(-out.shape[1] // 2)
    out = _windows(_pad_same(out, 3, 2, -np.inf), 3, 2)[:, :size, :size].max(axis=(4, 5))
    return out + _conv(x, w[f"{prefix}/expansion_conv/filters"], w[f"{prefix}/expansion_conv/bias"], 2)


def reference_forward(tensors: dict, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(age [N], gender probabilities [N, 2]) for NHWC 112 x 112 RGB 0..255 images, in float64 numpy,
    written from the tfjs source independently of the ONNX graph."""
    w = {k: v.astype(np.float64) for k, v in tensors.items()}
    x = (np.asarray(images, dtype=np.float64) - MEAN_RGB.astype(np.float64)) / PIXEL_SCALE
    x = _relu(_conv(x, w["entry_flow/conv_in/filters"], w["entry_flow/conv_in/bias"], 2))
    x = _reduction(x, w, "entry_flow/reduction_block_0", activate_input=False)
    x = _reduction(x, w, "entry_flow/reduction_block_1")
    for i in range(MAIN_BLOCKS):
        prefix = f"middle_flow/main_block_{i}"
        out = _separable(_relu(x), w, f"{prefix}/separable_conv0")
        out = _separable(_relu(out), w, f"{prefix}/separable_conv1")
        x = _separable(_relu(out), w, f"{prefix}/separable_conv2") + x
    x = _reduction(x, w, "exit_flow/reduction_block")
    x = _relu(_separable(x, w, "exit_flow/separable_conv"))
    pooled = x.mean(axis=(1, 2))  # avgPool 7x7 "valid" over the 7 x 7 map
    age = (pooled @ w["fc/age/weights"] + w["fc/age/bias"])[:, 0]
    logits = pooled @ w["fc/gender/weights"] + w["fc/gender/bias"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return age, e / e.sum(axis=1, keepdims=True)


def check_images(count: int = 4, seed: int = 0) -> np.ndarray:
    """Smooth random RGB images (faces are not needed to compare two implementations of one net)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, size=(count, 14, 14, 3)).astype(np.float32)
    return np.stack([cv2.resize(s, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_CUBIC) for s in small]).clip(0, 255)


def main() -> None:
    import onnx
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tgz", type=Path, help=f"the `npm pack {PACKAGE}` tarball")
    parser.add_argument("--out", type=Path, default=MODELS_DIR)
    args = parser.parse_args()
    package = read_package(args.tgz)
    provenance = f"weights sha256 {package.sha256[WEIGHTS_MEMBER]}"
    model = build_model(package.tensors, provenance)
    args.out.mkdir(exist_ok=True)
    path = args.out / ONNX_NAME
    onnx.save(model, path)
    (args.out / LICENSE_NAME).write_text(
        f"The AgeGenderNet weights in {ONNX_NAME} come from the npm package {PACKAGE}\n"
        f"(model/age_gender_model.bin, sha256 {package.sha256[WEIGHTS_MEMBER]}), under this licence:\n\n"
        + package.license_text, encoding="utf-8")
    images = check_images()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    age, gender = session.run(["age", "gender"], {"image": images.astype(np.float32)})
    ref_age, ref_gender = reference_forward(package.tensors, images)
    print(f"wrote {path} ({path.stat().st_size} bytes) and {args.out / LICENSE_NAME}")
    print(f"ONNX vs numpy reference on {len(images)} images: max |age diff| {np.abs(age - ref_age).max():.2e} "
          f"years, max |gender prob diff| {np.abs(gender - ref_gender).max():.2e}")


if __name__ == "__main__":
    main()
