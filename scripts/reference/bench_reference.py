#!/usr/bin/env python3
"""Time the reference jobs in onnxruntime and PyTorch on this CPU (2 threads).

One line per job, fixed format:
    <engine:8> <job:24> median_ms=<.1f> min_ms=<.1f> max_ms=<.1f> runs=<N>
Lines starting with '#' are context (CPU, versions, threads).

Jobs (same inputs as make_reference.py, all float32, batch 1 unless stated):
  ort   vgg16_forward_240         VGG16 full classifier, 240x240 NHWC
  ort   effnet_forward_224        EfficientNet-Lite0 logits
  torch vgg16_forward_240         hand-built VGG16 full classifier
  torch vgg16_b3c1_grad_150       forward to block3_conv1 ReLU + input gradient, 150x150
  torch vgg16_b1c1_grad_b64_64    batch 64 at 64x64, forward to block1_conv1 ReLU + input
                                  gradient of sum_i mean(act[i, i]) (filter i for item i)
  torch effnet_forward_224        onnx2torch EfficientNet-Lite0 logits
  torch effnet_logit285_grad_224  forward + input gradient of logits[0,285]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from refcommon import (
    DEFAULT_SHARED,
    EFF_REL,
    IMG_REL,
    VGG_FWD_CROP,
    VGG_GRAD_CROP,
    VGG_REL,
    build_eff_torch,
    build_vgg_torch,
    eff_input,
    load_rgb_u8,
    vgg_input,
)

THREADS = 2


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def time_it(fn, runs: int, warmup: int):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    return {"median_ms": statistics.median(ts), "min_ms": min(ts), "max_ms": max(ts), "runs": runs}


def report(results, engine, job, r):
    r = dict(engine=engine, job=job, **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()})
    results.append(r)
    print(f"{engine:<8} {job:<24} median_ms={r['median_ms']:.1f} min_ms={r['min_ms']:.1f} "
          f"max_ms={r['max_ms']:.1f} runs={r['runs']}", flush=True)


def batch64_input(u8: np.ndarray) -> np.ndarray:
    """64 different 64x64 crops of the VGG forward crop region (8x8 grid, step 25)."""
    r0, _, c0, _ = VGG_FWD_CROP
    items = []
    for i in range(64):
        r, c = r0 + (i // 8) * 25, c0 + (i % 8) * 25
        items.append(vgg_input(u8, (r, r + 64, c, c + 64))[0])
    return np.ascontiguousarray(np.stack(items), dtype=np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help=f"shared data dir holding models/ and images/ (default: {DEFAULT_SHARED})")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per job (default 10)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed warm-up runs per job (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    ap.add_argument("--only", action="append", default=None,
                    help="run only jobs whose '<engine> <job>' contains this substring (repeatable)")
    args = ap.parse_args(argv)
    shared = args.shared.resolve()

    import onnxruntime as ort
    import torch

    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    def want(engine, job):
        return not args.only or any(s in f"{engine} {job}" for s in args.only)

    u8 = load_rgb_u8(shared / IMG_REL)
    x_vgg240 = vgg_input(u8, VGG_FWD_CROP)
    x_vgg150 = vgg_input(u8, VGG_GRAD_CROP)
    x_b64 = batch64_input(u8)
    x_eff = eff_input(u8)

    meta = {
        "cpu": cpu_name(),
        "threads": THREADS,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "runs": args.runs,
        "warmup": args.warmup,
    }
    print(f"# cpu: {meta['cpu']}")
    print(f"# threads={THREADS} runs={args.runs} warmup={args.warmup} "
          f"onnxruntime={meta['onnxruntime']} torch={meta['torch']} python={meta['python']}")
    results = []

    # ---------------- onnxruntime ----------------
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    for job, rel, x in (("vgg16_forward_240", VGG_REL, x_vgg240), ("effnet_forward_224", EFF_REL, x_eff)):
        if not want("ort", job):
            continue
        sess = ort.InferenceSession(str(shared / rel), so, providers=["CPUExecutionProvider"])
        feed = {"input": x}
        report(results, "ort", job, time_it(lambda: sess.run(None, feed), args.runs, args.warmup))
        del sess  # free its thread pool before the torch jobs

    # ---------------- PyTorch ----------------
    import onnx

    need_vgg = any(want("torch", j) for j in ("vgg16_forward_240", "vgg16_b3c1_grad_150", "vgg16_b1c1_grad_b64_64"))
    vgg_onnx = onnx.load(str(shared / VGG_REL)) if need_vgg else None

    if want("torch", "vgg16_forward_240"):
        m = build_vgg_torch(vgg_onnx)
        xt = torch.from_numpy(x_vgg240.copy())

        def f():
            with torch.inference_mode():
                return m(xt)
        report(results, "torch", "vgg16_forward_240", time_it(f, args.runs, args.warmup))
        del m

    if want("torch", "vgg16_b3c1_grad_150"):
        m = build_vgg_torch(vgg_onnx, stop_after="block3_conv1")
        base = torch.from_numpy(x_vgg150.copy())

        def f():
            x = base.clone().requires_grad_(True)
            obj = m(x)[0, 0].mean()
            return torch.autograd.grad(obj, x)[0]
        report(results, "torch", "vgg16_b3c1_grad_150", time_it(f, args.runs, args.warmup))
        del m

    if want("torch", "vgg16_b1c1_grad_b64_64"):
        m = build_vgg_torch(vgg_onnx, stop_after="block1_conv1")
        base = torch.from_numpy(x_b64)
        idx = torch.arange(64)

        def f():
            x = base.clone().requires_grad_(True)
            act = m(x)  # [64, 64, 64, 64]
            obj = act[idx, idx].mean(dim=(1, 2)).sum()
            return torch.autograd.grad(obj, x)[0]
        report(results, "torch", "vgg16_b1c1_grad_b64_64", time_it(f, args.runs, args.warmup))
        del m

    need_eff = any(want("torch", j) for j in ("effnet_forward_224", "effnet_logit285_grad_224"))
    if need_eff:
        eff = build_eff_torch(onnx.load(str(shared / EFF_REL)))
        base = torch.from_numpy(x_eff.copy())
        if want("torch", "effnet_forward_224"):
            def f():
                with torch.inference_mode():
                    return eff(base)
            report(results, "torch", "effnet_forward_224", time_it(f, args.runs, args.warmup))
        if want("torch", "effnet_logit285_grad_224"):
            def f():
                x = base.clone().requires_grad_(True)
                obj = eff(x)[0, 285]
                return torch.autograd.grad(obj, x)[0]
            report(results, "torch", "effnet_logit285_grad_224", time_it(f, args.runs, args.warmup))

    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"schema": "convscope.reference.bench/1", "meta": meta,
                                         "results": results}, indent=1) + "\n")
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
