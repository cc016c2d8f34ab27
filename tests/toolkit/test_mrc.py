"""epigraf_tools/mrc.py: header round trip, ChimeraX handedness, sidecar, script, corrupt files."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import torch
from analytic_fields import sphere_generator

from epigraf_tools.errors import EpigrafError
from epigraf_tools.mrc import export_volume, read_mrc, write_mrc
from epigraf_tools.volume import make_volume_grid


def read_like_chimerax(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse the MRC bytes the way ChimeraX's reader does (independent of mrcfile).

    Returns (matrix [ns, nr, nc] with columns fastest, step (x, y, z), origin (x, y, z)).
    """
    raw = open(path, "rb").read()
    ints = np.frombuffer(raw[:1024], dtype="<i4")
    floats = np.frombuffer(raw[:1024], dtype="<f4")
    nc, nr, ns, mode = ints[0], ints[1], ints[2], ints[3]
    mx, my, mz = ints[7], ints[8], ints[9]
    xlen, ylen, zlen = floats[10], floats[11], floats[12]
    mapc, mapr, maps = ints[16], ints[17], ints[18]
    assert mode == 2 and (mapc, mapr, maps) == (1, 2, 3)
    assert raw[208:212] == b"MAP "
    origin = floats[49:52].astype(np.float64)  # words 50-52: xorigin, yorigin, zorigin
    nsymbt = ints[23]
    data = np.frombuffer(raw[1024 + nsymbt :], dtype="<f4").reshape(ns, nr, nc)
    step = np.array([xlen / mx, ylen / my, zlen / mz], dtype=np.float64)
    return data, step, origin


def test_header_round_trip(tmp_path):
    vol = np.random.default_rng(0).normal(size=(4, 5, 6)).astype(np.float32)  # [x, y, z]
    path = write_mrc(tmp_path / "v.mrc", vol, voxel_size=(0.1, 0.2, 0.3), origin=(-1.0, 2.0, 3.5))
    assert mrcfile.validate(str(path), print_file=open("/dev/null", "w"))
    back = read_mrc(path)
    np.testing.assert_array_equal(back.data, vol)
    np.testing.assert_allclose(back.voxel_size, (0.1, 0.2, 0.3), rtol=1e-6)
    np.testing.assert_allclose(back.origin, (-1.0, 2.0, 3.5), rtol=1e-6)
    with mrcfile.open(path) as mrc:
        assert mrc.data.shape == (6, 5, 4)  # [z, y, x]
        assert mrc.data[5, 4, 3] == vol[3, 4, 5]
        assert mrc.header.mode == 2


def test_blob_at_plus_x_plus_y_is_there_in_chimerax(tmp_path):
    """Handedness: an asymmetric field must appear at its world position when read as ChimeraX reads MRC."""
    center = (0.08, 0.05, -0.03)
    G, planes = sphere_generator(radius=0.04, center=center)
    grid = make_volume_grid(0.2, (21, 25, 19))  # different sizes per axis catch any axis swap
    info = export_volume(G, planes, tmp_path / "blob.mrc", grid, method="separable", metadata={"seed": 7})
    data, step, origin = read_like_chimerax(tmp_path / "blob.mrc")
    assert data.shape == (19, 25, 21)
    k, j, i = np.unravel_index(np.argmax(data), data.shape)  # ChimeraX: data[k, j, i] at origin + (i, j, k) * step
    peak = origin + np.array([i, j, k]) * step
    np.testing.assert_allclose(peak, center, atol=0.6 * step.max())
    np.testing.assert_allclose(step, grid.voxel_size, rtol=1e-6)
    np.testing.assert_allclose(origin, grid.origin, rtol=1e-6)
    # the official order (x slowest) would have put the peak at (z, y, x): mirrored through x = z
    assert abs(peak[0] - center[2]) > 0.05
    assert mrcfile.validate(str(tmp_path / "blob.mrc"), print_file=open("/dev/null", "w"))

    side = json.loads((tmp_path / "blob.json").read_text())
    assert side["seed"] == 7 and side["value"] == "raw"
    assert side["grid"]["resolution"] == [21, 25, 19]
    assert side["stats"]["max"] == pytest.approx(float(data.max()))
    assert side["suggested_level"] == info.suggested_level
    cxc = (tmp_path / "blob.cxc").read_text()
    assert 'open "blob.mrc"' in cxc and "lighting full" in cxc
    assert f"level {info.suggested_level:.6g}" in cxc


def test_export_leaves_nothing_behind_on_failure(tmp_path):
    G, planes = sphere_generator()
    grid = make_volume_grid(0.2, 8)

    def boom(done, total):
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        export_volume(G, planes, tmp_path / "x.mrc", grid, method="separable", progress=boom)
    assert list(tmp_path.iterdir()) == []


def test_sigma_volume_and_read_back(tmp_path):
    G, planes = sphere_generator()
    grid = make_volume_grid(0.2, 6, box=0.2, center=(0.01, 0, 0))
    export_volume(G, planes, tmp_path / "s.mrc", grid, value="sigma", method="separable", chimerax=False)
    assert not (tmp_path / "s.cxc").exists()
    vol = read_mrc(tmp_path / "s.mrc")
    assert vol.sidecar["value"] == "sigma"
    assert vol.data.min() >= 0  # softplus
    expected = G.query(planes, torch.tensor([[[-0.09, -0.1, -0.1]]]))["sigma"].item()
    assert vol.data[0, 0, 0] == pytest.approx(expected, rel=1e-5)


def test_axis_map_permutations_are_honoured(tmp_path):
    vol = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)  # [x, y, z]
    path = tmp_path / "p.mrc"
    with mrcfile.new(path) as mrc:
        # file columns = z, rows = y, sections = x: data[x, y, z] as stored
        mrc.set_data(vol.copy())
        mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 3, 2, 1
    back = read_mrc(path)
    np.testing.assert_array_equal(back.data, vol)


@pytest.mark.parametrize(
    "content",
    [b"", b"not an mrc file at all" * 10, None],
    ids=["empty", "garbage", "truncated"],
)
def test_corrupt_files_are_user_errors(tmp_path, content):
    path = tmp_path / "bad.mrc"
    if content is None:
        write_mrc(path, np.zeros((8, 8, 8), np.float32), 1.0)
        path.write_bytes(path.read_bytes()[:-100])
    else:
        path.write_bytes(content)
    with pytest.raises(EpigrafError, match="bad.mrc"):
        read_mrc(path)
    with pytest.raises(EpigrafError, match="does not exist"):
        read_mrc(tmp_path / "missing.mrc")


def test_volume_appears_before_its_sidecars(tmp_path, monkeypatch):
    """A kill at any moment must never leave a .json/.cxc describing a volume that is not there."""
    import epigraf_tools.atomic as atomic

    G, planes = sphere_generator()
    seen: dict[str, list[str]] = {}
    real_replace = atomic.os.replace

    def recording_replace(src, dst):
        seen[str(dst)] = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("."))
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", recording_replace)
    export_volume(G, planes, tmp_path / "x.mrc", make_volume_grid(0.2, 8), method="separable")
    assert seen[str(tmp_path / "x.mrc")] == []  # nothing under a final name before the volume
    assert seen[str(tmp_path / "x.json")] == ["x.mrc"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.cxc", "x.json", "x.mrc"]


def test_failed_volume_write_leaves_no_sidecar(tmp_path, monkeypatch):
    import epigraf_tools.atomic as atomic

    G, planes = sphere_generator()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError):
        export_volume(G, planes, tmp_path / "x.mrc", make_volume_grid(0.2, 8), method="separable")
    assert list(tmp_path.iterdir()) == []


def test_failed_sidecar_keeps_the_volume_and_drops_stale_sidecars(tmp_path, monkeypatch):
    import epigraf_tools.mrc as mrc_module

    G, planes = sphere_generator()
    (tmp_path / "x.json").write_text("{}")  # from an earlier export of another volume
    (tmp_path / "x.cxc").write_text("old")

    def failing_write(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mrc_module, "write_text_atomic", failing_write)
    with pytest.raises(OSError):
        export_volume(G, planes, tmp_path / "x.mrc", make_volume_grid(0.2, 8), method="separable")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.mrc"]
    assert read_mrc(tmp_path / "x.mrc").resolution == (8, 8, 8)


def test_chimerax_script_records_a_turntable_movie_only_when_asked():
    from epigraf_tools.mrc import chimerax_script

    plain = chimerax_script("seed0003.mrc", 25.0)
    assert "movie" not in plain and "turn" not in plain
    text = chimerax_script("seed0003.mrc", 25.0, movie="seed0003.mp4")
    assert text.startswith(plain)  # the same scene, then the recording
    lines = text.splitlines()
    record, encode = lines.index("movie record"), lines.index('movie encode "seed0003.mp4" framerate 30')
    assert record < lines.index("turn y 2 180 models #1 center #1") < lines.index("wait 180") < encode
    assert lines.index("turn y -90 models #1 center #1") < record  # the face (+x) turned to the viewer first


def test_export_volume_writes_the_movie_script(tmp_path):
    from epigraf_tools.geometry_export import GridOptions, export_volumes

    from support import make_tiny_generator

    G = make_tiny_generator()
    export_volumes(G, [1], tmp_path, grid=GridOptions(resolution=8, method="separable"), chimerax_movie=True)
    assert 'movie encode "seed0001.mp4"' in (tmp_path / "seed0001.cxc").read_text()
