#!/usr/bin/env python3
"""The walk-through's activation grids done in Python, for timing against `convscope activations`.

PyTorch (onnx2torch) runs the VGG16 up to its first eight layers on chelsea.png (bilinear resize
to 240, /255), and every channel of every layer is standardised, tiled 16 per row and saved with
matplotlib (viridis), exactly as the walk-through's loop does. `compare_activations.sh` times the
whole process against convscope's.
"""

import sys
import time
from pathlib import Path

t0 = time.perf_counter()
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import onnx
import torch
from onnx2torch import convert
from PIL import Image

shared = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3] / "shared"
out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("/tmp/convscope-python-activations")
out.mkdir(parents=True, exist_ok=True)
torch.set_num_threads(2)

names = [f"functional_1/block1_conv1_1/Relu:0", "functional_1/block1_conv2_1/Relu:0", "functional_1/block1_pool_1/MaxPool2d:0",
         "functional_1/block2_conv1_1/Relu:0", "functional_1/block2_conv2_1/Relu:0", "functional_1/block2_pool_1/MaxPool2d:0",
         "functional_1/block3_conv1_1/Relu:0", "functional_1/block3_conv2_1/Relu:0"]
model = onnx.load(str(shared / "models/vgg16_tumor.onnx"))
# Expose the eight values as graph outputs, then convert the whole graph.
for n in names:
    model.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
net = convert(model).eval()

img = Image.open(shared / "images/chelsea.png").convert("RGB").resize((240, 240), Image.BILINEAR)
x = torch.from_numpy(np.asarray(img, np.float32)[None] / 255.0)
with torch.no_grad():
    outs = net(x)
acts = [o.numpy() for o in outs[1:]]  # NCHW inside the graph

for layer_name, act in zip(names, acts):
    n_features, size = act.shape[1], act.shape[2]
    per_row = 16
    n_cols = n_features // per_row
    grid = np.zeros((size * n_cols, per_row * size))
    for col in range(n_cols):
        for row in range(per_row):
            ch = act[0, col * per_row + row].copy()
            ch -= ch.mean()
            ch /= ch.std() + 1e-12
            ch *= 64
            ch += 128
            grid[col * size:(col + 1) * size, row * size:(row + 1) * size] = np.clip(ch, 0, 255).astype("uint8")
    scale = 1.0 / size
    plt.figure(figsize=(scale * grid.shape[1], scale * grid.shape[0]))
    plt.title(layer_name)
    plt.grid(False)
    plt.imshow(grid, aspect="auto", cmap="viridis")
    plt.savefig(out / (layer_name.replace("/", "_").replace(":", "_") + ".png"))
    plt.close()
print(f"python walk-through activations: {time.perf_counter() - t0:.2f} s (including imports)")
