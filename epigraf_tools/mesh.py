"""Meshes from density volumes: marching cubes in world units, clean-up, true colours, export.

* Marching cubes (scikit-image, Lewiner) on the volume's [z, y, x] memory without copying it, with
  the face winding set so normals point out of the object (inside = larger density) and the mesh
  volume is positive. Vertices are in the model's world units: ``origin + index * voxel_size``
  (the official script leaves them in voxel indices and rescales the mesh to unit size).
* The volume is padded with one layer of "outside" values when the surface touches the box, so
  every mesh closes (watertight); the caps this adds are snapped onto the box faces, so the mesh
  is the surface cut by the box, never larger than the box.
* Optional clean-up: keep the largest connected component, Taubin smoothing (shrink-free), quadric
  decimation to a face budget (``fast-simplification``, the library behind trimesh's own
  ``simplify_quadric_decimation``).
* Colours: EpiGRAF's colour is view-independent, so the field's rgb at a vertex is exactly what the
  renderer shows there; it is queried at the final vertices (after smoothing and decimation).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path
from .errors import EpigrafError
from .images import raw_to_uint8
from .models import Generator

MESH_FORMATS = ("ply", "obj", "glb", "stl")
COLOR_FORMATS = ("ply", "obj", "glb")  # STL has no vertex colours
Stage = Callable[[str], None]


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """'ply,obj' -> ['ply', 'obj']; unknown formats are a user error."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = list(dict.fromkeys(f.strip().lower().lstrip(".") for f in items if f.strip()))
    if not formats:
        raise EpigrafError(f"no mesh format given; choose from {','.join(MESH_FORMATS)}")
    bad = [f for f in formats if f not in MESH_FORMATS]
    if bad:
        raise EpigrafError(f"unknown mesh format(s) {','.join(bad)}; choose from {','.join(MESH_FORMATS)}")
    return formats


def check_level(level: float, vmin: float, vmax: float) -> float:
    """A level must lie strictly inside the data range, otherwise there is no surface."""
    if not np.isfinite(level):
        raise EpigrafError(f"level must be a finite number, got {level}")
    if vmin == vmax:
        raise EpigrafError(f"the volume is constant ({vmin:.6g}): it has no surface at any level")
    if not vmin < level < vmax:
        raise EpigrafError(f"level {level:.6g} lies outside the volume's value range [{vmin:.6g}, {vmax:.6g}]")
    return float(level)


def _touches_boundary(vol: np.ndarray, level: float) -> bool:
    faces = (vol[0], vol[-1], vol[:, 0], vol[:, -1], vol[:, :, 0], vol[:, :, -1])
    return any(bool((f >= level).any()) for f in faces)


def _untied_level(values: np.ndarray, level: float) -> float:
    """The float32 level nearest to ``level`` (upwards) that no sample equals.

    A sample exactly at the level makes marching cubes put several vertices on one grid point, which
    leaves non-manifold edges (it happens at 512^3); moving the level by an ulp avoids it.
    """
    lvl = np.float32(level)
    for _ in range(16):
        if not _any_equal(values, lvl):
            break
        lvl = np.nextafter(lvl, np.float32(np.inf))
    return float(lvl)


def _any_equal(values: np.ndarray, x: np.float32, chunk: int = 1 << 20) -> bool:
    """``(values == x).any()`` of a C-contiguous array in 1M-sample pieces: no volume-sized boolean
    temporary (134 MB at 512^3, whose page faults cost more than the comparison)."""
    flat = values.reshape(-1)
    return any(bool((flat[i : i + chunk] == x).any()) for i in range(0, flat.size, chunk))


def padded_volume(shape_xyz: Sequence[int]) -> np.ndarray:
    """An uninitialised float32 volume V [Rx, Ry, Rz] ([z, y, x] in memory) inside a buffer one sample
    larger on every side.

    Fill it (``extract_density(..., out=V)``) and give it to ``marching_cubes``, which then closes the
    surface at the box by writing the margin in place instead of padding a copy of the whole volume
    (512 MB at 512^3, and the time to write it). The buffer has a mapping of its own (``small_page_buffer``).
    """
    rx, ry, rz = (int(n) for n in shape_xyz)
    return small_page_buffer((rz + 2, ry + 2, rx + 2))[1:-1, 1:-1, 1:-1].transpose(2, 1, 0)


def small_page_buffer(shape: Sequence[int]) -> np.ndarray:
    """A float32 array (zeros) on an anonymous memory mapping of its own, in 4 KB pages, unmapped with it.

    numpy asks the kernel to back arrays of 4 MB and more with 2 MB huge pages. On the 2-core VM of
    benchmarks/RESULTS.md, first touching fresh huge pages cost 0.75-1.8 s of system time for a 512^3
    volume (543 MB), plain pages 0.26-0.28 s (same process, alternating runs); the volume is written
    once and read twice, so the TLB savings of huge pages do not pay that back.
    """
    import mmap

    dims = tuple(int(n) for n in shape)
    mapping = mmap.mmap(-1, max(1, int(np.prod(dims, dtype=np.int64)) * 4))
    return np.ndarray(dims, dtype=np.float32, buffer=mapping)


def _margin_buffer(vol: np.ndarray) -> np.ndarray | None:
    """The [z, y, x] buffer around ``vol`` when ``vol`` is a ``padded_volume``, else None."""
    base = vol.base
    if not isinstance(base, np.ndarray) or base.dtype != np.float32 or not base.flags.c_contiguous:
        return None
    if base.ndim != 3 or base.shape != tuple(n + 2 for n in vol.shape[::-1]) or not base.flags.writeable:
        return None
    inner = base[1:-1, 1:-1, 1:-1].transpose(2, 1, 0)
    same = inner.strides == vol.strides and inner.__array_interface__["data"][0] == vol.__array_interface__["data"][0]
    return base if same else None


def _fill_margin(buffer: np.ndarray, value: float) -> None:
    """Set the one-sample margin of a [z, y, x] buffer (its six faces) to ``value``."""
    for axis in range(3):
        index: list[Any] = [slice(None)] * 3
        for end in (0, -1):
            index[axis] = end
            buffer[tuple(index)] = value


def marching_cubes(
    volume: np.ndarray,
    level: float,
    voxel_size: float | Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    close: bool = True,
    value_range: tuple[float, float] | None = None,
):
    """Iso-surface of V [Rx, Ry, Rz] (V[i, j, k] at origin + (i, j, k) * voxel_size) -> trimesh.Trimesh.

    Vertices [V, 3] in world units, faces [F, 3] wound so normals point toward smaller values.
    ``close`` pads the volume when the surface reaches the box so the mesh is closed.
    ``value_range``: the volume's (nanmin, nanmax) when already known (two passes over it otherwise).
    """
    import trimesh

    from .iso_surface import marching_cubes_zyx

    vol = np.asarray(volume)
    if vol.ndim != 3 or min(vol.shape) < 2:
        raise EpigrafError(f"need a 3-D volume with at least 2 samples per axis, got shape {vol.shape}")
    vs = np.broadcast_to(np.asarray(voxel_size, dtype=np.float64), (3,)).copy()
    org = np.asarray(origin, dtype=np.float64).copy()
    vmin, vmax = (float(v) for v in value_range) if value_range is not None else (np.nanmin(vol), np.nanmax(vol))
    vmin, vmax = float(vmin), float(vmax)
    check_level(level, vmin, vmax)
    zyx = vol.transpose(2, 1, 0)  # [z, y, x]: C-contiguous for volumes from extract_density/read_mrc
    box_lo, box_hi = org.copy(), org + vs * (np.asarray(vol.shape) - 1)
    buffer = _margin_buffer(vol) if close else None
    padded = buffer is not None or (close and _touches_boundary(vol, level))
    if padded:  # below every sample and the level: marching cubes closes the surface on the box faces
        outside = min(vmin, level) - max(1.0, abs(level) * 1e-3)
        if buffer is not None:  # a padded_volume: its margin is written in place, nothing is copied
            _fill_margin(buffer, outside)
            zyx = buffer
        else:
            zyx = np.pad(zyx, 1, mode="constant", constant_values=outside)
        org = org - vs
    zyx = np.ascontiguousarray(zyx, dtype=np.float32)
    if not zyx.flags.writeable:  # scikit-image needs a writable buffer
        zyx = zyx.copy()
    level = _untied_level(zyx, level)
    verts, faces = marching_cubes_zyx(zyx, level, vs[::-1])  # scikit-image's, on two cores for big volumes
    # Back to (x, y, z); swapping two axes mirrors, so the winding is reversed to stay outward.
    verts = verts[:, ::-1] + org
    if padded:  # the caps lie between the last sample and the padding: put them exactly on the box faces
        np.clip(verts, box_lo, box_hi, out=verts)
    faces = np.ascontiguousarray(faces[:, ::-1])
    verts, faces = _separate_coincident(verts, faces, step=1e-3 * float(vs.min()))
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


def _separate_coincident(verts: np.ndarray, faces: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Move vertices that share a position a tiny ``step`` toward their neighbours.

    Marching cubes keeps one vertex per grid edge, and scikit-image returns float32 positions, so a sample
    a hair off the level (or a cap clipped onto a box edge) puts several distinct vertices at one point.
    The mesh is closed as written, but readers that merge coincident vertices on load (trimesh's default,
    MeshLab) would fuse separate sheets and report holes. So each such vertex is moved inside its own fan,
    by far less than a voxel, which keeps topology and shape; only pieces squeezed to a point are welded.
    The whole vertex set is searched once; later rounds only look among those first found, since the
    others do not move (a moved vertex landing exactly on an unmoved one is not a float64 event).
    """
    moved = verts.astype(np.float64, copy=True)
    candidates = np.flatnonzero(_coincident(moved))
    if len(candidates) == 0:
        return moved, faces
    degree = np.bincount(faces.reshape(-1), minlength=len(verts)) * 2
    is_candidate = np.zeros(len(moved), dtype=bool)
    is_candidate[candidates] = True
    near = faces[_any_corner(is_candidate, faces)]  # the only faces whose corners can move
    sums = np.zeros_like(moved)
    for _ in range(8):  # a vertex whose whole fan sits on the same point only moves once its neighbours have
        idx = candidates[_coincident(moved[candidates]) & (degree[candidates] > 0)]
        if len(idx) == 0:
            return moved, faces
        hit = np.zeros(len(moved), dtype=bool)
        hit[idx] = True
        fan = near[_any_corner(hit, near)]
        for corner in range(3):
            np.add.at(sums, fan[:, corner], moved[fan[:, (corner + 1) % 3]] + moved[fan[:, (corner + 2) % 3]])
        towards = sums[idx] / degree[idx, None] - moved[idx]
        sums[fan.reshape(-1)] = 0.0  # ready for the next round without a new V x 3 array
        dist = np.linalg.norm(towards, axis=1, keepdims=True)
        moved[idx] += towards * np.minimum(step, 0.5 * dist) / np.maximum(dist, 1e-300)
    return _weld(moved, faces, candidates)


def _any_corner(mask: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[F] bool: some corner of the face is in ``mask`` (three 1-D gathers: numpy reduces short rows slowly)."""
    return mask[faces[:, 0]] | mask[faces[:, 1]] | mask[faces[:, 2]]


def _coincident(verts: np.ndarray) -> np.ndarray:
    """Mask of vertices whose exact position another vertex shares.

    ``np.unique(axis=0)`` sorts whole rows (8.5 s for 3 million vertices here), so rows are first hashed to
    one 64-bit key (0.4 s); only rows whose key repeats (true repeats, rare collisions) are compared exactly.
    """
    bits = np.ascontiguousarray(verts, dtype=np.float64).view(np.uint64)
    with np.errstate(over="ignore"):
        key = bits[:, 0] * np.uint64(0x9E3779B97F4A7C15) ^ bits[:, 1] * np.uint64(0xC2B2AE3D27D4EB4F) ^ bits[:, 2]
    order = np.argsort(key)
    same = key[order][1:] == key[order][:-1]
    candidate = np.zeros(len(verts), dtype=bool)
    candidate[order[1:][same]] = True
    candidate[order[:-1][same]] = True
    mask = np.zeros(len(verts), dtype=bool)
    idx = np.flatnonzero(candidate)
    if len(idx):
        _, inverse, counts = np.unique(verts[idx], axis=0, return_inverse=True, return_counts=True)
        mask[idx] = counts[inverse.reshape(-1)] > 1
    return mask


def _weld(verts: np.ndarray, faces: np.ndarray, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge vertices at one position, drop the faces that collapse and the vertices left unused.

    Only pieces squeezed to a point by float32 rounding are left for this (a lone sample a hair above the
    level gives a closed fan of vertices all on that sample); their faces have no area and vanish whole.
    ``candidates`` are the only vertices that may coincide (the others were never found on a shared point).
    """
    idx = candidates[_coincident(verts[candidates])]
    if len(idx) == 0:
        return verts, faces
    # Only the few coincident rows are sorted; each points at the first vertex of its group.
    _, first, inverse = np.unique(verts[idx], axis=0, return_index=True, return_inverse=True)
    target = np.arange(len(verts))
    target[idx] = idx[first][inverse.reshape(-1)]
    welded = np.zeros(len(verts), dtype=bool)
    welded[idx] = True
    touched = np.flatnonzero(_any_corner(welded, faces))  # only these faces can change or collapse
    renamed = target[faces[touched]]
    faces = faces.copy()
    faces[touched] = renamed
    keep = np.ones(len(faces), dtype=bool)
    keep[touched] = (
        (renamed[:, 0] != renamed[:, 1]) & (renamed[:, 1] != renamed[:, 2]) & (renamed[:, 0] != renamed[:, 2])
    )
    return _drop_unused(verts, faces[keep])


def _drop_unused(verts: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the vertices some face uses, in their order, and renumber the faces.

    A mask rather than ``np.unique(faces)``, which sorts every index (14 s for 18 million here).
    """
    used = np.zeros(len(verts), dtype=bool)
    used[faces.reshape(-1)] = True
    remap = np.cumsum(used) - 1
    return verts[used], np.ascontiguousarray(remap[faces])


def largest_component(mesh):
    """Keep the connected component with the most faces (drops floaters)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    faces = mesh.faces
    if len(faces) == 0:
        return mesh
    n = len(mesh.vertices)
    rows = np.concatenate([faces[:, 0], faces[:, 1]])
    cols = np.concatenate([faces[:, 1], faces[:, 2]])
    graph = coo_matrix((np.ones(rows.size, dtype=np.int8), (rows, cols)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    face_labels = labels[faces[:, 0]]
    keep = np.bincount(face_labels).argmax()
    return _subset(mesh, face_labels == keep)


def _subset(mesh, face_mask: np.ndarray):
    import trimesh

    verts, faces = _drop_unused(np.asarray(mesh.vertices), np.asarray(mesh.faces)[face_mask])
    return trimesh.Trimesh(vertices=verts, faces=faces, process=False)


def smooth_taubin(mesh, iterations: int = 10, lamb: float = 0.5, nu: float = 0.53):
    """Taubin lambda/mu smoothing: removes the marching-cubes staircase without shrinking the shape."""
    import trimesh

    if iterations <= 0 or len(mesh.faces) == 0:
        return mesh
    out = mesh.copy()
    trimesh.smoothing.filter_taubin(out, lamb=lamb, nu=nu, iterations=int(iterations))
    return out


def decimate(mesh, max_faces: int):
    """Quadric edge-collapse decimation to at most ~``max_faces`` faces (no-op when already below)."""
    import fast_simplification
    import trimesh

    if max_faces < 4:
        raise EpigrafError(f"a face budget needs at least 4 faces, got {max_faces}")
    if len(mesh.faces) <= max_faces:
        return mesh
    verts, faces = fast_simplification.simplify(
        np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int32), target_count=max_faces
    )
    # Edge collapses occasionally fold two triangles onto the same three vertices (a zero-volume fin);
    # dropping every such copy removes most of the non-manifold edges decimation leaves behind.
    _, inverse, counts = np.unique(np.sort(faces, axis=1), axis=0, return_inverse=True, return_counts=True)
    faces = faces[counts[inverse.ravel()] == 1]
    out = trimesh.Trimesh(vertices=verts, faces=faces, process=False)
    out.remove_unreferenced_vertices()
    return out


@torch.no_grad()
def vertex_colors(G: Generator, planes: torch.Tensor, vertices: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """RGBA uint8 [V, 4] from the field's rgb at world-space vertices [V, 3] (planes [1, 3, C, R, R]).

    The raw rgb lives in the image range [-1, 1]; it is clamped and mapped to 0..255 as images are.
    Where the model has a prepared inference field (``G.inference_field``: the renderer's fast
    gather + folded MLP, equal to the reference field to ~1e-6) it is used: millions of vertices
    at 512^3 cost several seconds through the reference ``G.query``.
    """
    device = planes.device
    pts = torch.from_numpy(np.asarray(vertices, dtype=np.float32))
    out = np.empty((len(pts), 4), dtype=np.uint8)
    out[:, 3] = 255
    from .rendering import prepare_field  # the renderer's field, with the compiled gather when it is built

    field = prepare_field(G, planes) if getattr(G, "inference_field", None) is not None else None
    for s in range(0, len(pts), chunk):
        batch = pts[s : s + chunk].to(device).unsqueeze(0)
        rgb = field(batch)[0, :, :3] if field is not None else G.query(planes, batch)["rgb"][0]
        out[s : s + chunk, :3] = raw_to_uint8(rgb, rounding="half_even").cpu().numpy()
    return out


def mesh_report(mesh) -> dict[str, Any]:
    """Vertices, faces, watertightness and a few geometric facts (world units).

    The same facts trimesh computes (``is_watertight``, ``is_winding_consistent``, ``euler_number``,
    ``area``, ``bounds``, ``volume``), from one sort of the edge list instead of trimesh's cached
    edge tables: 17 million edges at 512^3 took trimesh about 10 s and several GB (the tests compare
    both on closed, open and non-manifold meshes).
    """
    return mesh_facts(np.asarray(mesh.vertices), np.asarray(mesh.faces))


def mesh_facts(vertices: np.ndarray, faces: np.ndarray) -> dict[str, Any]:
    """``mesh_report`` of vertices [V, 3] and faces [F, 3] (plain arrays, no trimesh object needed)."""
    verts = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        return {"vertices": int(len(verts)), "faces": 0, "watertight": False, "winding_consistent": False,
                "euler_number": 0, "area": 0.0, "bounds": verts_bounds(verts), "volume": None}  # fmt: skip
    watertight, winding, n_edges = edge_facts(faces, len(verts))
    referenced = np.zeros(len(verts), dtype=bool)
    referenced[faces.reshape(-1)] = True
    n_referenced = int(np.count_nonzero(referenced))
    area, signed_volume = _area_and_volume(verts, faces)
    # Only a closed, consistently wound surface encloses a volume (trimesh also reports one without the latter).
    return {
        "vertices": int(len(verts)),
        "faces": int(len(faces)),
        "watertight": watertight,
        "winding_consistent": winding,
        "euler_number": n_referenced - n_edges + int(len(faces)),
        "area": area,
        "bounds": verts_bounds(verts if n_referenced == len(verts) else verts[referenced]),  # no copy when all are
        "volume": signed_volume if watertight and winding else None,
    }


def _area_and_volume(verts: np.ndarray, faces: np.ndarray, chunk: int = 1 << 20) -> tuple[float, float]:
    """Surface area and signed enclosed volume (divergence theorem: one tetrahedron with the origin per face).

    In chunks of faces, so that a 10-million-face mesh needs a few tens of MB here, not gigabytes.
    """
    area = volume = 0.0
    for s in range(0, len(faces), chunk):
        f = faces[s : s + chunk]
        v0, v1, v2 = verts[f[:, 0]], verts[f[:, 1]], verts[f[:, 2]]
        cross = np.cross(v1 - v0, v2 - v0)
        area += float(np.sqrt(np.einsum("ij,ij->i", cross, cross)).sum())
        volume += float(np.einsum("ij,ij->i", v0, np.cross(v1, v2)).sum())
    return 0.5 * area, volume / 6.0


def verts_bounds(verts: np.ndarray) -> list[list[float]] | None:
    """[[min x, y, z], [max x, y, z]] or None without vertices."""
    return [verts.min(axis=0).tolist(), verts.max(axis=0).tolist()] if len(verts) else None


def edge_facts(faces: np.ndarray, n_vertices: int) -> tuple[bool, bool, int]:
    """(watertight, winding consistent, unique edges) of faces [F, 3], as trimesh defines them.

    Watertight: every edge is shared by exactly two faces. Winding consistent: every such pair runs
    the edge in opposite directions, so no directed edge of a two-face edge repeats. One sort of int64
    keys, the undirected edge times two plus its direction: an edge's faces are then adjacent, and
    a repeated directed edge is two equal neighbours (a second sort of the directed keys cost 0.1 s
    at 512^3). The sort is torch's: 9.6 M keys of a 512^3 mesh took numpy 0.78-0.80 s, torch 0.32-0.36 s
    (2 cores; 0.45 s on one), the same order.
    """
    n = np.int64(n_vertices)
    a = faces.reshape(-1).astype(np.int64)
    b = faces[:, [1, 2, 0]].reshape(-1).astype(np.int64)
    key = np.minimum(a, b)
    key *= n
    key += np.maximum(a, b)
    key *= 2
    key += a > b  # the direction bit
    del a, b
    key = torch.sort(torch.from_numpy(key))[0].numpy()
    edge = key >> 1
    bounds = np.flatnonzero(np.r_[True, edge[1:] != edge[:-1], True])
    del edge
    counts = np.diff(bounds)
    watertight = bool((counts == 2).all())
    repeated = np.flatnonzero(key[1:] == key[:-1])  # the same edge in the same direction, twice or more
    winding = True
    if len(repeated):
        group = np.searchsorted(bounds, repeated, "right") - 1  # the edge each repeat belongs to
        winding = not bool((counts[group] == 2).any())
    return watertight, winding, int(len(counts))


@dataclass
class MeshReport:
    """What ``build_mesh`` made: the level it used and the mesh's facts (world units).

    ``to_dict()`` is the ``NAME.mesh.json`` sidecar: ``provenance`` (model, seed, ... or the volume file)
    first, then the fields below in this order, then the written ``files``.
    """

    level: float
    level_source: str  # 'given', 'model default' or 'isodata'
    model_default_level: float | None
    value_range: list[float]  # [min, max] of the volume
    colors: bool
    vertices: int
    faces: int
    watertight: bool
    winding_consistent: bool
    euler_number: int
    area: float
    bounds: list[list[float]] | None
    volume: float | None  # enclosed volume; None unless watertight and consistently wound
    texture: int | None = None  # side of the baked texture in pixels (glb/obj), None without one
    files: list[str] = field(default_factory=list)  # names of the mesh files written (export_meshes ...)
    provenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON sidecar (keys as the CLI has always written them)."""
        facts = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("files", "provenance")}
        return {**self.provenance, **facts, "files": list(self.files)}


def mesh_from_volume(
    volume: np.ndarray,
    level: float,
    voxel_size: float | Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    keep_largest: bool = False,
    smooth_iterations: int = 0,
    max_faces: int | None = None,
    close: bool = True,
    stage: Stage | None = None,
    value_range: tuple[float, float] | None = None,
):
    """The whole geometry pipeline: marching cubes -> largest component -> Taubin -> decimation.

    ``value_range`` (min, max) of the volume, when the caller knows it, spares marching cubes a pass."""

    def say(name: str) -> None:
        if stage is not None:
            stage(name)

    say("marching cubes")
    mesh = marching_cubes(volume, level, voxel_size, origin, close=close, value_range=value_range)
    if len(mesh.faces) == 0:
        raise EpigrafError(f"no surface at level {level:.6g}")
    if keep_largest:
        say("largest component")
        mesh = largest_component(mesh)
    if smooth_iterations > 0:
        say("smoothing")
        mesh = smooth_taubin(mesh, smooth_iterations)
    if max_faces is not None:
        say("decimation")
        mesh = decimate(mesh, max_faces)
    return mesh


@dataclass(frozen=True)
class LevelChoice:
    """The level ``surface_mesh`` used, where it came from, and the volume's value range."""

    level: float
    source: str  # 'given', 'model default' or 'isodata'
    model_default: float | None
    value_range: tuple[float, float]


def surface_mesh(
    volume: np.ndarray,
    voxel_size: float | Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    level: float | None = None,
    model_default: float | None = None,
    keep_largest: bool = False,
    smooth_iterations: int = 0,
    max_faces: int | None = None,
    stage: Stage | None = None,
) -> tuple[Any, LevelChoice]:
    """Level choice + ``mesh_from_volume``: the part of ``build_mesh`` that needs the volume.

    ``level`` None picks ``model_default`` when it lies inside the data range, else the isodata threshold
    (see ``isolevel``); an explicit level outside the range is an EpigrafError naming the range.
    A caller that owns the volume can drop it after this and before ``finish_mesh`` (512 MB at 512^3).
    """
    from .isolevel import choose_level, stats_of

    stats = stats_of(volume, moments=False)  # the range and the isodata subsample; no mean or std
    if level is None:
        level, source = choose_level(model_default, stats)
    else:
        source = "given"
    check_level(level, stats.min, stats.max)
    value_range = None if stats.saw_nan else (stats.min, stats.max)  # with NaN marching cubes takes nanmin/nanmax
    mesh = mesh_from_volume(
        volume,
        level,
        voxel_size,
        origin,
        keep_largest,
        smooth_iterations,
        max_faces,
        stage=stage,
        value_range=value_range,
    )
    return mesh, LevelChoice(float(level), source, model_default, (stats.min, stats.max))


def finish_mesh(
    mesh, choice: LevelChoice, color_field: tuple[Generator, torch.Tensor] | None = None, stage: Stage | None = None
) -> tuple[Any, MeshReport]:
    """Vertex colours and the MeshReport of a ``surface_mesh`` result: (mesh, MeshReport).

    ``color_field`` (G, planes [1, 3, C, R, R]) colours the vertices with the field's rgb. (Computing
    the report in a second thread meanwhile did not pay on the shared 2-core machine: the threads
    took as much wall time as their CPU time, 1.4-2.5 s against 1.4 s one after the other.)
    """
    if color_field is not None:
        if stage is not None:
            stage("colours")
        G, planes = color_field
        mesh.visual.vertex_colors = vertex_colors(G, planes, mesh.vertices)
    report = MeshReport(
        level=choice.level,
        level_source=choice.source,
        model_default_level=choice.model_default,
        value_range=list(choice.value_range),
        colors=color_field is not None,
        **mesh_report(mesh),
    )
    return mesh, report


def build_mesh(
    volume: np.ndarray,
    voxel_size: float | Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    level: float | None = None,
    model_default: float | None = None,
    keep_largest: bool = False,
    smooth_iterations: int = 0,
    max_faces: int | None = None,
    color_field: tuple[Generator, torch.Tensor] | None = None,
    stage: Stage | None = None,
) -> tuple[Any, MeshReport]:
    """Level choice + ``mesh_from_volume`` + vertex colours; returns (mesh, MeshReport).

    ``surface_mesh`` then ``finish_mesh`` (see them for the level rule and the colours).
    """
    mesh, choice = surface_mesh(
        volume, voxel_size, origin, level, model_default, keep_largest, smooth_iterations, max_faces, stage
    )
    return finish_mesh(mesh, choice, color_field, stage)


def export_mesh(mesh, stem: str | os.PathLike[str], formats: Sequence[str], textured: Any = None) -> list[Path]:
    """Write ``stem.<fmt>`` for each format atomically (PLY binary; OBJ/PLY/GLB keep vertex colours).

    ``textured`` (from ``mesh_texture.bake_texture``) replaces ``mesh`` in the formats that carry a UV
    map: GLB embeds its image, OBJ gets ``stem.mtl`` + ``stem.png`` beside it.
    """
    from .mesh_texture import TEXTURE_FORMATS, obj_with_texture

    paths: list[Path] = []
    stem = Path(stem)
    try:
        for fmt in parse_formats(formats):
            if textured is not None and fmt == "obj":
                for name, data in obj_with_texture(textured, stem.name).items():
                    paths.append(_write_atomic(stem.with_name(name), lambda tmp, data=data: tmp.write_bytes(data)))
                continue
            source = textured if textured is not None and fmt in TEXTURE_FORMATS else mesh
            paths.append(_write_atomic(stem.with_name(f"{stem.name}.{fmt}"), partial(source.export, file_type=fmt)))
    except BaseException:
        for p in paths:
            p.unlink(missing_ok=True)
        raise
    return paths


def _write_atomic(final: Path, write: Callable[[Path], Any]) -> Path:
    with atomic_path(final) as tmp:
        write(tmp)
    return final
