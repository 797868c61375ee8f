"""Shared fixtures of the convscope Python tests.

The real models and images live in ``shared/`` beside the repository (``CONVSCOPE_SHARED``
overrides it). A missing file skips the test with a message, or fails it when ``CI=true``,
as the Rust tests do.
"""

import os
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[4]
SHARED = pathlib.Path(os.environ.get("CONVSCOPE_SHARED", ROOT.parent / "shared"))


def shared(rel):
    """The path of ``rel`` under shared/, skipping (or failing under CI=true) when absent."""
    p = SHARED / rel
    if p.exists():
        return p
    if os.environ.get("CI") == "true":
        pytest.fail(f"required test input {p} is missing (CI=true)")
    pytest.skip(f"{p} not found")


def cli():
    """The convscope binary the Rust driver built (CONVSCOPE_CLI), skipping when unknown."""
    p = os.environ.get("CONVSCOPE_CLI")
    if p and pathlib.Path(p).exists():
        return p
    if os.environ.get("CI") == "true":
        pytest.fail("CONVSCOPE_CLI does not name the convscope binary (CI=true)")
    pytest.skip("CONVSCOPE_CLI not set: run through `cargo test -p convscope-python`")


@pytest.fixture(scope="session")
def chelsea():
    return shared("images/chelsea.png")


@pytest.fixture(scope="session")
def effnet_path():
    return shared("models/efficientnet_lite0.onnx")


@pytest.fixture(scope="session")
def vgg_path():
    return shared("models/vgg16_tumor.onnx")


@pytest.fixture(scope="session")
def effnet(effnet_path):
    import convscope

    labels = shared("models/imagenet_classes.txt")
    return convscope.Model(effnet_path, preprocess="imagenet", crop=True, labels=labels)


@pytest.fixture(scope="session")
def vgg(vgg_path):
    import convscope

    return convscope.Model(vgg_path, resize="bicubic")


@pytest.fixture(scope="session")
def demo():
    import convscope

    return convscope.Model.demo()


@pytest.fixture(scope="session")
def scene():
    import convscope

    s = convscope.Model.demo_scene()
    assert s.dtype == np.uint8 and s.shape == (160, 160, 3)
    return s
