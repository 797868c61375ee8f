# %% [markdown]
# # convscope in a notebook: the walk-through's three parts on EfficientNet-Lite0
#
# Each `# %%` block is a notebook cell (Jupyter, VS Code and `jupytext` read this file as a
# notebook); run as a script, it writes the pictures to `convscope-out/notebook/`. In a notebook
# the last expression of a cell shows itself: a picture, an overlay, a table.
#
#     pip install ./crates/python pillow
#     python examples/notebook.py [MODEL] [IMAGE] [LABELS]
#
# The defaults are the shared EfficientNet-Lite0 and chelsea.png beside the repository.

# %%
import pathlib
import sys

import numpy as np

import convscope

here = pathlib.Path(__file__).resolve().parent
shared = here.parent.parent / "shared"
args = sys.argv[1:] + [None] * 3
model_path = args[0] or shared / "models/efficientnet_lite0.onnx"
image = args[1] or shared / "images/chelsea.png"
labels = args[2] or shared / "models/imagenet_classes.txt"
out = pathlib.Path("convscope-out/notebook")
out.mkdir(parents=True, exist_ok=True)

# torchvision's ImageNet transform: shorter side to 224, centre crop, ImageNet mean and std.
model = convscope.Model(model_path, preprocess="imagenet", crop=True, labels=labels)
print(model.input_spec)
model.summary()[:3]

# %% [markdown]
# ## 1. Intermediate activations
# A dict of float32 arrays in the model's own layout (NCHW here, batch axis included); the
# grid standardises each channel as the walk-through does.

# %%
acts = model.activations(image, layers=["_conv_stem", "_blocks.5._expand_conv"])
stem = acts["_conv_stem"]
print(stem.shape, stem.dtype, f"blank channels: {acts.stats['_conv_stem']['blank_channels']}")
acts.grid("_conv_stem").save(out / "stem.png")
acts.grid("_conv_stem")

# %% [markdown]
# ## 2. What the filters respond to
# Gradient ascent in input space, the walk-through's recipe (40 normalised steps from grey
# noise at 150x150); all filters of the layer are optimised together.

# %%
filters = model.filters("_conv_stem", filters=range(16))
patterns = filters.numpy()  # uint8, (16, 150, 150, 3)
print(patterns.shape, f"{sum(c[-1] > c[0] for c in filters.curves)} of 16 objectives rose")
filters.save(out / "filters.png")
filters

# %% [markdown]
# ## 3. Where the evidence for a class is
# The top classes, then Grad-CAM of the best one laid over the part of the image the model saw.

# %%
top = model.predict(image, top=5)
print(top)
cam = model.gradcam(image, target=top.best)
heat = cam.normalized()  # float32 (224, 224) in 0..1, as pytorch-grad-cam returns it
print(f"{cam.label}: peak at {cam.peak} of {cam.numpy().shape}, mean {heat.mean():.3f}")
cam.save(out / "gradcam.png")
cam
