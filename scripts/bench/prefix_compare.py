#!/usr/bin/env python3
"""Where a whole network's time goes, convscope beside onnxruntime, without either's profiler.

onnxruntime's own profile adds a cost to every node it times (about 30 µs a node with one
thread on EfficientNet-Lite0: its nodes summed to 12.6 ms against a 10.8 ms pass), so
per-node comparisons against it mislead by more than the differences they look for. Here
each side times whole passes of prefix models instead, the network cut at block boundaries
(`onnx.utils.extract_model`), and the difference between consecutive prefixes is a
segment's time. Both sides run each prefix alternately, in the same rounds.

    cargo build --release -p convscope-engine --example time_model
    sh scripts/bench/avx2_only.sh python3 scripts/bench/prefix_compare.py --threads 2 --rounds 3

A prefix returns its last value, so a segment's figure includes handing that value back
(onnxruntime reorders it out of its blocked layout); compare segments, not single prefixes.
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TIME_MODEL = os.path.join(ROOT, "target", "release", "examples", "time_model")
MODEL = os.path.join(ROOT, "..", "shared", "models", "efficientnet_lite0.onnx")

# EfficientNet-Lite0's cut points: (segment, value the prefix ends at).
CUTS = [
    ("stem", "/_swish/Clip_output_0"),
    ("block 0", "/_blocks.0/_project_conv/Conv_output_0"),
    ("block 1", "/_blocks.1/_project_conv/Conv_output_0"),
    ("block 2", "/_blocks.2/Add_output_0"),
    ("blocks 3-4", "/_blocks.4/Add_output_0"),
    ("blocks 5-7", "/_blocks.7/Add_output_0"),
    ("blocks 8-10", "/_blocks.10/Add_output_0"),
    ("blocks 11-14", "/_blocks.14/Add_output_0"),
    ("block 15", "/_blocks.15/_project_conv/Conv_output_0"),
    ("head", "/_swish_1/Clip_output_0"),
    ("pool, classifier", None),
]


def time_ort(path, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    x = np.full((1, 3, 224, 224), 0.5, np.float32)
    for _ in range(20):
        s.run(None, {name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_ours(path, threads, runs):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([TIME_MODEL, path, "1,3,224,224", str(runs)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("median")[1].split()[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=MODEL)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    if not os.path.exists(TIME_MODEL):
        raise SystemExit(f"build the timer first: cargo build --release -p convscope-engine "
                         f"--example time_model ({TIME_MODEL} is missing)")
    tmp = tempfile.mkdtemp()
    graph_input = onnx.load(args.model).graph.input[0].name
    paths = []
    for i, (_, value) in enumerate(CUTS):
        if value is None:
            paths.append(args.model)
            continue
        path = os.path.join(tmp, f"prefix{i}.onnx")
        onnx.utils.extract_model(args.model, path, [graph_input], [value])
        paths.append(path)
    ours = {p: [] for p in paths}
    theirs = {p: [] for p in paths}
    for r in range(args.rounds):
        for p in paths if r % 2 == 0 else reversed(paths):
            ours[p].append(time_ours(p, args.threads, args.runs))
            theirs[p].append(time_ort(p, args.threads, args.runs))
    load = open("/proc/loadavg").read().split()[0]
    print(f"{args.threads} thread(s), {args.rounds} rounds, load {load}; "
          "median ms per pass of each prefix, segment = difference to the previous prefix")
    print(f"{'segment':18s} {'ours':>7s} {'ort':>7s} {'ours-ort':>9s}   prefix ours / ort")
    prev_o = prev_t = 0.0
    for (name, _), p in zip(CUTS, paths):
        o, t = statistics.median(ours[p]), statistics.median(theirs[p])
        print(f"{name:18s} {o - prev_o:7.3f} {t - prev_t:7.3f} {(o - prev_o) - (t - prev_t):+9.3f}"
              f"   {o:6.3f} / {t:6.3f}")
        prev_o, prev_t = o, t
    print("(a segment where ours-ort is positive is slower in convscope)")


if __name__ == "__main__":
    main()
