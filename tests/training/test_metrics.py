"""FID: the Frechet distance, the missing-weights message, and the pipeline on a stand-in network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from training_support import tiny_train_config, write_dataset
from typer.testing import CliRunner

from epigraf_tools.training import metrics
from epigraf_tools.training.data import ImageDataset
from epigraf_tools.training.loop import train
from epigraf_tools.training.metrics import (
    FeatureStats,
    InceptionFeatures,
    InceptionNotFound,
    compute_fid,
    frechet_distance,
)

from support import make_tiny_generator


class _StandIn(torch.nn.Module):
    """Same call signature as NVIDIA's TorchScript Inception: uint8 [B, 3, H, W] -> features."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        y = torch.nn.functional.adaptive_avg_pool2d(x.float() / 255.0, 1)
        return torch.cat([y.flatten(1), y.flatten(1).square()], dim=1)


@pytest.fixture()
def stand_in(tmp_path):
    path = tmp_path / "inception-2015-12-05.pt"
    torch.jit.script(_StandIn()).save(str(path))
    return path


def test_frechet_distance_known_cases():
    rng = np.random.RandomState(0)
    a = rng.randn(5, 5)
    cov = a @ a.T + np.eye(5)
    mu = rng.randn(5)
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(mu, cov, mu + 2, cov) == pytest.approx(4 * 5, rel=1e-6)
    d1, d2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 9.0])
    expected = ((np.sqrt(d1) - np.sqrt(d2)) ** 2).sum()  # diagonal covariances
    assert frechet_distance(np.zeros(3), np.diag(d1), np.zeros(3), np.diag(d2)) == pytest.approx(expected)


def test_feature_stats_match_numpy():
    x = np.random.RandomState(1).randn(50, 4)
    s = FeatureStats()
    s.update(x[:20])
    s.update(x[20:])
    mu, cov = s.mean_cov()
    assert np.allclose(mu, x.mean(0)) and np.allclose(cov, np.cov(x, rowvar=False))


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("EPIGRAF_INCEPTION", str(tmp_path / "nowhere" / "inception-2015-12-05.pt"))
    with pytest.raises(InceptionNotFound, match=r"inception-2015-12-05.pt .*nvlabs-fi-cdn.*put the file at .*nowhere"):
        InceptionFeatures()
    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    with pytest.raises(InceptionNotFound):  # a training run asking for FID fails before any work
        train(tiny_train_config(data, tmp_path / "run", metrics=["fid2k_full"]))
    assert not (tmp_path / "run").exists()


def test_fid_pipeline_with_stand_in_network(tmp_path, stand_in):
    data = write_dataset(tmp_path / "d.zip", n=6, size=32)
    ds = ImageDataset(data, resolution=32)
    G = make_tiny_generator(0)
    value = compute_fid(G, ds, num_gen=12, inception=stand_in, batch_size=4, cache_dir=tmp_path / "cache")
    assert np.isfinite(value) and value > 0
    assert len(list((tmp_path / "cache").glob("fid-real-*.npz"))) == 1  # real statistics are cached
    again = compute_fid(G, ds, num_gen=12, inception=stand_in, batch_size=4, cache_dir=tmp_path / "cache")
    assert again == pytest.approx(value)  # same seed, same images


def test_fid_during_training_and_cli(tmp_path, stand_in, monkeypatch):
    monkeypatch.setitem(metrics.METRICS, "fid2k_full", 8)  # keep the test fast
    data = write_dataset(tmp_path / "d.zip", n=6, size=32)
    result = train(
        tiny_train_config(data, tmp_path / "run", kimg=0.004, metrics=["fid2k_full"], inception=str(stand_in))
    )
    lines = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["metric"] == "fid2k_full" and np.isfinite(lines[0]["value"])
    assert "Metrics/fid2k_full" in result.last_record

    from epigraf_tools.cli.app import app

    args = ["fid", "--model", str(result.last_snapshot), "--data", str(data), "--num-gen", "8", "--device", "cpu"]
    res = CliRunner().invoke(app, [*args, "--inception", str(stand_in), "--out", str(tmp_path / "res")])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "res" / "fid.json").read_text())["num_gen"] == 8
    res = CliRunner().invoke(app, [*args, "--inception", str(tmp_path / "missing.pt")])
    assert res.exit_code == 2 and "put the file at" in res.output


def test_evaluate_fid_checks_before_loading_and_records(tmp_path, stand_in):
    from epigraf_tools.training.metrics import evaluate_fid

    data = write_dataset(tmp_path / "d.zip", n=6, size=32)
    loaded: list[torch.device] = []

    def load(device: torch.device) -> torch.nn.Module:
        loaded.append(device)
        return make_tiny_generator(0)

    for kwargs, message in [
        ({"metric": "kid"}, "metric must be one of"),
        ({"num_gen": 1}, "num_gen must be >= 2"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"camera_dist": "spiral"}, "spiral"),
    ]:
        with pytest.raises(metrics.EpigrafError, match=message):
            evaluate_fid(load, str(data), inception=stand_in, device="cpu", **kwargs)
    assert loaded == []  # every bad argument failed before the model was loaded
    result = evaluate_fid(
        load, str(data), num_gen=8, inception=stand_in, batch_size=4, device="cpu", model="tiny", out=tmp_path / "o"
    )
    assert loaded == [torch.device("cpu")] and result.metric == "fid8" and np.isfinite(result.value)
    record = json.loads((tmp_path / "o" / "fid.json").read_text())
    assert record == {"metric": "fid8", "value": result.value, "model": "tiny", "data": str(data), "num_gen": 8}
