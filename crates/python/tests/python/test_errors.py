"""Every bad input raises the right exception with a one-line message, and the interpreter
goes on (each test calls the model again after the failure)."""

import numpy as np
import pytest

import convscope


def one_line(exc_info):
    msg = str(exc_info.value)
    assert msg and "\n" not in msg, repr(msg)
    assert isinstance(exc_info.value, convscope.Error)
    return msg


def still_works(model, scene):
    assert len(model.predict(scene, top=2)) == 2


def test_missing_files_are_file_not_found(demo, scene, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        convscope.Model(tmp_path / "nope.onnx")
    assert "nope.onnx" in one_line(e) and isinstance(e.value, convscope.MissingFile)
    with pytest.raises(FileNotFoundError) as e:
        demo.predict(tmp_path / "nope.png")
    assert "nope.png" in one_line(e)
    with pytest.raises(FileNotFoundError) as e:
        demo.predict(scene, labels=str(tmp_path / "labels.txt"))
    assert "labels.txt" in one_line(e)
    still_works(demo, scene)


def test_bad_files_are_value_errors(demo, scene, tmp_path):
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07" + bytes(range(256)) * 4)
    with pytest.raises(ValueError) as e:
        convscope.Model(garbage)
    one_line(e)
    fake = tmp_path / "fake.png"
    fake.write_text("not a picture")
    with pytest.raises(ValueError) as e:
        demo.predict(fake)
    assert "fake.png" in one_line(e)
    bad_npy = tmp_path / "x.npy"
    bad_npy.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError) as e:
        demo.predict(bad_npy)
    one_line(e)
    still_works(demo, scene)


@pytest.mark.parametrize(
    "make,words",
    [
        (lambda s: s[:, :, 0], "HxWx3"),
        (lambda s: np.zeros((4, 4, 4), np.uint8), "HxWx3"),
        (lambda s: s.astype(np.float64), "float32"),
        (lambda s: s.astype(np.int32), "float32"),
        (lambda s: np.zeros((2, 3, 160, 160), np.float32), "batch of 2"),
        (lambda s: np.zeros((5,), np.float32), "axes"),
        (lambda s: np.zeros((1, 4, 160, 160), np.float32), ""),
        (lambda s: np.full((3, 160, 160), np.nan, np.float32), "NaN"),
        (lambda s: np.zeros((0, 0, 3), np.uint8), "empty"),
        (lambda s: 42, "int"),
        (lambda s: None, "NoneType"),
        (lambda s: [[1, 2, 3]], "list"),
    ],
)
def test_bad_arrays_and_objects_are_value_errors(demo, scene, make, words):
    with pytest.raises(ValueError) as e:
        demo.predict(make(scene))
    assert words in one_line(e)
    still_works(demo, scene)


@pytest.mark.parametrize(
    "call,words",
    [
        (lambda m, s: m.activations(s, layers="conv9"), "conv1"),
        (lambda m, s: m.activations(s, layers=[]), "empty"),
        (lambda m, s: m.activations(s, layers=99), "out of range"),
        (lambda m, s: m.gradcam(s, target=99), "99"),
        (lambda m, s: m.gradcam(s, target=-1), ">= 0"),
        (lambda m, s: m.gradcam(s, target="unicorn"), "unicorn"),
        (lambda m, s: m.gradcam(s, method="bestcam"), "gradcam"),
        (lambda m, s: m.gradcam(s, layer="nope"), "nope"),
        (lambda m, s: m.saliency(s, method="x"), "smoothgrad"),
        (lambda m, s: m.saliency(s, method="smoothgrad", samples=0), "samples"),
        (lambda m, s: m.filters("nope"), "nope"),
        (lambda m, s: m.filters("conv1", filters=[999]), "out of range"),
        (lambda m, s: m.filters("conv1", steps=0), "steps"),
        (lambda m, s: m.filters("conv1", step=float("nan")), "step"),
        (lambda m, s: m.filters("conv1", recipe="magic"), "walkthrough"),
        (lambda m, s: m.predict(s, size=(100000, 10)), "limit"),
        (lambda m, s: m.predict(s, size=0), "empty"),
        (lambda m, s: m.predict(s, preprocess="bogus"), "bogus"),
        (lambda m, s: m.predict(s, preprocess=([0, 0, 0], [0, 1, 1])), "std"),
        (lambda m, s: m.predict(s, resize="lanczos9"), "lanczos9"),
        (lambda m, s: m.prepare(m.prepare(s), size=64), "already prepared"),
        (lambda m, s: m.predict(m.prepare(s).numpy(), crop=True), "float32"),
        (lambda m, s: m.activations(s, layers="conv1").grid("nope"), "nope"),
        (lambda m, s: m.activations(s, layers="conv1").channel("conv1", 10_000), "out of range"),
        (lambda m, s: m.gradcam(s).overlay(alpha=-1), "alpha"),
        (lambda m, s: m.gradcam(s).heatmap(colormap="rainbow9"), "rainbow9"),
    ],
)
def test_bad_options_are_value_errors(demo, scene, call, words):
    with pytest.raises(ValueError) as e:
        call(demo, scene)
    assert words in one_line(e)
    still_works(demo, scene)


def test_bad_model_options(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"")
    for kw, words in [
        (dict(size=0), "empty"),
        (dict(preprocess="bogus"), "bogus"),
        (dict(memory_limit="lots"), "lots"),
        (dict(resize="x"), "x"),
        (dict(labels=3), "labels"),
    ]:
        with pytest.raises(ValueError) as e:
            convscope.Model(path, **kw)
        assert words in one_line(e), kw


def test_a_job_beyond_the_memory_limit_is_refused(effnet_path, chelsea):
    m = convscope.Model(effnet_path, preprocess="imagenet", crop=True, memory_limit="64M")
    with pytest.raises(ValueError) as e:
        m.activations(chelsea, layers="all")
    assert "memory limit" in one_line(e)


def test_an_unwritable_place_is_an_os_error_and_leaves_nothing(demo, scene, tmp_path):
    picture = demo.gradcam(scene).overlay()
    with pytest.raises(OSError) as e:
        picture.save(tmp_path / "no" / "such" / "dir" / "x.png")
    one_line(e)
    assert not (tmp_path / "no").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError) as e:
        demo.activations(scene, layers="conv1").save(blocker / "out")
    one_line(e)
    assert blocker.read_text() == "x"
