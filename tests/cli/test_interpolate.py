"""``epigraf interpolate``: tiny end-to-end runs (loop video in w, image strip in z), bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from epigraf_tools.video import count_frames

FAST = ["--resolution", "16", "--device", "cpu", "--quiet"]


def test_interpolate_end_to_end(cli, model_dir, tmp_path):
    res = cli(["interpolate", "--model", model_dir, "--seeds", "0,4", "--frames", "3", "--loop", "--space", "w",
               "--trajectory", "yaw_sweep", "--out", tmp_path / "i", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "i" / "interp_w_0-4.mp4") == 6
    res = cli(["interpolate", "--model", model_dir, "--seeds", "0-2", "--frames", "2", "--output", "strip",
               "--out", tmp_path / "i", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert np.asarray(Image.open(tmp_path / "i" / "interp_z_0-1-2.png")).shape == (32, 48, 3)


@pytest.mark.parametrize(
    "args, message",
    [
        (["interpolate", "--frames", "-1"], "positive integer"),
        (["interpolate", "--trajectory", "nope.yaml"], "does not exist"),
        (["interpolate", "--seeds", "3"], "at least two"),
        (["interpolate", "--space", "x"], "--space"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_files(cli, one_error_line, model_dir, tmp_path, args, message):
    out = tmp_path / "never"
    res = cli([*args, "--model", model_dir, "--out", out, "--device", "cpu"])
    one_error_line(res, match=message, stream="output")
    assert not out.exists()


def test_help_has_examples(cli):
    res = cli(["interpolate", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "epigraf interpolate" in res.output


def test_interpolate_layer(cli, one_error_line, tiny_model_dir, model_dir, tmp_path):
    bg_model = tiny_model_dir(2, bg_model="sphere", bg_channel_base=64, bg_channel_max=16)
    strips = {}
    for layer in ("all", "fg"):
        res = cli(["interpolate", "--model", bg_model, "--seeds", "0,1", "--frames", "1", "--output", "strip",
                   "--layer", layer, "--out", tmp_path / layer, *FAST])  # fmt: skip
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / layer / "interp_z_0-1.json").read_text())["layer"] == layer
        strips[layer] = np.asarray(Image.open(tmp_path / layer / "interp_z_0-1.png"))
    assert not np.array_equal(strips["all"], strips["fg"])
    res = cli(["interpolate", "--model", model_dir, "--layer", "bg", "--out", tmp_path / "n", *FAST])
    one_error_line(res, "layer 'bg' needs a model with a background network")
