"""Activations agree with onnxruntime, and Grad-CAM with the CLI's .npy files, exactly."""

import pathlib
import subprocess

import numpy as np
import pytest

from conftest import cli

import convscope


def ort_values(model_path, names, x):
    """The values ``names`` of the ONNX model for input ``x``, computed by onnxruntime with
    every graph optimisation off (so no value is fused away)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(model_path))
    outputs = {o.name for o in proto.graph.output}
    for n in names:
        if n not in outputs:
            proto.graph.output.append(onnx.ValueInfoProto(name=n))
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(
        proto.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    feed = {sess.get_inputs()[0].name: x}
    return dict(zip(names, sess.run(list(names), feed)))


@pytest.mark.parametrize("which", ["effnet", "vgg"])
def test_every_layer_matches_onnxruntime(which, request, chelsea):
    model = request.getfixturevalue(which)
    path = request.getfixturevalue(f"{which}_path")
    x = model.prepare(chelsea).numpy()
    acts = model.activations(x, layers="all")
    value_of = {l["name"]: l["value"] for l in model.summary()}
    assert list(acts.keys()) == model.layers, "every layer, in execution order"
    ref = ort_values(path, [value_of[n] for n in acts], x)
    worst = 0.0
    for name, a in acts.items():
        r = ref[value_of[name]]
        assert a.dtype == np.float32 and a.flags.c_contiguous, name
        assert a.shape == r.shape, f"{name}: {a.shape} vs onnxruntime {r.shape}"
        scale = float(np.abs(r).max())
        err = float(np.abs(a - r).max())
        assert err <= 1e-4 * max(scale, 1e-12), f"{name}: max error {err} of max {scale}"
        worst = max(worst, err / max(scale, 1e-12))
    print(f"{which}: {len(acts)} layers, worst error {worst:.2e} of the tensor's max")


def cli_cam(model_path, image, out, *args):
    subprocess.run(
        [cli(), "cam", str(model_path), str(image), "--npy", "--out", str(out), *args],
        check=True,
        capture_output=True,
    )
    raw = sorted(pathlib.Path(out).glob("*_raw.npy"))
    norm = sorted(pathlib.Path(out).glob("*_normalized.npy"))
    assert len(raw) == 1 and len(norm) == 1, list(pathlib.Path(out).iterdir())
    return np.load(raw[0]), np.load(norm[0])


@pytest.mark.parametrize(
    "which,cli_args,target,method",
    [
        ("effnet", ["--preprocess", "imagenet", "--crop", "--class", "285"], 285, "gradcam"),
        ("effnet", ["--preprocess", "imagenet", "--crop", "--class", "281", "--method", "gradcam++"], 281, "gradcam++"),
        ("vgg", ["--resize", "bicubic", "--class", "2"], 2, "gradcam"),
    ],
)
def test_gradcam_equals_the_cli_npy_exactly(which, cli_args, target, method, request, chelsea, tmp_path):
    model = request.getfixturevalue(which)
    raw, norm = cli_cam(request.getfixturevalue(f"{which}_path"), chelsea, tmp_path / "out", *cli_args)
    cam = model.gradcam(chelsea, target=target, method=method)
    assert cam.numpy().dtype == np.float32 and raw.dtype == np.float32
    assert cam.numpy().shape == raw.shape
    assert np.array_equal(cam.numpy(), raw), "raw map differs from the CLI's"
    assert np.array_equal(cam.normalized(), norm), "normalized map differs from the CLI's"
    assert cam.class_index == target and cam.method == method


def test_cli_and_binding_name_the_same_problem(effnet_path, chelsea, effnet, tmp_path):
    """The exception's message is the CLI's one line (the CLI prefixes `error: `)."""
    done = subprocess.run(
        [cli(), "activations", str(effnet_path), str(chelsea), "--layers", "_conv_stemm",
         "--out", str(tmp_path / "a")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    with pytest.raises(convscope.InvalidInput) as e:
        effnet.activations(chelsea, layers="_conv_stemm")
    message = str(e.value)
    assert "\n" not in message and "_conv_stem" in message
    assert message in done.stderr, f"{message!r} not in CLI stderr {done.stderr!r}"
