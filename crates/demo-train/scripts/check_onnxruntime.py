#!/usr/bin/env python3
"""Cross-checks the embedded demo model with onnxruntime (optional; not part of `cargo test`).

1. If the `onnx` package is installed, runs its full checker (with shape inference).
2. Runs the `reference_io` example, which writes 8 fresh 64x64 scenes and the 160x160 demo
   scene together with convscope's engine outputs, and compares onnxruntime's probabilities
   and logits with them.

Usage: python3 crates/demo-train/scripts/check_onnxruntime.py   (from any directory)
Needs: numpy, onnxruntime (onnx optional).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

CRATE = Path(__file__).resolve().parent.parent
MODEL = CRATE.parent / "demo" / "assets" / "demo_model.onnx"


def main() -> int:
    model_bytes = MODEL.read_bytes()
    try:
        import onnx

        proto = onnx.load_from_string(model_bytes)
        onnx.checker.check_model(proto, full_check=True)
        print(f"onnx {onnx.__version__}: checker passed (opset {proto.opset_import[0].version})")
        # Expose the logits as a second output for the comparison below.
        proto.graph.output.append(onnx.helper.make_empty_tensor_value_info("logits"))
        model_bytes = proto.SerializeToString()
    except ImportError:
        print("onnx is not installed: skipping the checker and the logits comparison")

    with tempfile.TemporaryDirectory() as tmp:
        ref_path = Path(tmp) / "reference.json"
        subprocess.run(
            ["cargo", "run", "--release", "-q", "-p", "convscope-demo-train",
             "--example", "reference_io", "--", str(ref_path)],
            cwd=CRATE, check=True,
        )
        cases = json.loads(ref_path.read_text())["cases"]

    sess = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    outputs = [o.name for o in sess.get_outputs()]
    worst = {"probabilities": 0.0, "logits": 0.0}
    for case in cases:
        x = np.asarray(case["input"], dtype=np.float32).reshape(case["shape"])
        got = dict(zip(outputs, sess.run(outputs, {"image": x})))
        for name in worst:
            if name in got:
                diff = np.abs(got[name].ravel() - np.asarray(case[name], dtype=np.float32))
                worst[name] = max(worst[name], float(diff.max()))
        print(f"input {case['shape']}: onnxruntime argmax {int(got['probabilities'].argmax())}, "
              f"probabilities {np.round(got['probabilities'].astype(np.float64).ravel(), 4).tolist()}")
    print(f"onnxruntime {ort.__version__} vs convscope engine, max abs difference: "
          + ", ".join(f"{k} {v:.2e}" for k, v in worst.items()))
    ok = worst["probabilities"] < 1e-4 and worst["logits"] < 1e-3
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
