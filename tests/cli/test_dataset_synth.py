"""``epigraf dataset synth`` end to end, and its argument errors."""

from __future__ import annotations

import json
import zipfile

from typer.testing import CliRunner

from epigraf_tools.cli.app import app

runner = CliRunner()


def test_synth_writes_a_trainable_dataset(tmp_path):
    out = tmp_path / "shapes.zip"
    res = runner.invoke(app, ["dataset", "synth", str(out), "-n", "4", "--resolution", "16", "--quiet"])
    assert res.exit_code == 0, res.output
    with zipfile.ZipFile(out) as zf:
        meta = json.loads(zf.read("dataset.json"))
    assert len(meta["camera_angles"]) == 4
    info = runner.invoke(app, ["dataset", "info", str(out)])
    assert info.exit_code == 0 and "images      4" in info.output


def test_synth_bad_arguments_exit_2_without_files(tmp_path):
    cases = [
        [str(tmp_path / "a.zip"), "--shapes", "cone"],
        [str(tmp_path / "b.tar"), "-n", "2"],
        [str(tmp_path / "c.zip"), "-n", "0"],
        [str(tmp_path / "d.zip"), "--resolution", "4"],
    ]
    for args in cases:
        res = runner.invoke(app, ["dataset", "synth", *args])
        assert res.exit_code == 2, (args, res.output)
    assert list(tmp_path.iterdir()) == []
