"""scikit-image's marching cubes on two cores: the volume split in two along z, one half in a forked child.

scikit-image's Lewiner marching cubes holds the GIL for the whole call (two threads on two halves of a
512^3 volume took 1.86 s against 1.96 s for the whole on 2 cores), so a second core needs a second
process. A forked child sees the parent's volume without copying it, runs marching cubes on the upper
half, and sends its vertices and faces back through a pipe; the parent does the lower half meanwhile.
Each cell belongs to exactly one half, so every triangle is made once; the vertices on the shared
plane (grid edges lying in it) are made by both halves with the same arithmetic and are welded by
their exact positions. The result is the same surface as one call (the same triangles; vertices of the
upper half differ from a single call's by float32 rounding, less than 1e-4 of a voxel), in another
vertex order. Anything unexpected (no fork, a child that fails, seam vertices that do not pair up)
falls back to the single call, so the answer never depends on the split.

Linux only (fork is unsafe on macOS, absent on Windows); the child touches neither torch nor any lock
another thread may hold, blocks no signal the parent needs, and leaves with ``os._exit``.
"""

from __future__ import annotations

import io
import os
import signal
import sys
import warnings
from collections.abc import Sequence

import numpy as np

# Below this many voxels the fork and the seam cost more than half a call saves (256^3: ~0.25 s per half).
SPLIT_MIN_VOXELS = 1 << 24


def marching_cubes_zyx(
    zyx: np.ndarray, level: float, spacing: Sequence[float], workers: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] (z, y, x order, times ``spacing``) and faces [F, 3] of the ``level`` iso-surface.

    What ``skimage.measure.marching_cubes(zyx, level, spacing=spacing, gradient_direction='ascent',
    allow_degenerate=True)`` returns, on two processes when ``workers`` (default: 2 when torch may use
    two threads, the volume is at least ``SPLIT_MIN_VOXELS`` and the platform forks safely) allows.
    Errors are scikit-image's (e.g. a level outside the volume's range).
    """
    if workers is None:
        workers = 2 if _can_split(zyx.size) else 1
    if workers >= 2 and zyx.shape[0] >= 4:
        split = _split_in_two(zyx, level, spacing)
        if split is not None:
            return split
    from skimage.measure import marching_cubes

    verts, faces, _normals, _values = marching_cubes(
        zyx, level=level, spacing=tuple(spacing), gradient_direction="ascent", allow_degenerate=True
    )
    return verts, faces


def _can_split(voxels: int) -> bool:
    import torch

    return (
        voxels >= SPLIT_MIN_VOXELS
        and sys.platform.startswith("linux")
        and hasattr(os, "fork")
        and torch.get_num_threads() >= 2
        and (os.cpu_count() or 1) >= 2
    )


def _half(zyx: np.ndarray, level: float, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """One marching-cubes call; a part without surface gives empty arrays instead of scikit-image's error."""
    from skimage.measure import marching_cubes

    try:
        verts, faces, _normals, _values = marching_cubes(
            zyx, level=level, spacing=tuple(spacing), gradient_direction="ascent", allow_degenerate=True
        )
    except (ValueError, RuntimeError):  # the level outside this part's range, or no crossing in it
        return np.empty((0, 3)), np.empty((0, 3), dtype=np.int64)
    return verts, faces


def _split_in_two(zyx: np.ndarray, level: float, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower half here, upper half in a forked child; None when anything does not work out."""
    mid = zyx.shape[0] // 2
    read_fd, write_fd = os.pipe()
    blocked = {signal.SIGINT, signal.SIGTERM}
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)  # no Python handler may run in the child
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: "fork() in a multi-threaded process"
            pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        os.close(read_fd)
        os.close(write_fd)
        return None
    if pid == 0:  # the child: never returns into the parent's code
        code = 1
        try:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            os.close(read_fd)
            verts, faces = _half(zyx[mid:], level, spacing)
            buffer = io.BytesIO()
            np.save(buffer, verts)
            np.save(buffer, faces)
            _write_all(write_fd, buffer.getbuffer())
            code = 0
        except BaseException:  # noqa: BLE001 - the parent sees the exit code and computes the half itself
            pass
        finally:
            os._exit(code)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    os.close(write_fd)
    try:
        lower = _half(zyx[: mid + 1], level, spacing)
        payload = _read_all(read_fd)
        _, status = os.waitpid(pid, 0)
        pid = 0
    finally:
        os.close(read_fd)
        if pid:  # interrupted: the child must not outlive us
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
        return None
    stream = io.BytesIO(payload)
    upper = (np.load(stream, allow_pickle=False), np.load(stream, allow_pickle=False))
    return _weld_halves(lower, upper, mid * float(spacing[0]))


def _write_all(fd: int, data: memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view) :]


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 22):
        chunks.append(chunk)
    return b"".join(chunks)


def _weld_halves(
    lower: tuple[np.ndarray, np.ndarray], upper: tuple[np.ndarray, np.ndarray], seam_z: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """One mesh from the halves: the upper one's seam vertices replaced by the lower one's at the same point."""
    (lv, lf), (uv, uf) = lower, upper
    if len(lf) == 0 or len(uf) == 0:  # the surface lies in one half: nothing to weld
        if len(lf) == 0 and len(uf) == 0:
            return None  # no surface anywhere: the single call reports it
        if len(lf) == 0:
            uv = uv.copy()
            uv[:, 0] += seam_z
            return uv, uf
        return lv, lf
    lower_seam = np.flatnonzero(lv[:, 0] == seam_z)
    upper_seam = np.flatnonzero(uv[:, 0] == 0.0)
    if len(lower_seam) != len(upper_seam):
        return None
    lo_keys, up_keys = _plane_keys(lv[lower_seam]), _plane_keys(uv[upper_seam])
    lo_order, up_order = np.argsort(lo_keys, kind="stable"), np.argsort(up_keys, kind="stable")
    lo_sorted, up_sorted = lo_keys[lo_order], up_keys[up_order]
    if not np.array_equal(lo_sorted, up_sorted) or (len(lo_sorted) > 1 and (lo_sorted[1:] == lo_sorted[:-1]).any()):
        return None
    if not np.array_equal(lv[lower_seam[lo_order]][:, 1:], uv[upper_seam[up_order]][:, 1:]):
        return None  # a hash collision between distinct points (never seen): do not trust the pairing
    keep = np.ones(len(uv), dtype=bool)
    keep[upper_seam] = False
    index = np.empty(len(uv), dtype=np.int64)
    index[keep] = len(lv) + np.arange(int(keep.sum()))
    index[upper_seam[up_order]] = lower_seam[lo_order]
    moved = uv[keep].astype(np.float64, copy=True)
    moved[:, 0] += seam_z
    verts = np.concatenate([lv.astype(np.float64, copy=False), moved])
    faces = np.concatenate([lf.astype(np.int64, copy=False), index[uf]])
    return verts, faces


def _plane_keys(yx: np.ndarray) -> np.ndarray:
    """One 64-bit key per vertex from its exact (y, x) bits (pairs are checked exactly afterwards)."""
    bits = np.ascontiguousarray(yx[:, 1:], dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        return bits[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ bits[:, 1]


__all__ = ["SPLIT_MIN_VOXELS", "marching_cubes_zyx"]
