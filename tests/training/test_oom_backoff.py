"""Out-of-memory back-off (training/oom.py, Trainer.train_step): an injected allocator error in a chunk's forward.

The tiny run's batch of 4 fits the CPU budget whole, so 'auto' picks batch_gpu 4; the injected error makes the
run halve it to 2 and redo the step. Every draw is a function of (seed, step, phase, chunk), so the run must then
log exactly the losses of a run started with batch_gpu 2: the same ops in the same order on the same CPU, compared
with rel 1e-6 / abs 1e-7 (room for nothing but last-bit differences).
"""

from __future__ import annotations

import json

import pytest
import torch
from training_support import tiny_train_config

from epigraf_tools.errors import EpigrafError
from epigraf_tools.training.config import resolve_train_config
from epigraf_tools.training.loop import train
from epigraf_tools.training.loss import EpiGRAFLoss
from epigraf_tools.training.oom import is_out_of_memory
from epigraf_tools.training.snapshots import load_state

LOSS_KEYS = ("Loss/G/loss", "Loss/D/loss", "Loss/scores/fake", "Loss/scores/real", "Loss/D/r1_penalty")
CUDA_OOM = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 79.15 GiB total capacity)"


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def inject_oom(monkeypatch, phase: str, step_chunk: int = 4, error: type[BaseException] = RuntimeError, times=1):
    """Make the first ``times`` chunks of ``phase`` with ``step_chunk`` samples raise an out-of-memory error."""
    original = EpiGRAFLoss.accumulate_gradients
    calls = {"raised": 0}

    def flaky(self, **kwargs):
        if kwargs["phase"] == phase and kwargs["real_img"].shape[0] == step_chunk and calls["raised"] < times:
            calls["raised"] += 1
            raise error(CUDA_OOM)
        return original(self, **kwargs)

    monkeypatch.setattr(EpiGRAFLoss, "accumulate_gradients", flaky)
    return calls


# Gall: before any optimiser step of the step. Dmain / Dreg: after G (and D) stepped, so the redo needs the rollback.
@pytest.mark.parametrize("phase", ["Gall", "Dmain", "Dreg"])
def test_backs_off_and_the_run_is_the_run_started_with_the_smaller_chunk(tiny_dataset, tmp_path, monkeypatch, phase):
    common = dict(kimg=0.012, tick_kimg=0.004, snapshot_kimg=0.012, augment="ada", ada_interval=1)
    reference = train(tiny_train_config(tiny_dataset, tmp_path / "ref", batch_gpu=2, **common))
    calls = inject_oom(monkeypatch, phase)
    lines: list[str] = []
    result = train(tiny_train_config(tiny_dataset, tmp_path / "run", **common), log=lines.append)
    assert calls["raised"] == 1 and result.steps == 3
    backoffs = [line for line in lines if "out of memory" in line]
    assert backoffs == [f"out of memory in step 0 ({phase}) with batch_gpu 4: redoing the step with batch_gpu 2"]
    a, b = _log(tmp_path / "ref"), _log(tmp_path / "run")
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        for k in LOSS_KEYS:
            if k in ra:
                assert rb[k] == pytest.approx(ra[k], rel=1e-6, abs=1e-7), (ra["step"], k)
    state = load_state(result.last_snapshot)
    assert json.loads(state["config"])["batch_gpu"] == 2 and json.loads(state["config"])["batch_gpu_auto"] is True
    assert json.loads((tmp_path / "run" / "config.json").read_text())["batch_gpu"] == 2  # a resume splits alike
    ref_state = load_state(reference.last_snapshot)
    for net in ("G", "D", "G_ema"):  # the failed attempt left nothing behind (w_avg, Adam moments, ADA)
        for k, v in ref_state[net].items():
            torch.testing.assert_close(state[net][k], v, rtol=1e-5, atol=1e-6, msg=f"{net} {k}")


def test_torch_oom_error_types_and_cpu_messages_are_recognised():
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("CUDA out of memory."))
    assert not is_out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_out_of_memory(ValueError("out of memory"))  # not an allocator's error


def test_torch_out_of_memory_error_itself_backs_off(tiny_dataset, tmp_path, monkeypatch):
    oom = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    inject_oom(monkeypatch, "Gall", error=oom)
    lines: list[str] = []
    train(tiny_train_config(tiny_dataset, tmp_path / "run", kimg=0.004), warn=lines.append)  # shown even quiet
    assert any("redoing the step with batch_gpu 2" in line for line in lines)


def test_a_given_batch_gpu_is_never_halved(tiny_dataset, tmp_path, monkeypatch):
    inject_oom(monkeypatch, "Dmain")
    with pytest.raises(EpigrafError, match=r"out of memory in step 0 \(Dmain\) with batch_gpu 4, given explicitly"):
        train(tiny_train_config(tiny_dataset, tmp_path / "run", batch_gpu=4, kimg=0.004))


def test_gives_up_at_batch_gpu_1(tiny_dataset, tmp_path, monkeypatch):
    calls = inject_oom(monkeypatch, "Gall", step_chunk=4, times=1)
    inject_oom(monkeypatch, "Gall", step_chunk=2, times=1)  # wraps the first: 4 fails, then 2
    inject_oom(monkeypatch, "Gall", step_chunk=1, times=1)  # ... then 1
    lines: list[str] = []
    with pytest.raises(EpigrafError, match="with batch_gpu 1, the smallest chunk") as err:
        train(tiny_train_config(tiny_dataset, tmp_path / "run", kimg=0.004), log=lines.append)
    assert "\n" not in str(err.value) and calls["raised"] == 1
    assert [line.split(": ")[-1] for line in lines if "out of memory" in line] == [
        "redoing the step with batch_gpu 2",
        "redoing the step with batch_gpu 1",
    ]


def test_resumed_auto_choice_may_back_off_but_a_batch_gpu_given_on_resume_may_not(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"data": "d.zip", "batch": 8, "batch_gpu": 4, "batch_gpu_auto": True}))
    assert resolve_train_config({}, resume=str(run)).batch_gpu_auto is True
    assert resolve_train_config({"batch_gpu": 4}, resume=str(run)).batch_gpu_auto is False
    assert resolve_train_config({}, sets=["batch_gpu=2"], resume=str(run)).batch_gpu_auto is False
