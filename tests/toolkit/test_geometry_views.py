"""``geometry_views``: stills and turntables of a model's lit iso-surface, with their metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from epigraf_tools.camera import Camera
from epigraf_tools.errors import EpigrafError
from epigraf_tools.geometry_views import GeometryShading, render_geometry_video, save_geometry_samples
from epigraf_tools.images import read_png_metadata
from epigraf_tools.trajectories import get_trajectory
from epigraf_tools.video import VideoOptions, count_frames

SHADING = GeometryShading(volume_resolution=32, method="separable")


def test_samples_write_images_maps_and_metadata(tiny_generator, tmp_path):
    cams = [Camera.default(tiny_generator.config), Camera.default(tiny_generator.config, yaw=0.5)]
    files = save_geometry_samples(
        tiny_generator, [0, 2], tmp_path, cams, resolution=24, shading=SHADING, grid=True, alpha=True, depth=True
    )
    names = {f.name for f in files}
    assert {"seed0002_view01.png", "seed0000_view00_alpha.npy", "seed0002_view00_depth.npy", "grid.png"} <= names
    meta = read_png_metadata(tmp_path / "seed0000_view01.png")
    side = json.loads((tmp_path / "seed0000.json").read_text())
    assert meta["shading"] == "geometry" and meta["level"] == side["level"] and side["level_source"] == "isodata"
    mask = np.load(tmp_path / "seed0000_view00_alpha.npy")
    assert 0 < mask.mean() < 1  # a tiny random model still has a surface at its isodata level


def test_given_level_is_used(tiny_generator, tmp_path):
    shading = GeometryShading(volume_resolution=16, level=0.5, method="separable")
    save_geometry_samples(tiny_generator, [1], tmp_path, resolution=8, shading=shading)
    side = json.loads((tmp_path / "seed0001.json").read_text())
    assert side["level"] == 0.5 and side["level_source"] == "given"


def test_video_has_one_frame_per_camera(tiny_generator, tmp_path):
    cams, _ = get_trajectory("orbit", 5, base=Camera.default(tiny_generator.config))
    files = render_geometry_video(
        tiny_generator, [0, 1], cams, tmp_path, resolution=16, shading=SHADING, options=VideoOptions(fps=10), grid=True
    )
    assert [f.name for f in files] == ["grid.mp4", "grid.json"]
    assert count_frames(files[0]) == 5
    assert json.loads(files[1].read_text())["seeds"] == [0, 1]


def test_bad_shading_options():
    with pytest.raises(EpigrafError, match="level"):
        GeometryShading(level=float("nan")).validate()
    with pytest.raises(EpigrafError, match="resolution"):
        GeometryShading(volume_resolution=1).validate()
