"""``epigraf dataset info --plot``: one PNG with pose histograms and a grid of the dataset's images.

Drawn with PIL alone (matplotlib is not a dependency): a title line, then histograms of yaw and
pitch (degrees, over their full ranges [-180, 180] and [0, 180] so that two datasets compare at a
glance) and of the camera radius when ``dataset.json`` has ``camera_radii`` (``epigraf dataset
import`` writes them), then up to ``max_images`` thumbnails taken evenly through the dataset.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epigraf_tools.atomic import atomic_path

from .data import ImageDataset

WIDTH = 960
TITLE_H = 44
PANEL_H = 250
GRID_TITLE_H = 30
COLUMNS = 8
THUMB = WIDTH // COLUMNS
MARGIN = dict(left=58, right=28, top=30, bottom=46)
BAR = (60, 110, 190)
INK = (20, 20, 20)
GRID_INK = (205, 205, 205)


@dataclass
class Histogram:
    """Counts of ``values`` in ``bins`` equal bins over [low, high], with the axis title."""

    title: str
    values: np.ndarray
    low: float
    high: float
    bins: int


def plot_height(num_thumbnails: int) -> int:
    """Height in pixels of the PNG for ``num_thumbnails`` images (the width is always ``WIDTH``)."""
    rows = math.ceil(num_thumbnails / COLUMNS)
    return TITLE_H + PANEL_H + GRID_TITLE_H + rows * THUMB


def plot_dataset(path: str | os.PathLike[str], out: str | os.PathLike[str], max_images: int = 32) -> Path:
    """Write the histogram + image-grid PNG of the dataset at ``path`` to ``out`` (atomically)."""
    from PIL import Image, ImageDraw

    ds = ImageDataset(path, require_poses=False, cache=False)
    count = min(max_images, ds.num_raw)
    picks = np.linspace(0, ds.num_raw - 1, count).round().astype(int) if count else np.zeros(0, int)
    hists = _histograms(ds)
    canvas = Image.new("RGB", (WIDTH, plot_height(count)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    res = f"{ds.raw_size}x{ds.raw_size}"
    _text(draw, (12, 10), f"{Path(path).name}: {ds.num_raw} images, {res}", 22)
    if hists:
        panel_w = WIDTH // len(hists)
        for k, hist in enumerate(hists):
            _draw_histogram(draw, (k * panel_w, TITLE_H, (k + 1) * panel_w, TITLE_H + PANEL_H), hist)
    else:
        _text(draw, (12, TITLE_H + PANEL_H // 2), "no camera poses in dataset.json", 18)
    top = TITLE_H + PANEL_H
    _text(draw, (12, top + 6), f"images ({count} of {ds.num_raw}, evenly spaced)", 16)
    for k, idx in enumerate(picks):
        thumb = Image.fromarray(ds.load_image(int(idx)).transpose(1, 2, 0)).resize((THUMB - 4, THUMB - 4))
        canvas.paste(thumb, ((k % COLUMNS) * THUMB + 2, top + GRID_TITLE_H + (k // COLUMNS) * THUMB + 2))
    out = Path(out)
    with atomic_path(out, suffix=".png") as tmp:
        canvas.save(tmp, format="PNG")
    return out


def _histograms(ds: ImageDataset) -> list[Histogram]:
    if not ds.has_poses:
        return []
    deg = np.degrees(ds.camera_angles.astype(np.float64))
    hists = [
        Histogram("yaw (degrees)", deg[:, 0], -180.0, 180.0, 36),
        Histogram("pitch (degrees, 90 = level)", deg[:, 1], 0.0, 180.0, 36),
    ]
    radii = _radii(ds)
    if radii is not None:
        low, high = float(radii.min()), float(radii.max())
        pad = max(0.05 * (high - low), 0.05 * abs(high), 1e-3)
        hists.append(Histogram("camera radius (world units)", radii, low - pad, high + pad, 21))  # odd: 1.0 mid-bin
    return hists


def _radii(ds: ImageDataset) -> np.ndarray | None:
    """Per-image camera distances from dataset.json's ``camera_radii`` when every image has one."""
    meta = ds._read_meta()  # the dataset's own reader (same package): one parser for dataset.json
    radii = meta.get("camera_radii")
    if not isinstance(radii, dict):
        return None
    keyed = {os.path.splitext(k)[0]: v for k, v in radii.items()}
    values = [keyed.get(ds._key(name)) for name in ds.image_names]
    if any(not isinstance(v, (int, float)) for v in values):
        return None
    return np.array(values, np.float64)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one fixed-size bitmap font
        return ImageFont.load_default()


def _text(draw, xy: tuple[float, float], text: str, size: int = 14, anchor: str = "la") -> None:
    draw.text(xy, text, fill=INK, font=_font(size), anchor=anchor)


def _tick(value: float, span: float) -> str:
    """A tick label with as many decimals as the axis span needs (0 for degrees, 3 for radii near 1)."""
    decimals = max(0, 2 - math.floor(math.log10(span))) if span > 0 else 2
    return f"{value:.{decimals}f}"


def _draw_histogram(draw, box: tuple[int, int, int, int], hist: Histogram) -> None:
    """Bars, axes, ticks, axis labels and the title of one histogram inside ``box`` (x0, y0, x1, y1)."""
    x0, y0 = box[0] + MARGIN["left"], box[1] + MARGIN["top"]
    x1, y1 = box[2] - MARGIN["right"], box[3] - MARGIN["bottom"]
    counts, edges = np.histogram(np.clip(hist.values, hist.low, hist.high), bins=hist.bins, range=(hist.low, hist.high))
    peak = max(int(counts.max()), 1)
    _text(draw, ((x0 + x1) / 2, box[1] + 6), hist.title, 16, anchor="ma")
    for frac in (0.25, 0.5, 0.75, 1.0):  # horizontal guide lines with their counts
        y = y1 - frac * (y1 - y0)
        draw.line([(x0, y), (x1, y)], fill=GRID_INK)
        _text(draw, (x0 - 6, y), f"{frac * peak:.0f}" if peak >= 4 or frac == 1.0 else "", 12, anchor="rm")
    scale_x = (x1 - x0) / (hist.high - hist.low)
    for c, left, right in zip(counts, edges[:-1], edges[1:], strict=True):
        if c:
            top = y1 - c / peak * (y1 - y0)
            draw.rectangle(
                [x0 + (left - hist.low) * scale_x + 1, top, x0 + (right - hist.low) * scale_x - 1, y1], fill=BAR
            )
    draw.line([(x0, y1), (x1, y1)], fill=INK, width=2)
    draw.line([(x0, y0), (x0, y1)], fill=INK, width=2)
    for value in np.linspace(hist.low, hist.high, 5):
        x = x0 + (value - hist.low) * scale_x
        draw.line([(x, y1), (x, y1 + 5)], fill=INK, width=1)
        _text(draw, (x, y1 + 8), _tick(float(value), hist.high - hist.low), 12, anchor="ma")
    _text(draw, (x0 - 6, y0 - 6), "images", 12, anchor="rb")
    n = len(hist.values)
    _text(draw, ((x0 + x1) / 2, y1 + 26), f"n = {n}, mean {np.mean(hist.values):.4g}", 12, anchor="ma")
