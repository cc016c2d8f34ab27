"""Inversion targets from picture files: resize + centre crop, alpha on the model background, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from epigraf_tools.target_images import TargetImageError, prepare_image, read_target


def test_resize_shorter_side_and_centre_crop(tmp_path):
    img = np.zeros((40, 120, 3), np.uint8)
    img[:, 40:80] = 200  # the middle third: what the centre crop keeps
    Image.fromarray(img).save(tmp_path / "wide.png")
    out = read_target(tmp_path / "wide.png", 16, white_back=False)
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert abs(int(out[8, 8, 0]) - 200) <= 2 and out[:, 2:14].min() >= 190


def test_alpha_is_composited_on_the_model_background(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:4, :, :3], rgba[:4, :, 3] = 10, 255  # top half opaque dark, bottom half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white = read_target(tmp_path / "a.png", 8, white_back=True)
    black = read_target(tmp_path / "a.png", 8, white_back=False)
    assert white[0, 0, 0] == black[0, 0, 0] == 10
    assert white[7, 0].tolist() == [255, 255, 255] and black[7, 0].tolist() == [0, 0, 0]
    x = prepare_image(tmp_path / "a.png", 8, True)
    assert tuple(x.shape) == (1, 3, 8, 8) and float(x.max()) == 1.0 and float(x.min()) > -1.0


def test_unreadable_files_are_refused(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image")
    with pytest.raises(TargetImageError, match="cannot read image bad.png"):
        read_target(tmp_path / "bad.png", 8, True)
    with pytest.raises(TargetImageError, match="does not exist"):
        read_target(tmp_path / "none.png", 8, True)
