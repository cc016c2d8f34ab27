"""training/dataset_plot.py: the PNG's size, that it holds ink, and datasets without poses or radii."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from training_support import write_dataset  # noqa: E402

from epigraf_tools.training.dataset_plot import WIDTH, plot_dataset, plot_height  # noqa: E402


def test_plot_size_and_content(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d.zip", n=10, size=16)
    out = plot_dataset(data, tmp_path / "p.png", max_images=9)
    img = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert img.shape == (plot_height(9), WIDTH, 3) and plot_height(9) > plot_height(8)
    hist_band = img[60:250]
    assert (np.abs(hist_band - [60, 110, 190]).sum(axis=-1) < 10).any()  # histogram bars are drawn
    assert img[330:].std() > 20  # the thumbnails


def test_plot_without_poses(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "d", n=3, size=16, poses=False)
    out = plot_dataset(data, tmp_path / "p.png")
    assert Image.open(out).size == (WIDTH, plot_height(3))
