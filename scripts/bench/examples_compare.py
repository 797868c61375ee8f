#!/usr/bin/env python3
"""Dataset examples, images per second: convscope beside a PyTorch loop and onnxruntime.

The same job on the same images, both sides with 2 threads, alternating rounds:
  * convscope: `convscope examples MODEL --images DIR --layers L --batch 32` (decode, resize,
    forward to the layer, per-channel max, running top-9 and bottom-9), wall time of the process;
  * PyTorch: the model converted with onnx2torch, the same decode/resize/normalise with Pillow
    and numpy, batches of 32, a forward hook on the layer, per-channel max, running top-K with
    torch.topk; wall time of the loop (model load excluded);
  * onnxruntime bare forward: the preprocessed batches already in memory, batches of 32,
    `session.run` to the layer only (no decode, no ranking): the engine's throughput alone.

Also measures convscope's peak memory (VmHWM of the process) at two folder sizes, to show it
does not grow with the number of images.

    cargo build --release -p convscope-cli
    pip install -r scripts/reference/requirements.txt
    python3 scripts/bench/examples_compare.py                      # both models, 512 images
    python3 scripts/bench/examples_compare.py --memory 1000,10000  # peak memory vs images
    python3 scripts/bench/examples_compare.py --only effnet --baseline /tmp/convscope-old --no-torch
        # an older binary in the same rounds (order alternating), without the PyTorch loop
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
JOBS = {
    # name: (model file, layer name, ONNX value, input size, layout, normalisation)
    "effnet": ("efficientnet_lite0.onnx", "_conv_head", "/_swish_1/Clip_output_0", 224, "NCHW", "imagenet"),
    "vgg16": ("vgg16_tumor.onnx", "block5_conv3", "functional_1/block5_conv3_1/Relu:0", 240, "NHWC", "unit"),
}
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def make_images(shared: Path, n: int, out: Path, size: int) -> list[Path]:
    """`n` varied pictures (crops, flips, rotations of the shared images) of size x size."""
    sources = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((shared / "images").glob("*.png"))]
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        img = sources[i % len(sources)]
        h, w, _ = img.shape
        side = int(rng.integers(min(h, w) // 2, min(h, w) + 1))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(img[y:y + side, x:x + side])
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        crop = crop.rotate(float(rng.uniform(-20, 20))).resize((size, size), Image.BILINEAR)
        p = out / f"{i // 1000:02}" / f"img{i:05}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        crop.save(p)
        paths.append(p)
    return sorted(paths)


def preprocess(path: Path, size: int, layout: str, norm: str) -> np.ndarray:
    img = Image.open(path).convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(img, dtype=np.float32) / np.float32(255)
    if norm == "imagenet":
        x = (x - MEAN) / STD
    return x.transpose(2, 0, 1) if layout == "NCHW" else x


def convscope_run(binary: Path, model: Path, images: Path, layer: str, norm: str, out: Path) -> tuple[float, int]:
    t = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-f", "%M", str(binary), "examples", str(model), "--images", str(images),
         "--layers", layer, "--batch", "32", "--preprocess", norm, "--out", str(out)],
        check=True, capture_output=True, text=True,
        env=dict(os.environ, RAYON_NUM_THREADS="2"))
    wall = time.perf_counter() - t
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return wall, peak_kb


def torch_run(model_path: Path, paths: list[Path], value: str, size: int, layout: str, norm: str) -> float:
    import onnx
    import torch
    from onnx2torch import convert

    torch.set_num_threads(2)
    net = convert(onnx.load(str(model_path))).eval()
    captured = {}
    # onnx2torch names each module after its ONNX node, without the leading '/'.
    graph = onnx.load(str(model_path)).graph
    node = next(n for n in graph.node if value in n.output)
    module = dict(net.named_modules())[node.name.lstrip("/")]

    class Reached(Exception):
        """Stops the forward pass at the layer (as convscope computes only up to it; the
        EfficientNet export's head also reshapes to a batch of one)."""

    def hook(_m, _i, o):
        captured["a"] = o
        raise Reached

    module.register_forward_hook(hook)
    top = None
    t = time.perf_counter()
    with torch.no_grad():
        for b in range(0, len(paths), 32):
            batch = np.stack([preprocess(p, size, layout, norm) for p in paths[b:b + 32]])
            try:
                net(torch.from_numpy(batch))
            except Reached:
                pass
            a = captured["a"]  # NCHW inside both graphs (tf2onnx transposes once at the input)
            scores = a.flatten(2).amax(dim=2).T  # channels x batch
            top = scores if top is None else torch.cat([top, scores], dim=1)
            top = torch.topk(top, min(9, top.shape[1]), dim=1).values
    return time.perf_counter() - t


def ort_run(model_path: Path, paths: list[Path], value: str, size: int, layout: str, norm: str) -> float:
    import onnx
    import onnx.utils
    import onnxruntime as ort

    m = onnx.load(str(model_path))
    # The layer is the only output (the exports' heads take a batch of one), any batch size.
    del m.graph.output[:]
    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(value))
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    m = onnx.utils.Extractor(m).extract_model([m.graph.input[0].name], [value])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.inter_op_num_threads = 1
    s = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    batches = [np.stack([preprocess(p, size, layout, norm) for p in paths[b:b + 32]]) for b in range(0, len(paths), 32)]
    t = time.perf_counter()
    for x in batches:
        s.run([value], {name: x})
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    ap.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "convscope")
    ap.add_argument("--images", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", choices=list(JOBS), default=None)
    ap.add_argument("--memory", default=None, help="folder sizes for the peak-memory check, e.g. 1000,10000")
    ap.add_argument("--baseline", type=Path, default=None, help="an older convscope binary, run in the same rounds")
    ap.add_argument("--no-torch", action="store_true", help="leave the PyTorch loop out")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="convscope-examples-bench-"))
    try:
        if args.memory:
            job = JOBS["effnet"]
            for n in [int(v) for v in args.memory.split(",")]:
                folder = tmp / f"mem{n}"
                make_images(args.shared, n, folder, job[3])
                wall, peak = convscope_run(args.binary, args.shared / "models" / job[0], folder, job[1], job[5], tmp / f"out{n}")
                print(f"effnet {n:>6} images: {n / wall:7.1f} images/s, peak memory {peak / 1024:.0f} MiB")
            return 0
        for key, (model, layer, value, size, layout, norm) in JOBS.items():
            if args.only and key != args.only:
                continue
            folder = tmp / key
            paths = make_images(args.shared, args.images, folder, size)
            model_path = args.shared / "models" / model
            rates = {"convscope": [], "baseline": [], "pytorch": [], "onnxruntime": []}
            for r in range(args.rounds):
                print(f"# {key} round {r + 1}/{args.rounds}", file=sys.stderr)
                binaries = [("convscope", args.binary)] + ([("baseline", args.baseline)] if args.baseline else [])
                for name, binary in binaries if r % 2 == 0 else binaries[::-1]:
                    wall, _ = convscope_run(binary, model_path, folder, layer, norm, tmp / f"out-{key}")
                    rates[name].append(len(paths) / wall)
                if not args.no_torch:
                    rates["pytorch"].append(len(paths) / torch_run(model_path, paths, value, size, layout, norm))
                rates["onnxruntime"].append(len(paths) / ort_run(model_path, paths, value, size, layout, norm))
                print("#   images/s " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items() if v), file=sys.stderr)
            med = {k: statistics.median(v) for k, v in rates.items() if v}
            line = f"{key:<7} {layer:<14} images/s: convscope {med['convscope']:.1f}"
            if "pytorch" in med:
                line += f", PyTorch loop {med['pytorch']:.1f} ({med['convscope'] / med['pytorch']:.2f}x)"
            line += f", onnxruntime bare forward {med['onnxruntime']:.1f} ({med['convscope'] / med['onnxruntime']:.2f}x)"
            if "baseline" in med:
                line += (f", baseline {med['baseline']:.1f} ({med['baseline'] / med['onnxruntime']:.2f}x of onnxruntime;"
                         f" new / baseline {med['convscope'] / med['baseline']:.2f}x)")
            print(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
