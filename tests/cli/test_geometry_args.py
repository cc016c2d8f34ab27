"""cli/geometry_args.py: the geometry commands' option checks, made before any model is loaded."""

from __future__ import annotations

import shutil
from collections import namedtuple

import pytest

import epigraf_tools.cli.geometry_args as geometry_args
from epigraf_tools.cli.geometry_args import (
    check_fits_in_memory,
    check_fits_on_disk,
    check_grid_options,
    parse_numbers,
    prepare_writable_out,
    stage_bar,
)
from epigraf_tools.errors import EpigrafError


def test_parse_numbers():
    assert parse_numbers(None, "--box", (1, 3)) is None
    assert parse_numbers("0.1,0,-0.05", "--center", (3,)) == [0.1, 0.0, -0.05]
    assert parse_numbers("0.1 0.2  0.3", "--center", (3,)) == [0.1, 0.2, 0.3]
    with pytest.raises(EpigrafError, match="--center expects numbers like '0.1,0,-0.05', got 'a,b,c'"):
        parse_numbers("a,b,c", "--center", (3,))
    with pytest.raises(EpigrafError, match="--box needs 1 or 3 numbers, got 2 in '1,2'"):
        parse_numbers("1,2", "--box", (1, 3))


def test_grid_options_are_parsed():
    def box_center(*args):
        options = check_grid_options(*args)
        return options.box, options.center

    assert box_center(8, None, None, "raw", "auto", False) == (None, None)
    assert box_center(8, "0.3", "0,0,0.1", "sigma", "naive", False) == (0.3, [0.0, 0.0, 0.1])
    assert box_center(8, "0.1,0.2,0.3", None, "raw", "separable", False) == ([0.1, 0.2, 0.3], None)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(value="density"), "--value must be one of raw, sigma, got 'density'"),
        (dict(method="gpu"), "--method must be one of auto, kernel, separable, naive, got 'gpu'"),
        (dict(box="1,2"), "--box needs 1 or 3 numbers"),
        (dict(center="x"), "--center expects numbers"),
        (dict(resolution=100_000), "--force"),
    ],
)
def test_bad_grid_options_are_named(kwargs, message):
    args = {"resolution": 8, "box": None, "center": None, "value": "raw", "method": "auto", "force": False, **kwargs}
    with pytest.raises(EpigrafError, match=message):
        check_grid_options(**args)


def test_memory_check(monkeypatch):
    monkeypatch.setattr(geometry_args, "physical_memory_bytes", lambda: 2**30)
    check_fits_in_memory(2**30, "--resolution")
    with pytest.raises(EpigrafError, match=r"--resolution asks for a 2.0 GiB volume in memory .* has 1.0 GiB"):
        check_fits_in_memory(2**31, "--resolution")
    with pytest.raises(EpigrafError, match="in memory"):
        check_grid_options(1024, None, None, "raw", "auto", False, in_memory=True)  # 4 GiB of float32
    monkeypatch.setattr(geometry_args, "physical_memory_bytes", lambda: None)
    check_fits_in_memory(2**60, "--resolution")  # the platform does not say: no check


def test_disk_check_looks_at_the_nearest_existing_folder(monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    seen = []

    def fake_usage(path):
        seen.append(path)
        return usage(0, 0, 2**20)

    monkeypatch.setattr(shutil, "disk_usage", fake_usage)
    check_fits_on_disk(2**20, tmp_path / "a" / "b", "--resolution")
    assert seen == [tmp_path]
    with pytest.raises(EpigrafError, match="GiB free; use a lower --resolution or another --out"):
        check_fits_on_disk(2**20 + 1, tmp_path / "a", "--resolution")


def test_prepare_writable_out(tmp_path):
    out = prepare_writable_out(tmp_path / "x" / "y")
    assert out.is_dir() and list(out.iterdir()) == []  # the probe file is gone
    (tmp_path / "file").write_text("")
    with pytest.raises(EpigrafError, match="cannot write to --out"):
        prepare_writable_out(tmp_path / "file" / "sub")


def test_quiet_stage_bar_prints_nothing(capsys):
    with stage_bar("mesh", ["a", "b"], quiet=True) as stage:
        stage("a")
        stage("b")
    assert capsys.readouterr() == ("", "")


def test_stage_bar_names_the_stage_on_stderr(capsys):
    with stage_bar("mesh", ["extract", "write"], quiet=False) as stage:
        stage("extract")
        stage("write")
    out, err = capsys.readouterr()
    assert out == "" and "mesh: done" in err  # the bar ends complete, whatever the last stage was
