#!/usr/bin/env python3
"""Grad-CAM speed: pytorch-grad-cam (GradCAM + ClassifierOutputTarget) vs `convscope cam`.

Models and layers (the layer convscope picks with `--layer auto`):
  * VGG16 (vgg16_tumor.onnx, 4 classes): hand-built from the ONNX initializers
    (refcommon.build_vgg_torch), rearranged into nn.Sequential modules so the last
    nn.MaxPool2d (= block5_pool, 512x7x7) can be hooked; the head returns the PRE-softmax
    logits (convscope backpropagates from the logits feeding the graph's Softmax).
    Input: chelsea.png stretched to 240x240 (bilinear), /255; fed as NCHW (the ONNX graph's
    NHWC input is transposed to NCHW first anyway; pytorch-grad-cam needs NCHW).
    The model has only 4 classes, so "5 classes" is --top 4 on this model.
  * EfficientNet-Lite0: onnx2torch conversion; layer = module "_swish_1/Clip"
    (output /_swish_1/Clip_output_0, 1280x7x7); output = logits.
    Input: shorter side resized to 224 (bilinear), centre crop 224, ImageNet mean/std, NCHW.

Several targets in pytorch-grad-cam:
  * VGG16: "batch" = one call with the image repeated K times and K targets (its API's way);
    "K calls" = K separate calls with one target each (both are timed).
  * EfficientNet-Lite0: K calls only -- the exported graph reshapes the pooled features to
    the constant shape [1, -1], so it cannot take a batch > 1 (checked and reported below).

(i) Grad-CAM alone, in this process, model loaded: median of 7 calls after 2 warm-ups of
    `GradCAM(...)(input_tensor=x, targets=[ClassifierOutputTarget(c), ...])`.
    Two PyTorch set-ups:
      stock: parameters require grad (the usual way to use the package, as in
             scripts/reference/gradcam_compare.py): backward runs through the whole network
             and computes every weight gradient.
      lean:  weights frozen and the target layer's output turned into a leaf that requires
             grad (a forward hook registered before GradCAM's), so backward only runs from
             the logits down to the layer -- the minimum Grad-CAM needs.
(ii) Whole processes, alternating sides per round: a fresh `python3.11 THIS --worker ...`
    (imports, ONNX load / conversion, image load + preprocess, one no-grad forward to pick
    the top-K classes, Grad-CAM with the stock set-up, heatmap + overlay PNG per class)
    vs the convscope command (run with its default --out, inside a temp dir).

Everything uses 2 threads (torch.set_num_threads(2), RAYON_NUM_THREADS=2).

Usage:
    python3.11 scripts/bench/gradcam_compare_speed.py [--rounds 3] [--reps 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "scripts" / "reference"))

THREADS = 2
SHARED = (REPO / ".." / "shared").resolve()
VGG = SHARED / "models" / "vgg16_tumor.onnx"
EFF = SHARED / "models" / "efficientnet_lite0.onnx"
IMG = SHARED / "images" / "chelsea.png"
DEFAULT_BIN = REPO / "target" / "release" / "convscope"
EFF_LAYER_MODULE = "_swish_1/Clip"

# (model key, K) cases; VGG has 4 classes, so its "5" is 4.
CASES = [("vgg", 1), ("vgg", 4), ("eff", 1), ("eff", 5)]


def setup_torch():
    import torch

    torch.set_num_threads(THREADS)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    return torch


# --------------------------------------------------------------------------------------------
# Models and inputs
# --------------------------------------------------------------------------------------------

def build_vgg(lean: bool):
    """(model, target layer) -- VGG16 with nn modules and a logits head."""
    import onnx
    import torch
    import torch.nn as nn
    from refcommon import build_vgg_torch

    base = build_vgg_torch(onnx.load(str(VGG)))

    class VGGLogits(nn.Module):
        def __init__(self):
            super().__init__()
            layers = []
            for kind, key in base.plan:
                if kind == "conv":
                    layers += [base.convs[key], nn.ReLU()]
                else:
                    layers.append(nn.MaxPool2d(2, 2))
            self.features = nn.Sequential(*layers)
            for nm in ("w1", "b1", "m1", "s1", "w2", "b2", "m2", "s2", "w3", "b3", "w4", "b4"):
                self.register_buffer(nm, getattr(base, nm))

        def forward(self, x_nchw):
            # NCHW in (the ONNX graph takes NHWC and transposes first): pytorch-grad-cam reads
            # the map size from the last two input dims, so it needs NCHW.
            x = self.features(x_nchw)
            n = x.shape[0]
            x = x.permute(0, 2, 3, 1).reshape(n, -1)  # Keras flatten: NHWC order
            x = torch.relu(x @ self.w1 + self.b1) * self.m1 + self.s1
            x = torch.relu(x @ self.w2 + self.b2) * self.m2 + self.s2
            x = torch.relu(x @ self.w3 + self.b3)
            return x @ self.w4 + self.b4  # logits (the graph's Softmax input)

    m = VGGLogits().eval()
    layer = m.features[-1]
    assert isinstance(layer, nn.MaxPool2d)
    return finish(m, layer, lean)


def build_eff(lean: bool):
    import onnx
    from onnx2torch import convert

    m = convert(onnx.load(str(EFF))).eval()
    layer = getattr(m, EFF_LAYER_MODULE)
    return finish(m, layer, lean)


def finish(model, layer, lean: bool):
    for p in model.parameters():
        p.requires_grad_(not lean)
    if lean:
        # Runs before GradCAM's own hooks (registered later), which then see the leaf.
        layer.register_forward_hook(lambda mod, inp, out: out.detach().requires_grad_(True))
    return model, layer


def load_rgb(path=IMG):
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def vgg_input(img):
    """Stretch to 240x240 (bilinear), /255, as NCHW [1,3,240,240]; also the 0..1 display image."""
    import numpy as np
    import torch
    from PIL import Image

    a = np.asarray(img.resize((240, 240), Image.BILINEAR), dtype=np.float32) / np.float32(255)
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)[None])), a


def eff_input(img):
    """Shorter side -> 224 (bilinear), centre crop 224, ImageNet mean/std, NCHW."""
    import numpy as np
    import torch
    from PIL import Image

    w, h = img.size
    s = 224 / min(w, h)
    nw, nh = max(224, round(w * s)), max(224, round(h * s))
    r = img.resize((nw, nh), Image.BILINEAR)
    l, t = (nw - 224) // 2, (nh - 224) // 2
    a = np.asarray(r.crop((l, t, l + 224, t + 224)), dtype=np.float32) / np.float32(255)
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    x = ((a - mean) / std).transpose(2, 0, 1)[None]
    return torch.from_numpy(np.ascontiguousarray(x)), a


def build(key: str, lean: bool):
    return build_vgg(lean) if key == "vgg" else build_eff(lean)


def make_input(key: str, img):
    return vgg_input(img) if key == "vgg" else eff_input(img)


def top_k(model, x, k):
    import torch

    with torch.no_grad():
        logits = model(x)[0]
    return [int(i) for i in torch.argsort(logits, descending=True)[:k]]


# --------------------------------------------------------------------------------------------
# Whole-process worker
# --------------------------------------------------------------------------------------------

def worker(args) -> int:
    t0 = time.perf_counter()
    torch = setup_torch()
    import numpy as np
    from PIL import Image
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.image import show_cam_on_image
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    t_imp = time.perf_counter()

    model, layer = build(args.model_key, lean=False)
    t_load = time.perf_counter()
    x, disp = make_input(args.model_key, load_rgb())
    classes = top_k(model, x, args.k)
    t_pre = time.perf_counter()
    cam = GradCAM(model=model, target_layers=[layer])
    if args.model_key == "vgg":  # one batched call
        maps = cam(input_tensor=x.repeat(len(classes), 1, 1, 1),
                   targets=[ClassifierOutputTarget(c) for c in classes])
    else:  # the graph takes one image at a time
        maps = np.concatenate([cam(input_tensor=x, targets=[ClassifierOutputTarget(c)]) for c in classes])
    t_cam = time.perf_counter()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for c, m in zip(classes, maps):
        heat = show_cam_on_image(np.zeros_like(disp), m, use_rgb=True, image_weight=0.0)
        Image.fromarray(heat).save(out / f"gradcam_{c}_heatmap.png")
        Image.fromarray(show_cam_on_image(disp, m, use_rgb=True)).save(out / f"gradcam_{c}_overlay.png")
    t_end = time.perf_counter()
    Path(args.worker_json).write_text(json.dumps({
        "classes": classes, "import_s": t_imp - t0, "load_s": t_load - t_imp,
        "preprocess_top_s": t_pre - t_load, "cam_s": t_cam - t_pre, "save_s": t_end - t_cam,
        "internal_s": t_end - t0,
    }))
    return 0


# --------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------

def convscope_args(key: str, k: int):
    if key == "vgg":
        return ["cam", str(VGG), str(IMG), "--top", str(k)]
    return ["cam", str(EFF), str(IMG), "--preprocess", "imagenet", "--crop", "--top", str(k)]


def median_time(fn, reps: int, warmup: int = 2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def bench_in_process(args):
    """(i): Grad-CAM alone, model loaded. Returns {(key, k): {variant: seconds}} and notes."""
    torch = setup_torch()
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    img = load_rgb()
    res, notes = {}, []
    for key in ("vgg", "eff"):
        for lean in (False, True):
            model, layer = build(key, lean)
            x, _ = make_input(key, img)
            cam = GradCAM(model=model, target_layers=[layer])
            variant = "lean" if lean else "stock"
            for (ck, k) in CASES:
                if ck != key:
                    continue
                classes = top_k(model, x, k)
                tg = [ClassifierOutputTarget(c) for c in classes]
                r = res.setdefault((key, k), {"classes": classes})
                r[f"{variant} calls"] = median_time(
                    lambda: [cam(input_tensor=x, targets=[t]) for t in tg], args.reps)
                if k > 1:
                    xb = x.repeat(k, 1, 1, 1)
                    try:
                        r[f"{variant} batch"] = median_time(lambda: cam(input_tensor=xb, targets=tg), args.reps)
                    except Exception as e:  # EfficientNet: Reshape to [1, -1]
                        msg = f"{key} batch of {k} fails in pytorch-grad-cam: {type(e).__name__}: " \
                              f"{str(e).splitlines()[0][:120]}"
                        if msg not in notes:
                            notes.append(msg)
                print(f"(i) {key} K={k} {variant}: " + ", ".join(
                    f"{n} {v * 1e3:.1f} ms" for n, v in r.items() if n.startswith(variant)), flush=True)
            cam.activations_and_grads.release()
            del model, cam
    return res, notes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="whole-process rounds (default 3)")
    ap.add_argument("--reps", type=int, default=7, help="timed Grad-CAM calls in (i) (default 7)")
    ap.add_argument("--convscope", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-key", help=argparse.SUPPRESS)
    ap.add_argument("--k", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--out-dir", help=argparse.SUPPRESS)
    ap.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)

    tmp = Path(tempfile.mkdtemp(prefix="gradcam_speed_"))
    print(f"# threads={THREADS} rounds={args.rounds} reps={args.reps} tmp={tmp}", flush=True)
    for key, k in CASES:
        print("# convscope: RAYON_NUM_THREADS=2 convscope " + " ".join(convscope_args(key, k)), flush=True)

    # ---- (ii) whole processes, alternating sides per round ----
    env_cs = dict(os.environ, RAYON_NUM_THREADS=str(THREADS))
    env_py = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    whole = {c: {"torch": [], "convscope": [], "torch_detail": [], "cs_classes": None} for c in CASES}
    for rnd in range(args.rounds):
        for key, k in CASES:
            order = ("torch", "convscope") if rnd % 2 == 0 else ("convscope", "torch")
            for side in order:
                d = tmp / f"{side}_{key}_{k}_{rnd}"
                d.mkdir()
                if side == "torch":
                    wj = d / "worker.json"
                    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", "--model-key", key,
                           "--k", str(k), "--out-dir", str(d), "--worker-json", str(wj)]
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, env=env_py)
                    wall = time.perf_counter() - t
                    whole[(key, k)]["torch_detail"].append(json.loads(wj.read_text()))
                else:
                    cmd = [str(args.convscope)] + convscope_args(key, k)
                    t = time.perf_counter()
                    subprocess.run(cmd, check=True, env=env_cs, cwd=d, capture_output=True)
                    wall = time.perf_counter() - t
                    idx = json.loads((d / "convscope-out" / "cam" / "index.json").read_text())
                    whole[(key, k)]["cs_classes"] = [e["class"] for e in idx["targets"]]
                    whole[(key, k)]["cs_layer"] = f"{idx['layer']} {idx['layer_value']} {idx['layer_shape']}"
                whole[(key, k)][side].append(wall)
                print(f"(ii) round {rnd} {key} K={k} {side:9s} {wall:.3f} s", flush=True)

    # ---- (i) Grad-CAM alone in this process ----
    inproc, notes = bench_in_process(args)

    med = statistics.median
    names = {"vgg": "VGG16", "eff": "EffNet-Lite0"}
    print()
    print("(i) Grad-CAM computation alone, pytorch-grad-cam in-process (median of "
          f"{args.reps} after 2 warm-ups), ms")
    h1 = f"{'model':<13} {'K':>2} {'stock calls':>11} {'stock batch':>11} {'lean calls':>10} {'lean batch':>10} " \
         f"{'convscope proc':>14} {'cs/stock':>8} {'cs/lean':>7}"
    print(h1)
    print("-" * len(h1))
    for key, k in CASES:
        r = inproc[(key, k)]
        cs = med(whole[(key, k)]["convscope"])
        sb = r.get("stock batch")
        lb = r.get("lean batch")
        best_stock = min(v for v in (r["stock calls"], sb) if v is not None)
        best_lean = min(v for v in (r["lean calls"], lb) if v is not None)
        f = lambda v: f"{v * 1e3:.1f}" if v is not None else "n/a"
        print(f"{names[key]:<13} {k:>2} {f(r['stock calls']):>11} {f(sb):>11} {f(r['lean calls']):>10} "
              f"{f(lb):>10} {cs * 1e3:14.1f} {cs / best_stock:8.2f} {cs / best_lean:7.2f}")
    print("(convscope proc = its WHOLE process (median of rounds) -- it has no in-process timer for "
          "the CAM alone; cs/stock, cs/lean = that / the faster torch variant)")
    for n in notes:
        print("note:", n)

    print()
    print(f"(ii) whole processes, median of {args.rounds} rounds, s")
    h2 = f"{'model':<13} {'K':>2} {'torch proc':>10} {'convscope':>9} {'torch/cs':>8}   torch breakdown " \
         f"(import/load/prep+top/cam/save)   classes torch | convscope"
    print(h2)
    print("-" * len(h2))
    for key, k in CASES:
        w = whole[(key, k)]
        tp, cp = med(w["torch"]), med(w["convscope"])
        det = w["torch_detail"][-1]
        bd = "/".join(f"{det[n]:.2f}" for n in ("import_s", "load_s", "preprocess_top_s", "cam_s", "save_s"))
        print(f"{names[key]:<13} {k:>2} {tp:10.3f} {cp:9.3f} {tp / cp:8.2f}   {bd:<36} "
              f"{det['classes']} | {w['cs_classes']}")
    for key, k in CASES:
        if k == 1:
            print(f"convscope layer ({key}): {whole[(key, k)].get('cs_layer')}")
    print("(torch proc: VGG16 K>1 = one batched call; EffNet K>1 = K calls)")

    if args.json:
        args.json.write_text(json.dumps({
            "inproc": {f"{k0}_{k1}": v for (k0, k1), v in inproc.items()},
            "whole": {f"{k0}_{k1}": v for (k0, k1), v in whole.items()}, "notes": notes}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
