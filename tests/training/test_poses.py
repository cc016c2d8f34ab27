"""Camera distributions for fake poses, generator pose conditioning (GPC) and D camera conditioning."""

from __future__ import annotations

import math

import pytest
import torch
from training_support import tiny_train_config, write_dataset

from epigraf_tools.training.loop import Trainer
from epigraf_tools.training.poses import CameraDistribution, sample_camera_angles

N = 20000


def _draw(dist: str, **kw) -> torch.Tensor:
    return sample_camera_angles(CameraDistribution(dist, **kw), N, torch.Generator().manual_seed(0))


def test_uniform():
    a = _draw("uniform", horizontal_mean=0.1, horizontal_stddev=0.3, vertical_mean=1.5, vertical_stddev=0.2)
    assert a.shape == (N, 3) and (a[:, 2] == 0).all()
    assert a[:, 0].min() >= 0.1 - 0.3 and a[:, 0].max() <= 0.1 + 0.3
    assert a[:, 0].mean().item() == pytest.approx(0.1, abs=0.01)
    assert a[:, 1].std().item() == pytest.approx(0.4 / math.sqrt(12), abs=0.005)


def test_normal():
    a = _draw("normal", horizontal_mean=-0.2, horizontal_stddev=0.3, vertical_mean=1.4, vertical_stddev=0.1)
    assert a[:, 0].mean().item() == pytest.approx(-0.2, abs=0.01)
    assert a[:, 0].std().item() == pytest.approx(0.3, abs=0.01)
    assert a[:, 1].std().item() == pytest.approx(0.1, abs=0.005)


def test_spherical_uniform_covers_the_sphere_uniformly():
    a = _draw("spherical_uniform")  # defaults: the Megascans full-sphere settings
    cos_pitch = torch.cos(a[:, 1])
    assert cos_pitch.mean().item() == pytest.approx(0.0, abs=0.02)  # uniform on [-1, 1]
    assert cos_pitch.var().item() == pytest.approx(1 / 3, abs=0.01)
    assert a[:, 1].min() >= 1e-5 and a[:, 1].max() <= math.pi - 1e-5
    assert a[:, 0].min() >= -math.pi and a[:, 0].max() <= math.pi
    with pytest.raises(ValueError):
        CameraDistribution("sideways")


def test_gpc_spoofing_rolls_the_conditioning_poses(tiny_dataset, tmp_path):
    tr = Trainer(tiny_train_config(tiny_dataset, tmp_path / "run", g_camera_cond=True))
    inputs = tr._step_inputs(0)
    assert tr.loss.gpc_spoof_p == 1.0  # at the start every row is spoofed
    assert torch.equal(inputs["cond"], inputs["angles"].roll(1, dims=0))
    tr.loss.progressive_update(1e6)  # later: half of the rows on average
    inputs = tr._step_inputs(1)
    changed = (inputs["cond"] != inputs["angles"]).any(dim=1).float().mean().item()
    assert 0.2 < changed < 0.8


def test_camera_conditioned_training_step(tiny_dataset, tmp_path):
    cfg = tiny_train_config(
        tiny_dataset, tmp_path / "run", g_camera_cond=True, d_camera_cond=True, d_camera_cond_drop_p=0.5
    )
    tr = Trainer(cfg)
    assert tr.G.mapping.camera_scalar_enc is not None and tr.D.head_mapping.camera_scalar_enc is not None
    stats = tr.train_step()
    assert all(torch.isfinite(torch.cat(v)).all() for v in stats.values())


def test_dataset_without_poses_uses_a_distribution(tmp_path):
    data = write_dataset(tmp_path / "d.zip", n=4, size=32, poses=False)
    cfg = tiny_train_config(data, tmp_path / "run", camera_dist="spherical_uniform")
    tr = Trainer(cfg)
    assert tr.G.config.mean_camera_pose == [0.0, math.pi / 2, 0.0]
    angles = tr._step_inputs(0)["angles"]
    assert angles[:, 0].std() > 0.5  # poses spread around the sphere
    stats = tr.train_step()
    assert torch.isfinite(torch.cat(stats["Loss/G/loss"])).all()
