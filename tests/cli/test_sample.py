"""``epigraf sample``: tiny end-to-end runs, class names, bad arguments, torchrun sharding."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from epigraf_tools.images import read_png_metadata

FAST = ["--resolution", "16", "--device", "cpu", "--quiet"]


def test_sample_end_to_end(cli, model_dir, tmp_path):
    out = tmp_path / "s"
    res = cli(["sample", "--model", model_dir, "--seeds", "0-2,7", "--truncation", "0.7", "--grid", "--depth",
               "--normals", "--alpha", "--yaw", "10", "--pitch", "85", "--degrees", "--out", out, *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.glob("seed*.png")} >= {"seed0007.png", "seed0007_normals.png", "seed0000_depth.png"}
    assert np.asarray(Image.open(out / "grid.png")).shape == (32, 32, 3)
    meta = read_png_metadata(out / "seed0007.png")
    assert meta["truncation_psi"] == 0.7 and meta["camera"]["yaw_degrees"] == pytest.approx(10)
    assert meta["model"] == str(model_dir)


def test_sample_class_by_name_and_trajectory_views(cli, cond_model_dir, tmp_path):
    out = tmp_path / "c"
    res = cli(["sample", "--model", cond_model_dir, "--seeds", "1", "--class", "dog", "--trajectory", "points",
               "--out", out, *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = read_png_metadata(out / "seed0001_view02.png")
    assert meta["class_index"] == 1 and meta["class_name"] == "dog" and meta["camera"]["yaw"] == pytest.approx(0.3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["sample", "--truncation", "2.5"], r"psi must lie in \[0, 2\]"),
        (["sample", "--seeds", "5-2"], "the end is smaller"),
        (["sample", "--seeds", "a-b"], "bad seed"),
        (["sample", "--pitch", "95"], "pitch .* radians"),
        (["sample", "--fov", "0.2"], "fov .* degrees"),
        (["sample", "--resolution", "0"], "resolution"),
        (["sample", "--class", "dog"], "unconditional"),
        (["sample", "--truncation-cutoff", "99"], "larger than this model's"),
        (["sample", "--radius", "0.05"], "inside the object's slab; cameras must be farther than"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_files(cli, one_error_line, model_dir, tmp_path, args, message):
    out = tmp_path / "never"
    res = cli([*args, "--model", model_dir, "--out", out, "--device", "cpu"])
    one_error_line(res, match=message, stream="output")
    assert not out.exists()


def test_unknown_class_name_on_a_conditional_model(cli, cond_model_dir, tmp_path):
    res = cli(["sample", "--model", cond_model_dir, "--class", "wolf", "--out", tmp_path / "x"])
    assert res.exit_code == 2 and "unknown class 'wolf'" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_help_has_examples(cli):
    res = cli(["sample", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "epigraf sample" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_sharding_equals_a_single_process(cli, model_dir, tmp_path):
    """Two ranks started the way torchrun starts them (env vars + a gloo rendezvous) write the same files."""
    args = ["sample", "--model", str(model_dir), "--seeds", "0-4", "--grid", "--depth", *FAST]
    single = tmp_path / "single"
    assert cli([*args, "--out", single]).exit_code == 0
    shared = tmp_path / "sharded"
    port = str(_free_port())
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "OMP_NUM_THREADS": "1"}  # fmt: skip
        cmd = [sys.executable, "-m", "epigraf_tools.cli.app", *args, "--out", str(shared)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    for proc in procs:
        output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, output
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in shared.iterdir())
    for path in single.iterdir():
        if path.suffix in (".png", ".npy"):
            assert path.read_bytes() == (shared / path.name).read_bytes(), path.name


def test_sample_shading_geometry(cli, model_dir, tmp_path):
    out = tmp_path / "geo"
    args = ["sample", "--model", model_dir, "--seeds", "0-1", "--shading", "geometry", "--volume-resolution", "24"]
    result = cli([*args, "--resolution", "20", "--grid", "--alpha", "--out", out, "--quiet"])
    assert result.exit_code == 0, result.output
    img = np.asarray(Image.open(out / "seed0001.png"))
    assert img.shape == (20, 20, 3) and img.max() > 0
    assert read_png_metadata(out / "seed0001.png")["shading"] == "geometry"
    assert (out / "grid.png").is_file() and (out / "seed0000_alpha.npy").is_file()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--shading", "phong"], "--shading must be one of color, geometry"),
        (["--level", "30"], "--level and --volume-resolution need --shading geometry"),
        (["--shading", "geometry", "--level", "x"], "--level must be a number or 'auto'"),
        (["--shading", "geometry", "--volume-resolution", "1"], "--volume-resolution"),
    ],
)
def test_bad_shading_options_exit_2(cli, one_error_line, model_dir, tmp_path, args, message):
    result = cli(["sample", "--model", model_dir, "--seeds", "0", *args, "--out", tmp_path / "o"])
    one_error_line(result, message)
    assert not (tmp_path / "o").exists()
