"""Every input kind (path, PIL image, uint8 array, float32 array, prepared Input) gives the same
result, and the input keywords act as the CLI's options do."""

import numpy as np
import pytest
from PIL import Image

import convscope


def same_everywhere(model, inputs, **kw):
    """Prediction and Grad-CAM for each input; all must be equal, bit for bit."""
    results = []
    for name, x in inputs.items():
        p = model.predict(x, **kw).probabilities()
        cam = model.gradcam(x, target=0, **kw).numpy()
        results.append((name, p, cam))
    first = results[0]
    for name, p, cam in results[1:]:
        assert np.array_equal(p, first[1]), f"{name} predicts otherwise than {first[0]}"
        assert np.array_equal(cam, first[2]), f"{name} explains otherwise than {first[0]}"
    return first


def kinds(model, path):
    pil = Image.open(path)
    rgb = np.asarray(pil.convert("RGB"))
    prepared = model.prepare(path)
    x = prepared.numpy()
    return {
        "str path": str(path),
        "pathlib path": path,
        "PIL image": pil,
        "uint8 HxWx3": rgb,
        "uint8 non-contiguous view": np.ascontiguousarray(rgb.transpose(1, 0, 2)).transpose(1, 0, 2),
        "float32 preprocessed": x,
        "float32 without batch axis": x[0],
        "float32 non-contiguous view": np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
        if x.shape[1] == 3 else x,
        "convscope.Input": prepared,
    }


def test_every_kind_agrees_on_the_demo_model(demo, scene, tmp_path):
    path = tmp_path / "scene.png"
    Image.fromarray(scene).save(path)
    inputs = kinds(demo, path)
    assert not inputs["uint8 non-contiguous view"].flags.c_contiguous
    same_everywhere(demo, inputs)


def test_every_kind_agrees_on_efficientnet(effnet, chelsea):
    inputs = kinds(effnet, chelsea)
    assert not inputs["float32 non-contiguous view"].flags.c_contiguous
    same_everywhere(effnet, inputs)


def test_a_pil_image_of_another_mode_is_converted_as_pillow_does(demo, scene):
    rgba = Image.fromarray(scene).convert("RGBA")
    assert np.array_equal(demo.prepare(rgba).numpy(), demo.prepare(scene).numpy())


def test_per_call_keywords_equal_model_options(effnet_path, chelsea):
    plain = convscope.Model(effnet_path)
    preset = convscope.Model(effnet_path, preprocess="imagenet", crop=True, size=200)
    a = plain.predict(chelsea, preprocess="imagenet", crop=True, size=(200, 200)).probabilities()
    b = preset.predict(chelsea).probabilities()
    assert np.array_equal(a, b)
    assert plain.prepare(chelsea, size="200x160").shape == [1, 3, 160, 200]
    # The keywords change the input: without the ImageNet normalisation the input differs.
    assert not np.array_equal(plain.prepare(chelsea).numpy(), preset.prepare(chelsea, size=224).numpy())


def test_custom_mean_and_std_equal_the_named_preset(effnet_path, chelsea):
    m = convscope.Model(effnet_path)
    named = m.prepare(chelsea, preprocess="imagenet").numpy()
    custom = m.prepare(chelsea, preprocess=([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])).numpy()
    np.testing.assert_allclose(custom, named, rtol=0, atol=1e-6)


def test_the_model_sees_chelsea_as_the_readme_says(effnet, chelsea):
    top = effnet.predict(chelsea, top=5)
    assert [c for c, _, _ in top] == [285, 282, 281, 287, 728]
    assert top[0][1] == "Egyptian Mau" and abs(top[0][2] - 0.393) < 0.01
