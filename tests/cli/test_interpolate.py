"""``epigraf interpolate``: tiny end-to-end runs (loop video in w, image strip in z), bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.video import count_frames

from support import assert_images_close

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


# ------------------------------------------------------------------ --latent keyframes (epigraf invert's files)
@pytest.fixture(scope="module")
def latents(model_dir, tmp_path_factory):
    """four.npz: seed 4's untruncated w, as a w latent; plus.npz: seed 7's ws with every row moved (a w+);
    tuned.npz / tuned2.npz: seed 4's w again, recorded as made with pivotal tuning (two different folders)."""
    from epigraf_tools.camera import Camera
    from epigraf_tools.latent_files import save_latent
    from epigraf_tools.latents import ws_from_seeds
    from epigraf_tools.models import Generator

    G = Generator.from_pretrained(model_dir)
    root = tmp_path_factory.mktemp("latents")
    four = ws_from_seeds(G, [4])[0]
    plus = ws_from_seeds(G, [7])[0] + 0.3 * torch.randn(four.shape, generator=torch.Generator().manual_seed(1))

    def save(name, ws, space, **meta):
        return save_latent(root / name, ws, space, Camera(), 32, [1.0], [], {"model": str(model_dir), **meta})

    save("four.npz", four, "w")
    save("plus.npz", plus, "w+")
    save("tuned.npz", four, "w", tuned_model="tuned-pti")
    save("tuned2.npz", four, "w", tuned_model="tuned2-pti")
    return root


def test_latent_keyframes_interpolate_in_w_as_the_seeds_they_hold(cli, model_dir, latents, tmp_path):
    """four.npz holds seed 4's w, so --latent four.npz,0 is --seeds 4,0 --space w (jitter-free: the ray noise of a
    latent keyframe is seed 0's, not 4's). Different code paths (a stored float32 w against a freshly mapped one),
    so compared as images: at most one level on 1% of the values."""
    strip = ["--frames", "2", "--output", "strip", "--deterministic", "--truncation", "0.7", *FAST]
    res = cli(["interpolate", "--model", model_dir, "--latent", f"{latents / 'four.npz'},0", "--out", tmp_path, *strip])
    assert res.exit_code == 0, res.output
    res = cli(["interpolate", "--model", model_dir, "--seeds", "4,0", "--space", "w", "--out", tmp_path, *strip])
    assert res.exit_code == 0, res.output
    assert_images_close(Image.open(tmp_path / "interp_w_four-0.png"), Image.open(tmp_path / "interp_w_4-0.png"))
    meta = json.loads((tmp_path / "interp_w_four-0.json").read_text())
    assert meta["space"] == "w" and meta["keyframes"][0]["latent"] == "four.npz" and meta["keyframes"][1] == {"seed": 0}
    assert meta["schedule"][1] == ["four", 0, 0.5] and meta["model"].endswith("+ latent four.npz")
    res = cli(["interpolate", "--model", model_dir, "--latent", f"2-3,{latents / 'four.npz'}", "--out", tmp_path,
               *strip])  # fmt: skip  # a range of seeds, as --seeds reads it
    assert res.exit_code == 0, res.output
    assert [k.get("seed") for k in json.loads((tmp_path / "interp_w_2-3-four.json").read_text())["keyframes"]] == [
        2, 3, None,
    ]  # fmt: skip


def test_a_latent_keyframe_is_what_sample_latent_renders(cli, model_dir, latents, tmp_path):
    """Ray noise and truncation included: the strip's first tile is `sample --latent plus.npz` (w+)."""
    common = ["--model", model_dir, "--truncation", "0.6", *FAST]
    res = cli(["interpolate", *common, "--latent", f"{latents / 'plus.npz'},{latents / 'four.npz'}", "--frames", "1",
               "--output", "strip", "--out", tmp_path / "i"])  # fmt: skip
    assert res.exit_code == 0, res.output
    res = cli(["sample", *common, "--latent", latents / "plus.npz", "--out", tmp_path / "s"])
    assert res.exit_code == 0, res.output
    strip = np.asarray(Image.open(tmp_path / "i" / "interp_w_plus-four.png"))
    assert_images_close(strip[:, :16], Image.open(tmp_path / "s" / "seed0000.png"))
    assert not np.array_equal(strip[:, :16], strip[:, 16:])


def test_latent_keyframes_of_pti_runs_point_to_their_tuned_model(cli, model_dir, latents, tmp_path):
    args = ["interpolate", "--model", model_dir, "--frames", "1", "--output", "strip", "--resolution", "8",
            "--device", "cpu", "--out", tmp_path]  # fmt: skip
    res = cli([*args, "--latent", f"{latents / 'tuned.npz'},3"])
    assert res.exit_code == 0, res.output
    assert f"pass --model {latents / 'tuned-pti'}" in res.stderr
    res = cli([*args, "--latent", f"{latents / 'tuned.npz'},{latents / 'tuned2.npz'}"])
    assert res.exit_code == 0, res.output
    assert "tuned.npz, tuned2.npz were made with pivotal tuning of different generators" in res.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--latent", "{four},0", "--space", "z"], "use --space w with --latent"),
        (["--latent", "{four},0", "--seeds", "0,1"], "drop --seeds"),
        (["--latent", "{four}"], "at least two"),
        (["--latent", "{four},,3"], "empty keyframe"),
        (["--latent", "{four},missing.npz"], "latent file missing.npz does not exist"),
        (["--latent", "{four},0", "--model", "{other}"], "made for another model"),
        (["--latent", "{four},0", "--model", "{cond}"], "unconditional models only"),
    ],
)
def test_bad_latent_keyframes_exit_2_in_one_line_before_rendering(
    cli, one_error_line, model_dir, tiny_model_dir, cond_model_dir, latents, tmp_path, extra, message
):
    names = {"four": latents / "four.npz", "other": tiny_model_dir(0, w_dim=64), "cond": cond_model_dir}
    args = [a.format(**names) for a in extra]
    if "--model" not in args:
        args += ["--model", str(model_dir)]
    res = cli(["interpolate", *args, "--out", tmp_path / "o", *FAST])
    one_error_line(res, message, stream="output")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
