"""Atomic file writes: outputs appear complete under their final name or not at all."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    The temporary name keeps the final suffix (writers such as imageio pick the format from it).
    The file gets ordinary permissions (0666 minus the umask), not mkstemp's private 0600.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}-", suffix=suffix or final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_current_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def write_bytes_atomic(final: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text_atomic(final: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(final, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str], remove: Iterable[str] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success its files move into ``final``.

    A new ``final`` appears in one rename; into an existing folder each file is moved with an
    atomic rename (other files there are kept, except the names in ``remove``, which are deleted
    so that no stale file from an earlier model survives). On failure nothing under ``final``
    changes and the temporary folder is deleted.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
    umask = _current_umask()
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~umask)  # mkdtemp/mkstemp make private entries; give ordinary permissions
        for item in tmp.iterdir():
            if item.is_file():
                os.chmod(item, 0o666 & ~umask)
        if not final.exists():
            os.replace(tmp, final)
            return
        produced = sorted(tmp.iterdir())
        for item in produced:
            os.replace(item, final / item.name)
        for name in set(remove) - {item.name for item in produced}:
            if (final / name).is_file():
                (final / name).unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
