"""``epigraf export-volume``: files, header, sidecar, and one-line exit-2 errors with no output files."""

from __future__ import annotations

import json

import mrcfile
import numpy as np
import pytest
import torch

from epigraf_tools.latents import Truncation, ws_from_seeds
from epigraf_tools.volume import extract_density

from support import make_tiny_generator


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir):
    return tiny_model_dir(3)


def test_writes_mrc_sidecar_and_script(cli, model_dir, tmp_path):
    out = tmp_path / "vols"
    args = ["export-volume", "--model", str(model_dir), "--seeds", "0,2", "--resolution", "12", "--truncation", "0.7"]
    result = cli([*args, "--box", "0.3", "--center", "0.01,0,-0.02", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet
    assert sorted(p.name for p in out.iterdir()) == [
        "seed0000.cxc", "seed0000.json", "seed0000.mrc", "seed0002.cxc", "seed0002.json", "seed0002.mrc",
    ]  # fmt: skip
    assert mrcfile.validate(str(out / "seed0002.mrc"), print_file=open("/dev/null", "w"))
    side = json.loads((out / "seed0002.json").read_text())
    assert side["seed"] == 2 and side["truncation_psi"] == 0.7 and side["value"] == "raw"
    assert side["grid"]["box"] == [0.3, 0.3, 0.3] and side["grid"]["center"] == [0.01, 0.0, -0.02]
    # the file holds exactly the Python API's volume, in [z, y, x] order
    G = make_tiny_generator(3)
    ws, _ = ws_from_seeds(G, [2], Truncation(0.7))
    vol = extract_density(G, ws, resolution=12, box=0.3, center=(0.01, 0, -0.02), method="separable")
    with mrcfile.open(out / "seed0002.mrc") as mrc:
        np.testing.assert_allclose(mrc.data, vol.transpose(2, 1, 0), atol=1e-5)
        np.testing.assert_allclose(mrc.voxel_size.x, 0.3 / 11, rtol=1e-6)
        assert mrc.header.origin.z == pytest.approx(-0.02 - 0.15)
    assert "level" in (out / "seed0000.cxc").read_text()


def test_sigma_values(cli, model_dir, tmp_path):
    result = cli(["export-volume", "-m", str(model_dir), "--resolution", "4", "--value", "sigma", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "seed0000.mrc" in result.stdout
    with mrcfile.open(tmp_path / "seed0000.mrc") as mrc:
        assert float(mrc.data.min()) >= 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--resolution", "1"], "at least 2"),
        (["--resolution", "4096"], "--force"),
        (["--value", "density"], "--value"),
        (["--box", "-0.3"], "positive"),
        (["--box", "a,b"], "--box"),
        (["--center", "0,0"], "--center needs 3"),
        (["--seeds", "3-1"], "seed"),
        (["--truncation", "5"], "psi"),
        (["--method", "fast"], "--method"),
    ],
)
def test_bad_arguments_exit_2_without_output(cli, one_error_line, model_dir, tmp_path, extra, message):
    out = tmp_path / "out"
    result = cli(["export-volume", "--model", str(model_dir), "--out", str(out), *extra])
    assert message in one_error_line(result)
    assert not out.exists() or not any(out.iterdir())


def test_unwritable_output_folder(cli, one_error_line, model_dir, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = cli(["export-volume", "--model", str(model_dir), "--out", str(blocker / "sub")])
    assert "cannot write to --out" in one_error_line(result)


def test_failure_mid_way_leaves_no_partial_files(cli, model_dir, tmp_path, monkeypatch):
    import epigraf_tools.mrc as mrc_module

    def broken(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("out of memory")  # any failure during extraction

    monkeypatch.setattr(mrc_module, "extract_density", broken)
    out = tmp_path / "out"
    result = cli(["export-volume", "--model", str(model_dir), "--resolution", "4", "--out", str(out)])
    assert result.exit_code == 1
    assert list(out.iterdir()) == []


def test_cxc_movie_option(cli, model_dir, tmp_path):
    args = ["export-volume", "--model", str(model_dir), "--seeds", "4", "--resolution", "8", "--cxc-movie"]
    result = cli([*args, "--out", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    script = (tmp_path / "seed0004.cxc").read_text()
    assert "movie record" in script and 'movie encode "seed0004.mp4" framerate 30' in script
