"""Recognisability of class visualizations (issue #17): classify pictures made for ImageNet
classes on EfficientNet-Lite0 with a second, independently trained network, EfficientNet-Lite1,
and count how often the intended class is its top-1 / in its top-5.

Lite1's preprocessing (../shared/models/README.md): shorter side to 240 (bilinear), centre crop
240x240, /255, ImageNet mean/std, RGB, NCHW. Run with onnxruntime, so the judge is independent of
convscope's engine.

    /work/venv-ref/bin/python scripts/reference/classify_lite1.py \\
        lucid=OUT/lucid/index.json maco=OUT/maco/index.json lucent=OUT/lucent

An argument NAME=DIR/index.json reads convscope's index (objective `class:K ...`); NAME=DIR reads
Lucent's `class_<k>.png` files. Prints one table row per set and writes nothing.
"""
import json
import pathlib
import re
import sys

import numpy as np
import onnxruntime as ort
from PIL import Image

MODEL = pathlib.Path(__file__).resolve().parents[2] / "../shared/models/efficientnet_lite1.onnx"
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def prepare(path, side=240):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    s = side / min(w, h)
    img = img.resize((max(side, round(w * s)), max(side, round(h * s))), Image.BILINEAR)
    w, h = img.size
    left, top = (w - side) // 2, (h - side) // 2
    img = img.crop((left, top, left + side, top + side))
    x = (np.asarray(img, np.float32) / 255.0 - MEAN) / STD
    return x.transpose(2, 0, 1)[None]


def pictures(spec):
    path = pathlib.Path(spec)
    if path.suffix == ".json":
        index = json.loads(path.read_text())
        for p in index["pictures"]:
            k = int(re.match(r"class:(\d+)", p["objective"]).group(1))
            yield k, path.parent / p["file"]
    else:
        for f in sorted(path.glob("class_*.png")):
            yield int(f.stem.split("_")[1]), f


session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
name = session.get_inputs()[0].name
print("| set | pictures | top-1 | top-5 | per class (rank of the intended class, 1 = top) |")
print("| --- | --- | --- | --- | --- |")
for arg in sys.argv[1:]:
    label, spec = arg.split("=", 1)
    ranks = []
    for k, f in pictures(spec):
        logits = session.run(None, {name: prepare(f)})[0][0]
        rank = int((logits > logits[k]).sum()) + 1
        ranks.append((k, rank))
    n = len(ranks)
    top1 = sum(r == 1 for _, r in ranks)
    top5 = sum(r <= 5 for _, r in ranks)
    detail = ", ".join(f"{k}:{r}" for k, r in ranks)
    print(f"| {label} | {n} | {top1}/{n} | {top5}/{n} | {detail} |", flush=True)
