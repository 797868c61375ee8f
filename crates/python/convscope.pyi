"""See what a trained convolutional network has learned, from its ONNX file.

Intermediate activations, the input pattern each filter responds to, where the evidence for a
class is (Grad-CAM and its family, saliency): numpy arrays in and out, pictures that show
themselves in Jupyter. The numbers come from convscope's Rust library; every heavy call
releases the GIL.

    >>> import convscope
    >>> m = convscope.Model("efficientnet_lite0.onnx", preprocess="imagenet", crop=True)
    >>> m.predict("cat.png").top[0]
    (285, 'class 285', 0.39...)
    >>> m.gradcam("cat.png", target=285)          # shows the overlay in a notebook
"""

import os
from collections.abc import Iterator, Sequence
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

__version__: str
CAM_METHODS: list[str]
"""The class activation map methods `Model.gradcam` takes as `method=`."""
SALIENCY_METHODS: list[str]
"""The saliency methods `Model.saliency` takes as `method=`."""

PathLike = Union[str, os.PathLike[str]]
ImageLike = Union[PathLike, "Input", npt.NDArray[np.uint8], npt.NDArray[np.float32], Any]
"""A path (image or .npy), a PIL image, an HxWx3 uint8 array, a float32 array already
preprocessed in the model's layout (with or without the batch axis), or a prepared Input."""
Preprocess = Union[str, tuple[Sequence[float], Sequence[float]]]
"""'unit' (/255), 'imagenet', 'caffe', 'tf' ([-1, 1]), 'raw' (0..255), or (mean, std) on 0..1."""
SizeLike = Union[int, tuple[int, int], str]
"""N (square), (width, height) or 'WxH'."""
Target = Union[int, str, Sequence[Union[int, str]], None]
"""A class index, a class name (with labels), a list of them (their summed score), or None
for the most probable class."""

class Error(Exception):
    """Base of every exception convscope raises; the message is one line naming the problem."""

class InvalidInput(Error, ValueError):
    """A bad input, option or model (also a ValueError)."""

class FileError(Error, OSError):
    """A file that cannot be read or written (also an OSError)."""

class MissingFile(FileError, FileNotFoundError):
    """A file or folder that does not exist (also a FileNotFoundError)."""

class Model:
    """A convolutional network loaded from its ONNX file.

    The input options (preprocess, size, crop, resize) say how images become the model's
    input, as the CLI's options do; every method also takes them per call.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: bool = False,
        resize: str = "bilinear",
        labels: Union[Sequence[str], PathLike, None] = None,
        memory_limit: Optional[str] = None,
        allow_nonfinite: bool = False,
    ) -> None:
        """Loads an ONNX file or a Keras `.keras` / `.h5` file (recognised by content).

        preprocess: 'unit' (/255, the default), 'imagenet', 'caffe', 'tf', 'raw' (the default
            for a Keras model that rescales its input itself), or a (mean, std) pair of three
            numbers each on the 0..1 scale.
        size: N, (width, height) or 'WxH'; default: the size the model declares.
        crop: resize the shorter side and crop the centre instead of stretching.
        resize: 'bilinear' (default), 'bicubic' (Pillow's default) or 'nearest'.
        labels: class names, as a list or the path of a file with one per line.
        memory_limit: refuse jobs estimated above this: '4G', '512M', '50%', 'none';
            default 80% of the memory available.
        allow_nonfinite: let NaN and infinity through instead of raising.

        Raises MissingFile (FileNotFoundError) for a missing file, InvalidInput (ValueError)
        for a file that is not a model convscope can run.
        """
    @staticmethod
    def demo() -> "Model":
        """The embedded demo model: a small CNN trained on generated pictures of circles,
        squares, triangles and stripes (no file needed)."""
    @staticmethod
    def demo_scene() -> npt.NDArray[np.uint8]:
        """The embedded demo scene (160x160, one shape of each demo class) as a uint8 HxWx3
        array."""
    @property
    def layers(self) -> list[str]:
        """The layer names, in execution order (what `layers=` and `layer=` take, with
        indices, ranges like '0..8', globs like 'block3_*' and raw ONNX value names)."""
    @property
    def input_spec(self) -> dict[str, Any]:
        """The model input: name, layout ('NCHW' or 'NHWC'), channels, the declared height and
        width (None when not fixed), and the input options in force."""
    def summary(self) -> list[dict[str, Any]]:
        """Every layer as a dict: index, name, ops (e.g. 'Conv+Relu'), value (the ONNX value
        name), shape (batch 1, the model's layout) and params. `print(model)` prints the
        table."""
    def prepare(
        self,
        image: ImageLike,
        *,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: Optional[bool] = None,
        resize: Optional[str] = None,
    ) -> "Input":
        """Prepares an image for the model once (resized, cropped, normalised), to pass to
        several calls; `.numpy()` is the model's input tensor."""
    def predict(
        self,
        image: ImageLike,
        top: int = 5,
        labels: Union[Sequence[str], PathLike, None] = None,
        *,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: Optional[bool] = None,
        resize: Optional[str] = None,
    ) -> "Predictions":
        """The model's prediction: the `top` most probable classes as (class, label,
        probability), and every class's probability. `labels` names the classes for this
        call."""
    def activations(
        self,
        image: ImageLike,
        layers: Union[str, int, Sequence[Union[str, int]], None] = None,
        *,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: Optional[bool] = None,
        resize: Optional[str] = None,
    ) -> "Activations":
        """The activations of `layers` (names, indices, ranges like '0..8', globs, 'all', or
        a list of them; default: every layer with a spatial feature map) for one image: a
        mapping from layer name to a float32 array in the model's own layout (as onnxruntime
        returns the value), batch axis included."""
    def gradcam(
        self,
        image: ImageLike,
        target: Target = None,
        layer: Optional[str] = None,
        method: str = "gradcam",
        *,
        batch_size: Optional[int] = None,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: Optional[bool] = None,
        resize: Optional[str] = None,
    ) -> "CamMap":
        """A class activation map. `target`: a class index, a class name (with labels), a
        list of them (their summed score), or None for the most probable class. `layer`: None
        picks the last spatial feature map before the classifier. `method`: one of
        CAM_METHODS ('gradcam', 'gradcam++', 'xgradcam', 'layercam', 'hirescam', 'eigencam',
        'scorecam', 'ablationcam'); `batch_size` batches Score-CAM's and Ablation-CAM's
        passes."""
    def saliency(
        self,
        image: ImageLike,
        method: str = "gradient",
        target: Target = None,
        *,
        samples: int = 25,
        noise: float = 0.15,
        steps: int = 32,
        seed: int = 0,
        layer: Optional[str] = None,
        batch_size: Optional[int] = None,
        preprocess: Optional[Preprocess] = None,
        size: Optional[SizeLike] = None,
        crop: Optional[bool] = None,
        resize: Optional[str] = None,
    ) -> "SaliencyMap":
        """A saliency map: 'gradient', 'smoothgrad' (`samples`, `noise`, `seed`),
        'integrated-gradients' (`steps`), 'guided-backprop' or 'guided-gradcam' (`layer`), of
        `target` (None: the most probable class)."""
    def filters(
        self,
        layer: Union[str, int],
        filters: Union[int, range, Sequence[int], str, None] = None,
        recipe: str = "walkthrough",
        *,
        steps: Optional[int] = None,
        step: Optional[float] = None,
        size: Optional[SizeLike] = None,
        seed: int = 0,
        preprocess: Optional[Preprocess] = None,
        optimizer: Optional[str] = None,
        jitter: int = 0,
        scale: float = 0.0,
        rotate: float = 0.0,
        tv: float = 0.0,
        l2: float = 0.0,
        octaves: int = 1,
        octave_scale: float = 1.4,
    ) -> Union["FilterGrid", "Visualization"]:
        """The input pattern each filter of `layer` responds to most (gradient ascent in
        input space). `filters`: N (the first N, all of a smaller layer), a range or list of
        indices, or a selection such as '0..64', '3,7,9', 'all' (default: the first 64).
        `recipe='walkthrough'` is the walk-through's: 40 normalised steps of size 1 from grey
        noise at 150x150, no transformations; every keyword changes one part of it
        (optimizer='adam', jitter=, scale=, rotate=, tv=, l2=, octaves=); it returns a
        `FilterGrid`. `recipe='lucid'` or `'maco'` makes Lucid's or MaCo's pictures, one per
        filter (`steps`, `size`, `seed` apply; the walkthrough keywords are refused), and
        returns a `Visualization`. Ctrl-C stops the call."""
    def visualize(
        self,
        objective: Union[str, Sequence[str]],
        recipe: str = "lucid",
        *,
        steps: Optional[int] = None,
        size: Optional[SizeLike] = None,
        lr: Optional[float] = None,
        seed: int = 0,
        batch: int = 1,
        diversity: float = 0.0,
        spectrum_from: Optional[PathLike] = None,
        chunk: Optional[int] = None,
    ) -> "Visualization":
        """Feature visualization of any objective, as `convscope visualize`: a spec such as
        'conv3:5' (a channel), 'conv3:0..8' (one picture each), 'conv3:5@10,12' (one neuron),
        'class:285' or 'class:NAME' (with labels), 'conv3:dir=v.npy' (a direction),
        'invert=cat.png@conv2', and weighted sums such as 'class:285 - 0.5*class:281'; or a
        list of specs. `recipe`: 'lucid' (1/f Fourier basis, decorrelated colours, Lucid's
        transformations, Adam, 512 steps), 'maco' (phase-only Fourier under a natural-image
        spectrum, 256 steps) or 'walkthrough' (pixels, 40 normalised steps). `batch` pictures
        per objective, made to differ by `diversity`; `spectrum_from`: a folder of pictures to
        measure MaCo's spectrum on; `chunk`: pictures per network pass. The same seed gives
        the same pictures. Ctrl-C stops the call."""
    def examples(
        self,
        images: PathLike,
        layers: Union[str, int, Sequence[Union[str, int]]],
        *,
        top: int = 9,
        score: str = "max",
        batch: Optional[int] = None,
    ) -> "Examples":
        """The images of the folder `images` (recursively) that excite each channel of
        `layers` most and least, as `convscope examples`: each image goes through the model
        once with the model's input options; `top` images are kept per channel at each end,
        scored by the map's 'max' or 'mean'. Unreadable images are skipped and listed, never
        fatal; memory stays bounded whatever the folder's size. Ctrl-C stops the call."""

class Input:
    """An input prepared for a model: the tensor it runs on and the picture it sees."""

    def numpy(self) -> npt.NDArray[np.float32]:
        """The model input: float32, a batch of one in the model's layout."""
    @property
    def shape(self) -> list[int]:
        """The shape of the model input (batch axis included)."""
    @property
    def source(self) -> str:
        """Where the input came from: a path, 'image' or 'tensor'."""
    @property
    def image(self) -> "Picture":
        """The image as the model sees it (resized, cropped, before normalisation)."""

class Picture:
    """An 8-bit RGB picture: a grid, a heatmap, an overlay. Shows itself in Jupyter."""

    def numpy(self) -> npt.NDArray[np.uint8]:
        """The pixels: uint8, shape (height, width, 3), RGB."""
    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
    def save(self, path: PathLike) -> None:
        """Writes a PNG file atomically (a temporary file renamed into place)."""
    def png(self) -> bytes:
        """PNG-encoded bytes."""

class Predictions:
    """A classifier's prediction: the top classes and every class's probability. Iterates
    over (class, label, probability) of the top classes."""

    @property
    def top(self) -> list[tuple[int, str, float]]:
        """The top classes as (class, label, probability), most probable first."""
    @property
    def best(self) -> int:
        """The most probable class."""
    def probabilities(self) -> npt.NDArray[np.float32]:
        """Every class's probability (float32, one per class)."""
    def logits(self) -> Optional[npt.NDArray[np.float32]]:
        """The pre-softmax scores, when the model gives them (else None)."""
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> tuple[int, str, float]: ...
    def __iter__(self) -> Iterator[tuple[int, str, float]]: ...

class Activations:
    """The activations of the selected layers for one image: a read-only mapping from layer
    name to a float32 array in the model's own layout (batch axis included, as onnxruntime
    returns it). Shows its statistics and first grids in Jupyter."""

    def __getitem__(self, name: str) -> npt.NDArray[np.float32]: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[str]: ...
    def __contains__(self, name: object) -> bool: ...
    def keys(self) -> list[str]:
        """The layer names, in the order computed."""
    def values(self) -> list[npt.NDArray[np.float32]]:
        """The arrays, in the order computed."""
    def items(self) -> list[tuple[str, npt.NDArray[np.float32]]]:
        """(name, array) pairs, in the order computed."""
    def get(self, name: str, default: Any = None) -> Any:
        """The array of `name`, or `default`."""
    def numpy(self) -> dict[str, npt.NDArray[np.float32]]:
        """A plain dict of name -> float32 array."""
    @property
    def stats(self) -> dict[str, dict[str, float]]:
        """Per-layer statistics: name -> {mean, std, min, max, zero_fraction,
        blank_channels, channels}."""
    def grid(
        self,
        layer: Union[str, int, None] = None,
        per_row: int = 16,
        cell: int = 48,
        colormap: str = "viridis",
    ) -> Picture:
        """Every channel of `layer` (a name or a position; default the first) as a grid, each
        channel standardised as the walk-through does ((x - mean) / std * 64 + 128,
        clipped)."""
    def channel(
        self, layer: Union[str, int], channel: int, colormap: str = "viridis", side: int = 480
    ) -> Picture:
        """Channel `channel` of `layer` alone, large (longer side `side` pixels), with a
        colour bar."""
    def table(self) -> str:
        """The statistics table the `activations` command prints."""
    def save(self, path: PathLike, npy: bool = False) -> None:
        """Writes what the `activations` command writes into the folder `path` (input.png, a
        grid per layer, index.json, index.html; with `npy=True` each layer's values): all
        files appear together, or none."""

class CamMap:
    """A class activation map (Grad-CAM or another method of the family) for one target.
    Shows its overlay in Jupyter."""

    def numpy(self) -> npt.NDArray[np.float32]:
        """The map at the layer's resolution: float32 (height, width), >= 0; exactly the CLI's
        `<stem>_raw.npy`."""
    def normalized(self, size: Optional[SizeLike] = None) -> npt.NDArray[np.float32]:
        """The map upsampled to the input size and scaled to 0..1, as pytorch-grad-cam returns
        it (the CLI's `<stem>_normalized.npy`); `size=(width, height)` picks another size."""
    def heatmap(self, colormap: str = "jet") -> Picture:
        """The heatmap at the input size."""
    def overlay(self, alpha: float = 0.4, colormap: str = "jet") -> Picture:
        """The map laid over the image it was computed for (heatmap * alpha + image,
        rescaled: the walk-through's superimposed image); with a centre crop, over the part
        the model saw."""
    def save(self, path: PathLike, alpha: float = 0.4, colormap: str = "jet") -> None:
        """Writes the overlay as a PNG file, atomically."""
    @property
    def target(self) -> str:
        """The target's name (the class index for a class)."""
    @property
    def class_index(self) -> Optional[int]:
        """The class, when the target is one class (else None)."""
    @property
    def label(self) -> str:
        """The class label (or the target's name)."""
    @property
    def probability(self) -> Optional[float]:
        """The class probability, when the target is one class of a classifier."""
    @property
    def score(self) -> float:
        """The target's score (the pre-softmax logit for a class, when available)."""
    @property
    def method(self) -> str:
        """The method's registry name."""
    @property
    def layer(self) -> str:
        """The layer the map was computed at."""
    @property
    def peak(self) -> tuple[int, int]:
        """(row, col) of the strongest evidence at the layer's resolution."""
    @property
    def all_zero(self) -> bool:
        """True when the map is zero everywhere: no positive evidence at this layer."""

class SaliencyMap:
    """A saliency map: the attribution of every input value. Shows itself in Jupyter."""

    def numpy(self) -> npt.NDArray[np.float32]:
        """The attribution in the model's input layout (float32, a batch of one); the CLI's
        `.npy`."""
    def magnitudes(self) -> npt.NDArray[np.float32]:
        """(height, width) magnitudes: the largest |value| over the colour channels."""
    def picture(self, colormap: str = "inferno") -> Picture:
        """The map divided by its maximum, coloured."""
    def save(self, path: PathLike, colormap: str = "inferno") -> None:
        """Writes the picture as a PNG file, atomically."""
    @property
    def method(self) -> str:
        """The method's registry name."""
    @property
    def class_index(self) -> Optional[int]:
        """The class, when the target is one class (else None)."""
    @property
    def label(self) -> str:
        """The class label or the target's name."""
    @property
    def score(self) -> float:
        """The target's score for the input."""
    @property
    def completeness(self) -> Optional[tuple[float, float]]:
        """Integrated Gradients' completeness check as (sum of attributions, score(input) -
        score(baseline)); None for other methods."""

class FilterGrid:
    """The input patterns the filters of one layer respond to most. Shows the tiled grid in
    Jupyter."""

    def numpy(self) -> npt.NDArray[np.uint8]:
        """Every pattern: uint8, shape (filters, height, width, 3), in the order asked for."""
    @property
    def filters(self) -> list[int]:
        """The filter indices, in order."""
    @property
    def layer(self) -> str:
        """The layer's name."""
    @property
    def channels(self) -> int:
        """How many filters the layer has."""
    @property
    def curves(self) -> list[list[float]]:
        """Each filter's objective (its mean activation) before each step and after the
        last."""
    def picture(
        self, grid: Optional[tuple[int, int]] = None, margin: int = 5, labels: bool = False
    ) -> Picture:
        """Every pattern tiled into one picture (the walk-through's 8x8 grid with 5 px margins
        for 64 filters); `grid=(columns, rows)`, `labels=True` writes each filter's index."""
    def save(self, path: PathLike) -> None:
        """Writes the tiled picture as a PNG file, atomically."""

class Visualization:
    """Feature-visualization pictures, one per objective (and per copy with `batch=`). Shows
    the labelled grid in Jupyter."""

    def numpy(self) -> npt.NDArray[np.uint8]:
        """Every picture: uint8, shape (pictures, height, width, 3), objective by objective."""
    @property
    def objectives(self) -> list[str]:
        """The objective of each picture, as text ('conv3:5', 'class:285', ...)."""
    @property
    def values(self) -> list[float]:
        """Each finished picture's objective value, as the model sees it untransformed."""
    @property
    def curves(self) -> list[list[float]]:
        """Each picture's objective at every step."""
    @property
    def recipe(self) -> str:
        """The recipe: 'walkthrough', 'lucid' or 'maco'."""
    @property
    def steps(self) -> int:
        """Optimisation steps run."""
    @property
    def seed(self) -> int:
        """The seed (the same seed gives the same pictures)."""
    def index(self) -> dict[str, Any]:
        """The `index.json` document `save(folder)` writes, as a dict."""
    def pictures(self) -> list[dict[str, Any]]:
        """Each picture's numbers as a dict: objective, copy, value, curve."""
    def picture(
        self, grid: Optional[tuple[int, int]] = None, margin: int = 5, labels: bool = False
    ) -> Picture:
        """Every picture tiled into one; `grid=(columns, rows)`, `labels=True` writes each
        objective under its picture."""
    def save(self, path: PathLike) -> None:
        """Writes the pictures, atomically: a path ending in `.png` gets the tiled picture;
        any other path becomes a folder with one PNG per picture, `grid.png` and `index.json`,
        as `convscope visualize --out` writes."""
    def __len__(self) -> int: ...
    def __getitem__(self, i: int) -> Picture: ...

class Examples:
    """For every channel of the chosen layers, the folder's images it responds to most
    (`top`) and least (`bottom`), with the score, the position of the map's maximum and its
    receptive field. Shows the first channels' best crops in Jupyter."""

    @property
    def layers(self) -> list[str]:
        """The layer names, in the order asked for."""
    @property
    def images_used(self) -> int:
        """Images used."""
    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Images that could not be read, as (path relative to the folder, reason)."""
    def index(self) -> dict[str, Any]:
        """The whole result as the `index.json` document `convscope examples` writes."""
    def top(self, layer: str, channel: int) -> list[dict[str, Any]]:
        """The images `channel` of `layer` responds to most, best first: dicts with `image`
        (the path relative to the folder), `score`, `x`, `y` (the map position of the
        maximum) and `box` (its receptive field in the image's pixels)."""
    def bottom(self, layer: str, channel: int) -> list[dict[str, Any]]:
        """The images `channel` of `layer` responds to least, worst first (as `top`)."""
    def crops(self, layer: str, channel: int, end: str = "top") -> list[Picture]:
        """The receptive field of each of the channel's `top` (or `bottom`) entries, cut out
        of its image, in rank order."""
    def save(self, path: PathLike, crops: bool = False) -> None:
        """Writes `index.json` (and with `crops=True` every entry's crop as a PNG, named as
        `convscope examples --crop` names them) into the folder `path`, atomically."""
    def shapes(self) -> dict[str, list[int]]:
        """Each layer's map shape [channels, height, width] at the input size, by layer
        name."""
