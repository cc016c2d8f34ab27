"""benchmarks/bench_kernel_ab.py: replays one volume's slab calls faithfully and refuses bad sources cleanly."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from epigraf_tools.kernels import DENSITY_SOURCE, kernel_status, load_density_kernel

pytestmark = pytest.mark.kernel  # builds (or loads) the kernel, and compiles a broken copy

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernel_ab.py"


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600, check=False, env=env
    )


@pytest.mark.parametrize("order", ["model", "eg3d"])
def test_a_build_replayed_reproduces_the_volume_and_equals_itself(order):
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    if not module.product_form:
        pytest.skip("this build has no product form: the volume makes no softplus_product_slab calls")
    proc = _run(str(DENSITY_SOURCE), str(DENSITY_SOURCE), "--resolution", "40", "--threads", "1", "--repeats", "1",
                "--order", order)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    replay = re.search(r"against the volume's own slabs: max \|difference\| ([\d.e+-]+)", proc.stdout)
    assert replay and float(replay.group(1)) == 0.0, proc.stdout  # the same build, the same inputs
    lines = re.findall(r"median ([\d.]+) s .* max \|difference\| from the first ([\d.e+-]+)", proc.stdout)
    assert len(lines) == 2 and all(float(diff) == 0.0 for _, diff in lines), proc.stdout


def test_a_missing_or_broken_source_is_one_line_and_exit_2(tmp_path):
    proc = _run(str(tmp_path / "absent.cpp"))
    assert proc.returncode == 2 and "no such kernel source" in proc.stderr
    broken = tmp_path / "density_slab.cpp"  # fails at its first line, so the four flag sets fail in seconds
    broken.write_text('#include "no_such_header_for_this_test.h"\n' + DENSITY_SOURCE.read_text())
    env = {**os.environ, "EPIGRAF_KERNEL_CACHE": str(tmp_path / "cache")}
    proc = _run(str(broken), "--resolution", "8", env=env)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith("error: ") and "did not build" in proc.stderr
    assert "Traceback" not in proc.stderr
