#!/usr/bin/env python3
"""The Python package's speed, in one Python process.

(i) Grad-CAM per image on EfficientNet-Lite0 and VGG16: convscope's `Model.gradcam` vs
    pytorch-grad-cam's `GradCAM` (+ `ClassifierOutputTarget`) on the same network, the same
    preprocessed tensor and the same class, both in this process, model loaded, one image and
    one class per call. The PyTorch models are the ones scripts/bench/gradcam_compare_speed.py
    builds (onnx2torch for EfficientNet-Lite0; the VGG16 rebuilt from the ONNX initializers,
    hooked at block5_pool as convscope's automatic layer), in both of its set-ups: "stock"
    (parameters require grad, the usual use of the package) and "lean" (weights frozen, the
    hooked layer a leaf: backward runs only from the logits down to the layer). convscope gets
    the very tensor PyTorch gets (NHWC-transposed for the VGG16, whose ONNX input is NHWC).
    The two sides alternate call by call; medians of --reps calls after 2 warm-ups each.
    The maps are compared too (Pearson correlation of the normalised maps).
(ii) The binding's overhead per call: the Python call (`m.predict(x)`, `m.gradcam(x)`,
    `m.activations(x, layers=...)` on a prepared input) vs the same facade call timed inside
    Rust (`Model._rust_call_seconds`, no Python in the loop), on the embedded demo model (so
    the work is small and the overhead visible) and on EfficientNet-Lite0; for activations
    the difference includes copying the arrays into numpy, reported per MB.

Threads: 2 on both sides (torch.set_num_threads(2), RAYON_NUM_THREADS=2).

Usage (a venv with convscope installed, plus torch, onnx, onnx2torch, grad-cam, pillow):
    RAYON_NUM_THREADS=2 python scripts/bench/python_compare.py [--reps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", "2")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "reference"))

import gradcam_compare_speed as torch_side  # noqa: E402  (the PyTorch models and inputs)

import numpy as np  # noqa: E402

import convscope  # noqa: E402


def alternate(fns: dict, reps: int, warmup: int = 2) -> dict:
    """Median seconds of each function, calls alternating between them."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    times = {k: [] for k in fns}
    for r in range(reps):
        order = list(fns) if r % 2 == 0 else list(reversed(fns))
        for k in order:
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) for k, v in times.items()}


def gradcam_vs_torch(reps: int):
    torch = torch_side.setup_torch()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    img = torch_side.load_rgb()
    rows = []
    for key, path in (("eff", torch_side.EFF), ("vgg", torch_side.VGG)):
        x, _ = torch_side.make_input(key, img)
        x_np = x.numpy()
        if key == "vgg":
            x_np = np.ascontiguousarray(x_np.transpose(0, 2, 3, 1))  # the ONNX input is NHWC
        model = convscope.Model(path)
        prepared = model.prepare(x_np)
        cls = int(np.argmax(model.predict(prepared).probabilities()))
        fns = {"convscope": lambda: model.gradcam(prepared, target=cls)}
        cams = {}
        for lean in (False, True):
            tm, layer = torch_side.build(key, lean)
            cam = GradCAM(model=tm, target_layers=[layer])
            name = "lean" if lean else "stock"
            targets = [ClassifierOutputTarget(cls)]
            fns[name] = (lambda c=cam, t=targets: c(input_tensor=x, targets=t))
            cams[name] = cam
        med = alternate(fns, reps)
        ours = model.gradcam(prepared, target=cls).normalized()
        theirs = fns["stock"]()[0]
        r = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
        rows.append((key, cls, med, r))
        for c in cams.values():
            c.activations_and_grads.release()
    return rows


def overhead(reps: int, effnet_path, image):
    rows = []
    demo = convscope.Model.demo()
    scene = demo.prepare(convscope.Model.demo_scene())
    eff = convscope.Model(effnet_path, preprocess="imagenet", crop=True)
    x = eff.prepare(image)
    cases = [
        ("demo", demo, scene, "predict", None),
        ("demo", demo, scene, "gradcam", None),
        ("demo", demo, scene, "activations", "all"),
        ("effnet", eff, x, "predict", None),
        ("effnet", eff, x, "gradcam", None),
        ("effnet", eff, x, "activations", "_conv_stem"),
        ("effnet", eff, x, "activations", "all"),
    ]
    for name, m, inp, call, layers in cases:
        if call == "activations":
            py_call = lambda: m.activations(inp, layers=layers)  # noqa: E731
            mb = sum(a.nbytes for a in py_call().values()) / 1e6
        else:
            py_call = lambda c=call: getattr(m, c)(inp)  # noqa: E731
            mb = 0.0
        rust = lambda: m._rust_call_seconds(inp, call, 1, layers)[0]  # noqa: E731
        py_times, rust_times = [], []
        for _ in range(2):
            py_call()
            rust()
        for r in range(reps):
            if r % 2 == 0:
                t = time.perf_counter(); py_call(); py_times.append(time.perf_counter() - t)
                rust_times.append(rust())
            else:
                rust_times.append(rust())
                t = time.perf_counter(); py_call(); py_times.append(time.perf_counter() - t)
        rows.append((name, call, layers, statistics.median(py_times), statistics.median(rust_times), mb))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=15)
    args = ap.parse_args(argv)
    print(f"# convscope {convscope.__version__}, RAYON_NUM_THREADS={os.environ['RAYON_NUM_THREADS']}, "
          f"torch threads 2, reps {args.reps}")

    print("\n(i) Grad-CAM per image, one class, model loaded, same tensor (median ms)")
    print(f"{'model':<14} {'class':>5} {'convscope':>9} {'pgc stock':>9} {'pgc lean':>8} "
          f"{'stock/cs':>8} {'lean/cs':>7} {'r(maps)':>7}")
    for key, cls, med, r in gradcam_vs_torch(args.reps):
        name = {"eff": "EffNet-Lite0", "vgg": "VGG16"}[key]
        cs, st, le = med["convscope"], med["stock"], med["lean"]
        print(f"{name:<14} {cls:>5} {cs * 1e3:9.1f} {st * 1e3:9.1f} {le * 1e3:8.1f} "
              f"{st / cs:8.2f} {le / cs:7.2f} {r:7.4f}")

    print("\n(ii) binding overhead per call: Python call vs the same facade call in Rust (median ms)")
    print(f"{'model':<7} {'call':<24} {'python':>8} {'rust':>8} {'overhead':>8} {'arrays MB':>9} {'ms/MB':>6}")
    for name, call, layers, py, rust, mb in overhead(args.reps, torch_side.EFF, torch_side.IMG):
        label = call + (f"({layers})" if layers else "")
        per_mb = f"{(py - rust) * 1e3 / mb:6.2f}" if mb > 0 else "     -"
        print(f"{name:<7} {label:<24} {py * 1e3:8.2f} {rust * 1e3:8.2f} {(py - rust) * 1e3:8.2f} "
              f"{mb:9.1f} {per_mb}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
