"""epigraf_tools/colmap_model.py: the text reader (comments, empty point lines, camera models, bad values)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from epigraf_tools.colmap_model import ColmapError, find_model, quaternion_to_rotation, read_model


def test_quaternion_matches_scipy() -> None:
    rng = np.random.RandomState(0)
    for _ in range(5):
        q = rng.randn(4)
        q /= np.linalg.norm(q)
        expected = Rotation.from_quat([q[1], q[2], q[3], q[0]]).as_matrix()  # scipy: scalar last
        np.testing.assert_allclose(quaternion_to_rotation(*q), expected, atol=1e-12)
    with pytest.raises(ColmapError, match="not a unit quaternion"):
        quaternion_to_rotation(2.0, 0.0, 0.0, 0.0)


def _write(folder: Path, cameras: str, images: str) -> Path:
    model = folder / "sparse" / "0"
    model.mkdir(parents=True)
    (model / "cameras.txt").write_text(cameras)
    (model / "images.txt").write_text(images)
    return model


def test_reads_models_points_and_comments(tmp_path: Path) -> None:
    model = _write(
        tmp_path,
        "# comment\n1 SIMPLE_RADIAL 40 30 50.0 20.0 15.0 0.01\n2 PINHOLE 40 30 50 52 20 15\n",
        "# two lines per image\n1 1 0 0 0 0 0 4 2 a.png\n\n2 0 1 0 0 1 0 4 1 b c.png\n10.0 5.0 -1\n",
    )
    assert find_model(tmp_path) == model
    cameras, images = read_model(model)
    assert cameras[1].fx == cameras[1].fy == 50.0 and cameras[1].distortion == (0.01,)
    assert (cameras[2].fy, cameras[2].cx) == (52.0, 20.0)
    assert [im.name for im in images] == ["a.png", "b c.png"]
    np.testing.assert_allclose(images[0].cam2world_opencv()[:3, 3], [0, 0, -4])
    np.testing.assert_allclose(images[1].rotation, np.diag([1.0, -1.0, -1.0]), atol=1e-12)


@pytest.mark.parametrize(
    ("cameras", "images", "message"),
    [
        ("1 FISHEYE 4 4 1 2 2 0\n", "", "not supported"),
        ("1 PINHOLE 4 4 1 2\n", "", "needs at least 4"),
        ("1 PINHOLE 4 4 1 x 2 2\n", "", "must be numbers"),
        ("1 PINHOLE 4 4 1 1 2 2\n", "1 1 0 0 0 0 0\n", "expected 'IMAGE_ID"),
        ("1 PINHOLE 4 4 1 1 2 2\n", "1 0 0 0 0 0 0 1 1 a.png\n\n", "zero or not finite"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, cameras: str, images: str, message: str) -> None:
    model = _write(tmp_path, cameras, images)
    with pytest.raises(ColmapError, match=message):
        read_model(model)


def test_binary_model_without_pycolmap_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "sparse"
    model.mkdir()
    (model / "cameras.bin").write_bytes(b"\0" * 8)
    (model / "images.bin").write_bytes(b"\0" * 8)
    monkeypatch.setitem(sys.modules, "pycolmap", None)  # import fails as if not installed
    assert find_model(tmp_path) == model
    with pytest.raises(ColmapError, match=r"install pycolmap \(pip install 'epigraf-tools\[colmap\]'\)"):
        read_model(model)
