"""Fixtures of the training tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # makes ``training_support`` importable

from training_support import write_dataset  # noqa: E402


@pytest.fixture()
def tiny_dataset(tmp_path) -> Path:
    return write_dataset(tmp_path / "data.zip")
