"""Turning renders into viewable pictures and files: uint8 conversion, grids, maps, PNG metadata.

Image encoding: raw colour x -> clamp(x, -1, 1) * 0.5 + 0.5 -> * 255 -> rounded to the nearest
integer (halves up). The official scripts truncate instead (their pixels are up to 1 level darker).
``to_uint8`` is that encoding, for samples, videos, interpolations and training previews alike;
``raw_to_uint8`` is the one place it is written, and mesh vertex colours use it with ties to even
(the rounding they have always had, so existing meshes keep their colours to the level).

The diagnostic maps (alpha, depth, normals) are numpy arrays whose exact values also go to .npy
files; their PNGs share ``unit_to_uint8`` (numpy's round, halves to even), kept apart from
``to_uint8`` because the two round ties differently and existing outputs must not shift by a level.

This is a base module (it imports nothing from the toolkit but ``atomic`` and ``errors``):
training uses it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .errors import EpigrafError

METADATA_KEY = "epigraf"  # PNG tEXt key holding the JSON metadata


ROUNDINGS = ("half_up", "half_even")


def raw_to_uint8(x: torch.Tensor, rounding: str = "half_up") -> torch.Tensor:
    """Raw colour values (image range [-1, 1], any shape) -> uint8 levels of the same shape.

    ``half_up`` (floor(v + 0.5)) is the image encoding: samples, videos, previews. ``half_even``
    (torch.round) is what mesh vertex colours were written with. The two differ only on the rare
    values whose level lands exactly on .5 after float32 rounding.
    """
    if rounding not in ROUNDINGS:
        raise EpigrafError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    levels = (x.detach().float().clamp(-1, 1) * 0.5 + 0.5) * 255
    levels = torch.floor(levels + 0.5) if rounding == "half_up" else torch.round(levels)
    return levels.to(torch.uint8)


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """Raw image [3, H, W] (or [B, 3, H, W]) -> uint8 [H, W, 3] (or [B, H, W, 3]), rounded half up."""
    return raw_to_uint8(image).movedim(-3, -1).cpu().numpy()


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 levels round(x * 255): the maps' one conversion."""
    return np.round(np.clip(x, 0.0, 1.0) * 255).astype(np.uint8)


def gray_to_rgb(x: np.ndarray) -> np.ndarray:
    """uint8 [H, W] -> [H, W, 3]."""
    return np.repeat(x[..., None], 3, axis=-1)


def alpha_to_uint8(alpha: np.ndarray) -> np.ndarray:
    """Opacity [H, W] in [0, 1] -> uint8 [H, W] (white = opaque)."""
    return unit_to_uint8(alpha)


def depth_to_uint8(depth: np.ndarray, alpha: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth [H, W] -> uint8 [H, W]: near = bright, far = dark, empty rays (alpha < 1e-3) black.

    A fixed [near, far] (the sampled slab) keeps videos free of per-frame flicker.
    """
    t = (far - depth) / max(far - near, 1e-8)
    t = np.where(alpha > 1e-3, np.clip(t, 0.0, 1.0) * 0.9 + 0.1, 0.0)  # hits are never pure black
    return unit_to_uint8(t)


def normals_to_uint8(normals: np.ndarray) -> np.ndarray:
    """Unit normals [H, W, 3] in [-1, 1] -> uint8 [H, W, 3] via (n + 1) / 2; zero normals stay black."""
    valid = np.any(normals != 0, axis=-1, keepdims=True)
    # (n + 1) * 0.5 is exact, so this is bit for bit the former round((n + 1) * 127.5)
    return np.where(valid, unit_to_uint8((np.clip(normals, -1, 1) + 1) * 0.5), 0).astype(np.uint8)


def grid_columns(n: int) -> int:
    """Columns for ``n`` tiles: a divisor of ``n`` near its square root when one exists, so 8 tiles make a
    4 x 2 grid instead of 3 x 3 with an empty cell; otherwise ceil(sqrt(n))."""
    if n < 1:
        raise ValueError("a grid needs at least one tile")
    base = math.ceil(math.sqrt(n))
    for cols in range(base, 2 * base + 1):
        if n % cols == 0:
            return cols
    return base


def make_grid(images: Sequence[np.ndarray], columns: int | None = None, pad: int = 0, fill: int = 0) -> np.ndarray:
    """Tile equally sized uint8 images [H, W, C] row by row (columns default: ``grid_columns``).

    Cells left over in the last row and the padding get ``fill`` (255 suits white-background models).
    """
    if not images:
        raise ValueError("make_grid needs at least one image")
    n = len(images)
    cols = columns or grid_columns(n)
    rows = math.ceil(n / cols)
    h, w, c = images[0].shape
    out = np.full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), fill, dtype=images[0].dtype)
    for i, img in enumerate(images):
        r, k = divmod(i, cols)
        out[r * (h + pad) : r * (h + pad) + h, k * (w + pad) : k * (w + pad) + w] = img
    return out


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Pad [H, W, C] with black on the bottom/right to even sizes (H.264 in yuv420p needs them)."""
    h, w = frame.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return frame
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)))


def save_png(path: str | os.PathLike[str], array: np.ndarray, metadata: dict[str, Any] | None = None) -> Path:
    """Write uint8 [H, W] or [H, W, 3] atomically; ``metadata`` goes into a tEXt chunk as JSON."""
    from PIL import Image  # here, not at import: Pillow's import is 0.1 s that volume and mesh commands never use
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    if metadata is not None:
        info.add_text(METADATA_KEY, json.dumps(metadata, sort_keys=True))
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def read_png_metadata(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON metadata ``save_png`` stored, or None."""
    from PIL import Image

    with Image.open(path) as img:
        text = img.text.get(METADATA_KEY) if hasattr(img, "text") else None
    return json.loads(text) if text else None


def save_npy(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """np.save, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)
    return Path(path)
