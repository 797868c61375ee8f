#!/usr/bin/env python3
"""EfficientNet-style blocks, convscope beside onnxruntime, one and two threads.

Builds small ONNX files of eight inverted-residual blocks of one shape each (1x1 expansion ->
Clip -> depthwise -> Clip -> 1x1 projection -> residual Add, random weights) and times
`Model::run` (the `time_model` example) and onnxruntime's `InferenceSession.run` on them,
alternating, with 1 and 2 threads, per block. onnxruntime's own profile inflates its node times
with two threads, and a whole network's per-block figures depend on what ran before; blocks of
one shape show a kernel's speed and how it scales with the threads.

    cargo build --release -p convscope-engine --example time_model
    python3 scripts/bench/block_compare.py --rounds 3
"""

import argparse
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
TIME_MODEL = os.path.join(HERE, "..", "..", "target", "release", "examples", "time_model")

# name: (input channels, expanded channels, map size, taps)
CASES = {
    "28x28 40-240-40 5x5": (40, 240, 28, 5),
    "14x14 80-480-80 3x3": (80, 480, 14, 3),
    "14x14 112-672-112 5x5": (112, 672, 14, 5),
    "7x7 192-1152-192 5x5": (192, 1152, 7, 5),
}

# Blocks per model: one pass runs them back to back, so the start of a pass (threads waking up)
# weighs as little as in a whole network.
CHAIN = 8


def build(path, c, e, hw, k):
    """CHAIN residual blocks c -> e -> c, each with its own weights."""
    r = np.random.RandomState(0)

    def init(name, shape):
        return numpy_helper.from_array((r.randn(*shape) * 0.1).astype(np.float32), name)

    inits = [numpy_helper.from_array(np.array(0, np.float32), "lo"),
             numpy_helper.from_array(np.array(6, np.float32), "hi")]
    nodes = []
    value = "x"
    for i in range(CHAIN):
        inits += [init(f"we{i}", (e, c, 1, 1)), init(f"be{i}", (e,)),
                  init(f"wd{i}", (e, 1, k, k)), init(f"bd{i}", (e,)),
                  init(f"wp{i}", (c, e, 1, 1)), init(f"bp{i}", (c,))]
        nodes += [
            helper.make_node("Conv", [value, f"we{i}", f"be{i}"], [f"a{i}"], name=f"expand{i}"),
            helper.make_node("Clip", [f"a{i}", "lo", "hi"], [f"b{i}"], name=f"clip{i}a"),
            helper.make_node("Conv", [f"b{i}", f"wd{i}", f"bd{i}"], [f"c{i}"],
                             name=f"depthwise{i}", group=e, pads=[k // 2] * 4),
            helper.make_node("Clip", [f"c{i}", "lo", "hi"], [f"d{i}"], name=f"clip{i}b"),
            helper.make_node("Conv", [f"d{i}", f"wp{i}", f"bp{i}"], [f"z{i}"],
                             name=f"project{i}"),
            helper.make_node("Add", [f"z{i}", value], [f"y{i}"], name=f"add{i}"),
        ]
        value = f"y{i}"
    graph = helper.make_graph(
        nodes, "blocks", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])],
        [helper.make_tensor_value_info(value, TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return (1, c, hw, hw)


def time_ort(path, shape, threads, runs):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    s = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    x = np.full(shape, 0.5, np.float32)
    for _ in range(20):
        s.run(None, {"x": x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        s.run(None, {"x": x})
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def time_ours(path, shape, threads, runs):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run([TIME_MODEL, path, ",".join(map(str, shape)), str(runs)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.split("median")[1].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    print(f"{'case':30s} {'ours 1t':>8s} {'2t':>7s} {'x':>5s} | {'ort 1t':>7s} {'2t':>7s} "
          f"{'x':>5s} | ort/ours 1t  2t")
    for i, (name, spec) in enumerate(CASES.items()):
        # Per block: the model runs CHAIN of them.
        path = os.path.join(tmp, f"case{i}.onnx")
        shape = build(path, *spec)
        got = {key: [] for key in ("o1", "o2", "t1", "t2")}
        for r in range(args.rounds):
            for t in (1, 2) if r % 2 == 0 else (2, 1):
                got[f"o{t}"].append(time_ours(path, shape, t, args.runs))
                got[f"t{t}"].append(time_ort(path, shape, t, args.runs))
        m = {key: statistics.median(v) / CHAIN for key, v in got.items()}
        print(f"{name:30s} {m['o1']:8.3f} {m['o2']:7.3f} {m['o1'] / m['o2']:5.2f} | "
              f"{m['t1']:7.3f} {m['t2']:7.3f} {m['t1'] / m['t2']:5.2f} | "
              f"{m['t1'] / m['o1']:8.2f} {m['t2'] / m['o2']:5.2f}")
    print("(median ms per block; x: two-thread speed-up; ort/ours above 1: convscope is faster)")


if __name__ == "__main__":
    main()
