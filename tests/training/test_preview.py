"""training/preview.py: the preview grid layout, uint8 conversion, and fixed latents and poses."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from training_support import tiny_train_config, write_dataset

from epigraf_tools.training.data import ImageDataset
from epigraf_tools.training.preview import PreviewGrid, preview_grid

from support import make_tiny_generator


def test_preview_grid_is_ceil_sqrt_columns_row_major_with_black_empty_cells():
    images = np.stack([np.full((2, 2, 3), 10 * (i + 1), np.uint8) for i in range(5)])  # [N, H, W, 3]
    grid = preview_grid(images)
    assert grid.shape == (2 * 2, 3 * 2, 3) and grid.dtype == np.uint8
    assert grid[0, 4, 0] == 30 and grid[2, 0, 0] == 40 and grid[2, 2, 0] == 50 and grid[3, 5, 0] == 0


def test_the_grid_uses_the_same_latents_and_poses_every_time(tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    cfg = tiny_train_config(data, tmp_path / "run", grid_size=3)
    dataset = ImageDataset(data)
    G = make_tiny_generator()
    a, b = PreviewGrid(dataset, G, cfg, torch.device("cpu")), PreviewGrid(dataset, G, cfg, torch.device("cpu"))
    assert torch.equal(a.z, b.z) and a.z.shape == (3, G.z_dim)
    assert np.array_equal(a.indices, b.indices)
    expected = torch.stack([torch.from_numpy(dataset.get_camera_angles(int(i))) for i in a.indices]).float()
    torch.testing.assert_close(a.angles, expected)
    a.save_fakes(tmp_path / "fakes.png")
    a.save_reals(tmp_path / "reals.png")
    res = G.config.img_resolution
    assert np.asarray(Image.open(tmp_path / "fakes.png")).shape == (2 * res, 2 * res, 3)
    assert np.asarray(Image.open(tmp_path / "reals.png")).shape == (2 * 32, 2 * 32, 3)
    torch.testing.assert_close(a.render(), b.render(), atol=1e-5, rtol=1e-5)  # fixed noise, same images
