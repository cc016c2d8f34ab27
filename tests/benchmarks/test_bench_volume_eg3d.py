"""benchmarks/bench_volume_eg3d.py: both grid orders of the fast path agree with EG3D's own procedure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_volume_eg3d.py"


@pytest.mark.parametrize("order", ["eg3d", "model"])
def test_the_fast_volume_matches_the_reference_in_either_order(order):
    """The model-order volume is compared after mapping it back to EG3D's axes; a wrong mapping shows as O(1)."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--resolution", "24", "--skip-epigraf", "--order", order, "--threads", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    found = re.search(r"ratio [\d.]+x; max \|difference\| ([\d.e+-]+) \(values in \[([-\d.e+]+), ([-\d.e+]+)\]",
                      proc.stdout)  # fmt: skip
    assert found, proc.stdout
    diff, lo, hi = (float(g) for g in found.groups())
    assert hi - lo > 0.1  # a volume with structure, so a transposed or mirrored one could not pass
    assert diff < 1e-4 * max(1.0, hi - lo)
