"""``epigraf invert`` end to end on a tiny model, its bad inputs, and ``--latent`` in the other commands."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from epigraf_tools.images import read_png_metadata
from epigraf_tools.latent_files import load_latent

FAST = ["--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    """A 48x40 RGBA picture: any size and mode must be accepted."""
    path = tmp_path_factory.mktemp("pics") / "photo.png"
    rgba = np.zeros((40, 48, 4), np.uint8)
    rgba[8:32, 12:36] = (40, 60, 200, 255)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


@pytest.fixture(scope="module")
def inverted(cli_runner, model_dir, picture, tmp_path_factory):
    from epigraf_tools.cli.app import app

    out = tmp_path_factory.mktemp("inv")
    args = ["invert", str(picture), "--model", str(model_dir), "--steps", "3", "--pti-steps", "2", "--space", "w+",
            "--yaw", "10", "--pitch", "85", "--degrees", "--out", str(out), "--device", "cpu"]  # fmt: skip
    res = cli_runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    return out, res


def test_invert_writes_latent_tuned_model_and_preview(inverted, model_dir):
    out, res = inverted
    latent = load_latent(out / "photo.npz")
    assert latent.space == "w+" and latent.tuned_model == "photo-pti"
    assert latent.camera.yaw_degrees == pytest.approx(10) and latent.metadata["image"] == "photo.png"
    assert latent.metadata["model"] == str(model_dir) and latent.metadata["options"]["pti_steps"] == 2
    assert (out / "photo-pti" / "config.json").is_file() and (out / "photo-pti" / "model.safetensors").is_file()
    preview = np.asarray(Image.open(out / "photo.png"))
    assert preview.shape == (32, 32 * 6, 3)  # target, reconstruction, 4 novel views
    assert "novel views" in read_png_metadata(out / "photo.png")["layout"]
    assert "LPIPS" in res.output and f"--latent {out / 'photo.npz'} --model {out / 'photo-pti'}" in res.output


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["sample"], ["seed0000.png", "seed0000.json"]),
        (["video", "--frames", "3"], ["seed0000.mp4"]),
        (["export-volume", "--resolution", "16"], ["seed0000.mrc"]),
        (["export-mesh", "--resolution", "16"], ["seed0000.ply"]),
    ],
)
def test_latent_renders_in_every_command(cli, inverted, tmp_path, command, expected):
    out, _ = inverted
    dest = tmp_path / "o"
    res = cli([*command, "--latent", out / "photo.npz", "--model", out / "photo-pti", "--out", dest, *FAST])
    assert res.exit_code == 0, res.output
    assert {p.name for p in dest.iterdir()} >= set(expected)


def test_latent_sample_records_its_source_and_points_to_the_tuned_model(cli, inverted, model_dir, tmp_path):
    out, _ = inverted
    res = cli(["sample", "--latent", out / "photo.npz", "--model", model_dir, "--out", tmp_path, "--device", "cpu"])
    assert res.exit_code == 0, res.output
    assert f"pass --model {out / 'photo-pti'}" in res.stderr
    meta = json.loads((tmp_path / "seed0000.json").read_text())
    assert meta["model"] == f"{model_dir} + latent photo.npz"


def test_latent_for_another_model_is_refused(cli, inverted, tiny_model_dir, tmp_path, one_error_line):
    out, _ = inverted
    other = tiny_model_dir(0, w_dim=64)
    res = cli(["sample", "--latent", out / "photo.npz", "--model", other, "--out", tmp_path, *FAST])
    one_error_line(res, "made for another model")
    res = cli(["export-mesh", "--latent", out / "photo.npz", "--volume", tmp_path / "x.mrc", "--out", tmp_path])
    one_error_line(res, "--latent", "--volume")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--space", "z"], "--space must be 'w' or 'w+'"),
        (["--steps", "0"], "--steps must be an integer"),
        (["--pti-steps", "-3"], "--pti-steps must be an integer"),
        (["--yaw", "5", "--camera-label", "1"], "give the camera one way"),
        (["--camera-label", "1,2,3"], "25 finite numbers"),
        (["--dataset-json", "nope.json"], "--dataset-json nope.json does not exist"),
        (["--pitch", "200"], "pitch"),
    ],
)
def test_bad_arguments_exit_2_before_work(cli, model_dir, picture, tmp_path, args, needle, one_error_line):
    res = cli(["invert", picture, "--model", model_dir, "--out", tmp_path / "o", *args, *FAST])
    one_error_line(res, needle)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_bad_pictures_exit_2(cli, model_dir, picture, tmp_path, one_error_line):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but not really")
    res = cli(["invert", picture, bad, "--model", model_dir, "--out", tmp_path / "o", *FAST])
    one_error_line(res, "cannot read image bad.png")
    assert not (tmp_path / "o" / "photo.npz").exists()  # checked before the first inversion
    res = cli(["invert", tmp_path / "missing.png", "--model", model_dir, "--out", tmp_path / "o", *FAST])
    one_error_line(res, "does not exist")
    twin = tmp_path / "sub" / "photo.jpg"
    twin.parent.mkdir()
    Image.new("RGB", (8, 8)).save(twin)
    res = cli(["invert", picture, twin, "--model", model_dir, "--out", tmp_path / "o", *FAST])
    one_error_line(res, "same outputs")


def test_camera_from_dataset_json_and_label(cli, model_dir, picture, tmp_path):
    from epigraf_tools.camera import Camera
    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.inversion_files import camera_from_dataset_json

    G = load_generator(str(model_dir), progress=False)
    epigraf = tmp_path / "dataset.json"
    epigraf.write_text(json.dumps({"camera_angles": {"00000/photo.png": [0.3, 1.4, 0.0]}}))
    cam = camera_from_dataset_json(G, epigraf, picture)
    assert (cam.yaw, cam.pitch, cam.radius) == pytest.approx((0.3, 1.4, G.config.radius))
    label = Camera(0.3, 1.4, G.config.radius, G.config.fov).to_eg3d(G.config.img_resolution, world="eg3d")
    eg3d = tmp_path / "eg3d.json"
    eg3d.write_text(json.dumps({"labels": [["img/photo.png", label.tolist()]]}))
    cam = camera_from_dataset_json(G, eg3d, picture)
    assert (cam.yaw, cam.pitch) == pytest.approx((0.3, 1.4), abs=1e-5)
    res = cli(["invert", picture, "--model", model_dir, "--dataset-json", eg3d, "--steps", "1", "--out",
               tmp_path / "o", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_latent(tmp_path / "o" / "photo.npz").camera.yaw == pytest.approx(0.3, abs=1e-5)
    text = ",".join(str(v) for v in Camera(0.2, 1.5, G.config.radius, G.config.fov).to_eg3d(32))
    res = cli(["invert", picture, "--model", model_dir, "--camera-label", text, "--steps", "1", "--out",
               tmp_path / "o2", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert load_latent(tmp_path / "o2" / "photo.npz").camera.pitch == pytest.approx(1.5, abs=1e-5)
    missing = tmp_path / "none.json"
    missing.write_text(json.dumps({"camera_angles": {}}))
    with pytest.raises(Exception, match="has no camera for photo.png"):
        camera_from_dataset_json(G, missing, picture)
