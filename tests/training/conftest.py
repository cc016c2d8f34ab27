"""Fixtures of the training tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # makes ``training_support`` importable

from training_support import write_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny training steps are far faster on one thread when the machine's cores are shared."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture()
def tiny_dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data.zip")
