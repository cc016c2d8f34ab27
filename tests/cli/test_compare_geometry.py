"""``epigraf compare-geometry`` end to end at a tiny resolution, and its one-line refusals."""

from __future__ import annotations

import json

import imageio.v3 as iio
import mrcfile
import pytest


def test_two_models_end_to_end(cli, model_dir, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare-geometry", "--models", f"default,{model_dir}", "--seeds", "0,3", "--resolution", "24"]
    result = cli([*args, "--video-resolution", "20", "--frames", "6", "--fps", "12", "--out", out])
    assert result.exit_code == 0, result.output
    for folder in ("default", "tiny"):
        for seed in ("0000", "0003"):
            for ext in ("mrc", "json", "cxc", "ply", "mesh.json"):
                assert (out / folder / f"seed{seed}.{ext}").is_file(), (folder, seed, ext)
        with mrcfile.open(out / folder / "seed0003.mrc") as mrc:
            assert mrc.data.shape == (24, 24, 24)
    script = (out / "compare.cxc").read_text()
    assert 'open "default/seed0000.mrc" format mrc' in script and 'open "tiny/seed0003.mrc" format mrc' in script
    assert "volume #4 style surface level" in script and "step 1" in script
    assert "tile #1-4 columns 2" in script and "lighting full" in script
    assert "movie record" in script and 'movie encode "compare.mp4"' in script and "wait 180" in script
    summary = json.loads((out / "compare.json").read_text())
    assert [m["folder"] for m in summary["models"]] == ["default", "tiny"]
    assert summary["models"][0]["levels"] == pytest.approx([25.0, 25.0])  # the default model's recommended level
    assert summary["models"][1]["level_sources"] == ["isodata", "isodata"]  # a tiny random model: outside its range
    for seed in ("0000", "0003"):
        frames = iio.imread(out / f"turntable_seed{seed}.mp4", plugin="FFMPEG")
        assert frames.shape[0] == 6 and frames.shape[1:3] == (20, 40)  # two models side by side
        assert frames.max() > 50  # lit surfaces, not a blank video


@pytest.mark.parametrize(
    "models, needles",
    [
        ("default,./no/such/model", ("no/such/model",)),
        (" ", ("--models",)),
        ("default,,default", ("--models", "empty")),
        ("default,default", ("twice",)),
    ],
)
def test_bad_model_lists_exit_2_before_any_work(cli, one_error_line, tmp_path, models, needles):
    out = tmp_path / "cmp"
    result = cli(["compare-geometry", "--models", models, "--resolution", "8", "--out", out])
    one_error_line(result, *needles)
    assert not out.exists() or not any(out.iterdir())
