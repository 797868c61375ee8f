#!/usr/bin/env python3
"""Paired rounds of `convscope bench` for two binaries (old A, new B).

The machine is shared and its speed drifts, so each round runs both binaries back to back, the
order alternating between rounds; the script prints, per bench job, the median of each
binary's medians and the median over rounds of the per-round ratio B / A, with every round's
ratio (a real change keeps them on one side of 1).

    python3 scripts/bench/paired_bench.py /tmp/convscope-old target/release/convscope 8
"""

import collections
import statistics
import subprocess
import sys


def main():
    a, b, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
    models = sys.argv[4] if len(sys.argv) > 4 else "../shared/models"
    found = collections.defaultdict(lambda: {"a": [], "b": []})
    for r in range(rounds):
        order = [("a", a), ("b", b)] if r % 2 == 0 else [("b", b), ("a", a)]
        for tag, binary in order:
            out = subprocess.run([binary, "bench", "--models", models, "--runs", "10"],
                                 capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if "median_ms=" in line:
                    job = line.split()[1]
                    found[job][tag].append(float(line.split("median_ms=")[1].split()[0]))
        print(f"round {r + 1} of {rounds} done", file=sys.stderr, flush=True)
    print(f"{'job':28} {'A ms':>8} {'B ms':>8} {'B/A':>6}  per-round B/A")
    for job, v in found.items():
        ratios = [y / x for x, y in zip(v["a"], v["b"])]
        print(f"{job:28} {statistics.median(v['a']):8.2f} {statistics.median(v['b']):8.2f} "
              f"{statistics.median(ratios):6.3f}  " + " ".join(f"{x:.2f}" for x in ratios))


if __name__ == "__main__":
    main()
