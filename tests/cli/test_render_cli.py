"""``epigraf sample | video | interpolate``: tiny end-to-end runs, bad arguments, torchrun sharding."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from epigraf_tools.cli.app import app
from epigraf_tools.images import read_png_metadata
from epigraf_tools.video import count_frames

from support import make_tiny_generator

runner = CliRunner()
FAST = ["--resolution", "16", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_model")
    make_tiny_generator().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def cond_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_cond_model")
    make_tiny_generator(c_dim=3, class_names=["cat", "dog", "fox"]).save_pretrained(path)
    return path


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_sample_end_to_end(model_dir, tmp_path):
    out = tmp_path / "s"
    res = run("sample", "--model", model_dir, "--seeds", "0-2,7", "--truncation", "0.7", "--grid", "--depth",
              "--normals", "--alpha", "--yaw", "10", "--pitch", "85", "--degrees", "--out", out, *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert {p.name for p in out.glob("seed*.png")} >= {"seed0007.png", "seed0007_normals.png", "seed0000_depth.png"}
    assert np.asarray(Image.open(out / "grid.png")).shape == (32, 32, 3)
    meta = read_png_metadata(out / "seed0007.png")
    assert meta["truncation_psi"] == 0.7 and meta["camera"]["yaw_degrees"] == pytest.approx(10)
    assert meta["model"] == str(model_dir)


def test_sample_class_by_name_and_trajectory_views(cond_model_dir, tmp_path):
    out = tmp_path / "c"
    res = run("sample", "--model", cond_model_dir, "--seeds", "1", "--class", "dog", "--trajectory", "points",
              "--out", out, *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    meta = read_png_metadata(out / "seed0001_view02.png")
    assert meta["class_index"] == 1 and meta["class_name"] == "dog" and meta["camera"]["yaw"] == pytest.approx(0.3)


def test_video_and_interpolate_end_to_end(model_dir, tmp_path):
    res = run("video", "--model", model_dir, "--seeds", "3", "--trajectory", "orbit", "--frames", "5",
              "--depth", "--out", tmp_path / "v", *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "v" / "seed0003.mp4") == 5 and (tmp_path / "v" / "seed0003_depth.mp4").is_file()
    res = run("video", "--model", model_dir, "--seeds", "0-3", "--grid", "--trajectory", "wiggle", "--frames", "4",
              "--out", tmp_path / "g", *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "g" / "grid.mp4") == 4
    res = run("interpolate", "--model", model_dir, "--seeds", "0,4", "--frames", "3", "--loop", "--space", "w",
              "--trajectory", "yaw_sweep", "--out", tmp_path / "i", *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "i" / "interp_w_0-4.mp4") == 6
    res = run("interpolate", "--model", model_dir, "--seeds", "0-2", "--frames", "2", "--output", "strip",
              "--out", tmp_path / "i", *FAST)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(tmp_path / "i" / "interp_z_0-1-2.png")).shape == (32, 48, 3)


def test_keyframe_file_trajectory(model_dir, tmp_path):
    path = tmp_path / "path.yaml"
    path.write_text("frames: 4\nfps: 12\ndegrees: true\nkeyframes:\n  - {yaw: -20}\n  - {yaw: 20, radius: 1.2}\n")
    res = run("video", "--model", model_dir, "--trajectory", path, "--out", tmp_path / "k", *FAST)
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "k" / "seed0000.mp4") == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["video", "--frames", "-5"], "--frames must be a positive integer"),
        (["video", "--frames", "0"], "--frames must be a positive integer"),
        (["interpolate", "--frames", "-1"], "positive integer"),
        (["sample", "--truncation", "2.5"], r"psi must lie in \[0, 2\]"),
        (["video", "--truncation", "-0.1"], r"psi must lie in \[0, 2\]"),
        (["sample", "--seeds", "5-2"], "the end is smaller"),
        (["sample", "--seeds", "a-b"], "bad seed"),
        (["video", "--seeds", "-3"], "out of range"),
        (["video", "--trajectory", "spiral"], "unknown trajectory 'spiral'"),
        (["interpolate", "--trajectory", "nope.yaml"], "does not exist"),
        (["sample", "--pitch", "95"], "pitch .* radians"),
        (["sample", "--fov", "0.2"], "fov .* degrees"),
        (["interpolate", "--seeds", "3"], "at least two"),
        (["interpolate", "--space", "x"], "--space"),
        (["video", "--crf", "70"], "crf"),
        (["sample", "--resolution", "0"], "resolution"),
        (["sample", "--class", "dog"], "unconditional"),
        (["sample", "--truncation-cutoff", "99"], "larger than this model's"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_files(model_dir, tmp_path, args, message):
    out = tmp_path / "never"
    res = run(*args, "--model", model_dir, "--out", out, "--device", "cpu")
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert re.search(message, lines[0]), lines[0]
    assert not out.exists()


def test_unknown_class_name_on_a_conditional_model(cond_model_dir, tmp_path):
    res = run("sample", "--model", cond_model_dir, "--class", "wolf", "--out", tmp_path / "x")
    assert res.exit_code == 2 and "unknown class 'wolf'" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_help_has_examples():
    for command in ("sample", "video", "interpolate"):
        res = run(command, "--help")
        assert res.exit_code == 0 and "Examples" in res.output and f"epigraf {command}" in res.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_sharding_equals_a_single_process(model_dir, tmp_path):
    """Two ranks started the way torchrun starts them (env vars + a gloo rendezvous) write the same files."""
    args = ["sample", "--model", str(model_dir), "--seeds", "0-4", "--grid", "--depth", *FAST]
    single = tmp_path / "single"
    assert run(*args, "--out", single).exit_code == 0
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
