"""Lucent (torch-lucent 0.1.8, its defaults) on EfficientNet-Lite0: class visualizations for the
recognisability comparison and the speed benchmark of docs/benchmarks.md.

The ONNX file is loaded into PyTorch with onnx2torch, so Lucent optimises the very network
convscope does. Lucent's defaults: param.image(SIZE) (Fourier, decorrelated, sd 0.01), the
standard transforms, ImageNet normalisation, upsampling to 224 when smaller, Adam lr 0.05, 512
steps; the objective is the class logit (before softmax), as Lucent's `channel("logits", k)`.

    venv/bin/pip install torch torch-lucent onnx onnx2torch && venv/bin/pip install -U kornia
    venv/bin/python scripts/reference/lucent_classes.py --out /tmp/lucent --classes 1,130,...
    venv/bin/python scripts/reference/lucent_classes.py --out /tmp/lucent-speed --classes 1 --size 224

Writes one PNG per class (`class_<k>.png`) and `timing.json` (seconds per picture).
"""
import argparse
import json
import pathlib
import time

import kornia
import kornia.geometry.transform as _kgt

for _name in ("get_rotation_matrix2d", "warp_affine"):
    if not hasattr(kornia, _name):
        setattr(kornia, _name, getattr(_kgt, _name))

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx2torch import convert  # noqa: E402
from PIL import Image  # noqa: E402
from lucent.optvis import render, param, objectives  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--model", default=str(pathlib.Path(__file__).resolve().parents[2] / "../shared/models/efficientnet_lite0.onnx"))
ap.add_argument("--classes", required=True)
ap.add_argument("--size", type=int, default=128, help="Lucent's param.image size (its default 128)")
ap.add_argument("--steps", type=int, default=512)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--out", required=True)
args = ap.parse_args()

torch.set_num_threads(args.threads)
out = pathlib.Path(args.out)
out.mkdir(parents=True, exist_ok=True)


class WithLogits(torch.nn.Module):
    """The converted network plus a named identity on its output, so Lucent can hook it."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.logits = torch.nn.Identity()

    def forward(self, x):
        return self.logits(self.net(x))


model = WithLogits(convert(onnx.load(args.model))).eval()
timing = {}
for k in [int(c) for c in args.classes.split(",")]:
    torch.manual_seed(args.seed + k)
    np.random.seed(args.seed + k)
    start = time.perf_counter()
    images = render.render_vis(
        model,
        objectives.channel("logits", k),
        param_f=lambda: param.image(args.size),
        thresholds=(args.steps,),
        show_image=False,
        progress=False,
    )
    seconds = time.perf_counter() - start
    img = (np.clip(images[-1][0], 0, 1) * 255).round().astype(np.uint8)
    Image.fromarray(img).save(out / f"class_{k}.png")
    timing[k] = seconds
    print(f"class {k}: {seconds:.1f} s", flush=True)
(out / "timing.json").write_text(json.dumps({
    "seconds_per_picture": timing, "steps": args.steps, "size": args.size,
    "threads": args.threads, "torch": torch.__version__, "kornia": kornia.__version__,
}, indent=1))
