"""dataset.json's ``camera`` object: parsing, errors, and how it meets explicit options."""

from __future__ import annotations

import math

import pytest

from epigraf_tools.training.dataset_cameras import (
    CAMERA_OPTIONS,
    DatasetCameraError,
    DatasetCameras,
    PoseDistribution,
    read_dataset_cameras,
    resolve_camera_options,
)

SYNTH_LIKE = {
    "fov": 30.0,
    "radius": 1.0,
    "ray_start": 0.7,
    "ray_end": 1.3,
    "cube_scale": 0.35,
    "white_back": True,
    "pose_distribution": {"dist": "uniform", "horizontal_stddev": math.pi, "vertical_stddev": 0.5},
    "note": "ignored",
}
FFHQ = {"fov": 12.0, "radius": 1.0, "ray_start": 0.88, "ray_end": 1.12, "cube_scale": 0.2, "white_back": False}


def test_reads_every_key_and_round_trips():
    cams = read_dataset_cameras({"camera": SYNTH_LIKE})
    assert cams.options() == {k: SYNTH_LIKE[k] for k in CAMERA_OPTIONS}
    assert cams.pose_distribution == PoseDistribution("uniform", 0.0, math.pi, math.pi / 2, 0.5)
    assert read_dataset_cameras({"camera": cams.to_json()}) == cams
    assert read_dataset_cameras({}) is None
    assert read_dataset_cameras({"camera": {"pose_distribution": {"yaw": "uniform(-pi, pi)"}}}) == DatasetCameras()


@pytest.mark.parametrize(
    "camera, words",
    [
        ([30], "'camera' must be an object"),
        ({"fov": "30"}, "camera.fov must be a finite number"),
        ({"fov": 180}, "camera.fov must be below 180"),
        ({"radius": -1}, "camera.radius must be > 0"),
        ({"ray_start": 1.3, "ray_end": 0.7}, "camera.ray_start (1.3) must be below camera.ray_end (0.7)"),
        ({"white_back": "yes"}, "camera.white_back must be true or false"),
        ({"pose_distribution": {"dist": "custom"}}, "pose_distribution.dist must be one of"),
        ({"pose_distribution": {"dist": "normal", "vertical_stddev": -1}}, "vertical_stddev must be >= 0"),
    ],
)
def test_impossible_values_name_the_key(camera, words):
    with pytest.raises(DatasetCameraError) as err:
        read_dataset_cameras({"camera": camera})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_dataset_fills_in_what_is_not_given_and_a_conflict_is_an_error():
    cams = read_dataset_cameras({"camera": {"fov": 30.0, "white_back": True}})
    out = resolve_camera_options({"fov": None, "radius": 1.5}, cams, FFHQ, has_poses=True)
    assert out == {**FFHQ, "fov": 30.0, "white_back": True, "radius": 1.5}  # explicit > dataset > fallback
    assert resolve_camera_options({"fov": 30}, cams, FFHQ, has_poses=True)["fov"] == 30  # same value: no conflict
    with pytest.raises(DatasetCameraError) as err:
        resolve_camera_options({"fov": 12.0}, cams, FFHQ, has_poses=True)
    assert str(err.value) == (
        "fov: the dataset says 30 (dataset.json camera.fov) but the options say 12; drop the option, "
        "or pass --allow-camera-mismatch to train with 12.0"
    )
    with pytest.raises(DatasetCameraError, match="white_back: the dataset says true .* say false"):
        resolve_camera_options({"white_back": False}, cams, FFHQ, has_poses=True)
    said: list[str] = []
    out = resolve_camera_options({"fov": 12.0}, cams, FFHQ, True, allow_mismatch=True, warn=said.append)
    assert out["fov"] == 12.0 and len(said) == 1 and said[0].startswith("warning: fov: the dataset says 30")


def test_pose_distribution_is_used_only_without_per_image_poses():
    cams = read_dataset_cameras({"camera": SYNTH_LIKE})
    assert "camera_dist" not in resolve_camera_options({}, cams, FFHQ, has_poses=True)
    out = resolve_camera_options({"camera_dist": "custom"}, cams, FFHQ, has_poses=False)
    assert out["camera_dist"] == "uniform" and out["camera_vertical_stddev"] == 0.5
    assert "camera_dist" not in resolve_camera_options({"camera_dist": "normal"}, cams, FFHQ, has_poses=False)


def test_the_synthetic_dataset_writes_the_schema(tmp_path):
    import json
    import zipfile

    from epigraf_tools.training.synthetic import SynthConfig, make_synthetic_dataset

    out = make_synthetic_dataset(tmp_path / "s.zip", SynthConfig(num_images=1, resolution=8, supersample=1))
    meta = json.loads(zipfile.ZipFile(out).read("dataset.json"))
    cams = read_dataset_cameras(meta)
    assert cams.options() == {k: SYNTH_LIKE[k] for k in CAMERA_OPTIONS}
    assert cams.pose_distribution == PoseDistribution("uniform", 0.0, math.pi, math.pi / 2, 0.5)
