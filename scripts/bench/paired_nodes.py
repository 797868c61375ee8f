#!/usr/bin/env python3
"""Paired per-node comparison of two convscope binaries on one bench job.

This machine is shared: its speed changes by 20-40 % from one second to the next (steal time).
Comparing per-node minimums of separate runs, or always running binary A before binary B,
showed differences that were not there (the second binary of each pair came out 10-20 %
faster, whichever it was). So each round runs both binaries back to back, the order alternating
between rounds, and the script reports, per kind of node, the median over rounds of the ratio
B / A within a round. A change is real when the per-round ratios are mostly on one side of 1,
and unchanged kinds of node stay near 1.

    cargo build --release -p convscope-cli && cp target/release/convscope /tmp/a
    # ... change the code ...
    cargo build --release -p convscope-cli && cp target/release/convscope /tmp/b
    python3 scripts/bench/paired_nodes.py /tmp/a /tmp/b --rounds 8 [--by block]
"""

import argparse
import collections
import os
import re
import statistics
import subprocess

LINE = re.compile(r"(\S+)\s+([0-9.]+) ms total\s+(\d+) calls")


def kind(node):
    """EfficientNet's kinds of layer, by node name; everything else is 'other'.

    A fused node is named after its first node: a whole block after its expansion (or, in
    block 0, its depthwise layer), so compare kinds only between binaries that fuse alike,
    or use --by block.
    """
    for k in ("depthwise", "expand", "project"):
        if k in node:
            return k
    return "other"


def block(node):
    """EfficientNet's block of a node ('block 07'), or stem, head, fc, other."""
    m = re.search(r"_blocks\.(\d+)/", node)
    if m:
        return f"block {int(m.group(1)):02d}"
    for k in ("stem", "head", "fc"):
        if k in node:
            return k
    return "other"


def run(binary, job, runs, threads, nodes, group):
    env = dict(os.environ, CONVSCOPE_PROFILE="nodes", RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(
        [binary, "bench", "--only", job, "--runs", str(runs), "--profile"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout
    per_kind = collections.defaultdict(float)
    wall = None
    for line in out.splitlines():
        if "median_ms=" in line:
            wall = float(line.split("median_ms=")[1].split()[0])
            continue
        m = LINE.search(line)
        # Nodes called once are the untimed warm-up pass (a taped pass, fused differently).
        if m and int(m.group(3)) >= runs // 2:
            us = float(m.group(2)) / int(m.group(3)) * 1000
            per_kind[group(m.group(1))] += us
            per_kind["all nodes"] += us
            for n in nodes:
                if n in m.group(1):
                    per_kind[n] += us
    return per_kind, wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--job", default="effnet_forward")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--nodes", default="", help="comma-separated parts of node names to report on their own"
    )
    ap.add_argument(
        "--by", choices=["kind", "block"], default="kind",
        help="group nodes by kind of layer or by EfficientNet block",
    )
    args = ap.parse_args()
    rows = []
    for r in range(args.rounds):
        order = (args.a, args.b) if r % 2 == 0 else (args.b, args.a)
        nodes = [n for n in args.nodes.split(",") if n]
        group = block if args.by == "block" else kind
        got = {b: run(b, args.job, args.runs, args.threads, nodes, group) for b in order}
        rows.append((got[args.a], got[args.b]))
    kinds = sorted({k for (a, _), _ in rows for k in a})
    print(f"{'kind':12} {'A µs':>8} {'B µs':>8} {'B/A':>6}  per round")
    for k in kinds + ["wall"]:
        if k == "wall":
            pairs = [(a[1], b[1]) for a, b in rows]
        else:
            pairs = [(a[0].get(k, 0.0), b[0].get(k, 0.0)) for a, b in rows]
        ratios = [y / x for x, y in pairs if x > 0]
        if not ratios:
            continue
        fmt = "8.2f" if k == "wall" else "8.0f"
        print(
            f"{k:12} {statistics.median(x for x, _ in pairs):{fmt}} "
            f"{statistics.median(y for _, y in pairs):{fmt}} {statistics.median(ratios):6.3f}  "
            + " ".join(f"{x:.2f}" for x in ratios)
        )
    print("(µs: per-node sums; wall: the job's median ms per run; B/A below 1: B is faster)")


if __name__ == "__main__":
    main()
