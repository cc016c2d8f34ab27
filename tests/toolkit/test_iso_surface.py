"""epigraf_tools/iso_surface.py: marching cubes split over a forked child gives the single call's surface."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch
from scipy.spatial import cKDTree

import epigraf_tools.iso_surface as iso
from epigraf_tools.iso_surface import marching_cubes_zyx

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the split forks (Linux only)")

SPACING = (0.5, 0.25, 0.125)  # unequal, so an axis mix-up would show


def _blobs(shape=(41, 37, 33), centres=((0.5, 0.5, 0.5),), radius=0.3) -> np.ndarray:
    """Smooth float32 field [z, y, x]: > 0 inside balls (fractional centres: no sample sits on the level)."""
    z, y, x = np.meshgrid(*(np.linspace(0, 1, n) for n in shape), indexing="ij")
    field = np.full(shape, -1.0)
    for cz, cy, cx in centres:
        field = np.maximum(field, radius - np.sqrt((z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2))
    return np.ascontiguousarray(field + 0.013 * np.sin(7.1 * x + 3.3 * y), dtype=np.float32)


def _oriented_triangles(verts: np.ndarray, faces: np.ndarray) -> list[np.ndarray]:
    """The 3 cyclic rotations of every triangle as 9-vectors (same winding, any starting corner)."""
    p = verts[faces]
    return [np.concatenate([p[:, j % 3], p[:, (j + 1) % 3], p[:, (j + 2) % 3]], axis=1) for j in range(3)]


def _assert_same_surface(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], tol: float) -> None:
    """Each triangle of one mesh is a triangle of the other, same winding, corners within ``tol``."""
    assert len(a[0]) == len(b[0]) and len(a[1]) == len(b[1])
    for (va, fa), (vb, fb) in ((a, b), (b, a)):
        tree = cKDTree(_oriented_triangles(va, fa)[0])
        dist = np.min([tree.query(t, k=1)[0] for t in _oriented_triangles(vb, fb)], axis=0)
        assert dist.max() <= tol, f"a triangle {dist.max():.3g} away"


def test_the_split_gives_the_single_calls_triangles(monkeypatch):
    vol = _blobs(centres=((0.5, 0.45, 0.5), (0.3, 0.6, 0.4)))  # both balls cross the z seam
    single = marching_cubes_zyx(vol, 0.0, SPACING, workers=1)
    forks = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    split = marching_cubes_zyx(vol, 0.0, SPACING, workers=2)
    assert forks == [1]  # really computed in two processes
    # float32 positions of the upper half are local + offset: within 1e-5 of the coarsest voxel side
    _assert_same_surface(single, split, tol=1e-5 * max(SPACING))
    # the welded seam leaves no duplicate vertex: the same vertex count and a closed surface
    edges = np.sort(np.concatenate([split[1][:, [0, 1]], split[1][:, [1, 2]], split[1][:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert (counts == 2).all()


@pytest.mark.parametrize("centre_z", [0.2, 0.8], ids=["lower half only", "upper half only"])
def test_a_surface_in_one_half_only(centre_z):
    vol = _blobs(centres=((centre_z, 0.5, 0.5),), radius=0.15)
    single = marching_cubes_zyx(vol, 0.0, SPACING, workers=1)
    split = marching_cubes_zyx(vol, 0.0, SPACING, workers=2)
    _assert_same_surface(single, split, tol=1e-5 * max(SPACING))


def test_a_failing_child_falls_back_to_the_single_call(monkeypatch):
    vol = _blobs()
    parent = os.getpid()
    real_half = iso._half

    def half(zyx, level, spacing):
        if os.getpid() != parent:
            raise MemoryError("child out of memory (test)")
        return real_half(zyx, level, spacing)

    monkeypatch.setattr(iso, "_half", half)
    assert iso._split_in_two(vol, 0.0, SPACING) is None  # the child's exit code says it failed
    verts, faces = marching_cubes_zyx(vol, 0.0, SPACING, workers=2)
    single = marching_cubes_zyx(vol, 0.0, SPACING, workers=1)
    np.testing.assert_array_equal(verts, single[0])
    np.testing.assert_array_equal(faces, single[1])


def test_no_child_is_left_behind():
    marching_cubes_zyx(_blobs(), 0.0, SPACING, workers=2)
    with pytest.raises(ChildProcessError):  # reaped: nothing to wait for (no zombie)
        os.waitpid(-1, os.WNOHANG)


def test_a_level_outside_the_range_is_scikit_images_error():
    with pytest.raises(ValueError, match="range"):
        marching_cubes_zyx(_blobs(), 5.0, SPACING, workers=2)


def test_only_big_volumes_with_two_threads_are_split(monkeypatch):
    assert not iso._can_split(iso.SPLIT_MIN_VOXELS - 1)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)  # OMP_NUM_THREADS=1: the user asked for one core
        assert not iso._can_split(iso.SPLIT_MIN_VOXELS)
        torch.set_num_threads(2)
        monkeypatch.setattr(os, "cpu_count", lambda: 2)
        assert iso._can_split(iso.SPLIT_MIN_VOXELS)
    finally:
        torch.set_num_threads(before)
