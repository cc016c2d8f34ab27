"""Background separation end to end: a textured-background synthetic set, a tiny run with the
inverse-sphere background network, and the foreground-only outputs of its snapshot.

The structural property tested on the trained snapshot is exact, so the test cannot be flaky: the
same snapshot with its background network scrambled must give the same alpha, foreground layer,
density volume and mesh, and a different composite.
"""

from __future__ import annotations

import json
from pathlib import Path

import mrcfile
import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.models import Generator

TINY_BG = [
    "--resolution", "32", "--patch-res", "16", "--batch", "4", "--tick-kimg", "0.004", "--device", "cpu",
    "--set", "z_dim=32", "--set", "w_dim=32", "--set", "triplane_res=16", "--set", "feat_dim=8",
    "--set", "g_channel_base=256", "--set", "g_channel_max=32", "--set", "mlp_hid_dim=16",
    "--set", "num_ray_steps=4", "--set", "d_channel_base=256", "--set", "d_channel_max=32",
    "--set", "grid_size=0", "--image-kimg", "0", "--set", "d_reg_interval=1",
    "--bg-model", "sphere", "--set", "bg_channel_base=64", "--set", "bg_channel_max=16",
    "--set", "white_back=false", "--set", "fov=30", "--set", "ray_start=0.7", "--set", "ray_end=1.3",
    "--set", "cube_scale=0.35",
]  # fmt: skip


pytestmark = pytest.mark.usefixtures("one_thread")


def _bg_state(snapshot: Path) -> dict[str, torch.Tensor]:
    G = Generator.from_pretrained(snapshot)
    return {k: v for k, v in G.state_dict().items() if ".bg_model." in k}


@pytest.mark.filterwarnings("ignore:camera poses are not zero-centred")  # 8 random views
def test_trains_with_a_background_network_whose_outputs_stay_out_of_alpha_and_geometry(cli, tmp_path):
    data = tmp_path / "sky.zip"
    res = cli(["dataset", "synth", data, "-n", "8", "--resolution", "32", "--background", "textured", "--quiet"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    res = cli(["train", "--data", data, "--out", run, "--kimg", "0.004", *TINY_BG])
    assert res.exit_code == 0, res.output
    assert "background  sphere network, 8 steps per ray" in res.output
    first = Generator.from_pretrained(next(run.glob("snapshot-*")))
    res = cli(["train", "--resume", run, "--kimg", "0.008", "--quiet"])  # snapshot, EMA and R1 all go through
    assert res.exit_code == 0, res.output
    snaps = sorted(run.glob("snapshot-*"))
    assert len(snaps) == 2
    G = Generator.from_pretrained(snaps[-1])
    assert G.config.bg_model == "sphere" and G.num_ws == first.num_ws
    before, after = _bg_state(snaps[0]), _bg_state(snaps[1])
    assert before and any(not torch.equal(before[k], after[k]) for k in before)  # the background trains

    scrambled = tmp_path / "scrambled"
    with torch.no_grad():
        for p in G.synthesis.bg_model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    G.save_pretrained(scrambled)

    def outputs(model: Path, name: str) -> Path:
        out = tmp_path / name
        common = ["--model", model, "--seeds", "3", "--resolution", "16", "--quiet"]
        for layer in ("all", "fg", "bg"):
            assert cli(["sample", *common, "--alpha", "--layer", layer, "--out", out / layer]).exit_code == 0
        assert cli(["export-volume", *common, "--out", out / "vol"]).exit_code == 0
        res = cli(["export-mesh", *common, "--formats", "ply", "--out", out / "mesh"])
        assert res.exit_code == 0, res.output
        return out

    a, b = outputs(snaps[-1], "trained"), outputs(scrambled, "scrambled")

    def image(root: Path, layer: str) -> np.ndarray:
        return np.asarray(Image.open(root / layer / "seed0003.png"))

    def alpha(root: Path, layer: str) -> np.ndarray:
        return np.load(root / layer / "seed0003_alpha.npy")

    for layer in ("fg", "bg"):
        assert np.array_equal(alpha(a, layer), alpha(a, "all"))  # alpha is the foreground's, whatever is shown
    assert np.array_equal(alpha(a, "all"), alpha(b, "all"))
    assert np.array_equal(image(a, "fg"), image(b, "fg"))
    assert not np.array_equal(image(a, "all"), image(b, "all"))
    assert not np.array_equal(image(a, "bg"), image(b, "bg"))
    assert json.loads((a / "bg" / "seed0003.json").read_text())["layer"] == "bg"
    with mrcfile.open(a / "vol" / "seed0003.mrc") as va, mrcfile.open(b / "vol" / "seed0003.mrc") as vb:
        assert np.array_equal(va.data, vb.data)
    assert (a / "mesh" / "seed0003.ply").read_bytes() == (b / "mesh" / "seed0003.ply").read_bytes()


def test_bad_background_options_exit_2(cli, one_error_line, tiny_model_dir, tmp_path):
    res = cli(["train", "--data", tmp_path / "none.zip", "--bg-model", "plane", "--out", tmp_path / "r"])
    one_error_line(res, "bg_model must be 'sphere'")
    res = cli(["sample", "--model", tiny_model_dir(0), "--layer", "bg", "--out", tmp_path / "s"])
    one_error_line(res, "layer 'bg' needs a model with a background network")
    res = cli(["sample", "--model", tiny_model_dir(0), "--layer", "sky", "--out", tmp_path / "s"])
    one_error_line(res, "layer must be one of all, fg, bg")
    assert not (tmp_path / "r").exists()
