"""SIGTERM and Ctrl-C: temporary files removed, one line, exit 143 / 130; training leaves whole snapshots.

These run the real console entry point in subprocesses and signal them while they write. Every wait
is bounded, so a regression fails the test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_support import write_dataset  # noqa: E402

from epigraf_tools.atomic import TEMP_PREFIX  # noqa: E402

# the console script's own entry (its fast exit included), as `epigraf` runs it
ENTRY = "import sys; from epigraf_tools.cli.app import console_main; sys.argv[0] = 'epigraf'; console_main()"
WAIT_S = 120  # start-up (torch import, model load) on a busy 2-core machine, plus the work itself


def _start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "EPIGRAF_DEBUG": "0"}

    def default_sigint() -> None:  # a child of a background job inherits an ignored SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        preexec_fn=default_sigint,
    )


def _wait_for(proc: subprocess.Popen, found, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not found():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"exited {proc.returncode} before {what}: {err.decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate(timeout=30)
            pytest.fail(f"no {what} within {WAIT_S} s")
        time.sleep(0.02)


def _finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate(timeout=30)
        pytest.fail("the signalled process did not exit")
    return proc.returncode, err.decode()


def _temps(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)] if folder.is_dir() else []


@pytest.mark.parametrize(
    ("sigs", "code", "line"),
    [
        ([signal.SIGTERM], 143, "Terminated."),
        ([signal.SIGINT], 130, "Interrupted."),
        ([signal.SIGTERM, signal.SIGTERM], 143, "Terminated."),  # an impatient scheduler: cleanup still runs
    ],
)
def test_signal_during_export_volume_removes_the_temp_file(tmp_path, sigs, code, line):
    out = tmp_path / "vol"
    # 512^3 floats (537 MB) take seconds to fill: a wide window for the signal to land mid-write.
    proc = _start(["export-volume", "--resolution", "512", "--method", "separable", "--out", str(out), "-q"])
    _wait_for(proc, lambda: bool(_temps(out)), "temporary .mrc")
    for sig in sigs:
        proc.send_signal(sig)
        time.sleep(0.005)
    rc, err = _finish(proc)
    assert rc == code, err
    assert [ln for ln in err.splitlines() if ln.strip()] == [line]
    assert list(out.iterdir()) == []  # no temporary file, no volume, no sidecar


def test_sigterm_during_an_eg3d_export_volume_removes_the_temp_file(tmp_path):
    # EG3D slabs stream through the same direct writer as EpiGRAF's: the same cleanup must hold
    from epigraf_tools.eg3d_model import as_toolkit_model
    from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = tmp_path / "eg3d"
    as_toolkit_model(EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16))).save_pretrained(
        model
    )
    out = tmp_path / "vol"
    args = ["export-volume", "--model", str(model), "--resolution", "512", "--method", "separable", "--out", str(out)]
    proc = _start([*args, "-q"])
    _wait_for(proc, lambda: bool(_temps(out)), "temporary .mrc")
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 143, err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["Terminated."]
    assert list(out.iterdir()) == []


def test_sigterm_during_training_leaves_only_complete_snapshots(tmp_path):
    from epigraf_tools.training.snapshots import STATE_NAME, list_snapshots, load_state

    data = write_dataset(tmp_path / "d.zip", n=4, size=32)
    run = tmp_path / "run"
    tiny = [
        "--resolution", "32", "--patch-res", "16", "--batch", "4", "--kimg", "100", "--tick-kimg", "0.004",
        "--device", "cpu", "--set", "z_dim=32", "--set", "w_dim=32", "--set", "triplane_res=16",
        "--set", "feat_dim=8", "--set", "g_channel_base=256", "--set", "g_channel_max=32",
        "--set", "mlp_hid_dim=16", "--set", "num_ray_steps=4", "--set", "d_channel_base=256",
        "--set", "d_channel_max=32", "--set", "grid_size=0", "--image-kimg", "0", "--set", "snapshot_kimg=0.004",
        "--set", "keep_snapshots=0",
    ]  # fmt: skip
    proc = _start(["train", "--data", str(data), "--out", str(run), "--quiet", *tiny])
    # A snapshot every step: by the second, the signal is as likely to land in a write as in a step.
    _wait_for(proc, lambda: len(list_snapshots(run)) >= 2, "second snapshot")
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 143, err
    assert [ln for ln in err.splitlines() if ln.strip()] == ["Terminated."]
    assert _temps(run) == []
    snaps = list_snapshots(run)
    assert sorted(p.name for p in run.glob("snapshot-*")) == [p.name for p in snaps]
    for snap in snaps:
        assert load_state(snap)["format"] == 1 and (snap / "model.safetensors").is_file()
    assert json.loads((run / "latest.json").read_text())["snapshot"] in {p.name for p in snaps}
    assert not (snaps[-1] / STATE_NAME).stat().st_size == 0


def test_next_run_removes_what_a_sigkilled_run_left(tmp_path):
    out = tmp_path / "vol"
    proc = _start(["export-volume", "--resolution", "512", "--method", "separable", "--out", str(out), "-q"])
    _wait_for(proc, lambda: bool(_temps(out)), "temporary .mrc")
    proc.kill()  # SIGKILL: nothing can clean up
    _finish(proc)
    left = _temps(out)
    assert len(left) == 1 and left[0].endswith("-seed0000.mrc")
    proc = _start(
        ["export-volume", "--seeds", "1", "--resolution", "8", "--method", "separable", "--out", str(out), "-q"]
    )
    rc, err = _finish(proc)
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["seed0001.cxc", "seed0001.json", "seed0001.mrc"]


def test_sigterm_during_video_grid_removes_its_scratch_folder(tmp_path):
    out = tmp_path / "vid"
    proc = _start(["video", "--seeds", "0-3", "--grid", "--frames", "240", "--resolution", "64", "--out", str(out)])
    _wait_for(proc, lambda: any(n.endswith("-grid.frames") for n in _temps(out)), "grid scratch folder")
    proc.send_signal(signal.SIGTERM)
    rc, err = _finish(proc)
    assert rc == 143, err
    assert err.splitlines()[-1] == "Terminated."
    assert list(out.iterdir()) == []


LOST_IN_FINALISER = """
import os, signal, sys, time
from epigraf_tools.cli.common import Terminated, install_signal_handlers
install_signal_handlers()

class Slow:
    def __del__(self):  # the signal lands while garbage collection runs this finaliser
        os.kill(os.getpid(), signal.SIG)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            pass

try:
    obj = Slow()
    del obj  # the handler raises inside __del__, where Python drops exceptions
    for _ in range(500):  # the rest of the run: must be cut short
        time.sleep(0.01)
    print("ran to the end")
except KeyboardInterrupt as exc:
    print("terminated" if isinstance(exc, Terminated) else "interrupted")
"""


@pytest.mark.parametrize(("sig", "expected"), [("SIGTERM", "terminated"), ("SIGINT", "interrupted")])
def test_an_interrupt_that_lands_in_a_finaliser_is_not_lost(sig, expected):
    code = LOST_IN_FINALISER.replace("signal.SIG)", f"signal.{sig})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT_S)
    assert proc.stdout.strip() == expected, proc.stderr
    assert "Exception ignored" not in proc.stderr  # re-raised, not printed and dropped


SWALLOWED = """
import os, signal, time
from epigraf_tools.cli.common import Terminated, install_signal_handlers
install_signal_handlers()

try:
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
    except BaseException:
        pass  # what a library that catches everything, or a C extension that clears the error, does
    cleanup_started = time.monotonic()
    for _ in range(500):  # the rest of the run: must be cut short
        time.sleep(0.01)
    print("ran to the end")
except KeyboardInterrupt as exc:
    try:
        os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM during the cleanup: ignored
        time.sleep(1.5)  # longer than the re-delivery period: the cleanup is not cut short either
        print("terminated" if isinstance(exc, Terminated) else "interrupted", round(time.monotonic() - cleanup_started))
    except KeyboardInterrupt:
        print("cleanup cut short")
"""


def test_a_swallowed_sigterm_is_raised_again_but_never_inside_its_cleanup():
    proc = subprocess.run([sys.executable, "-c", SWALLOWED], capture_output=True, text=True, timeout=WAIT_S)
    words = proc.stdout.split()
    assert words[:1] == ["terminated"], proc.stdout + proc.stderr  # raised again, and the cleanup ran to its end
    assert int(words[1]) < 5, words  # re-raised after 0.5 s (+ 1.5 s of cleanup), not at the loop's end (5 s)
