"""Two gloo ranks with half the batch each equal one rank that processes the whole batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from training_support import tiny_train_config

from epigraf_tools.training.loop import train
from epigraf_tools.training.snapshots import list_snapshots, load_state

WORKER = Path(__file__).with_name("ddp_worker.py")
LOSS_KEYS = ("Loss/G/loss", "Loss/D/loss", "Loss/D/r1_penalty", "Loss/scores/fake", "Loss/scores/real")


@pytest.mark.slow
def test_two_gloo_ranks_match_one_rank(tiny_dataset, tmp_path):
    common = dict(batch=8, kimg=0.016, tick_kimg=0.008, snapshot_kimg=0, d_reg_interval=2, mirror=True)
    # One process, two chunks of 4 (gradient accumulation) ...
    single = train(tiny_train_config(tiny_dataset, tmp_path / "one", batch_gpu=4, **common))
    # ... against two processes with one chunk of 4 each.
    cfg = tiny_train_config(tiny_dataset, tmp_path / "two", **common)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run([*cmd, str(WORKER), str(cfg_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    a = load_state(single.last_snapshot)
    b = load_state(list_snapshots(tmp_path / "two")[-1])
    assert a["cur_nimg"] == b["cur_nimg"] == 16 and b["world_size"] == 2
    # Parameters (not buffers: G's running w average is per rank, as in the official code). Tolerance:
    # float32 round-off (different thread counts and the gloo sum order) gives <= 2e-8 relative /
    # 1e-5 absolute on weights of magnitude up to ~500; a wrong split would differ by about an Adam
    # step, lr = 2.5e-3 or more.
    for net in ("G", "D", "G_ema"):
        module_params = dict(a[net])
        for name, va in module_params.items():
            if name.endswith(("w_avg", "noise_const", "resample_filter", "fourier_coefs", "mean_camera_pose")):
                continue
            assert torch.allclose(va, b[net][name], rtol=1e-5, atol=1e-5), (net, name, (va - b[net][name]).abs().max())
    log_a = [json.loads(x) for x in (tmp_path / "one" / "log.jsonl").read_text().splitlines()]
    log_b = [json.loads(x) for x in (tmp_path / "two" / "log.jsonl").read_text().splitlines()]
    for ra, rb in zip(log_a, log_b, strict=True):
        for k in LOSS_KEYS:
            if k in ra:
                assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-6), k


def test_training_uses_the_toolkits_distributed_context(monkeypatch):
    from epigraf_tools.distributed import DistContext
    from epigraf_tools.training import distributed as du

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = du.setup("cpu")
    assert type(ctx) is DistContext and not ctx.distributed and ctx.is_main
    du.teardown(ctx)  # alone: nothing joined, nothing to leave
