"""Snapshots: ordinary permissions, and a resume that survives an unreadable newest state."""

from __future__ import annotations

import os

import pytest
from training_support import tiny_train_config

from epigraf_tools.errors import EpigrafError
from epigraf_tools.training.loop import train
from epigraf_tools.training.snapshots import STATE_NAME, list_snapshots, load_resume_state, write_snapshot


@pytest.fixture()
def run_with_two_snapshots(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_train_config(tiny_dataset, run, kimg=0.008, snapshot_kimg=0.004))
    assert [p.name for p in list_snapshots(run)] == ["snapshot-000000004", "snapshot-000000008"]
    return run


def test_snapshot_has_ordinary_permissions(tiny_generator, tmp_path):
    umask = os.umask(0o022)
    try:
        snap = write_snapshot(tmp_path, 4, tiny_generator, {"cur_nimg": 4})
    finally:
        os.umask(umask)
    assert snap.stat().st_mode & 0o777 == 0o755
    modes = {p.name: p.stat().st_mode & 0o777 for p in snap.iterdir()}
    assert modes == {"config.json": 0o644, "model.safetensors": 0o644, STATE_NAME: 0o644}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("damage", [b"", b"\x80\x02garbage", "truncate"])
def test_resume_skips_unreadable_newest_state(run_with_two_snapshots, damage):
    run = run_with_two_snapshots
    state = run / "snapshot-000000008" / STATE_NAME
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2] if damage == "truncate" else damage)
    warnings: list[str] = []
    snap, saved = load_resume_state(run, warn=warnings.append)
    assert snap.name == "snapshot-000000004" and saved["format"] == 1
    assert len(warnings) == 1 and str(state) in warnings[0] and "snapshot-000000004" in warnings[0]
    # The whole loop resumes from it and writes a fresh, readable snapshot 8.
    lines: list[str] = []
    result = train(tiny_train_config(run.parent / "data.zip", run, kimg=0.008, snapshot_kimg=0.004), resume=run)
    assert result.cur_nimg == 8
    assert load_resume_state(run, warn=lines.append)[0].name == "snapshot-000000008" and lines == []


def test_resume_with_no_intact_state_fails_with_one_line(run_with_two_snapshots):
    run = run_with_two_snapshots
    for snap in list_snapshots(run):
        (snap / STATE_NAME).write_bytes(b"")
    with pytest.raises(EpigrafError, match="no snapshot in .* has a readable training_state.pt") as err:
        load_resume_state(run)
    assert "\n" not in str(err.value)


def test_named_snapshot_must_be_readable(run_with_two_snapshots):
    snap = run_with_two_snapshots / "snapshot-000000008"
    (snap / STATE_NAME).write_bytes(b"junk")
    with pytest.raises(EpigrafError, match="cannot read"):
        load_resume_state(snap)


def test_cli_resume_says_which_snapshot_it_skipped(run_with_two_snapshots):
    from typer.testing import CliRunner

    from epigraf_tools.cli.app import app

    run = run_with_two_snapshots
    state = run / "snapshot-000000008" / STATE_NAME
    state.write_bytes(state.read_bytes()[:100])  # a copy cut short
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--kimg", "0.008", "--quiet"])
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("Warning: ") and str(state) in warnings[0]
    for snap in list_snapshots(run):
        (snap / STATE_NAME).write_bytes(b"")
    res = CliRunner().invoke(app, ["train", "--resume", str(run), "--kimg", "0.012", "--quiet"])
    assert res.exit_code == 2, res.output
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: cannot resume: no snapshot in"), lines
