#!/usr/bin/env python3
"""Filter visualisation (gradient ascent in input space): PyTorch vs `convscope filters`.

The PyTorch side reimplements convscope's defaults (the walk-through's algorithm) exactly:

  * the image lives in pixel units: start = uniform[0,1) * 20 + 128, NHWC for VGG16;
  * model input = pixels / 255 ("unit" preprocessing);
  * objective of item i = mean over H,W of channel k_i of the layer's ReLU output;
    all requested filters are optimised together as ONE batch (item i maximises filter k_i),
    so the loss is sum_i mean(act[i, k_i]);
  * g = d loss / d (model input)   (the pixels/255 tensor, not the pixels);
    per image: pixels += step * g / (sqrt(mean(g^2)) + 1e-5), step = 1.0;
  * 40 steps; the objective is recorded before every step and once after the last one
    (41 values per filter, like convscope's JSON `curve`).

The VGG16 trunk is hand-built from the ONNX initializers (scripts/reference/refcommon.py,
build_vgg_torch(stop_after=LAYER)); its output is the post-ReLU value of LAYER
(e.g. functional_1/block1_conv1_1/Relu:0). Weights have requires_grad=False; only the
input needs a gradient.

Each PyTorch job runs in a fresh subprocess (this script with --worker) so that the whole
process (python start, imports, ONNX load, trunk build, ascent, deprocess + grid PNG) can be
timed like the convscope command; the worker also reports the ascent loop alone
(40 x forward+backward + 1 final forward, after model load).

Rounds alternate which side runs first. Everything uses 2 threads
(torch.set_num_threads(2), RAYON_NUM_THREADS=2).

Usage:
    python3.11 scripts/bench/filters_compare.py                 # both jobs, 1 round
    python3.11 scripts/bench/filters_compare.py --rounds 3 --jobs b1c1
    python3.11 scripts/bench/filters_compare.py --rounds 1 --jobs b4c1 --convscope-chunk 64
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "scripts" / "reference"))

THREADS = 2
DEFAULT_MODEL = (REPO / ".." / "shared" / "models" / "vgg16_tumor.onnx").resolve()
DEFAULT_BIN = REPO / "target" / "release" / "convscope"

# name -> (layer, number of filters, size in px)
JOBS = {
    "b1c1": ("block1_conv1", 64, 64),
    "b4c1": ("block4_conv1", 64, 128),
}


# --------------------------------------------------------------------------------------------
# PyTorch worker (runs in its own process)
# --------------------------------------------------------------------------------------------

def worker(args) -> int:
    t_proc0 = time.perf_counter()
    import numpy as np
    import onnx
    import torch

    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    from refcommon import build_vgg_torch

    layer, nfilt, size = args.layer, args.nfilters, args.size
    t_load0 = time.perf_counter()
    model = build_vgg_torch(onnx.load(str(args.model)), stop_after=layer)
    t_load = time.perf_counter() - t_load0

    filters = torch.arange(nfilt)
    n = len(filters)
    gen = torch.Generator().manual_seed(args.seed)
    pix = torch.rand(n, size, size, 3, generator=gen) * 20.0 + 128.0  # NHWC, pixel units
    items = torch.arange(n)
    curves = [[] for _ in range(n)]

    def objective(x_in):
        act = model(x_in)  # NCHW post-ReLU
        per_item = act[items, filters].mean(dim=(1, 2))  # [n]
        return per_item

    t0 = time.perf_counter()
    for _ in range(args.steps):
        x_in = (pix / 255.0).requires_grad_(True)
        per_item = objective(x_in)
        (g,) = torch.autograd.grad(per_item.sum(), x_in)
        for i, v in enumerate(per_item.detach().tolist()):
            curves[i].append(v)
        rms = g.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()
        pix = pix + args.step * g / (rms + 1e-5)
    with torch.no_grad():
        per_item = objective(pix / 255.0)
    for i, v in enumerate(per_item.tolist()):
        curves[i].append(v)
    t_loop = time.perf_counter() - t0

    # Deprocess like the walk-through / convscope and save an 8x8 grid (margin 5), so the
    # whole process does the same kind of work as the convscope command.
    from PIL import Image

    x = pix.permute(0, 3, 1, 2).double().numpy()  # n,3,h,w
    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    m = 5
    grid = np.zeros((rows * size + (rows - 1) * m, cols * size + (cols - 1) * m, 3), np.uint8)
    for i in range(n):
        xi = x[i]
        d = np.clip((xi - xi.mean()) / (xi.std() + 1e-5) * 0.1 + 0.5, 0, 1) * 255
        r, c = divmod(i, cols)
        grid[r * (size + m): r * (size + m) + size, c * (size + m): c * (size + m) + size] = \
            d.transpose(1, 2, 0).astype(np.uint8)
    Image.fromarray(grid).save(args.out_png)

    ends = [cv[-1] for cv in curves]
    starts = [cv[0] for cv in curves]
    res = {
        "layer": layer, "size": size, "n": n, "steps": args.steps,
        "load_s": t_load, "loop_s": t_loop,
        "proc_internal_s": time.perf_counter() - t_proc0,
        "mean_start": float(np.mean(starts)), "mean_end": float(np.mean(ends)),
        "rising": int(sum(e > s for s, e in zip(starts, ends))),
        "filters": [{"filter": i, "start": s, "end": e} for i, s, e in zip(range(n), starts, ends)],
    }
    Path(args.worker_json).write_text(json.dumps(res))
    return 0


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def run_torch(job, args, tmp: Path, rnd: int):
    layer, n, size = JOBS[job]
    wj = tmp / f"torch_{job}_{rnd}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
           "--layer", layer, "--nfilters", str(n), "--size", str(size),
           "--model", str(args.model), "--seed", str(rnd),
           "--worker-json", str(wj), "--out-png", str(tmp / f"torch_{job}.png")]
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env)
    wall = time.perf_counter() - t0
    r = json.loads(wj.read_text())
    r["wall_s"] = wall
    return r


def convscope_cmd(job, args, tmp: Path):
    layer, n, size = JOBS[job]
    cmd = [str(args.convscope), "filters", str(args.model), "--layer", layer,
           "--filters", f"0..{n}", "--size", str(size), "--grid", "8x8",
           "--out", str(tmp / f"cs_{job}.png"), "--json", str(tmp / f"cs_{job}.json")]
    if args.convscope_chunk:
        cmd += ["--chunk", str(args.convscope_chunk)]
    return cmd


def run_convscope(job, args, tmp: Path):
    cmd = convscope_cmd(job, args, tmp)
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    t0 = time.perf_counter()
    p = subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    d = json.loads((tmp / f"cs_{job}.json").read_text())
    starts = [f["start"] for f in d["filters"]]
    return {
        "wall_s": wall, "mean_end": d["mean_end"], "rising": d["rising"], "n": len(d["filters"]),
        "mean_start": sum(starts) / len(starts), "stderr": p.stderr.strip().splitlines()[-1:],
        "filters": d["filters"],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", default="b1c1,b4c1", help="comma-separated: b1c1 (block1_conv1, 64 px), "
                    "b4c1 (block4_conv1, 128 px)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--convscope", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--convscope-chunk", type=int, default=None,
                    help="pass --chunk N to convscope (default: its own memory-budget choice)")
    ap.add_argument("--json", type=Path, default=None, help="write all raw results here")
    ap.add_argument("--start-round", type=int, default=0,
                    help="index of the first round (sets who goes first and the torch seed)")
    ap.add_argument("--sides", default="torch,convscope", help="which sides to run (default both)")
    # worker mode
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--layer", help=argparse.SUPPRESS)
    ap.add_argument("--nfilters", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--steps", type=int, default=40, help=argparse.SUPPRESS)
    ap.add_argument("--step", type=float, default=1.0, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--worker-json", help=argparse.SUPPRESS)
    ap.add_argument("--out-png", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    jobs = [j.strip() for j in args.jobs.split(",") if j.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="filters_compare_"))
    print(f"# threads={THREADS} rounds={args.rounds} tmp={tmp}", flush=True)
    for job in jobs:
        print("# convscope: RAYON_NUM_THREADS=2 " + " ".join(convscope_cmd(job, args, tmp)), flush=True)
    results = {j: {"torch": [], "convscope": []} for j in jobs}
    sides = [x.strip() for x in args.sides.split(",")]
    for rnd in range(args.start_round, args.start_round + args.rounds):
        for job in jobs:
            order = ("torch", "convscope") if rnd % 2 == 0 else ("convscope", "torch")
            for side in [x for x in order if x in sides]:
                r = run_torch(job, args, tmp, rnd) if side == "torch" else run_convscope(job, args, tmp)
                results[job][side].append(r)
                extra = f" loop {r['loop_s']:.2f} s" if side == "torch" else ""
                print(f"round {rnd} {job} {side:9s} wall {r['wall_s']:.2f} s{extra}  "
                      f"mean start {r['mean_start']:.4f} mean end {r['mean_end']:.4f} rising {r['rising']}/{r['n']}",
                      flush=True)

    med = statistics.median
    print()
    hdr = (f"{'job':<28} {'torch loop s':>12} {'torch proc s':>12} {'convscope s':>11} "
           f"{'cs/loop':>7} {'cs/proc':>7} {'torch mean end':>14} {'cs mean end':>11} "
           f"{'torch rising':>12} {'cs rising':>9}")
    print(hdr)
    print("-" * len(hdr))
    for job in jobs:
        layer, n, size = JOBS[job]
        T, C = results[job]["torch"], results[job]["convscope"]
        nan = float("nan")
        mm = lambda rs, f: med([r[f] for r in rs]) if rs else nan
        tl, tp, cw = mm(T, "loop_s"), mm(T, "wall_s"), mm(C, "wall_s")
        tme, cme = mm(T, "mean_end"), mm(C, "mean_end")
        tr = "/".join(str(r["rising"]) for r in T)
        cr = "/".join(str(r["rising"]) for r in C)
        name = f"{layer} {n}f {size}px"
        print(f"{name:<28} {tl:12.2f} {tp:12.2f} {cw:11.2f} {cw / tl:7.2f} {cw / tp:7.2f} "
              f"{tme:14.4f} {cme:11.4f} {tr:>12} {cr:>9}")
    for job in jobs:
        if not (results[job]["torch"] and results[job]["convscope"]):
            continue
        T, C = results[job]["torch"][-1], results[job]["convscope"][-1]
        te = {f["filter"]: f["end"] for f in T["filters"]}
        ce = {f["filter"]: f["end"] for f in C["filters"]}
        diffs = sorted(((abs(te[k] - ce[k]) / max(abs(ce[k]), 1e-6), k) for k in ce), reverse=True)
        flat_t = [f["filter"] for f in T["filters"] if not f["end"] > f["start"]]
        flat_c = [f["filter"] for f in C["filters"] if not f["end"] > f["start"]]
        print(f"{job}: per-filter final objective, torch vs convscope (last round): median rel. diff "
              f"{statistics.median(d for d, _ in diffs):.2e}, max {diffs[0][0]:.2e} (filter {diffs[0][1]}); "
              f"not rising: torch {flat_t}, convscope {flat_c}")
    print("(times: median over rounds; cs/loop = convscope whole process / torch ascent loop; "
          "cs/proc = convscope / torch whole process; rising = per round)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
