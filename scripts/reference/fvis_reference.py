"""Reference numbers for convscope's feature visualization (crates/methods/src/fvis).

Runs Lucent's (torch-lucent 0.1.8) and horama's (0.3.0) own functions, plus kornia, torchvision
and torch.optim, on small fixed inputs and writes tests/data/reference/fvis_reference.json, which
the unit tests in crates/methods/src/fvis/reference_tests.rs compare against. Not part of
`cargo test`.

    python -m venv venv && venv/bin/pip install torch torch-lucent horama einops numpy
    venv/bin/pip install -U kornia   # 0.9.0 here; see below
    venv/bin/python scripts/reference/fvis_reference.py

torch-lucent 0.1.8 pins kornia <= 0.4.1, whose `translate` mixes two pixel conventions and
blurs an integer shift (a shift of (2, 1) on arange(20) gives 0.33, 1.67, ... instead of whole
pixels); with kornia 0.9.0 it is the exact shift Lucent means. The numbers here use 0.9.0.

Every input is a formula of its index (no random numbers), so the file is reproducible.
"""
import json
import math
import pathlib

import kornia
import numpy as np
import torch
import torch.nn.functional as F

# torch-lucent 0.1.8 calls kornia.get_rotation_matrix2d / kornia.warp_affine, which newer kornia
# keeps only in kornia.geometry.transform.
import kornia.geometry.transform as _kgt
for _name in ("get_rotation_matrix2d", "warp_affine"):
    if not hasattr(kornia, _name):
        setattr(kornia, _name, getattr(_kgt, _name))

from lucent.optvis import transform as lt  # noqa: E402
from lucent.optvis.param import spatial, color  # noqa: E402
from horama.maco_fv import maco_preconditioner  # noqa: E402
from torchvision.ops import roi_align  # noqa: E402

torch.set_grad_enabled(True)
OUT = pathlib.Path(__file__).resolve().parents[2] / "tests/data/reference/fvis_reference.json"


def formula(n, a=0.37, b=0.0, scale=1.0):
    return np.array([math.sin(i * a + b) * scale for i in range(n)], dtype=np.float32)


def flat(t):
    return [round(float(v), 7) for v in t.detach().reshape(-1).tolist()]


ref = {}

# 1. Lucid's Fourier image with decorrelated colours, on an even and an odd width.
for (h, w) in [(6, 8), (5, 7)]:
    params, image_f = spatial.fft_image((1, 3, h, w), sd=0.01)
    p = params[0]
    wc_lucent = p.shape[3]
    wc = w // 2 + 1
    vals = formula(3 * h * wc * 2, 0.61, 0.3, 0.8).reshape(1, 3, h, wc, 2)
    full = np.zeros(tuple(p.shape), dtype=np.float32)
    full[:, :, :, :wc, :] = vals  # Lucent keeps one more column for odd w; irfftn ignores it
    with torch.no_grad():
        p.copy_(torch.tensor(full))
    rgb = color.to_valid_rgb(image_f, decorrelate=True)()
    g = torch.tensor(formula(3 * h * w, 0.29, 1.1)).reshape(1, 3, h, w)
    (rgb * g).sum().backward()
    ref[f"fourier_{h}x{w}"] = {
        "params": flat(torch.tensor(vals)),
        "image": flat(rgb),
        "grad_image": flat(g),
        "grad_params": flat(p.grad[:, :, :, :wc, :]),
        "lucent_columns": int(wc_lucent),
    }

# 2. The colour decorrelation alone.
x = torch.tensor(formula(3 * 2 * 2, 0.9)).reshape(1, 3, 2, 2)
ref["decorrelate"] = {"input": flat(x), "output": flat(color._linear_decorrelate_color(x))}

# 3. Geometry of every transformation on one 3 x 10 x 12 picture.
H, W = 10, 12
img = torch.tensor(formula(3 * H * W, 0.23, 0.5)).reshape(1, 3, H, W)
geo = {"input": flat(img), "size": [3, H, W]}
geo["pad3"] = flat(lt.pad(3, mode="constant", constant_value=0.5)(img))
# Lucent's jitter draws dx, dy with np.random.choice(d) and calls kornia's translate with them.
geo["translate_dx2_dy3"] = flat(lt.translate(img, torch.tensor([[2.0, 3.0]])))
for s in (0.9, 1.1):
    out = lt.random_scale([s])(img)
    geo[f"scale_{s}"] = {"shape": list(out.shape[1:]), "values": flat(out)}
for a in (7, -10):
    geo[f"rotate_{a}"] = flat(lt.random_rotate([a])(img))
box = torch.tensor([[0.0, 1.5, -0.5, 8.2, 6.0]])  # batch index, x0, y0, x1, y1
geo["roi_align_box"] = [1.5, -0.5, 8.2, 6.0]
geo["roi_align_5x4"] = flat(roi_align(img, box, output_size=(5, 4)))
box2 = torch.tensor([[0.0, 0.0, 0.0, 12.0, 10.0]])
geo["roi_align_full_3x3"] = flat(roi_align(img, box2, output_size=(3, 3)))
ref["transforms"] = geo

# 4. MaCo's image from a fixed magnitude and phase (values_range (0, 1): the sigmoid itself).
h, w = 8, 10
wc = w // 2 + 1
mag = torch.tensor(np.abs(formula(3 * h * wc, 0.41, 0.2, 2.0)) + 0.1).reshape(3, h, wc)
phase = torch.tensor(formula(3 * h * wc, 0.77, 0.9, 1.5)).reshape(3, h, wc).requires_grad_(True)
img = maco_preconditioner(mag, phase, (0.0, 1.0), "cpu")
g = torch.tensor(formula(3 * h * w, 0.31, 0.4)).reshape(3, h, w)
(img * g).sum().backward()
ref["maco_8x10"] = {
    "magnitude": flat(mag),
    "phase": flat(phase),
    "image": flat(img),
    "grad_image": flat(g),
    "grad_phase": flat(phase.grad),
}

# 5. Optimisers: three steps on fixed gradients (torch minimises the loss -objective).
opt_ref = {}
for name, make, lr in [("adam", torch.optim.Adam, 0.05), ("nadam", torch.optim.NAdam, 1.0)]:
    x = torch.tensor(formula(6, 0.5), requires_grad=True)
    opt = make([x], lr=lr)
    grads = []
    for step in range(3):
        gobj = torch.tensor(formula(6, 0.8, step * 0.7, 0.1 + step))
        grads.append(flat(gobj))
        opt.zero_grad()
        x.grad = -gobj
        opt.step()
    opt_ref[name] = {"lr": lr, "start": flat(torch.tensor(formula(6, 0.5))), "grads": grads, "end": flat(x)}
ref["optimizers"] = opt_ref

ref["versions"] = {
    "torch": torch.__version__,
    "kornia": kornia.__version__,
    "lucent": "0.1.8",
    "horama": __import__("horama").__version__,
}
OUT.parent.mkdir(parents=True, exist_ok=True)
OUT.write_text(json.dumps(ref, indent=1))
print("wrote", OUT)
