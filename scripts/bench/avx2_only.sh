#!/bin/sh
# Runs a command as if this CPU had no AVX-512: every program in it (convscope, onnxruntime,
# PyTorch) then chooses its AVX2 kernels by its own CPU detection. See hide_avx512/hide_avx512.c.
#
#     sh scripts/bench/avx2_only.sh python3 scripts/bench/compare.py --only effnet
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="${CARGO_TARGET_DIR:-$here/../../target}/hide_avx512.so"
if [ ! -f "$out" ] || [ "$here/hide_avx512/hide_avx512.c" -nt "$out" ]; then
    mkdir -p "$(dirname "$out")"
    cc -O2 -Wall -shared -fPIC -o "$out" "$here/hide_avx512/hide_avx512.c"
fi
if ! grep -qw cpuid_fault /proc/cpuinfo; then
    echo "avx2_only.sh: this CPU/kernel has no CPUID faulting (cpuid_fault in /proc/cpuinfo); cannot hide AVX-512" >&2
    exit 3
fi
LD_PRELOAD="$out${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
