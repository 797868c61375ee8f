"""Shared helpers for make_reference.py and bench_reference.py.

Everything here is deliberately explicit so that the Rust side can reproduce
the exact input tensors bit for bit (no resampling, single float32 ops).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

SCRIPT_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPT_DIR.parents[1]
# Repo root is e.g. /work/main; shared data lives beside it as ../shared.
DEFAULT_SHARED = (REPO_ROOT / ".." / "shared").resolve()
DEFAULT_OUT = REPO_ROOT / "tests" / "data" / "reference"

VGG_REL = "models/vgg16_tumor.onnx"
EFF_REL = "models/efficientnet_lite0.onnx"
IMG_REL = "images/chelsea.png"
CLASSES_REL = "models/imagenet_classes.txt"

VGG_CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]

# Crops are half-open row/col ranges [start, end) into the 300x451 image.
VGG_FWD_CROP = (30, 270, 105, 345)  # 240x240
EFF_CROP = (38, 262, 113, 337)  # 224x224
VGG_GRAD_CROP = (75, 225, 150, 300)  # 150x150

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

VGG_BLOCKS = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]  # (block, number of convs)
VGG_B3C1_RELU = "functional_1/block3_conv1_1/Relu:0"
EFF_HEAD_ACT = "/_swish_1/Clip_output_0"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_rgb_u8(path: Path) -> np.ndarray:
    """HxWx3 uint8, exactly the PNG's samples (no ICC / gamma handling)."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        arr = np.asarray(im, dtype=np.uint8).copy()
    return arr


def crop(u8: np.ndarray, box) -> np.ndarray:
    r0, r1, c0, c1 = box
    return u8[r0:r1, c0:c1, :]


def vgg_input(u8: np.ndarray, box) -> np.ndarray:
    """NHWC float32 [1,H,W,3] = float32(u8) / float32(255)."""
    x = crop(u8, box).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray(x[None, ...], dtype=np.float32)


def imagenet_mean_std_f32():
    mean32 = np.array(IMAGENET_MEAN, dtype=np.float32)
    std32 = np.array(IMAGENET_STD, dtype=np.float32)
    return mean32, std32


def eff_input(u8: np.ndarray, box=EFF_CROP) -> np.ndarray:
    """NCHW float32 [1,3,H,W] = ((float32(u8)/float32(255)) - mean32) / std32."""
    mean32, std32 = imagenet_mean_std_f32()
    x = crop(u8, box)
    y = ((x.astype(np.float32) / np.float32(255)) - mean32) / std32
    assert y.dtype == np.float32
    return np.ascontiguousarray(y.transpose(2, 0, 1)[None, ...], dtype=np.float32)


def f32_bits(values) -> list:
    return [int(np.float32(v).view(np.uint32)) for v in values]


# --------------------------------------------------------------------------
# ONNX helpers
# --------------------------------------------------------------------------

def onnx_initializers(model) -> dict:
    from onnx import numpy_helper

    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def extract_submodel(model, inputs, outputs):
    """In-memory onnx.utils.Extractor (same as onnx.utils.extract_model)."""
    import onnx
    import onnx.utils
    from onnx import TensorProto, helper

    # Shape inference does not annotate every value of the tf2onnx graph (its
    # Shape/Reshape head defeats it), so give the requested boundary values a
    # float type ourselves when inference leaves them out.
    m = onnx.shape_inference.infer_shapes(model)
    known = {v.name for v in list(m.graph.value_info) + list(m.graph.input) + list(m.graph.output)}
    for name in list(inputs) + list(outputs):
        if name not in known:
            m.graph.value_info.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return onnx.utils.Extractor(m).extract_model(list(inputs), list(outputs))


def make_input_spatial_dynamic(model, input_name="input", dims=(1, 2)):
    """Replace fixed spatial dims of `input_name` by symbolic ones and drop
    stale value_info so onnxruntime accepts other spatial sizes."""
    for inp in model.graph.input:
        if inp.name == input_name:
            shp = inp.type.tensor_type.shape
            for d in dims:
                shp.dim[d].ClearField("dim_value")
                shp.dim[d].dim_param = f"dyn_{d}"
    del model.graph.value_info[:]
    for out in model.graph.output:
        out.type.tensor_type.ClearField("shape")
    return model


# --------------------------------------------------------------------------
# Hand-built PyTorch VGG16 (from the ONNX initializers)
# --------------------------------------------------------------------------

def build_vgg_torch(model_onnx, stop_after: str | None = None, head: bool = True):
    """Hand-built torch equivalent of vgg16_tumor.onnx.

    Input is NHWC like the ONNX graph. `stop_after="block3_conv1"` returns the
    post-ReLU activation of that conv (NCHW), i.e. the ONNX value
    `functional_1/block3_conv1_1/Relu:0`. With stop_after=None and head=True
    the full classifier (softmax probabilities) is built.
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    init = onnx_initializers(model_onnx)

    class VGG16Tumor(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleDict()
            self.plan = []  # sequence of ("conv", key) / ("pool", None)
            done = False
            for b, n in VGG_BLOCKS:
                for k in range(1, n + 1):
                    key = f"block{b}_conv{k}"
                    w = init[f"functional_1/{key}_1/convolution/ReadVariableOp:0"]
                    bias = init[f"functional_1/{key}_1/Squeeze:0"]
                    conv = nn.Conv2d(w.shape[1], w.shape[0], 3, stride=1, padding=1, bias=True)
                    with torch.no_grad():
                        conv.weight.copy_(torch.from_numpy(w.copy()))
                        conv.bias.copy_(torch.from_numpy(bias.copy()))
                    self.convs[key] = conv
                    self.plan.append(("conv", key))
                    if stop_after == key:
                        done = True
                        break
                if done:
                    break
                self.plan.append(("pool", None))
            self.use_head = head and stop_after is None
            if self.use_head:
                names = {
                    "w1": "functional_1/dense_1/Cast/ReadVariableOp:0",
                    "b1": "functional_1/dense_1/BiasAdd/ReadVariableOp:0",
                    "m1": "functional_1/batch_normalization_1/batchnorm/mul:0",
                    "s1": "functional_1/batch_normalization_1/batchnorm/sub:0",
                    "w2": "functional_1/dense_1_2/Cast/ReadVariableOp:0",
                    "b2": "functional_1/dense_1_2/BiasAdd/ReadVariableOp:0",
                    "m2": "functional_1/batch_normalization_1_2/batchnorm/mul:0",
                    "s2": "functional_1/batch_normalization_1_2/batchnorm/sub:0",
                    "w3": "functional_1/dense_2_1/Cast/ReadVariableOp:0",
                    "b3": "functional_1/dense_2_1/BiasAdd/ReadVariableOp:0",
                    "w4": "functional_1/dense_3_1/Cast/ReadVariableOp:0",
                    "b4": "functional_1/dense_3_1/BiasAdd/ReadVariableOp:0",
                }
                for attr, nm in names.items():
                    self.register_buffer(attr, torch.from_numpy(init[nm].copy()))
            for p in self.parameters():
                p.requires_grad_(False)

        def forward(self, x_nhwc):
            x = x_nhwc.permute(0, 3, 1, 2)
            for kind, key in self.plan:
                if kind == "conv":
                    x = F.relu(self.convs[key](x))
                else:
                    x = F.max_pool2d(x, 2, 2)
            if not self.use_head:
                return x
            n = x.shape[0]
            x = x.permute(0, 2, 3, 1).reshape(n, -1)  # Keras flatten is NHWC order
            x = F.relu(x @ self.w1 + self.b1) * self.m1 + self.s1
            x = F.relu(x @ self.w2 + self.b2) * self.m2 + self.s2
            x = F.relu(x @ self.w3 + self.b3)
            x = x @ self.w4 + self.b4
            return torch.softmax(x, dim=-1)

    return VGG16Tumor().eval()


def build_eff_torch(model_onnx):
    """onnx2torch conversion of a (sub)graph, eval mode, weights frozen."""
    from onnx2torch import convert

    m = convert(model_onnx).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m
