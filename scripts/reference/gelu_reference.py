#!/usr/bin/env python3
"""ONNX opset-20 Gelu reference values (issue #23): tests/data/reference/gelu_opset20.json.

Builds a one-input ONNX model with two Gelu nodes (approximate="none" and "tanh", opset 20),
runs it in onnxruntime on 121 fixed points in [-8, 8] plus a few edge values, and records
torch.nn.functional.gelu's values and derivatives (autograd, float64) at the same points.
`crates/engine/tests/grad_transformer.rs` compares the engine's Gelu with both.

    /work/venv-ref/bin/python scripts/reference/gelu_reference.py [--out DIR]

Needs onnx, onnxruntime (>= 1.17, for opset-20 Gelu) and torch. Same bytes on every run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def points() -> np.ndarray:
    grid = np.linspace(-8.0, 8.0, 121)
    edges = np.array([0.0, 1e-4, -1e-4, 0.5, -0.5, 3.0, -3.0, 12.0, -12.0])
    return np.concatenate([grid, edges]).astype(np.float32)


def ort_values(x: np.ndarray) -> dict:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Gelu", ["x"], ["none"], approximate="none"),
        helper.make_node("Gelu", ["x"], ["tanh"], approximate="tanh"),
    ]
    graph = helper.make_graph(
        nodes,
        "gelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [len(x)])],
        [
            helper.make_tensor_value_info("none", TensorProto.FLOAT, [len(x)]),
            helper.make_tensor_value_info("tanh", TensorProto.FLOAT, [len(x)]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    none, tanh = sess.run(None, {"x": x})
    return {"none": none, "tanh": tanh}


def torch_values(x: np.ndarray) -> dict:
    import torch

    out = {}
    for approximate in ("none", "tanh"):
        t = torch.tensor(x.astype(np.float64), requires_grad=True)
        y = torch.nn.functional.gelu(t, approximate=approximate)
        (g,) = torch.autograd.grad(y.sum(), t)
        out[approximate] = y.detach().numpy()
        out[approximate + "_grad"] = g.numpy()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "reference")
    args = ap.parse_args()
    import onnxruntime
    import torch

    x = points()
    o = ort_values(x)
    t = torch_values(x)
    doc = {
        "what": "Gelu (opset 20) at fixed points: onnxruntime float32 outputs; torch float64 values and derivatives",
        "versions": {"onnxruntime": onnxruntime.__version__, "torch": torch.__version__},
        "x": [float(v) for v in x],
        "ort_none": [float(v) for v in o["none"]],
        "ort_tanh": [float(v) for v in o["tanh"]],
        "torch_none": [float(v) for v in t["none"]],
        "torch_tanh": [float(v) for v in t["tanh"]],
        "torch_none_grad": [float(v) for v in t["none_grad"]],
        "torch_tanh_grad": [float(v) for v in t["tanh_grad"]],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "gelu_opset20.json"
    path.write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n")
    ort_vs_torch = max(
        float(np.abs(o[a].astype(np.float64) - t[a]).max()) for a in ("none", "tanh")
    )
    print(f"wrote {path} ({len(x)} points); onnxruntime vs torch: {ort_vs_torch:.2e} at most")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
