"""epigraf_tools/checkpoints/transfer_progress.py: timeouts from the environment, the stall watch, progress bars."""

from __future__ import annotations

import pytest

import epigraf_tools.checkpoints.transfer_progress as tp
from epigraf_tools.checkpoints.transfer_progress import (
    DEFAULT_STALL_S,
    DEFAULT_TIMEOUT_S,
    STALL_MIN_BYTES,
    StallWatch,
    download_timeouts,
    env_seconds,
    transfer_progress,
)
from epigraf_tools.errors import EpigrafError


def test_timeouts_default_and_from_the_environment(monkeypatch):
    monkeypatch.delenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", raising=False)
    monkeypatch.delenv("EPIGRAF_DOWNLOAD_STALL_S", raising=False)
    assert download_timeouts() == (DEFAULT_TIMEOUT_S, DEFAULT_STALL_S)
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", " 2.5 ")
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_STALL_S", "7")
    assert download_timeouts() == (2.5, 7.0)


@pytest.mark.parametrize("raw", ["0", "-1", "nan", "inf", "soon"])
def test_bad_seconds_name_the_variable(monkeypatch, raw):
    monkeypatch.setenv("EPIGRAF_X_S", raw)
    with pytest.raises(EpigrafError, match=f"EPIGRAF_X_S='{raw}' must be a positive number of seconds"):
        env_seconds("EPIGRAF_X_S", 1.0)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_stall_watch_refuses_a_drip_but_not_a_steady_flow(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(tp.time, "monotonic", clock)
    watch = StallWatch("download of x.pkl", stall_s=10)
    for step in range(1, 6):  # a full window's worth of bytes every 8 s: never a stall
        clock.now += 8
        watch.update(step * STALL_MIN_BYTES)
    clock.now += 8
    watch.update(5 * STALL_MIN_BYTES + 1)  # a trickle, still within the window
    clock.now += 3
    with pytest.raises(EpigrafError, match=r"download of x.pkl stalled: under 64 KiB in 10 s"):
        watch.update(5 * STALL_MIN_BYTES + 2)


def test_disabled_progress_is_a_silent_no_op(capsys):
    with transfer_progress(False) as report:
        report("reading", 1, 2)
    assert capsys.readouterr() == ("", "")


def test_nothing_is_printed_until_the_first_report(capsys):
    with transfer_progress(True):
        pass
    assert capsys.readouterr() == ("", "")


def test_bars_go_to_stderr(capsys):
    with transfer_progress(True) as report:
        report("download of a.pkl", 512, 1024)
        report("download of a.pkl", 1024, 1024)
        report("reading b", 5, 0)  # unknown total
    out, err = capsys.readouterr()
    assert out == "" and "download of a.pkl" in err and "reading b" in err
