#!/usr/bin/env python3
"""Check convscope on torchvision's classifiers, the transformer-era ones included (issue #23).

For each of 13 torchvision models (random weights, `weights=None`: nothing is downloaded),
exported with `torch.onnx.export(..., opset_version=17, dynamo=False)` at 1x3x224x224:

1. every Conv / LayerNormalization / Add / MatMul output of convscope (written by the engine's
   `dump_values` example) is compared with onnxruntime's (graph optimisations off, so every
   value exists): max |convscope - ort| / max |ort| must be <= 1e-4 per tensor;
2. the forward time of convscope (median of 3) is printed beside onnxruntime's (median of 5,
   2 threads, all graph optimisations) for the same file and input;
3. on ViT-B/16 and Swin-T, convscope's Grad-CAM (`convscope cam --npy`, raw map at the token
   grid) is compared with pytorch-grad-cam's GradCAM on the same torch module and weights with
   its documented reshape_transform (drop the class token and fold 14x14 for ViT; [B,7,7,C]
   to NCHW for Swin): Pearson r >= 0.99 required. The raw pytorch-grad-cam map is
   relu(get_cam_image(...)) before its min-max scaling and resize, as in gradcam_compare.py.
   torchvision initialises ViT's head to zeros (every logit 0, every map 0), so the head gets
   normal(0, 0.02) weights before the export.

Run from anywhere (it builds the two binaries it needs with cargo, in release mode):

    python3 scripts/reference/modern_nets.py               # all 13 models, ~10 min on 2 cores
    python3 scripts/reference/modern_nets.py --only vit_b_16 --only swin_t
    python3 scripts/reference/modern_nets.py --work /tmp/cs-modern --no-build
    python3 scripts/reference/modern_nets.py --opset 20 --only vit_b_16   # one Gelu node per GELU

Exports and dumps go to --work (default <repo>/target/modern-nets), never into git.
Exit code 1 when any check fails. Not part of the test suite: it needs torch, torchvision,
onnxruntime and grad-cam (requirements-modern.txt).
"""

from __future__ import annotations

import argparse
import glob
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODELS = [
    "resnet18",
    "mobilenet_v3_small",
    "efficientnet_b0",
    "densenet121",
    "inception_v3",
    "regnet_y_400mf",
    "squeezenet1_1",
    "shufflenet_v2_x1_0",
    "mnasnet1_0",
    "googlenet",
    "convnext_tiny",
    "vit_b_16",
    "swin_t",
]
CHECKED_OPS = ("Conv", "LayerNormalization", "Add", "MatMul")
TOLERANCE = 1e-4
MIN_PEARSON = 0.99
REPO = Path(__file__).resolve().parents[2]


def build(no_build: bool) -> tuple[Path, Path]:
    release = REPO / "target" / "release"
    if not no_build:
        subprocess.run(
            ["cargo", "build", "--release", "-p", "convscope-engine", "--example", "dump_values"],
            cwd=REPO,
            check=True,
        )
        subprocess.run(["cargo", "build", "--release", "-p", "convscope-cli"], cwd=REPO, check=True)
    return release / "examples" / "dump_values", release / "convscope"


# timm's versions of the same families (`--timm`; pip install timm): created with
# pretrained=False, so nothing is downloaded either.
TIMM_MODELS = [
    "timm:convnext_tiny",
    "timm:vit_small_patch16_224",
    "timm:deit_small_patch16_224",
    "timm:swin_tiny_patch4_window7_224",
]


def torch_model(name: str):
    import torch
    import torchvision

    torch.manual_seed(0)
    if name.startswith("timm:"):
        import timm

        return timm.create_model(name[len("timm:"):], pretrained=False).eval()
    kwargs = {"weights": None}
    if name in ("inception_v3", "googlenet"):
        kwargs["aux_logits"] = False
        kwargs["init_weights"] = True
    m = getattr(torchvision.models, name)(**kwargs).eval()
    if name == "vit_b_16":
        torch.nn.init.normal_(m.heads.head.weight, std=0.02)
    return m


def export(model, name: str, work: Path, x, opset: int = 17) -> Path:
    import torch

    suffix = "" if opset == 17 else f"_opset{opset}"
    path = work / f"{name.replace(':', '_')}{suffix}.onnx"
    torch.onnx.export(
        model,
        x,
        str(path),
        opset_version=opset,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
    )
    return path


def compare_values(name: str, onnx_path: Path, x: np.ndarray, work: Path, dump: Path):
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(onnx_path))
    names = [n.output[0] for n in m.graph.node if n.op_type in CHECKED_OPS]
    (work / f"{name}.names").write_text("\n".join(names) + "\n")
    x.astype(np.float32).tofile(work / "x.f32")
    out_dir = work / f"{name}.values"
    res = subprocess.run(
        [str(dump), str(onnx_path), str(work / "x.f32"), "1,3,224,224", str(out_dir), str(work / f"{name}.names")],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        return {"error": res.stderr.strip() or res.stdout.strip()}
    rows, convscope_ms = [], None
    for line in res.stdout.splitlines():
        parts = line.split("\t")
        if parts[0] == "forward_ms":
            convscope_ms = float(parts[1])
        elif len(parts) == 3 and not parts[2].startswith("error"):
            rows.append((int(parts[0]), parts[1]))
    del m.graph.output[:]
    for _, n in rows:
        m.graph.output.append(onnx.ValueInfoProto(name=n))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"input": x})
    worst, worst_name = 0.0, None
    for (k, n), o in zip(rows, outs):
        got = np.fromfile(out_dir / f"{k}.f32", dtype=np.float32)
        if got.size != o.size:
            return {"error": f"{n}: convscope has {got.size} values, onnxruntime {o.size}"}
        rel = float(np.abs(got.reshape(o.shape) - o).max() / max(float(np.abs(o).max()), 1e-12))
        if rel > worst:
            worst, worst_name = rel, n
    # Forward time of onnxruntime, fully optimised, on the same file.
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    fast = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
    fast.run(None, {"input": x})
    times = []
    for _ in range(5):
        t = time.perf_counter()
        fast.run(None, {"input": x})
        times.append((time.perf_counter() - t) * 1e3)
    return {
        "checked": len(rows),
        "listed": len(names),
        "worst": worst,
        "worst_name": worst_name,
        "convscope_ms": convscope_ms,
        "ort_ms": float(np.median(times)),
    }


def reshape_vit(t, h=14, w=14):
    r = t[:, 1:, :].reshape(t.size(0), h, w, t.size(2))
    return r.transpose(2, 3).transpose(1, 2)


def reshape_swin(t, h=7, w=7):
    r = t.reshape(t.size(0), h, w, t.size(-1))
    return r.transpose(2, 3).transpose(1, 2)


def compare_gradcam(name: str, model, onnx_path: Path, x: np.ndarray, work: Path, cli: Path):
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    if name == "vit_b_16":
        module, layer, reshape = model.encoder.layers[-1].ln_1, "encoder.layers.encoder_layer_11.ln_1", reshape_vit
    else:
        module, layer, reshape = model.features[-1][-1].norm2, "features.7.1.norm2", reshape_swin
    xt = torch.from_numpy(x)
    with torch.no_grad():
        cls = int(model(xt).argmax())
    cam = GradCAM(model=model, target_layers=[module], reshape_transform=reshape)
    targets = [ClassifierOutputTarget(cls)]
    cam(input_tensor=xt, targets=targets)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    grads = cam.activations_and_grads.gradients[0].cpu().numpy()
    ref = np.maximum(cam.get_cam_image(xt, module, targets, acts, grads, False), 0)[0]
    np.save(work / "x.npy", x)
    out = work / f"{name}.cam"
    res = subprocess.run(
        [str(cli), "cam", str(onnx_path), str(work / "x.npy"), "--layer", layer, "--class", str(cls), "--npy", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        return {"error": res.stderr.strip()}
    rule = next((l for l in res.stdout.splitlines() if l.startswith("map: ")), "map: (none)")
    raw = np.load(glob.glob(str(out / "*_raw.npy"))[0]).reshape(-1)
    r = float(np.corrcoef(raw, ref.reshape(-1))[0, 1])
    return {"class": cls, "layer": layer, "rule": rule[5:], "pearson": r, "shape": ref.shape}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=REPO / "target" / "modern-nets")
    ap.add_argument("--only", action="append", help="model name (repeatable)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--timm", action="store_true", help="also timm's ConvNeXt, ViT, DeiT and Swin")
    ap.add_argument(
        "--opset",
        type=int,
        default=17,
        help="export opset (20: GELU as one Gelu node); files get an _opsetN suffix",
    )
    args = ap.parse_args()
    import onnxruntime
    import torch
    import torchvision

    torch.set_num_threads(2)
    args.work.mkdir(parents=True, exist_ok=True)
    dump, cli = build(args.no_build)
    print(f"# torch {torch.__version__} torchvision {torchvision.__version__} onnxruntime {onnxruntime.__version__}")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    failed = False
    for name in args.only or (MODELS + (TIMM_MODELS if args.timm else [])):
        model = torch_model(name)
        path = export(model, name, args.work, torch.from_numpy(x), args.opset)
        v = compare_values(name, path, x, args.work, dump)
        if "error" in v:
            failed = True
            print(f"{name:20} FAIL {v['error']}")
            continue
        ok = v["worst"] <= TOLERANCE and v["checked"] == v["listed"]
        failed |= not ok
        print(
            f"{name:20} {'ok  ' if ok else 'FAIL'} {v['checked']}/{v['listed']} values, "
            f"worst {v['worst']:.2e} of max ({v['worst_name']}); forward convscope "
            f"{v['convscope_ms']:.1f} ms, onnxruntime {v['ort_ms']:.1f} ms "
            f"(x{v['convscope_ms'] / v['ort_ms']:.2f})"
        )
        if name in ("vit_b_16", "swin_t"):
            c = compare_gradcam(name, model, path, x, args.work, cli)
            if "error" in c:
                failed = True
                print(f"{name:20} FAIL Grad-CAM: {c['error']}")
                continue
            ok = c["pearson"] >= MIN_PEARSON
            failed |= not ok
            print(
                f"{name:20} {'ok  ' if ok else 'FAIL'} Grad-CAM of class {c['class']} at "
                f"{c['layer']} ({c['rule']}, {c['shape'][0]}x{c['shape'][1]}): Pearson r = "
                f"{c['pearson']:.6f} against pytorch-grad-cam"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
