"""benchmarks/gpu_check.py: without a CUDA device it refuses with one line on stderr and exit 2, before any work."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_cuda_device_means_exit_2_and_one_clear_line(monkeypatch, capsys):
    gpu_check = _load()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "no CUDA device" in captured.err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: the script would run")
def test_the_script_itself_exits_2_here():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--skip-tests"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "no CUDA device" in proc.stderr and "Traceback" not in proc.stderr
