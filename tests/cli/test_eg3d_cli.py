"""EG3D snapshots on the command line: ``epigraf convert`` writes our folder, and every rendering and
export command runs on the converted folder (or the pickle itself), and so does ``invert``; ``fid`` still
refuses one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eg3d_fixture import load_meta, load_npz
from eg3d_pickle_factory import fixture_snapshot_bytes
from PIL import Image

NOT_YET = "EG3D models are not supported by `epigraf {cmd}` yet"


@pytest.fixture(scope="module")
def eg3d_pkl(tmp_path_factory):
    meta = load_meta()
    g_state = {k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}
    path = tmp_path_factory.mktemp("eg3d") / "network-snapshot-000000.pkl"
    path.write_bytes(fixture_snapshot_bytes(meta, g_state))
    return path


@pytest.fixture(scope="module")
def eg3d_folder(eg3d_pkl, tmp_path_factory):
    from epigraf_tools.checkpoints.official_pickle import convert_official

    return convert_official(eg3d_pkl, tmp_path_factory.mktemp("eg3d-out") / "model")


def _ok(result):
    assert result.exit_code == 0, result.output
    return result


def _png_size(path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size


def test_convert_eg3d_pickle(cli, eg3d_pkl, tmp_path):
    out = tmp_path / "converted"
    result = cli(["convert", eg3d_pkl, out, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "README.md", "official_config.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["model_family"] == "eg3d"


def test_sample_writes_the_super_resolved_image_and_neural_maps(cli, eg3d_folder, tmp_path):
    out = tmp_path / "s"
    _ok(cli(["sample", "--model", eg3d_folder, "--seeds", "0", "--depth", "--normals", "--alpha", "--out", out,
             "--device", "cpu", "--quiet", "--truncation", "0.7"]))  # fmt: skip
    assert _png_size(out / "seed0000.png") == (128, 128)  # the fixture model's SR output
    depth, alpha = np.load(out / "seed0000_depth.npy"), np.load(out / "seed0000_alpha.npy")
    normals = np.load(out / "seed0000_normals.npy")
    assert depth.shape == alpha.shape == (128, 128) and normals.shape == (128, 128, 3)
    hit = alpha > 1e-3
    assert hit.any() and np.all((depth[hit] > 2.0) & (depth[hit] < 3.6))  # within the shifted near/far slab
    np.testing.assert_allclose(np.linalg.norm(normals[hit], axis=-1), 1.0, atol=1e-4)
    meta = json.loads((out / "seed0000.json").read_text())
    ref = load_npz("reference_outputs.npz")
    np.testing.assert_allclose(meta["views"][0]["eg3d_label"][:16], ref["c_cond"][0, :16], atol=1e-6)  # frontal


def test_sample_raw_is_the_neural_render_and_reads_a_pickle(cli, eg3d_pkl, tmp_path):
    out = tmp_path / "raw"
    _ok(cli(["sample", "--model", eg3d_pkl, "--seeds", "1", "--raw", "--yaw", "15", "--degrees", "--out", out,
             "--device", "cpu", "--quiet"]))  # fmt: skip
    assert _png_size(out / "seed0001.png") == (32, 32)  # neural rendering resolution of the fixture model
    assert json.loads((out / "seed0001.json").read_text())["resolution"] == 32


def test_video_and_interpolate(cli, eg3d_folder, tmp_path):
    from epigraf_tools.video import count_frames

    _ok(cli(["video", "--model", eg3d_folder, "--seeds", "0", "--frames", "2", "--raw", "--out", tmp_path / "v",
             "--device", "cpu", "--quiet"]))  # fmt: skip
    assert count_frames(tmp_path / "v" / "seed0000.mp4") == 2
    meta = json.loads((tmp_path / "v" / "seed0000.json").read_text())
    assert (meta["model_family"], meta["image"], meta["resolution"]) == ("eg3d", "neural render (--raw)", 32)
    _ok(cli(["interpolate", "--model", eg3d_folder, "--seeds", "0,1", "--frames", "2", "--raw", "--out",
             tmp_path / "i", "--device", "cpu", "--quiet"]))  # fmt: skip
    assert list((tmp_path / "i").glob("*.mp4"))


def test_export_volume_uses_the_box_warp_cube_and_level_10(cli, eg3d_folder, tmp_path):
    out = tmp_path / "vol"
    _ok(cli(["export-volume", "--model", eg3d_folder, "--seeds", "0", "--resolution", "16", "--out", out,
             "--device", "cpu", "--quiet", "--truncation", "0.7"]))  # fmt: skip
    side = json.loads((out / "seed0000.json").read_text())
    assert side["default_level"] == 10.0
    assert side["grid"]["box"] == pytest.approx([1.1] * 3) and side["grid"]["origin"] == pytest.approx([-0.55] * 3)
    # The fixture's raw density peaks at 9.7 (< 10), so the .cxc falls back to the data's isodata level.
    assert side["suggested_level_source"] == "isodata" and side["stats"]["max"] < 10
    assert f"level {side['suggested_level']:.6g} step 1" in (out / "seed0000.cxc").read_text()


def test_export_mesh_level_auto(cli, eg3d_folder, tmp_path):
    out = tmp_path / "mesh"
    _ok(cli(["export-mesh", "--model", eg3d_folder, "--seeds", "0", "--resolution", "24", "--level", "auto",
             "--out", out, "--device", "cpu", "--quiet", "--truncation", "0.7"]))  # fmt: skip
    report = json.loads((out / "seed0000.mesh.json").read_text())
    assert report["model_default_level"] == 10.0 and report["faces"] > 0
    assert report["level_source"] == "isodata"  # 10 lies above this tiny model's densities (see above)
    assert (out / "seed0000.ply").is_file()


def test_models_describes_and_checks_an_eg3d_folder(cli, eg3d_folder):
    info = json.loads(_ok(cli(["models", "--model", eg3d_folder, "--check", "--device", "cpu"])).stdout)
    assert info["config"]["model_family"] == "eg3d"
    assert (info["check"]["num_ws"], info["check"]["img_resolution"]) == (14, 128)


def test_fid_still_refuses_an_eg3d_folder(cli, one_error_line, eg3d_folder, tmp_path):
    line = one_error_line(cli(["fid", "--model", eg3d_folder, "--data", tmp_path / "none.zip", "--quiet"]))
    assert NOT_YET.format(cmd="fid") in line


def test_condition_on_view_changes_the_latent_and_is_recorded(cli, one_error_line, eg3d_folder, model_dir, tmp_path):
    base = ["sample", "--seeds", "0", "--raw", "--yaw", "0.5", "--device", "cpu", "--quiet"]
    _ok(cli([*base, "--model", eg3d_folder, "--out", tmp_path / "a"]))
    _ok(cli([*base, "--model", eg3d_folder, "--out", tmp_path / "b", "--condition-on-view"]))
    a, b = (json.loads((tmp_path / x / "seed0000.json").read_text()) for x in "ab")
    assert a["eg3d_conditioning_label"] != b["eg3d_conditioning_label"]
    np.testing.assert_allclose(b["eg3d_conditioning_label"], b["views"][0]["eg3d_label"], atol=1e-6)
    pix = [np.asarray(Image.open(tmp_path / x / "seed0000.png")) for x in "ab"]
    assert not np.array_equal(*pix)
    line = one_error_line(cli([*base, "--model", model_dir, "--out", tmp_path / "c", "--condition-on-view"]))
    assert "only EG3D models condition" in line


def test_export_volume_fast_eg3d_paths_equal_the_plain_one(cli, eg3d_folder, tmp_path):
    """The separable trick on EG3D's decoder (eg3d_volume) in the model world: the same MRC as voxel by voxel."""
    import mrcfile

    volumes = {}
    for method in ("naive", "separable"):
        out = tmp_path / method
        _ok(cli(["export-volume", "--model", eg3d_folder, "--seeds", "0", "--resolution", "11",
                 "--box", "0.3,0.25,0.2", "--center", "0.02,-0.01,0.03", "--method", method, "--out", out,
                 "--device", "cpu", "--quiet"]))  # fmt: skip
        with mrcfile.open(out / "seed0000.mrc") as mrc:
            volumes[method] = mrc.data.copy()
    assert volumes["naive"].shape == (11, 11, 11)
    # float32 sums in another order (plane features first, then the first layer): a few ulps of the values
    np.testing.assert_allclose(volumes["separable"], volumes["naive"], atol=2e-5, rtol=1e-5)


def test_export_mesh_of_an_eg3d_volume_file_takes_colours_from_the_model(cli, eg3d_folder, tmp_path):
    vol = tmp_path / "vol"
    _ok(cli(["export-volume", "--model", eg3d_folder, "--seeds", "0", "--resolution", "16", "--out", vol,
             "--device", "cpu", "--quiet", "--truncation", "0.7"]))  # fmt: skip
    _ok(cli(["export-mesh", "--volume", vol / "seed0000.mrc", "--model", eg3d_folder, "--colors", "--out",
             tmp_path / "mesh", "--device", "cpu", "--quiet"]))  # fmt: skip
    report = json.loads((tmp_path / "mesh" / "seed0000.mesh.json").read_text())
    assert report["colors"] and report["model_default_level"] == 10.0


def test_compare_geometry_puts_an_eg3d_model_beside_an_epigraf_one(cli, eg3d_folder, tmp_path):
    """The paper's comparison: both families' volumes, meshes, one .cxc at each model's level, an mp4."""
    import imageio.v3 as iio

    out = tmp_path / "cmp"
    _ok(cli(["compare-geometry", "--models", f"default,{eg3d_folder}", "--seeds", "1", "--resolution", "24",
             "--video-resolution", "16", "--frames", "4", "--out", out, "--device", "cpu", "--quiet"]))  # fmt: skip
    summary = json.loads((out / "compare.json").read_text())
    folders = [m["folder"] for m in summary["models"]]
    assert folders[0] == "default" and len(folders) == 2
    for folder in folders:
        for ext in ("mrc", "json", "cxc", "ply", "mesh.json"):
            assert (out / folder / f"seed0001.{ext}").is_file(), (folder, ext)
    eg3d_side = json.loads((out / folders[1] / "seed0001.json").read_text())
    assert eg3d_side["default_level"] == 10.0  # EG3D's recommended level travels with its volume
    script = (out / "compare.cxc").read_text()
    assert f'open "{folders[1]}/seed0001.mrc" format mrc' in script and "tile #1-2" in script
    frames = iio.imread(out / "turntable_seed0001.mp4", plugin="FFMPEG")
    assert frames.shape[0] == 4 and frames.shape[1:3] == (16, 32)


def test_layer_bg_is_refused_as_for_an_epigraf_model_without_a_background(cli, one_error_line, eg3d_folder, tmp_path):
    for cmd in ("sample", "video"):
        res = cli([cmd, "--model", eg3d_folder, "--layer", "bg", "--out", tmp_path / cmd, "--device", "cpu", "--quiet"])
        one_error_line(res, "layer 'bg' needs a model with a background network")


def test_video_condition_on_view_conditions_each_frame_on_its_camera(cli, one_error_line, eg3d_folder, model_dir,
                                                                     tmp_path):  # fmt: skip
    from epigraf_tools.video import count_frames

    base = ["video", "--seeds", "0", "--raw", "--trajectory", "orbit", "--frames", "3", "--device", "cpu", "--quiet"]
    _ok(cli([*base, "--model", eg3d_folder, "--out", tmp_path / "v", "--condition-on-view"]))
    assert count_frames(tmp_path / "v" / "seed0000.mp4") == 3
    meta = json.loads((tmp_path / "v" / "seed0000.json").read_text())
    assert meta["eg3d_conditioning"] == "each frame on its own camera" and "eg3d_conditioning_label" not in meta
    labels = np.array(meta["eg3d_conditioning_labels"])
    assert labels.shape == (3, 25) and not np.allclose(labels[0], labels[1])
    line = one_error_line(cli([*base, "--model", model_dir, "--out", tmp_path / "e", "--condition-on-view"]))
    assert "only EG3D models condition" in line
    latent = tmp_path / "any.npz"
    latent.write_bytes(b"")
    line = one_error_line(cli([*base, "--model", eg3d_folder, "--condition-on-view", "--latent", latent]))
    assert "a --latent is already a w" in line
    line = one_error_line(cli([*base, "--model", eg3d_folder, "--condition-on-view", "--shading", "geometry"]))
    assert "drop --shading geometry" in line


def test_invert_a_seed_picture_then_render_its_latent_with_the_tuned_folder(cli, one_error_line, eg3d_folder, tmp_path):
    """invert -> NAME.npz + NAME-pti/ (an EG3D folder) -> sample / export-mesh / export-volume / video --latent."""
    from epigraf_tools.camera import Camera
    from epigraf_tools.latent_files import load_latent, save_latent

    view = ["--yaw", "20", "--pitch", "80", "--degrees"]
    _ok(cli(["sample", "--model", eg3d_folder, "--seeds", "3", *view, "--out", tmp_path / "pic", "--device", "cpu",
             "--quiet"]))  # fmt: skip
    photo = tmp_path / "pic" / "seed0003.png"
    inv = tmp_path / "inv"
    res = _ok(cli(["invert", photo, "--model", eg3d_folder, *view, "--steps", "2", "--pti-steps", "1",
                   "--space", "w+", "--out", inv, "--device", "cpu"]))  # fmt: skip
    assert f"--latent {inv / 'seed0003.npz'} --model {inv / 'seed0003-pti'}" in res.output
    latent = load_latent(inv / "seed0003.npz")
    assert latent.ws.shape == (14, 512) and latent.space == "w+" and latent.tuned_model == "seed0003-pti"
    assert latent.metadata["model_family"] == "eg3d" and len(latent.metadata["eg3d_conditioning_label"]) == 25
    assert json.loads((inv / "seed0003-pti" / "config.json").read_text())["model_family"] == "eg3d"
    assert _png_size(inv / "seed0003.png") == (128 * 6, 128)  # target, reconstruction, 4 novel views

    tuned = inv / "seed0003-pti"
    _ok(cli(["sample", "--latent", inv / "seed0003.npz", "--model", tuned, *view, "--out", tmp_path / "s",
             "--device", "cpu", "--quiet"]))  # fmt: skip
    assert _png_size(tmp_path / "s" / "seed0000.png") == (128, 128)
    assert json.loads((tmp_path / "s" / "seed0000.json").read_text())["model"] == f"{tuned} + latent seed0003.npz"
    _ok(cli(["export-mesh", "--latent", inv / "seed0003.npz", "--model", tuned, "--resolution", "16",
             "--level", "auto", "--out", tmp_path / "m", "--device", "cpu", "--quiet"]))  # fmt: skip
    assert (tmp_path / "m" / "seed0000.ply").is_file()
    _ok(cli(["export-volume", "--latent", inv / "seed0003.npz", "--model", tuned, "--resolution", "8", "--out",
             tmp_path / "v", "--device", "cpu", "--quiet"]))  # fmt: skip
    _ok(cli(["video", "--latent", inv / "seed0003.npz", "--model", tuned, "--frames", "2", "--raw", "--out",
             tmp_path / "mp4", "--device", "cpu", "--quiet"]))  # fmt: skip
    assert (tmp_path / "v" / "seed0000.mrc").is_file() and (tmp_path / "mp4" / "seed0000.mp4").is_file()

    # The EG3D label of the same view (EG3D world, neural-resolution intrinsics) names the same camera.
    cam = Camera.from_degrees(20, 80, radius=2.7, fov=latent.camera.fov)
    label = ",".join(f"{v:.9g}" for v in cam.to_eg3d(32, world="eg3d"))
    _ok(cli(["invert", photo, "--model", eg3d_folder, "--camera-label", label, "--steps", "1", "--out",
             tmp_path / "inv2", "--device", "cpu", "--quiet"]))  # fmt: skip
    found = load_latent(tmp_path / "inv2" / "seed0003.npz").camera
    assert (found.yaw, found.pitch) == pytest.approx((cam.yaw, cam.pitch), abs=1e-5)

    wrong = save_latent(tmp_path / "wrong.npz", torch.zeros(1, 10, 512), "w", cam, 128, [], [], {})
    line = one_error_line(cli(["sample", "--latent", wrong, "--model", eg3d_folder, "--out", tmp_path / "x",
                               "--device", "cpu", "--quiet"]))  # fmt: skip
    assert "[14, 512]" in line and "made for another model" in line


@pytest.mark.parametrize(
    ("where", "key", "value", "needle"),
    [
        (None, "neural_rendering_resolution", 100_000, "neural_rendering_resolution must be an integer in [2, 128]"),
        (None, "neural_rendering_resolution", 0, "neural_rendering_resolution must be an integer"),
        (None, "neural_rendering_resolution", "abc", "neural_rendering_resolution must be an integer"),
        (None, "img_resolution", 1 << 20, "img_resolution must be a power of two <= 4096"),
        ("rendering_kwargs", "depth_resolution", 1_000_000, "depth_resolution must be an integer in [2, 1024]"),
        ("rendering_kwargs", "depth_resolution", "48", "depth_resolution must be an integer"),
        ("rendering_kwargs", "box_warp", 0, "box_warp must be positive"),
        ("rendering_kwargs", "ray_start", -1.0, "ray_start must be >= 0"),
        ("rendering_kwargs", "avg_camera_pivot", "x", "avg_camera_pivot must be three numbers"),
        ("rendering_kwargs", "avg_camera_radius", float("nan"), "avg_camera_radius must be a finite number"),
    ],
)
def test_a_hostile_eg3d_config_is_one_line_and_exit_2_before_any_work(
    cli, one_error_line, eg3d_folder, tmp_path, where, key, value, needle
):
    """Values that used to end in a traceback (ZeroDivisionError, ValueError), an out-of-memory error or an
    hours-long render are refused when the folder loads, before any output exists."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(eg3d_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    (config if where is None else config[where])[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    out = tmp_path / "out"
    args = ["sample", "--model", folder, "--seeds", "0", "--out", out, "--device", "cpu", "--quiet"]
    line = one_error_line(cli(args))
    assert "config.json" in line and needle in line, line
    assert not out.exists()


def test_a_camera_inside_the_slab_is_refused_before_any_output_but_not_for_geometry(cli, one_error_line, eg3d_folder,
                                                                                   tmp_path):  # fmt: skip
    out = tmp_path / "never"
    base = ["--model", eg3d_folder, "--radius", "0.05", "--device", "cpu", "--quiet"]
    for cmd in (["sample", "--seeds", "0"], ["video", "--seeds", "0", "--frames", "2"],
                ["interpolate", "--seeds", "0,1", "--frames", "2"]):  # fmt: skip
        line = one_error_line(cli([*cmd, *base, "--out", out]))
        assert "inside the object's slab; cameras must be farther than 0.45" in line, line
        assert not out.exists()
    geometry = ["--shading", "geometry", "--resolution", "16", "--volume-resolution", "32"]
    _ok(cli(["sample", "--seeds", "0", *base, *geometry, "--out", out]))
    assert (out / "seed0000.png").is_file()
