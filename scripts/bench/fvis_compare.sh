#!/bin/sh
# Feature visualization speed beside Lucent, one run, both on 2 threads (docs/benchmarks.md,
# "Feature visualization"): the lucid recipe on one class of EfficientNet-Lite0 at 224 px, then
# convscope's batch of 16. Wall and CPU seconds from /usr/bin/time.
#
#   sh scripts/bench/fvis_compare.sh VENV_PYTHON [STEPS] [BATCH]
set -eu
PY=${1:?python with torch-lucent and onnx2torch}
STEPS=${2:-512}
BATCH=${3:-16}
MODEL=../shared/models/efficientnet_lite0.onnx
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p convscope-cli -p convscope --example visualize_bench
echo "== convscope (RAYON_NUM_THREADS=2), $STEPS steps"
RAYON_NUM_THREADS=2 /usr/bin/time -f "wall %e s, cpu %U+%S s" \
    target/release/examples/visualize_bench "$MODEL" "$STEPS" "$BATCH"
echo "== Lucent (torch, 2 threads), $STEPS steps, param.image(224)"
/usr/bin/time -f "wall %e s, cpu %U+%S s" "$PY" scripts/reference/lucent_classes.py \
    --model "$MODEL" --classes 1 --size 224 --steps "$STEPS" --threads 2 --out "$OUT"
