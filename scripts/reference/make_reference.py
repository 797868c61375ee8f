#!/usr/bin/env python3
"""Generate the JSON reference data that convscope's Rust tests compare against.

Writes (by default into <repo>/tests/data/reference/):
  vgg16_tumor_forward.json              onnxruntime forward statistics, VGG16 at 240x240
  efficientnet_lite0_forward.json       onnxruntime forward statistics, EfficientNet-Lite0
  vgg16_block3_conv1_grad.json          d mean(block3_conv1 relu, ch 0) / d input, 150x150
  efficientnet_lite0_logit285_grad.json d logits[0,285] / d input, plus Grad-CAM

Regenerate only when the recipe in this script changes; never edit the JSON.
See scripts/reference/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np

from refcommon import (
    CLASSES_REL,
    DEFAULT_OUT,
    DEFAULT_SHARED,
    EFF_CROP,
    EFF_HEAD_ACT,
    EFF_REL,
    IMAGENET_MEAN,
    IMAGENET_STD,
    IMG_REL,
    REPO_ROOT,
    VGG_B3C1_RELU,
    VGG_CLASSES,
    VGG_FWD_CROP,
    VGG_GRAD_CROP,
    VGG_REL,
    build_eff_torch,
    build_vgg_torch,
    eff_input,
    extract_submodel,
    f32_bits,
    imagenet_mean_std_f32,
    load_rgb_u8,
    make_input_spatial_dynamic,
    sha256_file,
    vgg_input,
)

SCHEMA_FORWARD = "convscope.reference.forward/1"
SCHEMA_GRAD = "convscope.reference.gradient/1"
FLOAT_NOTE = (
    "values from float32 computations are rounded to 7 significant digits; float64 "
    "results (fields named f64/*_f64, fd, autograd_f64) and the whole-tensor 'sum' fields "
    "(tensors[].sum, input_stats.sum) to 12. All sums/means are accumulated in float64 "
    "from the float32 tensor. input_stats.first8 holds exact float32 values."
)


# --------------------------------------------------------------------------
# small utils
# --------------------------------------------------------------------------

def r7(x) -> float:
    return float(f"{float(x):.7g}")


def r12(x) -> float:
    return float(f"{float(x):.12g}")


def rl(a, rnd=r7) -> list:
    return [rnd(v) for v in np.asarray(a).ravel().tolist()]


def versions() -> dict:
    import onnx
    import onnxruntime as ort

    v = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }
    try:
        import PIL

        v["pillow"] = PIL.__version__
    except Exception:  # pragma: no cover
        pass
    try:
        import torch

        v["torch"] = torch.__version__
        import onnx2torch  # noqa: F401
        from importlib.metadata import version

        v["onnx2torch"] = version("onnx2torch")
    except Exception:
        pass
    return v


def file_info(shared: Path, rel: str) -> dict:
    return {"file": rel, "sha256": sha256_file(shared / rel)}


def input_stats(x: np.ndarray) -> dict:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return {
        "sum": r12(x.astype(np.float64).sum()),
        "min": r7(x.min()),
        "max": r7(x.max()),
        "sha256_f32le": hashlib.sha256(x.astype("<f4").tobytes()).hexdigest(),
        "first8": [float(v) for v in x.ravel()[:8].tolist()],  # exact float32 values
    }


def vgg_recipe(box) -> dict:
    r0, r1, c0, c1 = box
    return {
        "image": IMG_REL,
        "decode": "PNG -> RGB uint8 HxWx3 (PIL .convert('RGB'); no ICC/gamma conversion)",
        "crop": {"row_start": r0, "row_end": r1, "col_start": c0, "col_end": c1,
                 "note": "half-open ranges [start, end) in image rows/cols; no resampling"},
        "formula": "x[0,h,w,c] = float32(u8[row_start+h, col_start+w, c]) / float32(255)  "
                   "(one IEEE float32 division, round-to-nearest)",
        "layout": "NHWC",
        "mean": None,
        "std": None,
        "mean_f32_bits": None,
        "std_f32_bits": None,
    }


def eff_recipe() -> dict:
    r0, r1, c0, c1 = EFF_CROP
    mean32, std32 = imagenet_mean_std_f32()
    return {
        "image": IMG_REL,
        "decode": "PNG -> RGB uint8 HxWx3 (PIL .convert('RGB'); no ICC/gamma conversion)",
        "crop": {"row_start": r0, "row_end": r1, "col_start": c0, "col_end": c1,
                 "note": "half-open ranges [start, end) in image rows/cols; no resampling"},
        "formula": "x[0,c,h,w] = ((float32(u8[row_start+h, col_start+w, c]) / float32(255)) "
                   "- mean32[c]) / std32[c]; each step one IEEE float32 op (div, sub, div), "
                   "round-to-nearest; numpy: ((x.astype(np.float32)/np.float32(255)) - mean32)/std32",
        "layout": "NCHW",
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "mean_f32_bits": f32_bits(mean32),
        "std_f32_bits": f32_bits(std32),
    }


# --------------------------------------------------------------------------
# forward references (onnxruntime)
# --------------------------------------------------------------------------

def windows(h: int, w: int):
    ph, pw = min(4, h), min(4, w)
    return [
        ("top_left", 0, 0, ph, pw),
        ("center", (h - ph) // 2, (w - pw) // 2, ph, pw),
        ("bottom_right", h - ph, w - pw, ph, pw),
    ]


def tensor_record(name: str, op_type: str, node_name: str, arr: np.ndarray) -> dict:
    arr = np.asarray(arr)
    a64 = arr.astype(np.float64)
    rec = {
        "name": name,
        "op_type": op_type,
        "node": node_name,
        "shape": list(arr.shape),
        "channel_axis": None,
        "channel_sums": None,
        "sum": r12(a64.sum()),
        "max_abs": r7(np.abs(arr).max()),
        "patches": [],
        "values": None,
    }
    if arr.ndim == 4:
        assert arr.shape[0] == 1
        _, c, h, w = arr.shape
        rec["channel_axis"] = 1
        rec["channel_sums"] = rl(a64.sum(axis=(0, 2, 3)))
        for ch in (0, c - 1):
            for label, r0, c0, ph, pw in windows(h, w):
                rec["patches"].append({
                    "label": label, "channel": ch, "row0": r0, "col0": c0,
                    "rows": ph, "cols": pw,
                    "values": rl(arr[0, ch, r0:r0 + ph, c0:c0 + pw]),
                })
    elif arr.ndim == 2:
        rec["channel_axis"] = 1
        rec["channel_sums"] = rl(a64.sum(axis=0))
        if arr.size <= 1000:
            rec["values"] = rl(arr)
    else:
        raise ValueError(f"unexpected rank {arr.ndim} for {name}")
    return rec


def run_instrumented(model_path: Path, feed: dict, ops: set):
    """Run the model with every output of a node whose op_type is in `ops`
    added as a graph output. Returns ([(name, op, node)], {name: array})."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    model = onnx.load(str(model_path))
    existing = {o.name for o in model.graph.output}
    picked = []
    for node in model.graph.node:
        if node.op_type in ops:
            picked.append((node.output[0], node.op_type, node.name))
            if node.output[0] not in existing:
                model.graph.output.append(
                    helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, None))
                existing.add(node.output[0])
    final = []
    producers = {n.output[0]: n for n in model.graph.node}
    for o in onnx.load(str(model_path)).graph.output:
        n = producers[o.name]
        final.append((o.name, n.op_type, n.name))
    so = ort.SessionOptions()
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(names, feed)))
    # Cross-check: the instrumented graph gives the same final output as the original.
    plain = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    for (fname, _, _), arr in zip(final, plain.run([f[0] for f in final], feed)):
        d = float(np.abs(arr - outs[fname]).max())
        print(f"  instrumented vs plain {fname}: max|diff|={d:.3g}")
        assert d < 1e-4
    records = [p for p in picked if p[0] not in {f[0] for f in final}] + final
    return records, outs


def forward_reference(shared: Path, which: str) -> dict:
    u8 = load_rgb_u8(shared / IMG_REL)
    if which == "vgg":
        model_rel, x = VGG_REL, vgg_input(u8, VGG_FWD_CROP)
        ops = {"Conv", "Relu", "MaxPool"}
        recipe, layout = vgg_recipe(VGG_FWD_CROP), "NHWC"
    else:
        model_rel, x = EFF_REL, eff_input(u8)
        ops = {"Conv", "Clip", "MaxPool", "GlobalAveragePool"}
        recipe, layout = eff_recipe(), "NCHW"
    print(f"[forward] {model_rel} input {list(x.shape)}")
    records, outs = run_instrumented(shared / model_rel, {"input": x}, ops)
    tensors = [tensor_record(n, op, node, outs[n]) for n, op, node in records]
    doc = {
        "schema": SCHEMA_FORWARD,
        "model": file_info(shared, model_rel),
        "image": file_info(shared, IMG_REL),
        "generator": {"script": "scripts/reference/make_reference.py", "engine": "onnxruntime CPU",
                      "versions": versions()},
        "float_note": FLOAT_NOTE,
        "input_name": "input",
        "input_layout": layout,
        "input_shape": list(x.shape),
        "input_recipe": recipe,
        "input_stats": input_stats(x),
        "patch_note": "for each rank-4 NCHW tensor (batch 1): channels 0 and C-1, windows of "
                      "min(4,H) x min(4,W) at top_left (0,0), center ((H-rows)//2,(W-cols)//2), "
                      "bottom_right (H-rows, W-cols); values row-major [row][col]. Rank-2 tensors: "
                      "no patches; 'values' holds the whole tensor when it has <= 1000 elements.",
        "tensors": tensors,
    }
    if which == "vgg":
        probs = outs["dense_3"][0].astype(np.float64)
        order = np.argsort(-probs)
        doc["classification"] = {
            "output": "dense_3",
            "output_kind": "softmax",
            "class_names": VGG_CLASSES,
            "probs": rl(probs),
            "top5": [{"index": int(i), "name": VGG_CLASSES[i], "logit": None, "prob": r7(probs[i])}
                     for i in order[:5]],
        }
        print("  vgg softmax:", ", ".join(f"{VGG_CLASSES[i]}={probs[i]:.5f}" for i in range(4)))
    else:
        names = (shared / CLASSES_REL).read_text().splitlines()
        logits = outs["logits"][0].astype(np.float64)
        p = np.exp(logits - logits.max())
        p /= p.sum()
        order = np.argsort(-logits)[:5]
        doc["classification"] = {
            "output": "logits",
            "output_kind": "logits",
            "class_names": None,
            "probs": None,
            "top5": [{"index": int(i), "name": names[i], "logit": r7(logits[i]), "prob": r7(p[i])}
                     for i in order],
        }
        print("  eff top5:", "; ".join(f"{i} {names[i]} p={p[i]:.4f} logit={logits[i]:.4f}"
                                        for i in order))
    print(f"  {len(tensors)} tensors recorded")
    return doc


# --------------------------------------------------------------------------
# gradient references (PyTorch autograd)
# --------------------------------------------------------------------------

def grad_stats(g: np.ndarray, rnd) -> dict:
    g64 = g.astype(np.float64)
    am = np.unravel_index(int(np.abs(g64).argmax()), g.shape)
    return {
        "sum": rnd(g64.sum()),
        "sum_abs": rnd(np.abs(g64).sum()),
        "max_abs": rnd(np.abs(g64).max()),
        "argmax_abs": [int(i) for i in am],
        "nonzero": int(np.count_nonzero(g)),
    }


def patch_slices(layout: str, shape, label: str):
    if layout == "NHWC":
        _, h, w, c = shape
    else:
        _, c, h, w = shape
    win = {lab: (r0, c0) for lab, r0, c0, _, _ in windows(h, w)}
    r0, c0 = win[label]
    if layout == "NHWC":
        start, size = [0, r0, c0, 0], [1, 4, 4, c]
    else:
        start, size = [0, 0, r0, c0], [1, c, 4, 4]
    sl = tuple(slice(s, s + z) for s, z in zip(start, size))
    return start, size, sl


def fd_check(f64, x64, g64: np.ndarray, g32: np.ndarray, idxs, eps: float) -> dict:
    import torch

    checks = []
    with torch.no_grad():
        for idx in idxs:
            xp = x64.clone()
            xp[idx] += eps
            xm = x64.clone()
            xm[idx] -= eps
            fd = (f64(xp).item() - f64(xm).item()) / (2 * eps)
            a64, a32 = float(g64[idx]), float(g32[idx])
            rel = abs(fd - a64) / max(abs(a64), 1e-30)
            rel32 = abs(fd - a32) / max(abs(fd), 1e-30)
            checks.append({"index": [int(i) for i in idx], "fd": r12(fd), "autograd_f64": r12(a64),
                           "autograd_f32": r7(a32), "rel_err_f64": float(f"{rel:.3g}"),
                           "rel_err_f32": float(f"{rel32:.3g}")})
            print(f"    FD {list(idx)}: fd={fd:.9e} ag64={a64:.9e} ag32={a32:.7e} "
                  f"rel64={rel:.2e} rel32={rel32:.2e}")
    return {
        "dtype": "float64",
        "scheme": "central: (f(x+eps*e_i) - f(x-eps*e_i)) / (2*eps)",
        "eps": eps,
        "checks": checks,
        "max_rel_err_f64": max(c["rel_err_f64"] for c in checks),
        "max_rel_err_f32": max(c["rel_err_f32"] for c in checks),
    }


def grad_common(x, g32, g64, layout, positions) -> dict:
    pos = [{"index": list(p), "f32": r7(g32[p]), "f64": r12(g64[p])} for p in positions]
    patches = []
    for label in ("top_left", "center", "bottom_right"):
        start, size, sl = patch_slices(layout, g32.shape, label)
        patches.append({"label": label, "start": start, "size": size,
                        "f32": rl(g32[sl]), "f64": rl(g64[sl], r12)})
    d = np.abs(g32.astype(np.float64) - g64)
    return {
        "gradient": {
            "layout": layout,
            "shape": list(g32.shape),
            "f32": grad_stats(g32, r7),
            "f64": grad_stats(g64, r12),
            "f32_vs_f64": {"max_abs_diff": float(f"{d.max():.3g}"),
                           "max_abs_diff_over_max_abs": float(f"{d.max() / np.abs(g64).max():.3g}")},
        },
        "positions_note": f"index is [n,{','.join(layout[1:]).lower()}] in the input layout "
                          f"({layout}); patch values are row-major over 'size' in that layout",
        "positions": pos,
        "patches": patches,
    }


def pick_fd_indices(g: np.ndarray, positions, n=5):
    am = tuple(int(i) for i in np.unravel_index(int(np.abs(g).argmax()), g.shape))
    rest = sorted(positions, key=lambda p: -abs(float(g[p])))
    out = [am] + [p for p in rest if p != am and g[p] != 0][: n - 1]
    return out


def vgg_grad_reference(shared: Path, eps: float) -> dict:
    import onnx
    import onnxruntime as ort
    import torch

    u8 = load_rgb_u8(shared / IMG_REL)
    x = vgg_input(u8, VGG_GRAD_CROP)
    print(f"[grad] vgg16 block3_conv1 ch0 mean, input {list(x.shape)}")
    full = onnx.load(str(shared / VGG_REL))

    # onnxruntime value of the objective on the cut graph, input dims made dynamic.
    cut = extract_submodel(full, ["input"], [VGG_B3C1_RELU])
    make_input_spatial_dynamic(cut)
    sess = ort.InferenceSession(cut.SerializeToString(), providers=["CPUExecutionProvider"])
    act_ort = sess.run(None, {"input": x})[0]
    obj_ort = float(act_ort[0, 0].astype(np.float64).mean())

    model = build_vgg_torch(full, stop_after="block3_conv1")
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    act = model(xt)
    obj = act[0, 0].mean()
    obj.backward()
    g32 = xt.grad.numpy().copy()
    act_diff = float(np.abs(act.detach().numpy() - act_ort).max())

    m64 = build_vgg_torch(full, stop_after="block3_conv1").double()
    x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    obj64 = m64(x64)[0, 0].mean()
    obj64.backward()
    g64 = x64.grad.numpy().copy()
    print(f"  objective: torch f32={obj.item():.7f} onnxruntime={obj_ort:.7f} "
          f"torch f64={obj64.item():.10f}; activation max|torch-ort|={act_diff:.3g}")
    assert abs(obj.item() - obj_ort) < 1e-4 * max(1.0, abs(obj_ort))

    positions = [(0, h, w, (h + w) % 3) for h in (0, 37, 75, 112, 149) for w in (0, 50, 100, 149)]
    fd = fd_check(lambda z: m64(z)[0, 0].mean(), x64.detach(), g64, g32,
                  pick_fd_indices(g64, positions), eps)
    doc = {
        "schema": SCHEMA_GRAD,
        "model": file_info(shared, VGG_REL),
        "image": file_info(shared, IMG_REL),
        "generator": {"script": "scripts/reference/make_reference.py",
                      "engine": "PyTorch autograd, hand-built VGG16 trunk from the ONNX initializers "
                                "(NHWC->NCHW transpose, conv3x3 pad1 + bias, relu, maxpool 2x2/2)",
                      "versions": versions()},
        "float_note": FLOAT_NOTE,
        "input_name": "input",
        "input_layout": "NHWC",
        "input_shape": list(x.shape),
        "input_recipe": vgg_recipe(VGG_GRAD_CROP),
        "input_stats": input_stats(x),
        "objective": {
            "kind": "channel_spatial_mean",
            "value_name": VGG_B3C1_RELU,
            "value_layout": "NCHW",
            "value_shape": list(act.shape),
            "channel": 0,
            "class_index": None,
            "description": "mean over H,W of channel 0 of the post-ReLU activation of block3_conv1 "
                           "(graph evaluated at 150x150 input; conv trunk is size-agnostic)",
            "value_f32": r7(obj.item()),
            "value_f64": r12(obj64.item()),
            "value_onnxruntime": r7(obj_ort),
        },
    }
    doc.update(grad_common(x, g32, g64, "NHWC", positions))
    doc["finite_difference"] = fd
    doc["gradcam"] = None
    return doc


def eff_grad_reference(shared: Path, eps: float) -> dict:
    import onnx
    import onnxruntime as ort
    import torch

    u8 = load_rgb_u8(shared / IMG_REL)
    x = eff_input(u8)
    cls = 285
    print(f"[grad] efficientnet_lite0 logit {cls}, input {list(x.shape)}")
    full = onnx.load(str(shared / EFF_REL))
    sess = ort.InferenceSession(str(shared / EFF_REL), providers=["CPUExecutionProvider"])
    logits_ort = sess.run(["logits"], {"input": x})[0]

    whole = build_eff_torch(full)
    part1 = build_eff_torch(extract_submodel(full, ["input"], [EFF_HEAD_ACT]))
    part2 = build_eff_torch(extract_submodel(full, [EFF_HEAD_ACT], ["logits"]))
    with torch.no_grad():
        lw = whole(torch.from_numpy(x.copy())).numpy()
    d_whole = float(np.abs(lw - logits_ort).max())

    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    A = part1(xt)
    A.retain_grad()
    logits = part2(A)
    d_split = float(np.abs(logits.detach().numpy() - logits_ort).max())
    print(f"  logits max|torch-ort|: whole={d_whole:.3g} split={d_split:.3g}")
    assert d_whole < 1e-4 and d_split < 1e-4, "onnx2torch forward does not match onnxruntime"
    obj = logits[0, cls]
    obj.backward()
    g32 = xt.grad.numpy().copy()
    gA = A.grad.numpy()[0].astype(np.float64)  # [1280,7,7]
    Av = A.detach().numpy()[0].astype(np.float64)
    w = gA.mean(axis=(1, 2))
    cam = np.maximum((w[:, None, None] * Av).sum(axis=0), 0.0)

    p1_64, p2_64 = part1.double(), part2.double()
    x64 = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    A64 = p1_64(x64)
    A64.retain_grad()
    obj64 = p2_64(A64)[0, cls]
    obj64.backward()
    g64 = x64.grad.numpy().copy()
    gA64 = A64.grad.numpy()[0]
    cam64 = np.maximum((gA64.mean(axis=(1, 2))[:, None, None] * A64.detach().numpy()[0]).sum(0), 0.0)
    print(f"  objective logit[{cls}]: torch f32={obj.item():.7f} "
          f"onnxruntime={float(logits_ort[0, cls]):.7f} torch f64={obj64.item():.10f}")

    positions = [(0, (h + w) % 3, h, w) for h in (0, 56, 112, 168, 223) for w in (0, 75, 150, 223)]
    fd = fd_check(lambda z: p2_64(p1_64(z))[0, cls], x64.detach(), g64, g32,
                  pick_fd_indices(g64, positions), eps)
    doc = {
        "schema": SCHEMA_GRAD,
        "model": file_info(shared, EFF_REL),
        "image": file_info(shared, IMG_REL),
        "generator": {"script": "scripts/reference/make_reference.py",
                      "engine": "PyTorch autograd on onnx2torch conversions of the ONNX graph "
                                f"(split at {EFF_HEAD_ACT} for Grad-CAM)",
                      "versions": versions()},
        "float_note": FLOAT_NOTE,
        "input_name": "input",
        "input_layout": "NCHW",
        "input_shape": list(x.shape),
        "input_recipe": eff_recipe(),
        "input_stats": input_stats(x),
        "objective": {
            "kind": "logit",
            "value_name": "logits",
            "value_layout": "NC",
            "value_shape": list(logits.shape),
            "channel": None,
            "class_index": cls,
            "description": f"pre-softmax logits[0,{cls}] (class {cls}: "
                           f"{(shared / CLASSES_REL).read_text().splitlines()[cls]!r})",
            "value_f32": r7(obj.item()),
            "value_f64": r12(obj64.item()),
            "value_onnxruntime": r7(float(logits_ort[0, cls])),
        },
        "forward_check": {"logits_max_abs_diff_torch_vs_onnxruntime": float(f"{max(d_whole, d_split):.3g}")},
    }
    doc.update(grad_common(x, g32, g64, "NCHW", positions))
    doc["finite_difference"] = fd
    doc["gradcam"] = {
        "layer": EFF_HEAD_ACT,
        "layer_shape": list(A.shape),
        "recipe": "g = d logits[0,285] / d A (A = layer activation, [1,1280,7,7]); "
                  "w_k = mean over (h,w) of g[0,k]; cam[h,w] = max(0, sum_k w_k * A[0,k,h,w]); "
                  "raw, not normalized",
        "cam_shape": [int(cam.shape[0]), int(cam.shape[1])],
        "cam": rl(cam),
        "cam_f64": rl(cam64, r12),
        "activation_grad_channel_sums": rl(gA.sum(axis=(1, 2))),
        "activation_channel_sums": rl(Av.sum(axis=(1, 2))),
    }
    print(f"  gradcam max={cam.max():.6g} at {np.unravel_index(cam.argmax(), cam.shape)}")
    return doc


def write_json(doc: dict, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1, allow_nan=False)
    path.write_text(text + "\n")
    print(f"  wrote {path} ({path.stat().st_size} bytes)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED,
                    help=f"shared data dir holding models/ and images/ (default: {DEFAULT_SHARED})")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT,
                    help=f"output dir (default: {DEFAULT_OUT})")
    ap.add_argument("--only", choices=["vgg_forward", "eff_forward", "vgg_grad", "eff_grad"],
                    action="append", help="generate only this file (repeatable)")
    ap.add_argument("--fd-eps", type=float, default=1e-5, help="finite-difference step (float64)")
    args = ap.parse_args(argv)
    shared = args.shared.resolve()
    out = args.out.resolve()
    jobs = args.only or ["vgg_forward", "eff_forward", "vgg_grad", "eff_grad"]
    print(f"shared={shared} out={out} repo={REPO_ROOT}")
    if "vgg_forward" in jobs:
        write_json(forward_reference(shared, "vgg"), out / "vgg16_tumor_forward.json")
    if "eff_forward" in jobs:
        write_json(forward_reference(shared, "eff"), out / "efficientnet_lite0_forward.json")
    if "vgg_grad" in jobs:
        write_json(vgg_grad_reference(shared, args.fd_eps), out / "vgg16_block3_conv1_grad.json")
    if "eff_grad" in jobs:
        write_json(eff_grad_reference(shared, args.fd_eps), out / "efficientnet_lite0_logit285_grad.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
