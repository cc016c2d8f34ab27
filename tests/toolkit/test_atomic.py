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


# --------------------------------------------------------------------------- stale temporary files
def _dead_pid() -> int:
    """The PID of a child that has exited and been reaped (no process has it, until reused)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


def _temp_name(pid: int, start: str, name: str, host: str | None = None) -> str:
    from epigraf_tools import atomic

    return f"{atomic.TEMP_PREFIX}{host or atomic._host_tag()}-{pid}-{start}-abcd1234-{name}"


def test_temp_names_carry_prefix_pid_and_final_suffix(tmp_path):
    from epigraf_tools import atomic

    with atomic_path(tmp_path / "seed0001.mrc") as tmp:
        assert tmp.name.startswith(f"{atomic.TEMP_PREFIX}{atomic._host_tag()}-{os.getpid()}-")
        assert tmp.name.endswith("-seed0001.mrc")
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["seed0001.mrc"]


def test_next_write_removes_stale_temps_of_dead_writers_only(tmp_path):
    import subprocess
    import sys

    from epigraf_tools import atomic

    out = tmp_path / "out"
    out.mkdir()
    dead = out / _temp_name(_dead_pid(), "1", "seed0000.mrc")
    dead.write_bytes(b"537 MB in real life")
    dead_dir = out / _temp_name(_dead_pid(), "1", "model")
    dead_dir.mkdir()
    (dead_dir / "model.safetensors").write_bytes(b"w")
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = out / _temp_name(live_proc.pid, atomic._process_start(live_proc.pid), "seed0001.mrc")
        live.write_bytes(b"in progress")
        # The live PID, but a start time that is not that process's: its PID was reused, the writer is gone.
        reused = out / _temp_name(live_proc.pid, "12345", "seed0002.mrc")
        reused.write_bytes(b"old")
        other_host = out / _temp_name(_dead_pid(), "1", "seed0003.mrc", host="0badc0de")
        other_host.write_bytes(b"another machine on a shared disk")
        foreign = out / ".epigraf-tmp-notours"
        foreign.write_bytes(b"?")
        write_text_atomic(out / "a.txt", "hi")
        names = {p.name for p in out.iterdir()}
    finally:
        live_proc.kill()
        live_proc.wait(timeout=60)
    if atomic._process_start(os.getpid()) == "0":  # no /proc: PID reuse cannot be told apart
        names.discard(reused.name)
    else:
        assert reused.name not in names
    assert dead.name not in names and dead_dir.name not in names
    assert {live.name, other_host.name, foreign.name, "a.txt"} <= names


def test_atomic_dir_is_exclusive_under_concurrency(tmp_path):
    import threading

    from epigraf_tools.atomic import OutputExistsError, atomic_dir

    final = tmp_path / "model"
    final.mkdir()
    (final / "notes.txt").write_text("kept")  # a non-empty folder: files are claimed one by one
    barrier = threading.Barrier(2)
    results: list[str] = []

    def writer(tag: str) -> None:
        try:
            with atomic_dir(final, exclusive=["config.json", "model.safetensors"]) as tmp:
                (tmp / "config.json").write_text(tag)
                (tmp / "model.safetensors").write_text(tag)
                barrier.wait(timeout=30)
            results.append("ok")
        except OutputExistsError:
            results.append("exists")

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["exists", "ok"]
    assert (final / "config.json").read_text() == (final / "model.safetensors").read_text()
    assert sorted(p.name for p in final.iterdir()) == ["config.json", "model.safetensors", "notes.txt"]


def test_atomic_dir_into_a_new_folder_lets_exactly_one_writer_win(tmp_path):
    import threading

    from epigraf_tools.atomic import OutputExistsError, atomic_dir

    final = tmp_path / "model"
    barrier = threading.Barrier(2)
    results: list[str] = []

    def writer(tag: str) -> None:
        try:
            with atomic_dir(final, exclusive=["config.json"]) as tmp:
                (tmp / "config.json").write_text(tag)
                barrier.wait(timeout=30)
            results.append(tag)
        except OutputExistsError:
            results.append("exists")

    threads = [threading.Thread(target=writer, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == 2 and results.count("exists") == 1
    winner = next(r for r in results if r != "exists")
    assert (final / "config.json").read_text() == winner
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
