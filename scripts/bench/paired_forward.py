#!/usr/bin/env python3
"""Paired forward passes of two `time_model` binaries on EfficientNet-Lite0 at any batch.

Each round runs both binaries back to back (the order alternating between rounds) and the
script prints each side's median over rounds and the ratio B / A per round: on this shared
machine only such ratios mean anything (see paired_nodes.py).

    cargo build --release -p convscope-engine --example time_model
    cp target/release/examples/time_model /tmp/a   # ... change the code, build again ...
    python3 scripts/bench/paired_forward.py /tmp/a target/release/examples/time_model \\
        --batch 32 --rounds 6 [--threads 2] [--isa avx2] [--full]

By default the pass stops at `_conv_head` (what `convscope examples --layers _conv_head`
runs; the export's classifier takes a batch of one); `--full` runs the whole model.
"""

import argparse
import os
import re
import statistics
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--threads", default="2")
    ap.add_argument("--isa", default="avx512")
    ap.add_argument("--full", action="store_true")
    ap.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "efficientnet_lite0.onnx")
    args = ap.parse_args()
    runs = max(5, 160 // args.batch)

    def run(binary: str) -> float:
        env = dict(os.environ, RAYON_NUM_THREADS=args.threads, CONVSCOPE_ISA=args.isa)
        if not args.full:
            env["TARGET"] = "/_swish_1/Clip_output_0"
        out = subprocess.run([binary, str(args.model), f"{args.batch},3,224,224", str(runs)],
                             env=env, capture_output=True, text=True, check=True).stdout
        return float(re.search(r"median ([0-9.]+)", out).group(1))

    a_ms, b_ms, ratios = [], [], []
    for r in range(args.rounds):
        if r % 2 == 0:
            a, b = run(args.a), run(args.b)
        else:
            b, a = run(args.b), run(args.a)
        a_ms.append(a)
        b_ms.append(b)
        ratios.append(b / a)
    load = open("/proc/loadavg").read().split()[0]
    print(f"batch {args.batch}, {args.threads} threads, {args.isa}: A {statistics.median(a_ms):.2f} ms, "
          f"B {statistics.median(b_ms):.2f} ms, B/A per round {' '.join(f'{x:.2f}' for x in ratios)}, "
          f"median {statistics.median(ratios):.3f} (load {load})")


if __name__ == "__main__":
    main()
