#!/usr/bin/env python3
"""Side-by-side speed comparison: convscope vs onnxruntime and PyTorch on the same CPU.

Runs `convscope bench` and `scripts/reference/bench_reference.py` alternately `--rounds`
times (so both see the same machine load), takes the median of each job's medians, and prints
one table with the ratios. Both sides use 2 threads.

    cargo build --release -p convscope-cli
    pip install -r scripts/reference/requirements.txt
    python3 scripts/bench/compare.py            # --rounds 3 --runs 10

To compare all three on their AVX2 kernels on an AVX-512 machine, run the whole script under
`sh scripts/bench/avx2_only.sh` (it hides AVX-512 from CPUID, so each program picks its AVX2
path by its own detection; onnxruntime has no switch of its own). CONVSCOPE_ISA=avx2 forces
convscope's AVX2 path alone (both binaries, unless --baseline-isa); ATEN_CPU_CAPABILITY=avx2
restricts PyTorch likewise.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^(\w+)\s+(\S+)\s+median_ms=([0-9.]+)")


def run(cmd: list[str], env: dict) -> list[tuple[str, str, float]]:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=ROOT).stdout
    rows = []
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            rows.append((m.group(1), m.group(2), float(m.group(3))))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "convscope")
    ap.add_argument("--only", default=None, help="only jobs whose name contains this (e.g. effnet_forward)")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a second convscope binary (e.g. main's) timed in the same rounds, shown as 'base'")
    ap.add_argument("--baseline-isa", default=None,
                    help="CONVSCOPE_ISA for the baseline binary only (default: as for the other)")
    args = ap.parse_args()
    env = dict(os.environ, RAYON_NUM_THREADS="2", OMP_NUM_THREADS="2")
    results: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in range(args.rounds):
        print(f"# round {r + 1}/{args.rounds}", file=sys.stderr)
        only = ["--only", args.only] if args.only else []
        bench = ["bench", "--runs", str(args.runs), "--models", str(args.shared / "models"), *only]
        for engine, job, ms in run([str(args.binary), *bench], env):
            results[(engine, job)].append(ms)
        if args.baseline:
            base_env = dict(env, CONVSCOPE_ISA=args.baseline_isa) if args.baseline_isa else env
            for _, job, ms in run([str(args.baseline), *bench], base_env):
                results[("base", job)].append(ms)
        ref = [sys.executable, str(ROOT / "scripts/reference/bench_reference.py"), "--runs", str(args.runs), "--shared", str(args.shared), *only]
        for engine, job, ms in run(ref, env):
            results[(engine, job)].append(ms)
    jobs = sorted({job for _, job in results})
    base = args.baseline is not None
    print(f"# CONVSCOPE_ISA={os.environ.get('CONVSCOPE_ISA', '')} ATEN_CPU_CAPABILITY={os.environ.get('ATEN_CPU_CAPABILITY', '')}"
          + (f" baseline={args.baseline} (CONVSCOPE_ISA={args.baseline_isa or os.environ.get('CONVSCOPE_ISA', '')})" if base else ""))
    print(f"{'job':<26} {'convscope':>10} {'onnxruntime':>12} {'pytorch':>10} {'ort/ours':>9} {'torch/ours':>11}"
          + (f" {'base':>8} {'base/ours':>10}" if base else ""))
    for job in jobs:
        med = {e: statistics.median(v) for (e, j), v in results.items() if j == job}
        ours = med.get("convscope")
        cell = lambda e: f"{med[e]:.1f}" if e in med else "-"
        ratio = lambda e: f"{med[e] / ours:.2f}x" if e in med and ours else "-"
        print(f"{job:<26} {cell('convscope'):>10} {cell('ort'):>12} {cell('torch'):>10} {ratio('ort'):>9} {ratio('torch'):>11}"
              + (f" {cell('base'):>8} {ratio('base'):>10}" if base else ""))
    print("(times are median ms; a ratio above 1 means convscope is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
