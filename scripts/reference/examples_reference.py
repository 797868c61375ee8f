#!/usr/bin/env python3
"""Reference top-K dataset examples of EfficientNet-Lite0, computed with onnxruntime.

The image set is 64 real pictures made from ../shared/images: 16 crops of 200x200 pixels of
chelsea.png and of coffee.png on a 4x4 grid of offsets, each also flipped left-right. The Rust
test `crates/convscope/tests/examples_reference_tests.rs` makes the same pictures, runs
`convscope`'s dataset examples on them and compares its top-K and bottom-K of every channel of
two layers with the file this script writes (tests/data/reference/examples_efficientnet_lite0.json).

Preprocessing is convscope's `InputConfig::imagenet()`: the 200x200 crop resized to 224x224 with
Pillow's bilinear filter in float (mode "F", per channel: convscope's resize is Pillow's float
path), divided by 255, ImageNet mean and standard deviation. A channel's score on an image is the
maximum of its map; its position the first maximum in row-major order. Rankings are by score,
ties broken by the image's name.

    pip install -r scripts/reference/requirements.txt
    python3 scripts/reference/examples_reference.py [--shared DIR] [--out FILE]
"""

import argparse
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LAYERS = {
    "_blocks.5._project_conv": "/_blocks.5/_project_conv/Conv_output_0",
    "_conv_head": "/_swish_1/Clip_output_0",
}
TOP = 5
CROP = 200
SIZE = 224
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def image_set(shared: Path):
    """(name, HxWx3 uint8) for the 64 crops and flips, sorted by name."""
    out = []
    for stem in ["chelsea", "coffee"]:
        img = np.asarray(Image.open(shared / "images" / f"{stem}.png").convert("RGB"))
        h, w, _ = img.shape
        for j in range(4):
            for i in range(4):
                x = round(i * (w - CROP) / 3)
                y = round(j * (h - CROP) / 3)
                crop = img[y:y + CROP, x:x + CROP]
                out.append((f"{stem}_x{x:03}_y{y:03}.png", crop))
                out.append((f"{stem}_x{x:03}_y{y:03}_flip.png", crop[:, ::-1]))
    out.sort(key=lambda t: t[0])
    return out


def preprocess(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> 1x3x224x224 float32, as convscope's InputConfig::imagenet()."""
    planes = []
    for c in range(3):
        plane = Image.fromarray(pixels[:, :, c].astype(np.float32), mode="F")
        planes.append(np.asarray(plane.resize((SIZE, SIZE), Image.BILINEAR), dtype=np.float32))
    x = np.stack(planes)  # 3xHxW, 0..255
    x = (x / np.float32(255) - MEAN[:, None, None]) / STD[:, None, None]
    return x[None].astype(np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path,
                    default=REPO / "tests/data/reference/examples_efficientnet_lite0.json")
    args = ap.parse_args()

    model = onnx.load(str(args.shared / "models/efficientnet_lite0.onnx"))
    for value in LAYERS.values():
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), opts)

    images = image_set(args.shared)
    names = [n for n, _ in images]
    scores = {layer: [] for layer in LAYERS}  # layer -> per image: (scores[C], argmax[C], w)
    for _, pixels in images:
        outs = session.run(list(LAYERS.values()), {"input": preprocess(pixels)})
        for layer, out in zip(LAYERS, outs):
            _, c, h, w = out.shape
            flat = out[0].reshape(c, h * w)
            scores[layer].append((flat.max(axis=1), flat.argmax(axis=1), w))

    layers = {}
    for layer, value in LAYERS.items():
        c = len(scores[layer][0][0])
        units = []
        for ch in range(c):
            entries = []
            for i, (s, a, w) in enumerate(scores[layer]):
                entries.append((float(s[ch]), names[i], i, int(a[ch] % w), int(a[ch] // w)))
            top = sorted(entries, key=lambda e: (-e[0], e[1]))[:TOP]
            bottom = sorted(entries, key=lambda e: (e[0], e[1]))[:TOP]
            units.append({
                "top": [[e[2], e[0], e[3], e[4]] for e in top],
                "bottom": [[e[2], e[0], e[3], e[4]] for e in bottom],
            })
        layers[layer] = {"value": value, "units": units}

    doc = {
        "schema": "convscope.reference.examples/1",
        "generator": {
            "script": "scripts/reference/examples_reference.py",
            "engine": f"onnxruntime {ort.__version__} (graph optimisations off)",
            "pillow": Image.__version__ if hasattr(Image, "__version__") else "",
        },
        "recipe": __doc__.split("\n\n")[1].replace("\n", " "),
        "top": TOP,
        "images": names,
        "entry": "[image index, score, x, y]",
        "layers": layers,
    }
    args.out.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(names)} images)")


if __name__ == "__main__":
    main()
