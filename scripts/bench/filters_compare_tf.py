#!/usr/bin/env python3
"""Filter visualisation: the walk-through's gradient ascent in TensorFlow vs `convscope filters`.

Issue 4 asks that the objective rise for at least 95 % of the 64 `block1_conv1` filters and on
average reach at least what the same algorithm reaches in TensorFlow. This script runs the
walk-through's loop in TensorFlow 2 (Keras layers, `tf.GradientTape`), one filter at a time as
the walk-through does, on a Keras VGG16 trunk built from the ONNX model's own weights, and the
same job with `convscope filters --json`:

  * start = uniform[0,1) * 20 + 128 in pixel units, NHWC; the model input is pixels / 255
    ("unit", this model's preprocessing; `--preprocess raw` feeds the pixels unchanged, as
    the walk-through's code does);
  * objective = mean over H, W of channel k of the layer's ReLU output;
  * g = d objective / d (model input); pixels += step * g / (sqrt(mean(g^2)) + 1e-5);
  * 40 steps; objective recorded before the first step and after the last.

The random streams differ (numpy vs convscope's own), so single filters differ a little; the
comparison is the mean final objective and the number of filters whose objective rose.

Usage (TensorFlow is not part of the test command: `pip install tensorflow-cpu onnx`):
    python3 scripts/bench/filters_compare_tf.py                       # block1_conv1, 64 px
    python3 scripts/bench/filters_compare_tf.py --layer block3_conv1 --filters 8 --size 150
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "scripts" / "reference"))

DEFAULT_MODEL = (REPO / ".." / "shared" / "models" / "vgg16_tumor.onnx").resolve()
DEFAULT_BIN = REPO / "target" / "release" / "convscope"
VGG_BLOCKS = [(1, 2), (2, 2), (3, 3), (4, 3), (5, 3)]


def keras_trunk(model_onnx, stop_after: str):
    """VGG16 convolutions and pools up to `stop_after` (its ReLU output), NHWC, as Keras layers
    with the ONNX model's weights (ONNX `[out, in, kh, kw]` -> Keras `[kh, kw, in, out]`)."""
    import numpy as np
    import tensorflow as tf
    from refcommon import onnx_initializers

    init = onnx_initializers(model_onnx)
    x = inp = tf.keras.Input(shape=(None, None, 3))
    for b, n in VGG_BLOCKS:
        for k in range(1, n + 1):
            key = f"block{b}_conv{k}"
            w = init[f"functional_1/{key}_1/convolution/ReadVariableOp:0"]
            bias = init[f"functional_1/{key}_1/Squeeze:0"]
            conv = tf.keras.layers.Conv2D(w.shape[0], 3, padding="same", activation="relu", name=key)
            x = conv(x)
            conv.set_weights([np.transpose(w, (2, 3, 1, 0)), bias])
            if key == stop_after:
                return tf.keras.Model(inp, x)
        x = tf.keras.layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
    raise SystemExit(f"no layer {stop_after}")


def ascent_tf(model, k: int, size: int, steps: int, step: float, raw: bool, rng):
    """The walk-through's loop for filter k; returns (objective curve, final pixels)."""
    import tensorflow as tf

    pixels = tf.constant(rng.random((1, size, size, 3)) * 20 + 128, dtype=tf.float32)
    scale = 1.0 if raw else 1.0 / 255.0
    curve = []
    for _ in range(steps):
        x_in = pixels * scale
        with tf.GradientTape() as tape:
            tape.watch(x_in)
            loss = tf.reduce_mean(model(x_in)[..., k])
        g = tape.gradient(loss, x_in)
        curve.append(float(loss))
        g = g / (tf.sqrt(tf.reduce_mean(tf.square(g))) + 1e-5)
        pixels = pixels + step * g
    curve.append(float(tf.reduce_mean(model(pixels * scale)[..., k])))
    return curve


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--convscope", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--layer", default="block1_conv1")
    ap.add_argument("--filters", type=int, default=64, help="filters 0..N")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--step", type=float, default=1.0)
    ap.add_argument("--preprocess", choices=["unit", "raw"], default="unit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write both sides' per-filter results here")
    args = ap.parse_args()

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import onnx
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(2)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model = keras_trunk(onnx.load(str(args.model)), args.layer)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    tf_curves = [
        ascent_tf(model, k, args.size, args.steps, args.step, args.preprocess == "raw", rng)
        for k in range(args.filters)
    ]
    tf_s = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cmd = [str(args.convscope), "filters", str(args.model), "--layer", args.layer,
               "--filters", f"0..{args.filters}", "--size", str(args.size),
               "--steps", str(args.steps), "--step", str(args.step),
               "--preprocess", args.preprocess, "--seed", str(args.seed),
               "--out", str(out / "grid.png"), "--json", str(out / "cs.json")]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, RAYON_NUM_THREADS="2"))
        cs_s = time.perf_counter() - t0
        cs = json.loads((out / "cs.json").read_text())["filters"]

    tf_end = [c[-1] for c in tf_curves]
    tf_rose = sum(c[-1] > c[0] for c in tf_curves)
    cs_end = [f["end"] for f in cs]
    cs_rose = sum(1 for f in cs if f["rose"])
    n = args.filters
    print(f"{args.layer}, {n} filters, {args.size} px, {args.steps} steps, preprocess {args.preprocess}")
    print(f"  TensorFlow {tf.__version__}: mean final objective {np.mean(tf_end):.4f}, "
          f"rose for {tf_rose}/{n} ({tf_s:.1f} s, one filter at a time)")
    print(f"  convscope:           mean final objective {np.mean(cs_end):.4f}, "
          f"rose for {cs_rose}/{n} ({cs_s:.1f} s, whole process)")
    rel = [abs(a - b) / max(abs(a), abs(b), 1e-12) for a, b in zip(tf_end, cs_end)]
    print(f"  per filter, final objective: median relative difference {np.median(rel):.2e}")
    print(f"  ratio of means (convscope / TensorFlow): {np.mean(cs_end) / np.mean(tf_end):.4f}")
    if args.json:
        args.json.write_text(json.dumps({
            "tensorflow": [{"filter": k, "curve": c} for k, c in enumerate(tf_curves)],
            "convscope": cs,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
