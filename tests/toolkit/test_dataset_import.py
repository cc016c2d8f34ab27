"""epigraf_tools/dataset_import.py: round trips from every source format back to the synthetic ground truth."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from posed_sources import (
    make_synth,
    read_zip_meta,
    synth_truth,
    write_angles_csv,
    write_colmap_text,
    write_eg3d,
    write_transforms,
)

from epigraf_tools.dataset_import import DatasetImportError, ImportOptions, import_dataset
from epigraf_tools.pose_normalise import PoseError
from epigraf_tools.training.dataset_cameras import read_dataset_cameras

WRITERS = {"eg3d": write_eg3d, "transforms": write_transforms, "colmap": write_colmap_text, "angles": write_angles_csv}
TOL = 1e-5  # the bar; float64 pose math reaches ~1e-15, the margin covers JSON and other BLAS builds


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth") / "s.zip")


def _angles(meta: dict) -> np.ndarray:
    return np.array(list(meta["camera_angles"].values()))


@pytest.mark.parametrize("fmt", list(WRITERS))
def test_round_trip_gives_the_synthetic_poses(fmt: str, synth: Path, tmp_path: Path) -> None:
    names, truth, cam = synth_truth(synth)
    src = WRITERS[fmt](synth, tmp_path / "src")
    opts = ImportOptions(fov=cam["fov"]) if fmt == "angles" else ImportOptions()
    report = import_dataset(src, tmp_path / "out.zip", opts)
    assert report.format == fmt and report.num_images == len(names) and report.resolution == 16
    meta = read_zip_meta(tmp_path / "out.zip")
    np.testing.assert_allclose(_angles(meta), truth, atol=TOL, rtol=0)
    assert abs(meta["camera"]["fov"] - cam["fov"]) < 1e-6
    assert set(meta["camera"]) == set(cam)  # the keys `dataset synth` writes
    parsed = read_dataset_cameras(meta)  # and what training reads back is what was written
    assert parsed is not None
    back = parsed.to_json()
    assert back.pop("pose_distribution") == pytest.approx(meta["camera"]["pose_distribution"])
    assert back == {k: v for k, v in meta["camera"].items() if k not in ("pose_distribution", "background")}
    pose = meta["camera"]["pose_distribution"]
    assert pose["dist"] == "uniform"
    assert abs(truth[:, 1] - pose["vertical_mean"]).max() <= pose["vertical_stddev"] + 1e-12
    yaw_from_centre = np.angle(np.exp(1j * (truth[:, 0] - pose["horizontal_mean"])))
    assert abs(abs(yaw_from_centre).max() - pose["horizontal_stddev"]) < 1e-9
    if fmt != "angles":
        assert max(abs(r - 1.0) for r in meta["camera_radii"].values()) < TOL
        # The recorded transform maps the source's camera centres onto the orbit.
        transform = np.array(meta["import"]["transform"])
        assert (
            abs(np.linalg.det(transform[:3, :3]) - 1 / {"eg3d": 1, "transforms": 2.5, "colmap": 3.0}[fmt] ** 3) < 1e-9
        )
    with zipfile.ZipFile(tmp_path / "out.zip") as out, zipfile.ZipFile(synth) as ref:
        first = sorted(n for n in out.namelist() if n.endswith(".png"))[0]
        source_name = meta["import"]["source_files"][first]
        written = np.asarray(Image.open(io.BytesIO(out.read(first))))
        assert np.array_equal(written, np.asarray(Image.open(io.BytesIO(ref.read(names[0])))))  # same size: untouched
        assert source_name.endswith(Path(names[0]).name)


def test_binary_colmap_through_pycolmap(synth: Path, tmp_path: Path) -> None:
    pycolmap = pytest.importorskip("pycolmap", reason="binary COLMAP models need the optional pycolmap ([colmap])")
    _, truth, _ = synth_truth(synth)
    src = write_colmap_text(synth, tmp_path / "src")
    model = src / "sparse" / "0"
    reconstruction = pycolmap.Reconstruction()
    reconstruction.read_text(str(model))
    reconstruction.write_binary(str(model))
    for name in ("cameras.txt", "images.txt", "points3D.txt"):
        (model / name).unlink(missing_ok=True)
    assert (model / "images.bin").is_file()
    import_dataset(src, tmp_path / "out.zip", ImportOptions(format="colmap"))
    np.testing.assert_allclose(_angles(read_zip_meta(tmp_path / "out.zip")), truth, atol=TOL, rtol=0)


def test_crop_resize_and_transparency(tmp_path: Path) -> None:
    """24x16 RGBA images: the centred 16x16 square, resized to 8, transparency on white; fov from the crop."""
    rows = ["file,yaw,pitch"]
    for k in range(3):
        rgba = np.zeros([16, 24, 4], np.uint8)
        rgba[:, 4:20] = (200, 10, 10, 255)  # opaque red in the middle, transparent margins
        rgba[:, 4:6, 3] = 0
        Image.fromarray(rgba).save(tmp_path / f"v{k}.png")
        rows.append(f"v{k}.png,{0.5 * k - 0.5},{math.pi / 2}")
    (tmp_path / "poses.csv").write_text("\n".join(rows))
    opts = ImportOptions(resolution=8, fov=20.0, angle_units="radians")
    report = import_dataset(tmp_path / "poses.csv", tmp_path / "out.zip", opts)
    assert report.resolution == 8 and report.camera["fov"] == 20.0
    with zipfile.ZipFile(tmp_path / "out.zip") as zf:
        img = np.asarray(Image.open(io.BytesIO(zf.read("images/000000.png"))))
    assert img.shape == (8, 8, 3)
    assert img[4, 0].min() > 200 and img[4, 4, 0] > 150 > img[4, 4, 1]  # white where transparent, red inside


def test_centre_yaw_rotates_the_mean_view_to_the_front(synth: Path, tmp_path: Path) -> None:
    _, truth, _ = synth_truth(synth)
    src = write_eg3d(synth, tmp_path / "src")
    import_dataset(src, tmp_path / "out.zip", ImportOptions(centre_yaw=True))
    meta = read_zip_meta(tmp_path / "out.zip")
    yaw = _angles(meta)[:, 0]
    assert abs(math.atan2(np.sin(yaw).mean(), np.cos(yaw).mean())) < 1e-9
    offset = meta["import"]["yaw_offset"]
    np.testing.assert_allclose(np.cos(yaw - (truth[:, 0] - offset)), 1.0, atol=1e-9)


def test_transforms_z_up_needs_no_flag_but_a_wrong_up_changes_the_poses(synth: Path, tmp_path: Path) -> None:
    _, truth, _ = synth_truth(synth)
    src = write_transforms(synth, tmp_path / "src")
    report = import_dataset(src, tmp_path / "a.zip", ImportOptions(up="+y"))
    assert report.up == "+y"
    assert np.abs(_angles(read_zip_meta(tmp_path / "a.zip")) - truth).max() > 0.1


def test_refusals_happen_before_writing(synth: Path, tmp_path: Path) -> None:
    src = write_transforms(synth, tmp_path / "src")
    top = json.loads((src / "transforms.json").read_text())
    top["frames"][2]["transform_matrix"][0][0] *= 2  # a scaled matrix is no pose
    (src / "transforms.json").write_text(json.dumps(top))
    with pytest.raises(PoseError, match="not a rotation"):
        import_dataset(src, tmp_path / "out.zip")
    assert not (tmp_path / "out.zip").exists()
    with pytest.raises(DatasetImportError, match="power of two"):
        import_dataset(src, tmp_path / "out.zip", ImportOptions(resolution=24))
    with pytest.raises(DatasetImportError, match="must be a .zip"):
        import_dataset(src, tmp_path / "out.tar")


def test_eg3d_zip_and_angles_json_sources(synth: Path, tmp_path: Path) -> None:
    """An EG3D dataset as a zip, and EpiGRAF's own {file: [yaw, pitch, roll]} JSON read as an angles table."""
    _, truth, cam = synth_truth(synth)
    folder = write_eg3d(synth, tmp_path / "eg3d")
    with zipfile.ZipFile(tmp_path / "eg3d.zip", "w") as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    import_dataset(tmp_path / "eg3d.zip", tmp_path / "a.zip")
    np.testing.assert_allclose(_angles(read_zip_meta(tmp_path / "a.zip")), truth, atol=TOL, rtol=0)
    with zipfile.ZipFile(synth) as zf:
        zf.extractall(tmp_path / "own")
    opts = ImportOptions(angle_units="radians", fov=cam["fov"], resolution=8)
    report = import_dataset(tmp_path / "own" / "dataset.json", tmp_path / "b.zip", opts)
    assert report.format == "angles" and report.resolution == 8
    np.testing.assert_allclose(_angles(read_zip_meta(tmp_path / "b.zip")), truth, atol=TOL, rtol=0)
