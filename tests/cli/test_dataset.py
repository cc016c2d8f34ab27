"""``epigraf dataset info`` (cli/dataset.py): the summary text, JSON output, and errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_support import write_dataset  # noqa: E402

from epigraf_tools.cli.dataset import format_info  # noqa: E402

INFO = {
    "path": "d.zip",
    "kind": "zip",
    "num_images": 4,
    "resolution": 32,
    "c_dim": 0,
    "poses": None,
}


def test_dataset_info(cli, tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=6, size=16, labels=2)
    res = cli(["dataset", "info", str(data)])
    assert res.exit_code == 0, res.output
    assert "images      6" in res.output and "16x16" in res.output and "yaw" in res.output
    res = cli(["dataset", "info", str(data), "--json"])
    assert json.loads(res.output)["class_counts"] == [3, 3]
    res = cli(["dataset", "info", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "does not exist" in res.output


def test_format_without_labels_or_poses():
    text = format_info(INFO)
    assert text.splitlines()[:4] == [
        "path        d.zip (zip)",
        "images      4",
        "resolution  32x32",
        "labels      none",
    ]
    assert "poses       none (train with a camera distribution" in text


def test_format_with_classes_poses_and_a_warning():
    poses = dict(yaw_mean=0.0, yaw_std=0.5, yaw_min=-3.14159265, yaw_max=1.0,
                 pitch_mean=1.5, pitch_std=0.1, pitch_min=1.2, pitch_max=1.8)  # fmt: skip
    info = {**INFO, "c_dim": 3, "class_counts": [5, 1, 9], "poses": poses, "pose_warning": "not centred"}
    lines = format_info(info).splitlines()
    assert "labels      3-d" in lines and "classes     3 (smallest 1, largest 9 images)" in lines
    yaw = next(line for line in lines if line.startswith("yaw"))
    assert "range [-3.142, +1.000] rad" in yaw and "[-180.0, +57.3] deg" in yaw
    assert lines[-1] == "warning     not centred"


def test_quiet_prints_nothing(cli, tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=2, size=16)
    res = cli(["dataset", "info", data, "--quiet"])
    assert res.exit_code == 0 and res.output == ""
