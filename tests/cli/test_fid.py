"""``epigraf fid`` (cli/fid.py): a tiny end-to-end run with a stand-in Inception network, and its errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_support import write_dataset  # noqa: E402


class _StandIn(torch.nn.Module):
    """The call signature of NVIDIA's TorchScript Inception (uint8 [B, 3, H, W] -> features), computed cheaply."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        y = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 1)
        return torch.cat([y.flatten(1), y.flatten(1).square()], dim=1)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("fid")
    inception = root / "inception-2015-12-05.pt"
    torch.jit.script(_StandIn()).save(str(inception))
    return write_dataset(root / "d.zip", n=4, size=32), inception


def test_fid_prints_the_value_and_writes_fid_json(cli, model_dir, inputs, tmp_path):
    data, inception = inputs
    args = ["fid", "--model", model_dir, "--data", data, "--num-gen", "4", "--batch-size", "2", "--device", "cpu"]
    res = cli([*args, "--inception", inception, "--out", tmp_path / "res", "--quiet"])
    assert res.exit_code == 0, res.output
    assert res.output == ""
    record = json.loads((tmp_path / "res" / "fid.json").read_text())
    assert record["metric"] == "fid4" and record["num_gen"] == 4 and math.isfinite(record["value"])
    assert record["value"] >= 0 and record["model"] == str(model_dir)
    res = cli([*args, "--inception", inception])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip().splitlines()[-1].startswith("fid4: ")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metric", "kid"], "--metric must be one of"),
        (["--num-gen", "1"], "--num-gen must be >= 2"),
        (["--batch-size", "0"], "--batch-size must be >= 1"),
        (["--camera-dist", "spiral"], "spiral"),
        (["--inception", "missing.pt"], "put the file at"),
    ],
)
def test_bad_arguments_are_one_line_exit_2(cli, one_error_line, model_dir, inputs, tmp_path, extra, message):
    data, _ = inputs
    res = cli(["fid", "--model", model_dir, "--data", data, "--device", "cpu", "--out", tmp_path / "o", *extra])
    one_error_line(res, message)
    assert not (tmp_path / "o").exists()


def test_help_has_examples(cli):
    res = cli(["fid", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "epigraf fid" in res.output
