"""Keep freed memory in the process for jobs that allocate and free many huge arrays.

glibc serves an allocation above its mmap threshold (adaptive, at most 32 MB) with a fresh mapping and
unmaps it again on free, so the next one faults in every page anew. Tri-plane synthesis at 512^2
allocates and frees dozens of 64 MB activations, and marching cubes and the mesh report a few hundred
MB more: ``epigraf export-mesh`` at 512^3 took about 980k page faults and 7 s of system time for
16 s of CPU (benchmarks/RESULTS.md). With the thresholds raised, freed blocks stay in the heap and
later allocations reuse pages that are already mapped.

This is a process-wide setting, so only short-lived commands turn it on (``export-mesh``,
``export-volume``: there it cut synthesis's system time from 1.37 to 0.47 s at 512^2 on 2 cores); a
library call never changes how its caller's process allocates.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
DEFAULT_RETAIN_BYTES = 1 << 30


def retain_freed_memory(limit: int = DEFAULT_RETAIN_BYTES) -> bool:
    """Serve allocations up to ``limit`` bytes from the heap and keep up to ``limit`` freed bytes mapped.

    Peak memory stays that of the largest live set (plus fragmentation): freed memory is reused, not
    returned. Returns True when the allocator took both settings (glibc), False elsewhere (musl,
    macOS, Windows: nothing is changed there).
    """
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return False
    # One arena: a helper thread's big blocks then come from (and return to) the same heap, instead of
    # a per-thread arena that cannot reuse what the main thread freed (a colour thread that ran beside
    # the report once raised export-mesh's peak RSS from 1.63 to 1.84 GB this way).
    done = [mallopt(M_MMAP_THRESHOLD, int(limit)), mallopt(M_TRIM_THRESHOLD, int(limit)), mallopt(M_ARENA_MAX, 1)]
    return all(done)


def _glibc_mallopt():
    """glibc's ``mallopt(int, int) -> int``, or None when the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (only glibc has it; musl's mallopt does nothing)
    except (OSError, AttributeError):
        return None
    mallopt = libc.mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


__all__ = ["DEFAULT_RETAIN_BYTES", "retain_freed_memory"]
