"""``epigraf export-mesh``: from a model or from an MRC file; reports; one-line exit-2 errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from epigraf_tools.mrc import write_mrc


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir):
    return tiny_model_dir(5)


@pytest.fixture()
def ball_mrc(tmp_path):
    """A ball of radius 0.5 around (1, 2, 3) in a volume with 0.1 voxels."""
    ax = np.arange(21) * 0.1
    X, Y, Z = np.meshgrid(ax + 0.0, ax + 1.0, ax + 2.0, indexing="ij")
    vol = (0.5 - np.sqrt((X - 1) ** 2 + (Y - 2) ** 2 + (Z - 3) ** 2)).astype(np.float32)
    return write_mrc(tmp_path / "ball.mrc", vol, 0.1, origin=(0.0, 1.0, 2.0))


def test_mesh_from_model_with_colours_and_report(cli, model_dir, tmp_path):
    out = tmp_path / "meshes"
    result = cli([
        "export-mesh", "--model", str(model_dir), "--seeds", "1", "--resolution", "24", "--formats", "ply,stl",
        "--largest-component", "--smooth", "3", "--faces", "600", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "faces" in result.stdout and "watertight" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["seed0001.mesh.json", "seed0001.ply", "seed0001.stl"]
    report = json.loads((out / "seed0001.mesh.json").read_text())
    assert report["seed"] == 1 and report["faces"] <= 600 and report["colors"]
    assert report["level_source"] in ("model default", "isodata")
    mesh = trimesh.load(out / "seed0001.ply", process=False)
    assert len(mesh.faces) == report["faces"]
    assert mesh.visual.kind == "vertex"
    half = 0.2  # the tiny model's cube_scale: vertices are world coordinates inside the tri-plane cube
    assert np.abs(mesh.vertices).max() <= half + 0.4 / 23  # (smoothing may move the cut edge by < 1 voxel)


def test_mesh_from_an_mrc_file_in_world_units(cli, ball_mrc, tmp_path):
    out = tmp_path / "m"
    result = cli(["export-mesh", "--volume", str(ball_mrc), "--level", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    mesh = trimesh.load(out / "ball.ply", process=False)
    radii = np.linalg.norm(mesh.vertices - [1.0, 2.0, 3.0], axis=1)
    assert np.abs(radii - 0.5).max() < 0.02
    assert mesh.is_watertight and mesh.volume > 0
    report = json.loads((out / "ball.mesh.json").read_text())
    assert report["level"] == 0 and report["level_source"] == "given" and not report["colors"]


def test_level_outside_the_data_range(cli, one_error_line, ball_mrc, tmp_path):
    out = tmp_path / "m"
    line = one_error_line(cli(["export-mesh", "--volume", str(ball_mrc), "--level", "5", "-o", str(out)]))
    assert "outside the volume's value range [" in line
    assert not out.exists() or not any(out.iterdir())


def test_corrupt_mrc(cli, one_error_line, tmp_path):
    bad = tmp_path / "bad.mrc"
    bad.write_bytes(b"\x00" * 100)
    out = tmp_path / "m"
    line = one_error_line(cli(["export-mesh", "--volume", str(bad), "--out", str(out)]))
    assert "bad.mrc" in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resolution", "0"], "at least 2"),
        (["--resolution", "3000"], "--force"),
        (["--formats", "ply,fbx"], "unknown mesh format"),
        (["--level", "high"], "--level"),
        (["--faces", "2"], "--faces"),
        (["--smooth", "-1"], "--smooth"),
    ],
)
def test_bad_arguments(cli, one_error_line, model_dir, tmp_path, extra, message):
    out = tmp_path / "m"
    result = cli(["export-mesh", "--model", str(model_dir), "--out", str(out), *extra])
    assert message in one_error_line(result)
    assert not out.exists()


def test_volume_and_seeds_are_exclusive_and_colours_need_a_model(cli, one_error_line, ball_mrc, tmp_path):
    line = one_error_line(cli(["export-mesh", "--volume", str(ball_mrc), "--seeds", "0"]))
    assert "not both" in line
    line = one_error_line(cli(["export-mesh", "--volume", str(ball_mrc), "--colors"]))
    assert "--model" in line


def test_textured_glb_and_obj_from_a_model(cli, model_dir, tmp_path):
    pytest.importorskip("xatlas", reason="textured meshes need the optional xatlas package ([texture] extra)")
    out = tmp_path / "tex"
    result = cli([
        "export-mesh", "--model", str(model_dir), "--seeds", "2", "--resolution", "20", "--formats", "glb,obj,ply",
        "--texture", "64", "--out", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"seed0002.{ext}" for ext in ("glb", "mesh.json", "mtl", "obj", "ply", "png")]
    report = json.loads((out / "seed0002.mesh.json").read_text())
    assert report["texture"] == 64 and report["files"] == ["seed0002.glb", "seed0002.png", "seed0002.mtl",
                                                           "seed0002.obj", "seed0002.ply"]  # fmt: skip
    glb = trimesh.load(out / "seed0002.glb", force="mesh", process=False)
    assert isinstance(glb.visual, trimesh.visual.TextureVisuals)
    assert trimesh.load(out / "seed0002.ply", process=False).visual.kind == "vertex"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--texture", "64", "--formats", "ply"], "needs a format that carries one"),
        (["--texture", "64", "--formats", "glb", "--no-colors"], "drop --no-colors or --texture"),
        (["--texture", "9", "--formats", "glb"], "texture size"),
    ],
)
def test_bad_texture_options(cli, one_error_line, model_dir, tmp_path, extra, message):
    pytest.importorskip("xatlas", reason="textured meshes need the optional xatlas package ([texture] extra)")
    result = cli(["export-mesh", "--model", str(model_dir), "--resolution", "16", "--out", str(tmp_path / "o"), *extra])
    one_error_line(result, message)
    assert not (tmp_path / "o").exists()


def test_texture_of_a_volume_needs_its_model(cli, one_error_line, ball_mrc, tmp_path):
    result = cli(
        ["export-mesh", "--volume", str(ball_mrc), "--texture", "64", "--formats", "glb", "--out", str(tmp_path)]
    )
    one_error_line(result, "need the --model")
