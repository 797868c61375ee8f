#!/usr/bin/env python3
"""Writes the Keras fixture files of crates/keras/tests/data and their reference outputs.

Real Keras makes every file: Keras 3 (`keras`) for `.keras` and Keras 3 `.h5`, and tf-keras
(Keras 2, the API the walk-through's code used) for the legacy `.h5` with `model_config` and
`model_weights`. Each model gets random weights (biases, BatchNorm statistics included, so
nothing is a trivial 0 or 1), and `<model>.json` holds, for a fixed input, every layer's output
as Keras computes it (shape, max |x|, sum, and values at fixed positions) and the input gradient
of one channel's mean, from TensorFlow's GradientTape. The Rust tests compare against these.

Not part of `cargo test`: run it by hand after `pip install -r scripts/keras/requirements.txt`
(Python 3.11, CPU only) and commit the files it writes:

    python3 scripts/keras/make_fixtures.py [--out crates/keras/tests/data]

Weights are drawn from a fixed seed, but TensorFlow's file writers put timestamps in, so the
bytes differ between runs; the reference JSON always matches the files written with it.
"""

import argparse
import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import keras  # noqa: E402  (Keras 3)
import tf_keras  # noqa: E402  (Keras 2)

SAMPLES = 48
SEED = 20


def fixed_input(h, w, c):
    """The test input, exactly reproducible in f32 in Rust: ((31h + 17w + 7c) mod 255) / 255."""
    hh, ww, cc = np.meshgrid(np.arange(h), np.arange(w), np.arange(c), indexing="ij")
    k = ((31 * hh + 17 * ww + 7 * cc) % 255).astype(np.float32)
    return (k / np.float32(255.0))[None].astype(np.float32)


def randomize(model, rng):
    """Random weights of a sensible scale; BatchNorm variances stay positive."""
    for w in model.weights:
        shape = tuple(w.shape)
        name = w.path if hasattr(w, "path") else w.name
        if "variance" in name:
            v = rng.uniform(0.5, 1.5, shape)
        elif len(shape) > 1:
            fan_in = int(np.prod(shape[:-1]))
            v = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape) * 1.4
        else:
            v = rng.normal(0.0, 0.1, shape)
        w.assign(v.astype(np.float32))


def randomize_trainable(model, rng):
    """Random weights for the trainable variables only (an adapted Normalization keeps the
    statistics it measured)."""
    for w in model.trainable_weights:
        shape = tuple(w.shape)
        if len(shape) > 1:
            fan_in = int(np.prod(shape[:-1]))
            v = rng.normal(0.0, 1.0 / np.sqrt(max(fan_in, 1)), shape) * 1.4
        else:
            v = rng.normal(0.0, 0.1, shape)
        w.assign(v.astype(np.float32))


def summarize(values):
    """Shape, max |x|, sum and SAMPLES values at evenly spread flat positions (row-major NHWC)."""
    a = np.asarray(values, dtype=np.float32)
    flat = a.reshape(-1)
    idx = np.unique(np.linspace(0, flat.size - 1, min(SAMPLES, flat.size)).astype(np.int64))
    return {
        "shape": list(a.shape),
        "max_abs": float(np.abs(flat).max()),
        "sum": float(flat.astype(np.float64).sum()),
        "samples": [[int(i), float(flat[i])] for i in idx],
    }


def layer_outputs(model, x, prefix=""):
    """Every layer's output on x, nested models' inner layers included as "outer/inner".

    A Sequential runs layer by layer (a nested model's own graph is not connected to the outer
    inputs in Keras 3); a Functional model is cut at each layer's output.
    """
    out = []
    value = x
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(model, keras.Sequential):
            feed = value
            value = layer(feed, training=False).numpy()
        else:
            feed = None
            value = keras.Model(model.inputs, layer.output)(x, training=False).numpy()
        if isinstance(layer, keras.Model):
            assert feed is not None, "nested models are only traced inside a Sequential"
            out += layer_outputs(layer, feed, prefix + layer.name + "/")
        out.append({"name": prefix + layer.name, "class": layer.__class__.__name__, **summarize(value)})
    return out


def gradient(model, x, layer_path, channel):
    """d mean(layer[..., channel]) / d input, by TensorFlow autodiff."""
    parts = layer_path.split("/")
    xt = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        if len(parts) == 1:
            y = keras.Model(model.inputs, model.get_layer(parts[0]).output)(xt, training=False)
        else:
            inner = model.get_layer(parts[0])
            y = keras.Model(inner.inputs, inner.get_layer(parts[1]).output)(xt, training=False)
        target = tf.reduce_mean(y[..., channel])
    g = tape.gradient(target, xt).numpy()
    return {"layer": layer_path, "channel": channel, **summarize(g)}


def living_channel(model, x, layer_path):
    """The first channel of a layer that is not zero everywhere on x (a dead ReLU channel has
    a zero input gradient, which checks nothing)."""
    parts = layer_path.split("/")
    if len(parts) == 1:
        y = keras.Model(model.inputs, model.get_layer(parts[0]).output)(x, training=False)
    else:
        inner = model.get_layer(parts[0])
        y = keras.Model(inner.inputs, inner.get_layer(parts[1]).output)(x, training=False)
    y = np.asarray(y)
    alive = [c for c in range(y.shape[-1]) if np.abs(y[..., c]).max() > 0]
    assert alive, f"every channel of {layer_path} is zero"
    return alive[0]


def write_reference(path, model, x, grad_layer, formats, notes="", grad_channel=0, input_scale=None):
    ref = {
        "made_by": "scripts/keras/make_fixtures.py",
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "input": "x[0,h,w,c] = ((31h + 17w + 7c) mod 255) / 255",
        "input_shape": list(x.shape),
        "params": int(model.count_params()),
        "files": formats,
        "notes": notes,
        "layers": layer_outputs(model, x),
        "output": summarize(model.predict(x, verbose=0)),
        "gradient": gradient(model, x, grad_layer, grad_channel),
    }
    if input_scale is not None:
        # The input is the usual one times this (a model that wants raw 0..255 pixels).
        ref["input_scale"] = input_scale
    path.write_text(json.dumps(ref, indent=1) + "\n")


# --- models -------------------------------------------------------------------------------------


def catsdogs(k, widths=(8, 16, 32, 32), dense=32):
    """The walk-through's cats-vs-dogs convnet (Conv2D 32/64/128/128, Dense 512), narrowed so the
    three files stay small enough to commit; same layers, shapes and names otherwise."""
    L = k.layers
    return k.Sequential(
        [
            k.Input(shape=(150, 150, 3)),
            L.Conv2D(widths[0], (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(widths[1], (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(widths[2], (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Conv2D(widths[3], (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)),
            L.Flatten(),
            L.Dropout(0.5),
            L.Dense(dense, activation="relu"),
            L.Dense(1, activation="sigmoid"),
        ],
        name="catsdogs",
    )


def nested(k):
    """A Sequential around a small Functional base, as the walk-through puts VGG16's conv_base
    inside a Sequential."""
    L = k.layers
    inp = k.Input(shape=(32, 32, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv1")(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="block1_conv2")(x)
    x = L.MaxPooling2D(2, name="block1_pool")(x)
    x = L.Conv2D(16, 3, padding="same", activation="relu", name="block2_conv1")(x)
    x = L.MaxPooling2D(2, name="block2_pool")(x)
    base = k.Model(inp, x, name="base")
    return k.Sequential(
        [k.Input(shape=(32, 32, 3)), base, L.Flatten(), L.Dense(16, activation="relu"), L.Dense(3, activation="softmax")],
        name="nested",
    )


def mobilenet_like(k):
    """Depthwise convolutions, BatchNorm, ReLU6 (layer and activation), Add, ZeroPadding2D."""
    L = k.layers
    inp = k.Input(shape=(33, 33, 3))
    x = L.ZeroPadding2D(((0, 1), (0, 1)), name="stem_pad")(inp)
    x = L.Conv2D(8, 3, strides=2, padding="valid", use_bias=False, name="stem_conv")(x)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(6.0, name="stem_relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", use_bias=False, name="b1_dw")(x)
    y = L.BatchNormalization(name="b1_dw_bn")(y)
    y = L.ReLU(max_value=6.0, name="b1_dw_relu")(y)
    y = L.Conv2D(8, 1, use_bias=False, name="b1_project")(y)
    y = L.BatchNormalization(name="b1_project_bn")(y)
    x = L.Add(name="b1_add")([x, y])
    x = L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, name="b2_dw")(x)
    x = L.BatchNormalization(name="b2_dw_bn")(x)
    x = L.Activation("relu6", name="b2_relu")(x)
    x = L.Conv2D(16, 1, name="b2_project", activation="relu")(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(0.2, name="drop")(x)
    x = L.Dense(5, name="logits")(x)
    out = L.Softmax(name="probs")(x)
    return k.Model(inp, out, name="mobilenet_like")


def zoo(k):
    """The rest of the layer list: every other layer class convscope reads, on a small input."""
    L = k.layers
    inp = k.Input(shape=(24, 24, 3))
    x = L.Rescaling(1.0 / 127.5, offset=-1.0, name="rescale")(inp)
    a = L.Conv2D(6, 3, padding="valid", dilation_rate=2, activation="tanh", name="dilated")(x)
    a = L.ZeroPadding2D(2, name="pad2")(a)
    b = L.SeparableConv2D(6, 3, padding="same", activation="swish", name="sep")(x)
    m = L.Multiply(name="mul")([a, b])
    v = L.Average(name="avg")([a, b])
    mx = L.Maximum(name="max")([a, b])
    c = L.Concatenate(name="cat")([m, v, mx])
    c = L.Conv2D(8, 1, activation="elu", name="mix")(c)
    c = L.LeakyReLU(negative_slope=0.2, name="leaky")(c)
    p = L.AveragePooling2D(2, name="avgpool")(c)
    p = L.Conv2D(8, 3, strides=2, padding="same", activation="selu", name="strided")(p)
    u = L.UpSampling2D(2, name="up")(p)
    t = L.Conv2DTranspose(4, 3, strides=2, padding="same", activation="gelu", name="deconv")(u)
    t = L.Cropping2D(((1, 2), (3, 0)), name="crop")(t)
    t = L.PReLU(shared_axes=[1, 2], name="prelu")(t)
    t = L.Activation("hard_sigmoid", name="hsig")(t)
    t = L.Activation("hard_swish", name="hswish")(t)
    g = L.GlobalMaxPooling2D(name="gmax")(t)
    r = L.Reshape((2, 2), name="reshape")(g)
    r = L.Flatten(name="flat")(r)
    d = L.Dense(3, activation="sigmoid", name="head")(r)
    return k.Model(inp, d, name="zoo")


def preprocessing(k, adapt_on):
    """Preprocessing inside the model, as keras.applications' EfficientNet does it: Rescaling to
    0..1, an adapted Normalization (per-channel mean and variance as weights), a per-channel
    Rescaling, then a small convnet; and a Normalization given its statistics in the constructor
    (config, no weights) after a Dense."""
    L = k.layers
    inp = k.Input(shape=(12, 14, 3))
    x = L.Rescaling(1.0 / 255.0, name="to_unit")(inp)
    norm = L.Normalization(axis=-1, name="normalize")
    norm.adapt(adapt_on)
    x = norm(x)
    x = L.Rescaling([0.9, 1.1, 1.25], name="per_channel")(x)
    x = L.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    x = L.Dense(3, name="dense")(x)
    x = L.Normalization(axis=-1, mean=[0.1, -0.2, 0.3], variance=[4.0, 0.25, 1.0], name="given")(x)
    return k.Model(inp, x, name="preprocessing")


def resize_dense(k):
    """Resizing where its output size is fixed (bilinear and nearest, down and up by factors
    that are not whole numbers) and Dense on inputs of rank > 2: per pixel on a 4-D map and per
    token on a [batch, tokens, features] sequence."""
    L = k.layers
    inp = k.Input(shape=(20, 24, 3))
    x = L.Resizing(15, 18, interpolation="bilinear", name="shrink")(inp)
    x = L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = L.Resizing(26, 31, interpolation="nearest", name="grow_nearest")(x)
    x = L.Dense(6, activation="relu", name="per_pixel")(x)
    x = L.Resizing(10, 11, interpolation="nearest", name="shrink_nearest")(x)
    x = L.Resizing(12, 14, interpolation="bilinear", name="grow")(x)
    x = L.Conv2D(4, 3, strides=2, name="strided")(x)
    x = L.Reshape((30, 4), name="tokens")(x)
    x = L.Dense(3, activation="tanh", name="per_token")(x)
    x = L.Flatten(name="flat")(x)
    out = L.Dense(2, activation="softmax", name="head")(x)
    return k.Model(inp, out, name="resize_dense")


def clash(k):
    """Two nested models that both hold a layer named `conv`: the short name is ambiguous, the
    paths `inner_a/conv` and `inner_b/conv` are not."""
    L = k.layers

    def inner(name, channels):
        i = k.Input(shape=(12, 12, channels))
        return k.Model(i, L.Conv2D(4, 3, padding="same", activation="relu", name="conv")(i), name=name)

    return k.Sequential(
        [k.Input(shape=(12, 12, 3)), inner("inner_a", 3), inner("inner_b", 4),
         L.GlobalAveragePooling2D(name="gap"), L.Dense(2, name="head")],
        name="clash",
    )


def quantize_for_git(model, rng, dense_density=0.01, levels=4):
    """Weights that git's zlib packs small. The large Dense kernel (3.2 M of the 3.45 M values)
    is zero but for a random `dense_density` of its entries, each one of 2*levels multiples of
    a step; every other weight is rounded to bfloat16's precision, so the low 16 bits of each
    float32 are zero. The convolutions' weights stay continuous: coarsely quantised ones make
    equal values in max-pooling windows, whose gradient TensorFlow and convscope route to
    different (equally right) positions. The network and its file are full size."""
    for w in model.weights:
        shape = tuple(w.shape)
        v = np.asarray(w.numpy(), dtype=np.float64)
        if len(shape) == 2 and shape[0] * shape[1] > 1_000_000:
            step = max(float(np.abs(v).max()) / levels, 1e-6)
            q = np.clip(np.round(v / step), -levels, levels) * step
            q = q * (rng.uniform(size=shape) < dense_density) / np.sqrt(dense_density)
        else:
            # bfloat16's precision: the low 16 bits of every float32 are zero.
            q = (v.astype(np.float32).view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)
        w.assign(np.asarray(q, dtype=np.float32))


def any_size(k):
    """An input of any size, resized to a fixed one and rescaled inside the model, as Keras's
    guides start a model: `Resizing` then `Rescaling(1/255)`."""
    L = k.layers
    inp = k.Input(shape=(None, None, 3))
    x = L.Resizing(18, 22, name="resize")(inp)
    x = L.Rescaling(1.0 / 255, name="rescale")(x)
    x = L.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(3, activation="softmax", name="head")(x)
    return k.Model(inp, out, name="any_size")


def keras_rows(model):
    """The rows Keras's `model.summary()` prints: one per entry of `model.layers` (a nested model
    is one row), with its name, class, output shape as Keras formats it and `count_params()`."""
    rows = []
    for layer in model.layers:
        shape = layer.output.shape
        rows.append({
            "name": layer.name,
            "class": layer.__class__.__name__,
            "output_shape": "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")",
            "params": int(layer.count_params()),
        })
    return rows


def write_summary_rows(out):
    """`<fixture>.summary.json` for every fixture, from the committed files loaded back with Keras
    (the files themselves are not rewritten): Keras 3 reads the .keras and Keras 3 .h5 files,
    tf-keras the Keras 2 ones, and the rows of all files of a fixture must agree."""
    for ref_path in sorted(out.glob("*.json")):
        if ref_path.name.endswith(".summary.json"):
            continue
        ref = json.loads(ref_path.read_text())
        per_file = {}
        for f in ref["files"]:
            if f.endswith("_k2.h5"):
                m = tf_keras.models.load_model(out / f, compile=False)
                total = int(m.count_params())
                rows = [{
                    "name": l.name,
                    "class": l.__class__.__name__,
                    "output_shape": str(tuple(l.output_shape)).replace(",)", ")"),
                    "params": int(l.count_params()),
                } for l in m.layers]
            else:
                m = keras.saving.load_model(out / f, compile=False)
                total = int(m.count_params())
                rows = keras_rows(m)
            per_file[f] = {"rows": rows, "total_params": total}
        first = next(iter(per_file.values()))
        for f, got in per_file.items():
            assert got == first, f"{f}: Keras rows differ from {ref['files'][0]}:\n{got}\n{first}"
        lines = []
        keras.saving.load_model(out / ref["files"][0], compile=False).summary(
            print_fn=lambda line, *a, **kw: lines.append(line)) if not ref["files"][0].endswith("_k2.h5") else None
        summary = {"made_by": "scripts/keras/make_fixtures.py --summary-rows",
                   "keras_version": keras.__version__, "files": ref["files"],
                   "rows": first["rows"], "total_params": first["total_params"],
                   "keras_printed": "\n".join(lines).splitlines()}
        path = out / ref_path.name.replace(".json", ".summary.json")
        path.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: {len(first['rows'])} rows, {first['total_params']} params")


def living_gradients(out):
    """Rewrites the reference JSON of every fixture whose input gradient is zero (the channel
    it looked at is a dead ReLU on the test input) with the first living channel, from the
    committed file loaded back with Keras 3; the files, and every other part of the JSON
    (checked to come out the same), are untouched."""
    for ref_path in sorted(out.glob("*.json")):
        if ref_path.name.endswith(".summary.json"):
            continue
        ref = json.loads(ref_path.read_text())
        if ref["gradient"]["max_abs"] > 0:
            continue
        first = next(f for f in ref["files"] if not f.endswith("_k2.h5"))
        model = keras.saving.load_model(out / first, compile=False)
        x = fixed_input(*ref["input_shape"][1:])
        layer = ref["gradient"]["layer"]
        fresh = dict(ref)
        fresh["layers"] = layer_outputs(model, x)
        fresh["output"] = summarize(model.predict(x, verbose=0))
        for got, want in zip(fresh["layers"] + [fresh["output"]], ref["layers"] + [ref["output"]]):
            scale = max(want["max_abs"], 1e-6)
            worst = max(abs(a[1] - b[1]) for a, b in zip(got["samples"], want["samples"])) / scale
            assert got["shape"] == want["shape"] and worst < 1e-6, \
                f"{ref_path.name} {want.get('name')}: the committed file gives other outputs ({worst:.1e})"
        fresh["layers"], fresh["output"] = ref["layers"], ref["output"]
        fresh["gradient"] = gradient(model, x, layer, living_channel(model, x, layer))
        ref_path.write_text(json.dumps(fresh, indent=1) + "\n")
        print(f"{ref_path.name}: gradient of {layer} channel {fresh['gradient']['channel']}")


def main():
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=here.parent.parent / "crates/keras/tests/data")
    parser.add_argument("--only", choices=["preprocessing", "resize_dense", "clash", "walkthrough_full", "any_size"],
                        help="write only this fixture (the others keep their committed bytes)")
    parser.add_argument("--summary-rows", action="store_true",
                        help="only write <fixture>.summary.json, Keras's summary rows of the committed files")
    parser.add_argument("--living-gradients", action="store_true",
                        help="only rewrite the gradient of references that look at a dead channel")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.summary_rows:
        write_summary_rows(out)
        return 0
    if args.living_gradients:
        living_gradients(out)
        return 0

    if args.only in (None, "preprocessing"):
        # Preprocessing layers: its own seed, so adding it left the other fixtures' weights alone.
        prng = np.random.default_rng(SEED + 1)
        pixels = prng.uniform(0, 255, (64, 12, 14, 3)).astype(np.float32) * np.array([1.0, 0.7, 0.4], np.float32)
        # The fixtures' input is 0..1, so after `to_unit` the pixels are 0..1/255: adapt on that.
        pre = preprocessing(keras, pixels / 255.0 / 255.0)
        randomize_trainable(pre, prng)
        pre.save(out / "preprocessing.keras")
        pre.save(out / "preprocessing_k3.h5")
        write_reference(out / "preprocessing.json", pre, fixed_input(12, 14, 3), "conv",
                        ["preprocessing.keras", "preprocessing_k3.h5"],
                        "Rescaling, adapted Normalization, per-channel Rescaling; a Normalization with given statistics")

    if args.only in (None, "resize_dense"):
        rrng = np.random.default_rng(SEED + 2)
        rd = resize_dense(keras)
        randomize(rd, rrng)
        rd.save(out / "resize_dense.keras")
        rd.save(out / "resize_dense_k3.h5")
        x = fixed_input(20, 24, 3)
        write_reference(out / "resize_dense.json", rd, x, "per_pixel",
                        ["resize_dense.keras", "resize_dense_k3.h5"],
                        "Resizing bilinear/nearest down and up; Dense per pixel (4-D) and per token (3-D)",
                        grad_channel=living_channel(rd, x, "per_pixel"))

    if args.only in (None, "clash"):
        crng = np.random.default_rng(SEED + 3)
        cl = clash(keras)
        randomize(cl, crng)
        cl.save(out / "clash.keras")
        x = fixed_input(12, 12, 3)
        write_reference(out / "clash.json", cl, x, "inner_a/conv", ["clash.keras"],
                        "two nested models each with a layer named conv",
                        grad_channel=living_channel(cl, x, "inner_a/conv"))

    if args.only == "walkthrough_full":
        # The walk-through's network at full size (32/64/128/128, Dense 512; 13.8 MB per file),
        # as a Keras 2 .h5 only, its weights made for git's compression (quantize_for_git).
        wrng = np.random.default_rng(SEED + 4)
        w3 = catsdogs(keras, widths=(32, 64, 128, 128), dense=512)
        randomize(w3, wrng)
        quantize_for_git(w3, wrng)
        w2 = catsdogs(tf_keras, widths=(32, 64, 128, 128), dense=512)
        w2.set_weights(w3.get_weights())
        w2.save(out / "walkthrough_full_k2.h5")
        x = fixed_input(150, 150, 3)
        write_reference(out / "walkthrough_full.json", w3, x, "conv2d_3", ["walkthrough_full_k2.h5"],
                        "the walk-through's cats-vs-dogs convnet at full size; its Dense kernel 99% zeros, the rest quantised, the other weights at bfloat16 precision",
                        grad_channel=living_channel(w3, x, "conv2d_3"))

    if args.only in (None, "any_size"):
        arng = np.random.default_rng(SEED + 5)
        a = any_size(keras)
        randomize(a, arng)
        a.save(out / "any_size.keras")
        # Raw pixels, as the model wants them; any size (this one is neither 18x22 nor square).
        x = fixed_input(26, 31, 3) * np.float32(255.0)
        write_reference(out / "any_size.json", a, x, "conv", ["any_size.keras"],
                        "input of any size: Resizing then Rescaling(1/255)",
                        grad_channel=living_channel(a, x, "conv"), input_scale=255.0)

    if args.only:
        return 0

    rng = np.random.default_rng(SEED)

    # Cats vs dogs: Keras 3 .keras and .h5, Keras 2 .h5, the same weights in all three.
    m3 = catsdogs(keras)
    randomize(m3, rng)
    m3.save(out / "catsdogs.keras")
    m3.save(out / "catsdogs_k3.h5")
    m2 = catsdogs(tf_keras)
    m2.set_weights(m3.get_weights())
    m2.save(out / "catsdogs_k2.h5")
    write_reference(out / "catsdogs.json", m3, fixed_input(150, 150, 3), "conv2d_3",
                    ["catsdogs.keras", "catsdogs_k3.h5", "catsdogs_k2.h5"],
                    "the walk-through's convnet with widths 8/16/32/32 and Dense 32 instead of 32/64/128/128 and 512")

    # Nested: Keras 3 .keras, Keras 2 .h5.
    n3 = nested(keras)
    randomize(n3, rng)
    n3.save(out / "nested.keras")
    n2 = nested(tf_keras)
    n2.set_weights(n3.get_weights())
    n2.save(out / "nested_k2.h5")
    write_reference(out / "nested.json", n3, fixed_input(32, 32, 3), "base/block2_conv1",
                    ["nested.keras", "nested_k2.h5"])

    mb = mobilenet_like(keras)
    randomize(mb, rng)
    mb.save(out / "mobilenet_like.keras")
    write_reference(out / "mobilenet_like.json", mb, fixed_input(33, 33, 3), "b2_project", ["mobilenet_like.keras"])

    z = zoo(keras)
    randomize(z, rng)
    z.save(out / "zoo.keras")
    write_reference(out / "zoo.json", z, fixed_input(24, 24, 3), "deconv", ["zoo.keras"])

    # A custom layer: convscope must name it and stop, not guess.
    @keras.saving.register_keras_serializable(package="fixtures")
    class Doubling(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    inp = keras.Input(shape=(8, 8, 3))
    c = keras.Model(inp, Doubling(name="doubling")(keras.layers.Conv2D(2, 3, name="conv")(inp)), name="custom")
    c.save(out / "custom_layer.keras")

    for f in sorted(out.iterdir()):
        print(f"{f.stat().st_size:>9} {f.name}")


if __name__ == "__main__":
    sys.exit(main())
