"""Feature visualization (`Model.visualize`, `Model.filters` with the lucid and maco recipes) and
dataset examples (`Model.examples`): the same numbers as the CLI, the results' views, bad calls,
and Ctrl-C."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import numpy as np
import pytest
from PIL import Image

import convscope
from conftest import cli, shared

PNG = b"\x89PNG\r\n\x1a\n"


def one_line(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


def pixels(path):
    return np.asarray(Image.open(path).convert("RGB"))


def test_visualize_equals_the_cli(vgg, vgg_path, tmp_path):
    """The same objectives, recipe, steps and seed give the CLI's pictures, pixel for pixel."""
    vis = vgg.visualize("block1_conv1:0..2", steps=6, size=64, seed=3)
    assert len(vis) == 2 and vis.objectives == ["block1_conv1:0", "block1_conv1:1"]
    a = vis.numpy()
    assert a.shape == (2, 64, 64, 3) and a.dtype == np.uint8
    assert vis.recipe == "lucid" and vis.steps == 6 and vis.seed == 3
    assert [len(c) for c in vis.curves] == [6, 6]
    assert all(np.isfinite(v) for v in vis.values)
    out = tmp_path / "cli"
    subprocess.run(
        [cli(), "visualize", str(vgg_path), "--objective", "block1_conv1:0..2", "--steps", "6",
         "--size", "64", "--seed", "3", "--out", str(out)],
        check=True, capture_output=True,
    )
    index = json.loads((out / "index.json").read_text())
    assert [p["objective"] for p in index["pictures"]] == vis.objectives
    for i, entry in enumerate(index["pictures"]):
        assert np.array_equal(pixels(out / entry["file"]), a[i]), entry["file"]
        assert entry["value"] == pytest.approx(vis.values[i], rel=1e-6)
    # The same document, and the same files, from the Python side.
    mine = vis.index()
    assert [p["file"] for p in mine["pictures"]] == [p["file"] for p in index["pictures"]]
    vis.save(tmp_path / "py")
    assert sorted(os.listdir(tmp_path / "py")) == sorted(os.listdir(out))
    vis.save(tmp_path / "grid.png")
    assert np.array_equal(pixels(tmp_path / "grid.png"), vis.picture().numpy())
    assert vis._repr_png_().startswith(PNG)
    assert np.array_equal(vis[-1].numpy(), a[1])


def test_the_same_seed_gives_the_same_pictures(demo):
    first = demo.visualize("conv2:1", recipe="maco", steps=3, size=48, seed=7)
    again = demo.visualize("conv2:1", recipe="maco", steps=3, size=48, seed=7)
    other = demo.visualize("conv2:1", recipe="maco", steps=3, size=48, seed=8)
    assert np.array_equal(first.numpy(), again.numpy())
    assert not np.array_equal(first.numpy(), other.numpy())
    assert first.recipe == "maco"


def test_objective_lists_and_batches(demo):
    vis = demo.visualize(["conv1:2", "conv2:0 - 0.5*conv2:1"], steps=2, size=32, batch=2, diversity=0.1)
    assert vis.objectives == ["conv1:2", "conv1:2", "conv2:0 - 0.5*conv2:1", "conv2:0 - 0.5*conv2:1"]
    assert [p["copy"] for p in vis.pictures()] == [0, 1, 0, 1]


def test_filters_with_a_recipe_are_a_visualization(demo):
    every = demo.filters("conv1", recipe="lucid", steps=2, size=32)
    assert isinstance(every, convscope.Visualization)
    assert len(every) == 16, "without filters= a recipe takes all 16 filters of conv1"
    some = demo.filters("conv1", filters=[1, 3], recipe="maco", steps=2, size=32)
    assert some.objectives == ["conv1:1", "conv1:3"] and some.numpy().shape[0] == 2
    assert isinstance(demo.filters("conv1", filters=2, steps=1, size=16), convscope.FilterGrid)


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda m: m.visualize("conv9:0", steps=1), "conv9"),
        (lambda m: m.visualize(3), "objective"),
        (lambda m: m.visualize([]), "objective"),
        (lambda m: m.visualize("conv1:0", recipe="magic"), "walkthrough"),
        (lambda m: m.visualize("conv1:0", batch=0), "batch"),
        (lambda m: m.visualize("conv1:0", diversity=1.0), "batch 2"),
        (lambda m: m.visualize("conv1:0", steps=0), "steps"),
        (lambda m: m.visualize("conv1:0", lr=-1.0), "lr"),
        (lambda m: m.visualize("conv1:99"), "out of range"),
        (lambda m: m.visualize("conv1:0", chunk=0), "chunk"),
        (lambda m: m.filters("conv1", recipe="lucid", tv=0.1), "tv"),
        (lambda m: m.filters("conv1", recipe="lucid", optimizer="adam"), "optimizer"),
        (lambda m: m.filters("conv1", recipe="lucid", filters=[99]), "out of range"),
    ],
)
def test_bad_visualize_calls_are_value_errors(demo, scene, call, words):
    with pytest.raises(ValueError) as e:
        call(demo)
    assert words in one_line(e)
    assert demo.visualize("conv1:0", steps=1, size=16).numpy().shape == (1, 16, 16, 3)


def test_visualize_stops_on_ctrl_c(demo):
    """Ctrl-C (SIGINT) during a long call raises KeyboardInterrupt from inside it: the work runs
    without the GIL, so without the check it would only arrive after the whole call."""
    start = time.perf_counter()
    demo.visualize("conv2:0", steps=20, size=64)
    per_step = (time.perf_counter() - start) / 20
    steps = 2000  # about 100x the short run
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        demo.visualize("conv2:0", steps=steps, size=64)
    took = time.perf_counter() - start
    timer.join()
    assert took < 0.3 * steps * per_step, f"stopped after {took:.2f} s; the whole call takes ~{steps * per_step:.1f} s"
    assert len(demo.visualize("conv2:0", steps=1, size=16)) == 1, "the model is usable after"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Eight pictures in two folders (variants of the two shared photos) and one broken file."""
    root = tmp_path_factory.mktemp("photos")
    (root / "more").mkdir()
    for name in ["chelsea.png", "coffee.png"]:
        img = Image.open(shared(f"images/{name}")).convert("RGB")
        stem = name[:-4]
        img.save(root / f"{stem}.png")
        img.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / f"{stem}_flip.jpg", quality=92)
        w, h = img.size
        img.crop((w // 4, h // 4, w * 3 // 4, h * 3 // 4)).save(root / "more" / f"{stem}_centre.png")
        img.rotate(90, expand=True).save(root / "more" / f"{stem}_turned.png")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return root


def test_examples_equal_the_cli(vgg, vgg_path, folder, tmp_path):
    ex = vgg.examples(folder, "block3_conv1", top=3)
    assert ex.layers == ["block3_conv1"] and ex.images_used == 8
    assert [s[0] for s in ex.skipped] == ["broken.png"] and ex.skipped[0][1]
    out = tmp_path / "cli"
    subprocess.run(
        [cli(), "examples", str(vgg_path), "--images", str(folder), "--layers", "block3_conv1",
         "--top", "3", "--crops", "--resize", "bicubic", "--out", str(out)],
        check=True, capture_output=True,
    )
    theirs = json.loads((out / "index.json").read_text())
    mine = ex.index()
    assert mine["layers"] == theirs["layers"], "the same rankings, scores and boxes as the CLI"
    assert mine["skipped"] == theirs["skipped"]
    unit = mine["layers"][0]["units"][5]
    assert ex.top("block3_conv1", 5) == unit["top"] and ex.bottom("block3_conv1", 5) == unit["bottom"]
    scores = [e["score"] for e in unit["top"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    # Crops: the receptive field of each entry, the CLI's files pixel for pixel.
    crops = ex.crops("block3_conv1", 5)
    for rank, (entry, crop) in enumerate(zip(unit["top"], crops)):
        box = entry["box"]
        assert crop.size[0] <= box["width"] and crop.size[1] <= box["height"]
        name = f"crop_block3_conv1_0005_top{rank}.png"
        assert np.array_equal(crop.numpy(), pixels(out / name)), name
    ex.save(tmp_path / "py", crops=True)
    assert sorted(os.listdir(tmp_path / "py")) == sorted(os.listdir(out))
    html = ex._repr_html_()
    assert "block3_conv1" in html and html.count("<img") == 8 * 3
    assert ex.shapes() == {"block3_conv1": theirs["layers"][0]["shape"]}


def test_examples_score_mean_differs_and_batches_agree(demo, folder):
    by_max = demo.examples(folder, "conv2", top=2)
    by_mean = demo.examples(folder, "conv2", top=2, score="mean")
    assert by_max.index()["score"] == "max" and by_mean.index()["score"] == "mean"
    assert by_max.index()["layers"] != by_mean.index()["layers"]
    one_at_a_time = demo.examples(folder, ["conv2"], top=2, batch=1)
    for a, b in zip(by_max.index()["layers"][0]["units"], one_at_a_time.index()["layers"][0]["units"]):
        assert [e["image"] for e in a["top"]] == [e["image"] for e in b["top"]]
        assert [e["score"] for e in a["top"]] == pytest.approx([e["score"] for e in b["top"]], rel=1e-5)


def test_bad_examples_calls(demo, folder, tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        demo.examples(tmp_path / "nowhere", "conv1")
    assert "nowhere" in one_line(e)
    for call, words in [
        (lambda: demo.examples(folder, "conv9"), "conv9"),
        (lambda: demo.examples(folder, "conv1", top=0), "top"),
        (lambda: demo.examples(folder, "conv1", score="median"), "median"),
        (lambda: demo.examples(folder, "conv1", batch=0), "batch"),
        (lambda: demo.examples(folder / "chelsea.png", "conv1"), "not a folder"),
    ]:
        with pytest.raises(ValueError) as e:
            call()
        assert words in one_line(e)
    ex = demo.examples(folder, "conv1", top=1)
    for call, words in [
        (lambda: ex.top("conv2", 0), "conv1"),
        (lambda: ex.top("conv1", 10_000), "out of range"),
        (lambda: ex.crops("conv1", 0, end="middle"), "bottom"),
    ]:
        with pytest.raises(ValueError) as e:
            call()
        assert words in one_line(e)
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    shutil.copy(folder / "chelsea.png", lonely / "a.png")
    ex = demo.examples(lonely, "conv1", top=1)
    (lonely / "a.png").unlink()
    with pytest.raises(FileNotFoundError):
        ex.crops("conv1", 0)
