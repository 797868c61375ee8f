#!/usr/bin/env python3
"""Reference data for convscope-image's Pillow-compatible resize.

Resizes ../shared/images/chelsea.png (relative to the workspace root) with
Pillow and writes small summaries (per-channel sums and a few fixed 4x4
patches, not whole images) to crates/image/tests/data/pillow_resize.json:

* "u8" results: Image.resize on the 8-bit RGB image (what
  `resize_u8_like_pillow` reproduces): 240x240 BICUBIC, 240x240 BILINEAR,
  64x64 NEAREST;
* "float" results: the same BICUBIC/BILINEAR resizes done per channel on
  mode "F" images (what `resize` reproduces, no 8-bit rounding).

Usage (from anywhere): python3 crates/image/scripts/pillow_reference.py
Requires Pillow (tested with Pillow 13).
"""

import json
from pathlib import Path

import PIL
from PIL import Image

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # workspace root (crates/image/scripts -> root)
SRC_REL = "../shared/images/chelsea.png"
OUT = HERE.parent / "tests" / "data" / "pillow_resize.json"

CASES = [
    ("bicubic", Image.Resampling.BICUBIC, 240, 240),
    ("bilinear", Image.Resampling.BILINEAR, 240, 240),
    ("nearest", Image.Resampling.NEAREST, 64, 64),
]
PATCHES = {
    240: [(0, 0), (118, 118), (236, 236), (60, 170), (200, 30)],
    64: [(0, 0), (30, 30), (60, 60), (10, 50)],
}


def summarize(planes, w, h):
    """planes: list of 3 callables (x, y) -> value."""
    sums = [sum(p(x, y) for y in range(h) for x in range(w)) for p in planes]
    patches = []
    for px, py in PATCHES[w]:
        data = [[[planes[c](px + dx, py + dy) for c in range(3)] for dx in range(4)] for dy in range(4)]
        patches.append({"x": px, "y": py, "data": data})
    return sums, patches


def main() -> None:
    src = (ROOT / SRC_REL).resolve()
    im = Image.open(src).convert("RGB")
    results = []
    for name, filt, w, h in CASES:
        out = im.resize((w, h), filt)
        px = out.load()
        planes = [lambda x, y, c=c: px[x, y][c] for c in range(3)]
        sums, patches = summarize(planes, w, h)
        results.append({"kind": "u8", "filter": name, "width": w, "height": h,
                        "channel_sums": sums, "patches": patches})
        if filt == Image.Resampling.NEAREST:
            continue
        chans = [c.convert("F").resize((w, h), filt).load() for c in im.split()]
        planes = [lambda x, y, c=c: round(float(chans[c][x, y]), 4) for c in range(3)]
        sums, patches = summarize(planes, w, h)
        results.append({"kind": "float", "filter": name, "width": w, "height": h,
                        "channel_sums": [round(s, 2) for s in sums], "patches": patches})
    doc = {
        "generator": "crates/image/scripts/pillow_reference.py",
        "pillow_version": PIL.__version__,
        "source": SRC_REL,
        "source_size": list(im.size),
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
