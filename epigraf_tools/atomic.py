"""Atomic file writes: outputs appear complete under their final name or not at all.

Every temporary file or folder is named ``.epigraf-tmp-<host>-<pid>-<start>-<random>-<name>``
(host: a hash of the host name and PID namespace; start: the writer's process start time, when
the OS tells it).
A run killed with SIGKILL cannot remove its temporary files, so the first write of a later run
into the same folder removes those whose writer is gone: same host, and either no process with
that PID exists or the one that does started at another time (the PID was reused). Temporary
files of live runs, and of other hosts or containers sharing the folder, are never touched.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import EpigrafError

TEMP_PREFIX = ".epigraf-tmp-"
_MAX_NAME = 120  # characters of the final name kept in a temporary name (file names stop at 255 bytes)
_cleaned: set[tuple[int, Path]] = set()  # (pid, folder): each process sweeps a folder once


class OutputExistsError(EpigrafError):
    """An exclusive write found its name already taken (by an earlier or a concurrent run)."""


def _process_start(pid: int) -> str:
    """The start time of process ``pid`` in clock ticks since boot (Linux), or '0' where unknown."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read().decode("ascii", "replace")
    except OSError:
        return "0"
    fields = stat.rsplit(")", 1)[-1].split()  # the command name may hold spaces and ')'
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else "0"


def _host_tag() -> str:
    """Who can judge a PID: the host name plus the PID namespace (a container sharing the host
    name, e.g. with --network host, numbers its processes differently)."""
    try:
        namespace = str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        namespace = ""
    return hashlib.sha1(f"{socket.gethostname()}/{namespace}".encode("utf-8", "replace")).hexdigest()[:8]


def _temp_prefix() -> str:
    pid = os.getpid()
    return f"{TEMP_PREFIX}{_host_tag()}-{pid}-{_process_start(pid)}-"


def _short(name: str) -> str:
    return name if len(name) <= _MAX_NAME else name[-_MAX_NAME:]


def _writer_is_gone(name: str, host: str) -> bool:
    """Whether the temporary ``name`` belongs to a process of this host that no longer runs."""
    parts = name[len(TEMP_PREFIX) :].split("-", 3)
    if len(parts) < 4 or parts[0] != host or not parts[1].isdigit() or not parts[2].isdigit():
        return False  # not ours to judge: another host, or not one of our names
    pid, start = int(parts[1]), parts[2]
    if pid == os.getpid():
        return False  # this process's own (possibly in-progress) temporary files
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        pass
    except OSError:
        return False
    # Alive: the same writer only if it started when the name says (else the PID was reused).
    now = _process_start(pid)
    return start != "0" and now != "0" and now != start


def clean_stale_temps(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove temporary files and folders in ``folder`` left by dead writers; returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    host = _host_tag()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX) or not _writer_is_gone(entry.name, host):
            continue
        path = Path(entry.path)
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            continue  # removed meanwhile by another run, or not ours to remove
        removed.append(path)
    return removed


def _sweep_once(folder: Path) -> None:
    key = (os.getpid(), folder.resolve())
    if key not in _cleaned:
        _cleaned.add(key)
        clean_stale_temps(folder)


def temp_name(final: str | os.PathLike[str], suffix: str | None = None) -> Path:
    """A fresh temporary name beside ``final`` (named as above; ``suffix`` defaults to final's), not created.

    Callers create it inside their ``try`` (``os.open(..., O_EXCL)``, ``os.mkdir``) and remove it in
    ``finally``: an interrupt can then come at any moment after creation and still find the name
    (mkstemp/mkdtemp run Python code after creating, where a signal would lose it). The PID and 64
    random bits make the name this process's alone.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    _sweep_once(final.parent)
    suffix = final.suffix if suffix is None else suffix
    stem = final.name[: len(final.name) - len(final.suffix)] if final.suffix else final.name
    return final.parent / f"{_temp_prefix()}{secrets.token_hex(8)}-{_short(stem)}{suffix}"


def ordinary_permissions(folder: str | os.PathLike[str]) -> None:
    """Give a folder and the files in it 0777/0666 minus the umask (mkstemp/mkdtemp make them private)."""
    umask = _current_umask()
    folder = Path(folder)
    os.chmod(folder, 0o777 & ~umask)
    for item in folder.iterdir():
        if item.is_file() and not item.is_symlink():
            os.chmod(item, 0o666 & ~umask)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    The temporary name keeps the final suffix (writers such as imageio pick the format from it).
    The file gets ordinary permissions (0666 minus the umask), not mkstemp's private 0600.
    It is removed on any exception, KeyboardInterrupt and the CLI's SIGTERM included.
    """
    tmp_path = temp_name(final, suffix or None)
    try:  # created inside the try, so that an interrupt right after creation still removes the file
        os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # minus the umask
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_current_umask())  # a writer may have replaced the file
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


def _claim(src: Path, dst: Path, message: str) -> None:
    """Move ``src`` to ``dst`` only if ``dst`` does not exist, atomically (a hard link cannot overwrite)."""
    try:
        os.link(src, dst)
    except FileExistsError:
        raise OutputExistsError(message) from None
    except OSError:  # no hard links here (some network/FUSE file systems): reserve the name, then replace
        try:
            os.close(os.open(dst, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except FileExistsError:
            raise OutputExistsError(message) from None
        os.replace(src, dst)
        return
    src.unlink()


@contextlib.contextmanager
def atomic_dir(
    final: str | os.PathLike[str],
    remove: Iterable[str] = (),
    exclusive: Iterable[str] = (),
    exists_message: str | None = None,
) -> Iterator[Path]:
    """Yield a temporary folder beside ``final``; on success its files move into ``final``.

    A new (or empty) ``final`` appears in one rename; into an existing folder each file is moved
    with an atomic rename (other files there are kept, except the names in ``remove``, which are
    deleted so that no stale file from an earlier model survives). On failure nothing under
    ``final`` changes and the temporary folder is deleted.

    ``exclusive`` names files that must not exist in ``final`` yet: they are claimed first, in the
    order given, each with an exclusive create, so of two concurrent writers exactly one wins and
    the other gets :class:`OutputExistsError` with ``exists_message`` (an up-front ``exists()``
    check alone would let both pass).
    """
    final = Path(final)
    exclusive = list(exclusive)
    tmp = temp_name(final)
    try:  # made inside the try, so that an interrupt right after mkdir still removes it
        os.mkdir(tmp, 0o777)
        yield tmp
        ordinary_permissions(tmp)
        try:
            os.rename(tmp, final)  # fails if final holds anything, so this also decides races
            return
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise
            if not final.is_dir():
                raise EpigrafError(f"{final} exists and is not a folder") from None
        produced = sorted(tmp.iterdir())
        claimed: list[Path] = []
        try:
            for name in exclusive:
                if (tmp / name).exists():
                    _claim(tmp / name, final / name, exists_message or f"{final / name} exists")
                    claimed.append(final / name)
        except OutputExistsError:
            for path in claimed:  # give the names back to the run that owns the folder
                path.unlink(missing_ok=True)
            raise
        for item in produced:
            if item.name not in exclusive:
                os.replace(item, final / item.name)
        for name in set(remove) - {item.name for item in produced}:
            if (final / name).is_file():
                (final / name).unlink()
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
