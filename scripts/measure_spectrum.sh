#!/bin/sh
# Measures the magnitude spectrum MaCo holds fixed (crates/methods/assets/natural_spectrum.npy)
# with convscope's own code, on the six natural photographs that ship with scikit-image 0.26
# (docs/design.md, "Feature visualization"). Needs a Python with scikit-image installed (only to
# locate its data folder) and a built convscope.
#
#   sh scripts/measure_spectrum.sh [PYTHON] [CONVSCOPE]
set -eu
PYTHON=${1:-python3}
CONVSCOPE=${2:-target/release/convscope}
DATA=$("$PYTHON" -c 'import os, skimage.data as d; print(os.path.dirname(d.__file__))')
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
for f in astronaut.png chelsea.png coffee.png rocket.jpg motorcycle_left.png motorcycle_right.png; do
    cp "$DATA/$f" "$DIR/"
done
"$CONVSCOPE" spectrum --images "$DIR" --side 256 --out crates/methods/assets/natural_spectrum.npy
