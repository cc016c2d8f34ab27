"""Atomic writes: complete files or none, with ordinary permissions."""

from __future__ import annotations

import os

import pytest

from epigraf_tools.atomic import atomic_path, write_text_atomic


def test_atomic_file_has_ordinary_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        out = write_text_atomic(tmp_path / "a.txt", "hi")
    finally:
        os.umask(umask)
    assert out.read_text() == "hi"
    assert out.stat().st_mode & 0o777 == 0o644


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
