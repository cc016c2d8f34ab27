"""The training loop: a short run, snapshot round trip, exact resume, SIGKILL-safe layout."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from training_support import tiny_train_config

from epigraf_tools.models import Generator
from epigraf_tools.training.config import ConfigError
from epigraf_tools.training.loop import train
from epigraf_tools.training.snapshots import list_snapshots, load_state, resolve_resume


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


LOSS_KEYS = ("Loss/G/loss", "Loss/D/loss", "Loss/scores/fake", "Loss/scores/real")


def test_short_run_writes_snapshot_log_and_samples(tiny_dataset, tmp_path):
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", grid_size=4, image_kimg=0.004)
    result = train(cfg)
    run = tmp_path / "run"
    assert result.cur_nimg == 8 and result.steps == 2
    assert json.loads((run / "config.json").read_text())["patch_res"] == 16
    log = _log(run)
    assert [r["step"] for r in log] == [1, 2]
    assert all(torch.isfinite(torch.tensor(r[k])) for r in log for k in LOSS_KEYS)
    assert "Loss/D/r1_penalty" in log[0] and log[0]["kimg_per_s"] > 0
    assert (run / "samples" / "reals.png").is_file() and (run / "samples" / "fakes-000000008.png").is_file()
    snap = result.last_snapshot
    assert snap == run / "snapshot-000000008" and json.loads((run / "latest.json").read_text())["snapshot"] == snap.name
    assert not list(run.glob(".snapshot-*"))


def test_snapshot_round_trip(tiny_dataset, tmp_path):
    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", kimg=0.004)
    result = train(cfg)
    G = Generator.from_pretrained(result.last_snapshot)  # the toolkit's model folder format
    state = load_state(result.last_snapshot)
    for k, v in G.state_dict().items():
        assert torch.equal(v, state["G_ema"][k]), k
    assert state["cur_nimg"] == 4 and state["batch_idx"] == 1
    assert G.config.triplane_res == 16 and G.config.img_resolution == 32
    with torch.no_grad():
        img = G.render(G.mapping(torch.randn(1, G.z_dim), None), torch.tensor([[0.0, 1.57, 0.0]]))["image"]
    assert img.shape == (1, 3, 32, 32) and torch.isfinite(img).all()


# with the background network too: its weights, its ws and its own ray jitter must resume exactly
@pytest.mark.parametrize("extra", [{}, {"bg_model": "sphere", "bg_channel_base": 64, "bg_channel_max": 16}])
def test_exact_resume(tiny_dataset, tmp_path, extra):
    full = train(tiny_train_config(tiny_dataset, tmp_path / "a", kimg=0.016, snapshot_kimg=0, **extra))
    train(tiny_train_config(tiny_dataset, tmp_path / "b", kimg=0.008, **extra))  # stops after step 2 (a snapshot)
    resumed = train(
        tiny_train_config(tiny_dataset, tmp_path / "b", kimg=0.016, snapshot_kimg=0, **extra), resume="latest"
    )
    a, b = _log(tmp_path / "a"), _log(tmp_path / "b")
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    for ra, rb in zip(a, b, strict=True):
        for k in LOSS_KEYS:
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-7), (ra["step"], k)
    sa, sb = load_state(full.last_snapshot), load_state(resumed.last_snapshot)
    for net in ("G", "D", "G_ema"):
        for k in sa[net]:
            assert torch.allclose(sa[net][k], sb[net][k], atol=1e-6), (net, k)


def test_resume_ignores_partial_snapshot_and_trims_log(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, run, kimg=0.008, snapshot_kimg=0.004))
    # Simulate a kill during the second snapshot: the folder is only a temp dir, and a log line too many.
    final = list_snapshots(run)[-1]
    shutil.move(final, run / f".{final.name}-x.tmp")
    (run / "log.jsonl").write_text((run / "log.jsonl").read_text() + '{"step": 2, "trunc')
    snap = resolve_resume("latest", run)
    assert snap.name == "snapshot-000000004"
    train(tiny_train_config(tiny_dataset, run, kimg=0.008, snapshot_kimg=0.004), resume=run)
    assert [r["step"] for r in _log(run)] == [1, 2]
    assert not list(run.glob(".snapshot-*"))
    assert [p.name for p in list_snapshots(run)] == ["snapshot-000000004", "snapshot-000000008"]


def test_config_errors_before_work(tmp_path):
    with pytest.raises(ConfigError, match="batch_gpu"):
        train(tiny_train_config(tmp_path / "missing.zip", tmp_path / "run", batch_gpu=3))
    with pytest.raises(ConfigError, match="no training data"):
        train(tiny_train_config("", tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_optimisers_and_schedules_match_the_official_construction(tiny_dataset, tmp_path, fixture_dir):
    """reference.json 'construction': D Adam with the lazy-R1 correction, nerf noise after one step of 64."""
    construction = json.loads((fixture_dir / "reference.json").read_text())["construction"]
    from epigraf_tools.training.loop import Trainer

    tr = Trainer(tiny_train_config(tiny_dataset, tmp_path / "run", d_reg_interval=16, batch=4))
    d_group, g_group = tr.D_opt.param_groups[0], tr.G_opt.param_groups[0]
    assert d_group["lr"] == pytest.approx(construction["D_opt"]["lr"], rel=1e-12)
    assert list(d_group["betas"]) == pytest.approx(construction["D_opt"]["betas"], rel=1e-12)
    assert g_group["lr"] == construction["G_opt"]["lr"] and list(g_group["betas"]) == construction["G_opt"]["betas"]
    assert d_group["eps"] == construction["D_opt"]["eps"]
    tr.G.progressive_update(64 / 1000)  # the fixture snapshot was taken after one step of batch 64
    assert tr.G.nerf_noise_std == pytest.approx(construction["G_nerf_noise_std"], rel=1e-6)


def test_preview_pixels_use_the_toolkits_image_encoding(tiny_dataset, tmp_path):
    import numpy as np
    from PIL import Image

    from epigraf_tools.images import make_grid, to_uint8
    from epigraf_tools.training.data import ImageDataset
    from epigraf_tools.training.preview import PreviewGrid

    cfg = tiny_train_config(tiny_dataset, tmp_path / "run", grid_size=3)
    dataset = ImageDataset(tiny_dataset, require_poses=False)
    G = Generator(cfg.generator_config(32, dataset.c_dim, [0.0, 1.5707963, 0.0])).eval()
    preview = PreviewGrid(dataset, G, cfg, torch.device("cpu"))
    preview.save_fakes(tmp_path / "fakes.png")
    expected = make_grid(list(to_uint8(preview.render())), columns=2)  # ceil(sqrt(3)) columns
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "fakes.png").convert("RGB")), expected)


def test_train_config_derives_every_generator_option_from_generator_config():
    import dataclasses

    from epigraf_tools.models import GeneratorConfig
    from epigraf_tools.training.auto_config import AUTO_OPTIONS
    from epigraf_tools.training.config import GENERATOR_OPTIONS, TrainConfig
    from epigraf_tools.training.dataset_cameras import CAMERA_OPTIONS

    defaults, g_defaults = TrainConfig(), GeneratorConfig()
    for option, name in GENERATOR_OPTIONS.items():
        if option in AUTO_OPTIONS or option in CAMERA_OPTIONS:  # None: decided by the data (then auto / G's default)
            assert getattr(defaults, option) is None, option
            continue
        assert getattr(defaults, option) == getattr(g_defaults, name), option  # one definition per default
    full = defaults.generator_config(512, 0, [0.0, 1.5, 0.0])  # 512^2 with no dataset cameras: the official G
    assert full == dataclasses.replace(g_defaults, mean_camera_pose=[0.0, 1.5, 0.0])
    reach = TrainConfig(mlp_n_layers=3, bg_model="sphere", conv_clamp=None, clamp_mode="relu", g_channel_base=1024)
    g = reach.generator_config(64, 2, [0.0, 1.5, 0.0], ["a", "b"])
    assert (g.mlp_n_layers, g.bg_model, g.conv_clamp, g.clamp_mode, g.channel_base) == (3, "sphere", None, "relu", 1024)
    assert (g.c_dim, g.img_resolution, g.class_names) == (2, 64, ["a", "b"])
    old_run = {
        k: v for k, v in dataclasses.asdict(TrainConfig(data="x")).items() if k not in ("mlp_n_layers", "bg_model")
    }
    assert TrainConfig.from_dict(old_run).mlp_n_layers == g_defaults.mlp_n_layers  # older run configs still load
