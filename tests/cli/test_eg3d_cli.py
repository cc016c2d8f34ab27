"""EG3D snapshots on the command line: ``epigraf convert`` writes our folder; rendering commands refuse
an EG3D model with one clear line (exit 2) until they support it."""

from __future__ import annotations

import json

import pytest
import torch
from eg3d_fixture import load_meta, load_npz
from eg3d_pickle_factory import fixture_snapshot_bytes

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


def test_convert_eg3d_pickle(cli, eg3d_pkl, tmp_path):
    out = tmp_path / "converted"
    result = cli(["convert", eg3d_pkl, out, "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert {"config.json", "model.safetensors", "README.md", "official_config.json"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["model_family"] == "eg3d"


@pytest.mark.parametrize(
    ("cmd", "extra"),
    [
        ("sample", ["--seeds", "0"]),
        ("export-volume", ["--seeds", "0"]),
        ("export-mesh", ["--seeds", "0"]),
    ],
)
def test_rendering_commands_refuse_eg3d_folder(cli, one_error_line, eg3d_folder, tmp_path, cmd, extra):
    out = tmp_path / "out"
    line = one_error_line(cli([cmd, "--model", eg3d_folder, *extra, "--out", out, "--quiet"]))
    assert NOT_YET.format(cmd=cmd) in line
    assert "convert" in line


def test_sample_refuses_eg3d_pickle_after_reading_it(cli, one_error_line, eg3d_pkl, tmp_path):
    line = one_error_line(cli(["sample", "--model", eg3d_pkl, "--seeds", "0", "--out", tmp_path / "o", "--quiet"]))
    assert NOT_YET.format(cmd="sample") in line
