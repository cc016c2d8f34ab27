"""``heap.retain_freed_memory``: freed big blocks are reused instead of faulted in again (glibc only)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from epigraf_tools.heap import _glibc_mallopt

# Allocates, touches and frees a 64 MB block 8 times; prints the minor page faults of rounds 2-8.
CHILD = """
import resource, sys
from epigraf_tools.heap import retain_freed_memory
if sys.argv[1] == "1":
    assert retain_freed_memory()
block = bytearray(64 << 20)
del block
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(7):
    block = bytearray(64 << 20)  # zero-filled: every page is written
    del block
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(retain: bool) -> int:
    done = subprocess.run([sys.executable, "-c", CHILD, "1" if retain else "0"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


@pytest.mark.skipif(_glibc_mallopt() is None, reason="the setting exists in glibc only")
def test_retained_blocks_are_not_faulted_in_again():
    pages = (64 << 20) // 4096
    assert _faults(retain=False) > 3 * pages  # glibc maps and unmaps each block: every round faults again
    assert _faults(retain=True) < pages // 4  # the freed block stays in the heap and is reused


def test_other_allocators_are_left_alone(monkeypatch):
    import epigraf_tools.heap as heap

    monkeypatch.setattr(heap, "_glibc_mallopt", lambda: None)
    assert heap.retain_freed_memory() is False
