"""epigraf_tools/images.py: uint8 conversions, grid tiling, PNG metadata round trip, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.errors import EpigrafError
from epigraf_tools.images import (
    alpha_to_uint8,
    depth_to_uint8,
    gray_to_rgb,
    grid_columns,
    make_grid,
    normals_to_uint8,
    pad_to_even,
    raw_to_uint8,
    read_png_metadata,
    save_npy,
    save_png,
    to_uint8,
)


def test_to_uint8_rounds_instead_of_truncating():
    raw = torch.tensor([-2.0, -1.0, 0.0, 1.0 / 255, 1.0]).reshape(1, 1, 5) * 1.0
    img = to_uint8(raw.expand(3, 1, 5))
    # (x * 0.5 + 0.5) * 255: 0 -> 127.5 rounds to 128 (the official truncation gives 127)
    assert img[0, :, 0].tolist() == [0, 0, 128, 128, 255]


def test_make_grid_layout():
    tiles = [np.full((2, 2, 3), i, np.uint8) for i in range(5)]
    grid = make_grid(tiles, columns=3)
    assert grid.shape == (4, 6, 3) and grid[2, 2, 0] == 4 and grid[3, 5, 0] == 0
    white = make_grid(tiles, columns=3, fill=255)
    assert white[2, 2, 0] == 4 and white[3, 5, 0] == 255  # the empty cell takes the background


def test_grid_columns_avoid_empty_cells():
    # A divisor near sqrt(n) when one exists (8 seeds -> 4 x 2), else ceil(sqrt(n)) with a partial last row.
    assert [grid_columns(n) for n in (1, 2, 4, 6, 8, 9, 12, 16)] == [1, 2, 2, 3, 4, 3, 4, 4]
    assert grid_columns(7) == 3 and grid_columns(13) == 4
    assert make_grid([np.zeros((2, 2, 3), np.uint8)] * 8).shape == (4, 8, 3)


def test_to_uint8_moves_channels_last_with_and_without_a_batch():
    x = torch.zeros(2, 3, 4, 5)
    assert to_uint8(x).shape == (2, 4, 5, 3) and to_uint8(x[0]).shape == (4, 5, 3)
    assert to_uint8(x).dtype == np.uint8


def test_make_grid_padding_and_errors():
    tiles = [np.full((2, 3, 1), 9, np.uint8) for _ in range(4)]
    grid = make_grid(tiles, columns=2, pad=1, fill=7)
    assert grid.shape == (5, 7, 1) and grid[2, 0, 0] == 7 and grid[0, 3, 0] == 7 and grid[3, 4, 0] == 9
    with pytest.raises(ValueError, match="at least one image"):
        make_grid([])
    with pytest.raises(ValueError, match="at least one tile"):
        grid_columns(0)


def test_gray_and_alpha():
    gray = np.array([[0, 100]], np.uint8)
    assert gray_to_rgb(gray).shape == (1, 2, 3) and (gray_to_rgb(gray)[0, 1] == 100).all()
    assert alpha_to_uint8(np.array([-1.0, 0.0, 0.5, 1.0, 2.0])).tolist() == [0, 0, 128, 255, 255]


def test_depth_is_bright_near_dark_far_and_black_where_empty():
    depth = np.array([[1.0, 2.0, 3.0, 1.5]])
    alpha = np.array([[1.0, 1.0, 1.0, 0.0]])
    out = depth_to_uint8(depth, alpha, near=1.0, far=3.0)
    assert out.tolist() == [[255, round(0.55 * 255), round(0.1 * 255), 0]]


def test_normals_map_minus_one_to_one_onto_bytes_and_zero_normals_stay_black():
    normals = np.array([[[1.0, 0.0, -1.0], [0.0, 0.0, 0.0]]])
    assert normals_to_uint8(normals).tolist() == [[[255, 128, 0], [0, 0, 0]]]


@pytest.mark.parametrize("shape, padded", [((4, 6, 3), (4, 6, 3)), ((5, 6, 3), (6, 6, 3)), ((5, 7, 3), (6, 8, 3))])
def test_pad_to_even(shape, padded):
    frame = np.full(shape, 200, np.uint8)
    out = pad_to_even(frame)
    assert out.shape == padded and (out[: shape[0], : shape[1]] == 200).all() and out.sum() == frame.sum()


def test_png_metadata_round_trips_and_is_absent_without_it(tmp_path):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    path = save_png(tmp_path / "a.png", img, {"seed": 3, "camera": {"yaw": 0.5}})
    assert path == tmp_path / "a.png"
    assert (np.asarray(Image.open(path)) == img).all()
    assert read_png_metadata(path) == {"seed": 3, "camera": {"yaw": 0.5}}
    assert read_png_metadata(save_png(tmp_path / "b.png", img[..., 0])) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "b.png"]  # no temporary files left


def test_save_npy(tmp_path):
    arr = np.linspace(0, 1, 6, dtype=np.float32).reshape(2, 3)
    path = save_npy(tmp_path / "d.npy", arr)
    assert np.array_equal(np.load(path), arr) and [p.name for p in tmp_path.iterdir()] == ["d.npy"]


def _tie_value() -> torch.Tensor:
    """A raw value whose level is exactly 126.5 after float32 rounding (found, not assumed, per machine)."""
    y = torch.tensor(126.5 / 255, dtype=torch.float32)
    for k in range(-8, 9):
        x = (y + k * torch.finfo(torch.float32).eps * 0.5 - 0.5) * 2
        if ((x.clamp(-1, 1) * 0.5 + 0.5) * 255).item() == 126.5:
            return x
    pytest.skip("no exact tie near 126.5 on this float path")


def test_raw_to_uint8_owns_both_roundings():
    x = torch.tensor([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0])
    expected = [0, 0, 128, 191, 255, 255]
    assert raw_to_uint8(x).tolist() == expected and raw_to_uint8(x, rounding="half_even").tolist() == expected
    tie = _tie_value()
    assert raw_to_uint8(tie).item() == 127 and raw_to_uint8(tie, rounding="half_even").item() == 126
    image = torch.rand(2, 3, 4, 5) * 2 - 1
    np.testing.assert_array_equal(to_uint8(image), raw_to_uint8(image).movedim(-3, -1).numpy())
    with pytest.raises(EpigrafError, match="rounding must be one of half_up, half_even"):
        raw_to_uint8(x, rounding="down")
