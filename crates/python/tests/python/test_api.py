"""Shapes, dtypes and layouts of every result; display in Jupyter; atomic saves; the GIL is
released during work; the type stub covers the module."""

import ast
import collections.abc
import io
import pathlib
import threading
import time

import numpy as np
import pytest
from PIL import Image

import convscope

STUB = pathlib.Path(__file__).resolve().parents[2] / "convscope.pyi"
PNG = b"\x89PNG\r\n\x1a\n"


def test_model_describes_itself(effnet, vgg):
    assert effnet.input_spec["layout"] == "NCHW" and effnet.input_spec["height"] == 224
    assert vgg.input_spec["layout"] == "NHWC" and vgg.input_spec["channels"] == 3
    rows = effnet.summary()
    assert [r["name"] for r in rows] == effnet.layers
    assert rows[0]["shape"] == [1, 32, 112, 112] and rows[0]["params"] > 0
    table = str(effnet)
    assert "Total params" in table or "total" in table.lower()
    assert "efficientnet_lite0" in repr(effnet)


def test_inputs_are_in_the_models_layout(effnet, vgg, chelsea):
    x = effnet.prepare(chelsea)
    assert x.shape == [1, 3, 224, 224] and x.numpy().dtype == np.float32
    assert x.image.size == (224, 224)
    v = vgg.prepare(chelsea).numpy()
    assert v.shape == (1, 240, 240, 3) and v.dtype == np.float32
    # /255 (bicubic resampling may overshoot 0..1 a little, as Pillow's float resize does).
    assert -0.05 <= v.min() and v.max() <= 1.05 and v.max() > 0.5, "vgg's input is /255"


def test_activation_arrays_keep_the_onnx_layout(vgg, effnet, chelsea):
    acts = vgg.activations(chelsea, layers=["block1_conv1", "block5_conv3", 0])
    assert isinstance(acts, collections.abc.Mapping)
    assert list(acts) == ["block1_conv1", "block5_conv3"], "duplicates are dropped"
    a = acts["block1_conv1"]
    assert a.shape == (1, 64, 240, 240), "NCHW as in the graph, though the input is NHWC"
    assert a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable
    assert list(acts.numpy().keys()) == acts.keys() and "block1_conv1" in acts
    assert acts.stats["block1_conv1"]["channels"] == 64
    grid = acts.grid("block5_conv3")
    assert grid.numpy().shape[2] == 3 and grid.numpy().dtype == np.uint8
    assert acts.channel(0, 5).size[0] >= 480 - 1
    assert "<img" in acts._repr_html_() and "block1_conv1" in repr(acts)
    default = effnet.activations(chelsea)
    assert all(v.ndim == 4 for v in default.values()), "the default: spatial maps"


def test_cam_and_saliency_shapes(effnet, chelsea):
    cam = effnet.gradcam(chelsea, target=285)
    assert cam.numpy().shape == (7, 7) and cam.numpy().dtype == np.float32
    n = cam.normalized()
    assert n.shape == (224, 224) and n.min() >= 0 and abs(n.max() - 1) < 1e-6
    assert cam.normalized(size=(64, 32)).shape == (32, 64)
    assert cam.label == "Egyptian Mau" and cam.probability > 0.3 and cam.layer
    assert cam.overlay().size == (224, 224) and cam.heatmap("viridis").size == (224, 224)
    both = effnet.gradcam(chelsea, target=[281, 285])
    assert both.class_index is None and both.target
    by_name = effnet.gradcam(chelsea, target="tabby cat")
    assert by_name.class_index == 281
    s = effnet.saliency(chelsea, target=285)
    assert s.numpy().shape == (1, 3, 224, 224) and s.magnitudes().shape == (224, 224)
    ig = effnet.saliency(chelsea, method="integrated-gradients", steps=8, target=285)
    total, diff = ig.completeness
    assert np.isfinite(total) and np.isfinite(diff)


def test_every_cam_method_runs(demo, scene):
    for method in convscope.CAM_METHODS:
        cam = demo.gradcam(scene, target=1, method=method)
        assert cam.method == method and cam.numpy().ndim == 2


def test_filters_are_uint8_images(demo):
    g = demo.filters("conv1", filters=range(4), steps=3, size=32)
    a = g.numpy()
    assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8
    assert g.filters == [0, 1, 2, 3] and len(g.curves) == 4 and len(g.curves[0]) == 4
    assert g.picture().size == (2 * 32 + 5, 2 * 32 + 5)
    assert demo.filters("conv1", filters=2, steps=1, size=16).filters == [0, 1]
    assert demo.filters("conv1", filters="1,3", steps=1, size=16).filters == [1, 3]


def test_pictures_display_and_save_atomically(demo, scene, tmp_path):
    cam = demo.gradcam(scene)
    for shown in [cam, cam.overlay(), demo.saliency(scene), demo.filters("conv1", filters=2, steps=1, size=16)]:
        png = shown._repr_png_()
        assert png.startswith(PNG)
    overlay = cam.overlay()
    path = tmp_path / "o.png"
    overlay.save(path)
    assert np.array_equal(np.asarray(Image.open(path)), overlay.numpy())
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(overlay.png()))), overlay.numpy())
    cam.save(tmp_path / "cam.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cam.png", "o.png"], "no temporary files"
    demo.activations(scene, layers="conv1").save(tmp_path / "acts", npy=True)
    files = sorted(p.name for p in (tmp_path / "acts").iterdir())
    assert "index.json" in files and any(f.endswith(".npy") for f in files)
    p = demo.predict(scene)
    assert "<table>" in p._repr_html_() and p.top[0][1] in repr(p)
    assert abs(float(p.probabilities().sum()) - 1.0) < 1e-5


def test_heavy_work_releases_the_gil(effnet, chelsea):
    """A Python thread keeps running while the model works: with the GIL held it would stall
    for the whole call."""
    x = effnet.prepare(chelsea)
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(time.perf_counter())
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    try:
        time.sleep(0.02)
        start = time.perf_counter()
        effnet.saliency(x, method="smoothgrad", samples=8, target=285)
        end = time.perf_counter()
    finally:
        stop.set()
        t.join()
    during = [s for s in ticks if start < s < end]
    gaps = np.diff([start, *during, end])
    assert len(during) >= 5, f"the counting thread ran {len(during)} times in {end - start:.3f} s"
    assert gaps.max() < 0.5 * (end - start), f"longest stall {gaps.max():.3f} s of {end - start:.3f} s"


def test_threads_share_one_model(demo, scene):
    out = [None] * 4

    def work(i):
        out[i] = demo.gradcam(scene, target=i % 4).numpy()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(4):
        assert np.array_equal(out[i], demo.gradcam(scene, target=i).numpy())


def stub_classes():
    tree = ast.parse(STUB.read_text())
    classes = {}
    functions = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            methods = {}
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    methods[item.name] = ast.get_docstring(item)
            classes[node.name] = (ast.get_docstring(node), methods)
        elif isinstance(node, ast.FunctionDef):
            functions.add(node.name)
    return classes, functions


def test_the_stub_covers_every_public_name_with_a_docstring():
    classes, _ = stub_classes()
    public = [n for n in dir(convscope) if not n.startswith("_")]
    for name in public:
        obj = getattr(convscope, name)
        if not isinstance(obj, type):
            continue
        assert name in classes, f"convscope.{name} is missing from convscope.pyi"
        doc, methods = classes[name]
        assert doc, f"{name} has no docstring in the stub"
        assert obj.__doc__, f"{name} has no runtime docstring"
        if issubclass(obj, BaseException):
            continue
        for attr in vars(obj):
            if attr.startswith("_"):  # dunders, _repr_*_, hooks for the benchmark
                continue
            assert attr in methods, f"{name}.{attr} is missing from the stub"
            assert methods[attr], f"{name}.{attr} has no docstring in the stub"
            assert getattr(obj, attr).__doc__, f"{name}.{attr} has no runtime docstring"
    for name in classes:
        assert hasattr(convscope, name), f"the stub names convscope.{name}, which does not exist"


def test_the_notebook_example_runs(effnet_path, chelsea, tmp_path, monkeypatch, capsys):
    import runpy
    import sys

    from conftest import ROOT, shared

    labels = shared("models/imagenet_classes.txt")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["notebook.py", str(effnet_path), str(chelsea), str(labels)])
    runpy.run_path(str(ROOT / "examples/notebook.py"), run_name="__main__")
    written = sorted(p.name for p in (tmp_path / "convscope-out/notebook").iterdir())
    assert written == ["filters.png", "gradcam.png", "stem.png"]
    printed = capsys.readouterr().out
    assert "Egyptian Mau" in printed and "(1, 32, 112, 112)" in printed


def test_keras_files_load_with_their_own_preprocessing():
    """A Keras model that rescales its input itself is fed raw pixels unless preprocess= says
    otherwise; a Keras 2 .h5 without Rescaling keeps /255."""
    from conftest import ROOT

    data = ROOT / "crates/keras/tests/data"
    zoo = convscope.Model(data / "zoo.keras")
    assert zoo.input_spec["preprocess"] == "raw" and zoo.input_spec["layout"] == "NHWC"
    told = convscope.Model(data / "zoo.keras", preprocess="unit")
    assert told.input_spec["preprocess"] == "unit"
    pic = np.full((24, 24, 3), 200, np.uint8)
    raw = zoo.activations(pic, layers="dilated")["dilated"]
    unit = told.activations(pic, layers="dilated")["dilated"]
    assert raw.shape == unit.shape and not np.allclose(raw, unit)
    assert convscope.Model(data / "catsdogs_k2.h5").input_spec["preprocess"] == "unit"
