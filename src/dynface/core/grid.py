"""Contact sheets: square images tiled into one picture (sample grids, data cards)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def tile(images: list[np.ndarray], cols: int = 8, side: int | None = None, gap: int = 2) -> np.ndarray:
    """uint8 RGB images (resized to `side`^2, default the first one's side) in rows of `cols`, on white."""
    from PIL import Image

    if not images:
        raise ValueError("no image to tile")
    side = side or images[0].shape[0]
    cols = min(cols, len(images))
    rows = math.ceil(len(images) / cols)
    out = np.full((rows * (side + gap) - gap, cols * (side + gap) - gap, 3), 255, np.uint8)
    for k, img in enumerate(images):
        if img.shape[:2] != (side, side):
            img = np.asarray(Image.fromarray(img).resize((side, side), Image.LANCZOS))
        r, c = divmod(k, cols)
        out[r * (side + gap):r * (side + gap) + side, c * (side + gap):c * (side + gap) + side] = img
    return out


def save_grid(images, path, cols: int = 8, side: int | None = None) -> Path:
    """Tile images (uint8 arrays or image paths) and write the sheet atomically (format from the suffix)."""
    from dynface.core.imageio import read_rgb, write_image

    arrays = [read_rgb(x) if isinstance(x, (str, Path)) else x for x in images]
    return write_image(Path(path), tile(arrays, cols, side), quality=90)
