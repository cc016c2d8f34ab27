"""Training snapshots: a toolkit model folder for G_ema plus the full training state, written atomically.

RUN_DIR/snapshot-<nimg>/ (nimg = real images shown so far, 9 digits) holds
- config.json + model.safetensors: G_ema as ``Generator.save_pretrained`` writes it, so
  ``epigraf sample --model RUN_DIR/snapshot-...`` (or ``load_generator``) works directly;
- training_state.pt: G, D, G_ema, both optimisers, counters, and the configs (torch.save, loadable
  with ``weights_only=True``).
The folder is assembled under a hidden temporary name, every file is fsynced, then the folder is
renamed into place, so a snapshot folder exists complete or not at all; a run killed at any moment
(SIGKILL included) resumes from the last such folder. RUN_DIR/latest.json names the newest one.
Files and folders get ordinary permissions (0666/0777 minus the umask), as every other output.
A snapshot whose training_state.pt cannot be read (a disk that filled up, a copy cut short) is
skipped on resume with a warning: the run continues from the newest intact one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from epigraf_tools.atomic import TEMP_PREFIX, clean_stale_temps, ordinary_permissions, temp_name, write_text_atomic
from epigraf_tools.errors import EpigrafError

STATE_NAME = "training_state.pt"
LATEST_NAME = "latest.json"
SNAPSHOT_RE = re.compile(r"^snapshot-(\d{9,})$")
STATE_FORMAT = 1


def snapshot_name(cur_nimg: int) -> str:
    return f"snapshot-{cur_nimg:09d}"


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as fh:
                os.fsync(fh.fileno())
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # some filesystems cannot fsync directories
        pass


def write_snapshot(run_dir: Path, cur_nimg: int, G_ema: torch.nn.Module, state: dict[str, Any]) -> Path:
    """Write RUN_DIR/snapshot-<nimg>/ atomically and point latest.json at it."""
    run_dir = Path(run_dir)
    final = run_dir / snapshot_name(cur_nimg)
    tmp = temp_name(final)
    try:  # made inside the try: an interrupt (Ctrl-C, SIGTERM) at any point removes it
        os.mkdir(tmp, 0o777)
        G_ema.save_pretrained(tmp)
        torch.save({"format": STATE_FORMAT, **state}, tmp / STATE_NAME)
        ordinary_permissions(tmp)  # save_pretrained's files come from mkstemp (0600)
        _fsync_tree(tmp)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    write_text_atomic(run_dir / LATEST_NAME, json.dumps({"snapshot": final.name, "cur_nimg": cur_nimg}) + "\n")
    return final


def list_snapshots(run_dir: Path) -> list[Path]:
    """Complete snapshot folders, oldest first."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    found = []
    for p in run_dir.iterdir():
        m = SNAPSHOT_RE.match(p.name)
        if m and p.is_dir() and (p / STATE_NAME).is_file():
            found.append((int(m.group(1)), p))
    return [p for _, p in sorted(found)]


def prune_snapshots(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` snapshots (keep <= 0: keep everything)."""
    if keep <= 0:
        return
    for p in list_snapshots(run_dir)[:-keep]:
        shutil.rmtree(p, ignore_errors=True)


def clean_partial_snapshots(run_dir: Path) -> None:
    """Remove temporary folders left by a run killed while writing a snapshot.

    Our own temporary names are removed only when their writer is gone (see ``epigraf_tools.atomic``);
    ``.snapshot-*.tmp`` folders are the names older versions used.
    """
    run_dir = Path(run_dir)
    if run_dir.is_dir():
        clean_stale_temps(run_dir)
        for p in run_dir.glob(".snapshot-*.tmp"):
            if not p.name.startswith(TEMP_PREFIX):
                shutil.rmtree(p, ignore_errors=True)


def resolve_resume(spec: str | os.PathLike[str], run_dir: Path | None = None) -> Path:
    """A snapshot folder from ``spec``: a snapshot folder, a run folder (its newest snapshot), or
    'latest' (the newest snapshot of ``run_dir``)."""
    if str(spec) == "latest":
        if run_dir is None:
            raise EpigrafError("resume=latest needs the run folder (out=RUN_DIR)")
        spec = run_dir
    path = Path(spec)
    if not path.exists():
        raise EpigrafError(f"cannot resume: {path} does not exist")
    if (path / STATE_NAME).is_file():
        return path
    snaps = list_snapshots(path)
    if not snaps:
        raise EpigrafError(f"cannot resume: {path} holds no complete snapshot (snapshot-*/{STATE_NAME})")
    return snaps[-1]


def load_resume_state(
    spec: str | os.PathLike[str],
    run_dir: Path | None = None,
    map_location: str | torch.device = "cpu",
    warn: Callable[[str], None] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The snapshot to resume from ``spec`` (as ``resolve_resume``) and its training state.

    For a run folder or 'latest', a newest snapshot whose state cannot be read is skipped, with one
    ``warn`` line naming it, in favour of the newest intact one; if none is intact, EpigrafError.
    A snapshot folder named directly must itself be readable.
    """
    chosen = resolve_resume(spec, run_dir)
    direct = str(spec) != "latest" and (Path(spec) / STATE_NAME).is_file()
    candidates = [chosen] if direct else list_snapshots(chosen.parent)[::-1]
    skipped: list[str] = []
    for snap in candidates:
        try:
            state = load_state(snap, map_location=map_location)
        except EpigrafError:
            if direct:
                raise
            skipped.append(str(snap / STATE_NAME))
            continue
        if skipped and warn is not None:
            warn(f"Warning: {', '.join(skipped)} unreadable; resuming from the newest intact snapshot, {snap}")
        return snap, state
    raise EpigrafError(
        f"cannot resume: no snapshot in {chosen.parent} has a readable {STATE_NAME} "
        f"(tried {len(candidates)}, newest {candidates[0].name})"
    )


def load_state(snapshot: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(snapshot) / STATE_NAME
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise EpigrafError(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise EpigrafError(f"{path} is not an epigraf-tools training state (format {STATE_FORMAT})")
    return state
