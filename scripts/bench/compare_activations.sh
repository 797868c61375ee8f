#!/usr/bin/env bash
# Times the walk-through's eight-layer activation job: `convscope activations` against the same
# job in Python (PyTorch via onnx2torch + matplotlib), whole processes, alternately, 3 rounds.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
shared="${1:-$root/../shared}"
bin="$root/target/release/convscope"
for round in 1 2 3; do
  s=$(date +%s.%N)
  RAYON_NUM_THREADS=2 "$bin" activations "$shared/models/vgg16_tumor.onnx" "$shared/images/chelsea.png" --layers 0..8 --out /tmp/convscope-bench-activations > /dev/null 2>&1
  e=$(date +%s.%N)
  ours=$(echo "$e - $s" | bc)
  s=$(date +%s.%N)
  OMP_NUM_THREADS=2 python3 "$root/scripts/bench/activations_python.py" "$shared" /tmp/convscope-bench-python > /dev/null 2>&1
  e=$(date +%s.%N)
  py=$(echo "$e - $s" | bc)
  echo "round $round: convscope ${ours}s  python ${py}s  ratio $(echo "scale=1; $py / $ours" | bc)x"
done
