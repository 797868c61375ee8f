#!/usr/bin/env python3
"""Record pytorch-grad-cam's class activation maps on EfficientNet-Lite0 for convscope's tests.

Writes (by default) <repo>/tests/data/reference/gradcam_efficientnet_lite0.json: for each
method and target class, the raw CAM at the target layer's resolution (7x7), exactly what
pytorch-grad-cam's BaseCAM computes before `scale_cam_image` (min-max normalisation and
cv2.resize to the input size):

    cam = np.maximum(method.get_cam_image(input, layer, targets, activations, grads), 0)

The model is efficientnet_lite0.onnx converted with onnx2torch; the target layer is the
module producing `/_swish_1/Clip_output_0` (the ReLU6 after `_conv_head`, 1280x7x7); the
target is `ClassifierOutputTarget(class)` on the model output (the pre-softmax logits).
The input is the bit-exact chelsea crop of refcommon.eff_input (rows 38..262, cols 113..337,
/255, ImageNet normalisation, NCHW), which the Rust tests rebuild exactly.

EigenCAM: pytorch-grad-cam's EigenCAM projects on the first right singular vector without
fixing its sign, which LAPACK leaves arbitrary. convscope fixes it as
`get_2d_projection_with_sign_correction` does (flip when |min| > |max|), so `cam` for
eigencam is relu(that sign-corrected projection); `cam_pytorch_grad_cam` keeps the package's
own (unsigned) output for information.

ScoreCAM and AblationCAM run with batch size 1: the ONNX graph reshapes the pooled features
to the constant shape [1, -1], so it only runs one image at a time. They take about a minute
together; `--fast` skips them.

Install: `pip install grad-cam` (plus its dependencies opencv-python(-headless), ttach,
scikit-learn, tqdm) on top of scripts/reference/requirements.txt.
Regenerate only when the recipe changes; never edit the JSON by hand.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from make_reference import eff_recipe, file_info, input_stats, r7, rl, versions, write_json
from refcommon import DEFAULT_OUT, DEFAULT_SHARED, EFF_HEAD_ACT, EFF_REL, IMG_REL, eff_input, load_rgb_u8

SCHEMA = "convscope.reference.cam/1"
TARGET_MODULE = "_swish_1/Clip"  # onnx2torch module whose output is /_swish_1/Clip_output_0
DEFAULT_CLASSES = [285, 281]


def method_classes():
    from pytorch_grad_cam import (
        AblationCAM,
        EigenCAM,
        GradCAM,
        GradCAMPlusPlus,
        HiResCAM,
        LayerCAM,
        ScoreCAM,
        XGradCAM,
    )

    return {
        "gradcam": GradCAM,
        "gradcam++": GradCAMPlusPlus,
        "xgradcam": XGradCAM,
        "layercam": LayerCAM,
        "hirescam": HiResCAM,
        "eigencam": EigenCAM,
        "scorecam": ScoreCAM,
        "ablationcam": AblationCAM,
    }


def raw_cam(name, cls, model, layer, x, target_class):
    """The method's map before scale_cam_image, as BaseCAM.compute_cam_per_layer builds it."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection_with_sign_correction

    kwargs = {"batch_size": 1} if name == "ablationcam" else {}
    cam = cls(model=model, target_layers=[layer], **kwargs)
    if name == "scorecam":
        cam.batch_size = 1  # the graph's Reshape to [1, -1] only takes one image
    targets = [ClassifierOutputTarget(target_class)]
    t0 = time.perf_counter()
    outputs = cam.activations_and_grads(x)
    if cam.uses_gradients:
        model.zero_grad()
        loss = sum(t(o) for t, o in zip(targets, outputs))
        loss.backward(retain_graph=True)
    acts = cam.activations_and_grads.activations[0].cpu().numpy()
    grads = cam.activations_and_grads.gradients[0].cpu().numpy() if cam.uses_gradients else None
    # Hooks off before methods that run the model again (ScoreCAM, AblationCAM).
    cam.activations_and_grads.release()
    img = cam.get_cam_image(x, layer, targets, acts, grads, False)
    own = np.maximum(img, 0)[0]
    rec = {}
    if name == "eigencam":
        corrected = get_2d_projection_with_sign_correction(acts)[0]
        rec["cam_pytorch_grad_cam"] = rl(own)
        rec["sign_flipped_vs_pytorch_grad_cam"] = bool(np.sign(corrected.ravel() @ img[0].ravel()) < 0)
        own = np.maximum(corrected, 0)
    # The full pipeline's 224x224 output, for its argmax only (the file stays small); not for
    # the slow methods, whose full run would repeat 1280 forward passes.
    full = None
    if name not in ("scorecam", "ablationcam"):
        full = cls(model=model, target_layers=[layer])(input_tensor=x, targets=targets)[0]
    rec.update({
        "target": target_class,
        "logit": r7(outputs[0, target_class].item()),
        "cam": rl(own),
        "cam_max": r7(own.max()),
        "cam_argmax": [int(v) for v in np.unravel_index(int(own.argmax()), own.shape)],
        "output_argmax_224": None if full is None else
        [int(v) for v in np.unravel_index(int(full.argmax()), full.shape)],
    })
    # Printed, not recorded: the file must come out byte-identical on every run.
    return rec, time.perf_counter() - t0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=DEFAULT_SHARED)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT / "gradcam_efficientnet_lite0.json")
    ap.add_argument("--classes", type=int, nargs="+", default=DEFAULT_CLASSES)
    ap.add_argument("--fast", action="store_true", help="skip scorecam and ablationcam")
    args = ap.parse_args(argv)

    import onnx
    import torch
    from importlib.metadata import version
    from onnx2torch import convert

    torch.manual_seed(0)
    torch.set_num_threads(2)
    shared = args.shared.resolve()
    x_np = eff_input(load_rgb_u8(shared / IMG_REL))
    x = torch.from_numpy(x_np)
    # Parameters keep requires_grad (the default): pytorch-grad-cam only hooks gradients on
    # layer outputs that require grad.
    model = convert(onnx.load(str(shared / EFF_REL))).eval()
    layer = getattr(model, TARGET_MODULE)

    methods = method_classes()
    names = [n for n in methods if not (args.fast and n in ("scorecam", "ablationcam"))]
    recs = {}
    for name in names:
        recs[name] = []
        for c in args.classes:
            rec, seconds = raw_cam(name, methods[name], model, layer, x, c)
            print(f"{name:12s} class {c}: max {rec['cam_max']:.5g} at {rec['cam_argmax']} ({seconds:.1f} s)")
            recs[name].append(rec)

    with torch.no_grad():
        logits = model(x)[0].numpy()
    top = np.argsort(-logits)[:5]
    v = versions()
    v["grad-cam"] = version("grad-cam")
    doc = {
        "schema": SCHEMA,
        "model": file_info(shared, EFF_REL),
        "image": file_info(shared, IMG_REL),
        "generator": {
            "script": "scripts/reference/gradcam_compare.py",
            "engine": "pytorch-grad-cam on the onnx2torch conversion of the ONNX graph",
            "versions": v,
        },
        "float_note": "values rounded to 7 significant digits",
        "input_name": "input",
        "input_layout": "NCHW",
        "input_shape": list(x_np.shape),
        "input_recipe": eff_recipe(),
        "input_stats": input_stats(x_np),
        "layer": EFF_HEAD_ACT,
        "layer_module": TARGET_MODULE,
        "layer_shape": [1, 1280, 7, 7],
        "score": "ClassifierOutputTarget(class) on the model output (pre-softmax logits)",
        "recipe": "cam = relu(method.get_cam_image(input, layer, targets, activations, grads)) "
                  "for batch item 0, before scale_cam_image; eigencam: relu of the "
                  "sign-corrected projection (see cam_pytorch_grad_cam for the package's own)",
        "classes": args.classes,
        "top5": [{"index": int(i), "logit": r7(logits[i])} for i in top],
        "methods": recs,
    }
    write_json(doc, args.out.resolve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
