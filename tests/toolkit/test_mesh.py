"""epigraf_tools/mesh.py: world-unit marching cubes, closing, orientation, clean-up, colours, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from analytic_fields import COLOR_GAIN, sphere_generator

from epigraf_tools.errors import EpigrafError
from epigraf_tools.mesh import (
    build_mesh,
    decimate,
    export_mesh,
    largest_component,
    marching_cubes,
    parse_formats,
    smooth_taubin,
    vertex_colors,
)
from epigraf_tools.volume import extract_density, make_volume_grid

CENTER = (0.03, -0.02, 0.05)
RADIUS = 0.09


@pytest.fixture(scope="module")
def sphere():
    G, planes = sphere_generator(radius=RADIUS, center=CENTER)
    grid = make_volume_grid(G.config.cube_scale, 40)
    vol = extract_density(G, planes, grid=grid, method="separable")
    return G, planes, grid, vol


def _radii(mesh) -> np.ndarray:
    return np.linalg.norm(mesh.vertices - np.asarray(CENTER), axis=1)


def test_sphere_vertices_lie_at_the_radius_in_world_units(sphere):
    _, _, grid, vol = sphere
    mesh = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)
    r = _radii(mesh)
    assert np.abs(r - RADIUS).max() < 0.01 * RADIUS  # voxel size is 0.01, so this is sub-voxel
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * RADIUS**3, rel=0.02)  # positive: faces point outward
    normals_out = np.einsum("ij,ij->i", mesh.face_normals, mesh.triangles_center - np.asarray(CENTER))
    assert (normals_out > 0).all()


def test_surfaces_touching_the_box_are_closed(sphere):
    G, planes, _, _ = sphere
    grid = make_volume_grid(0.2, (20, 24, 22), box=0.12, center=CENTER)  # box inside the sphere on x
    vol = extract_density(G, planes, grid=grid, method="separable")
    closed = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)
    assert closed.is_watertight and closed.volume > 0
    lo, hi = closed.bounds
    np.testing.assert_allclose(lo, np.asarray(CENTER) - 0.06, atol=1e-9)  # the caps lie on the box faces
    np.testing.assert_allclose(hi, np.asarray(CENTER) + 0.06, atol=1e-9)
    open_mesh = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin, close=False)
    assert not open_mesh.is_watertight


def test_level_outside_the_range_names_the_range(sphere):
    _, _, grid, vol = sphere
    with pytest.raises(EpigrafError, match=r"outside the volume's value range \[-?\d"):
        marching_cubes(vol, 1e6, grid.voxel_size, grid.origin)
    with pytest.raises(EpigrafError, match="constant"):
        marching_cubes(np.zeros((3, 3, 3), np.float32), 0.0, 1.0)


def test_build_mesh_chooses_levels_and_colours_vertices(sphere):
    G, planes, grid, vol = sphere
    mesh, info = build_mesh(vol, grid.voxel_size, grid.origin, level=0.0, color_field=(G, planes))
    assert info.level_source == "given" and info.watertight and info.faces == len(mesh.faces)
    colors = np.asarray(mesh.visual.vertex_colors)
    expected = np.clip(COLOR_GAIN * (mesh.vertices - np.asarray(CENTER)), -1, 1)
    expected = np.round((expected + 1) * 127.5)
    assert np.abs(colors[:, :3].astype(float) - expected).max() <= 1
    # and they are the field's rgb at the vertices
    rgb = G.query(planes, torch.from_numpy(mesh.vertices).float()[None])["rgb"][0].detach()
    # vertex_colors takes the fast inference field (~1e-6 from this reference query): a value within
    # 1e-6 of a rounding boundary may land one level off, nothing more
    reference = ((rgb.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy().astype(int)
    diff = np.abs(colors[:, :3].astype(int) - reference)
    assert diff.max() <= 1 and (diff == 0).mean() > 0.99
    _, auto = build_mesh(vol, grid.voxel_size, grid.origin, model_default=1e9)
    assert auto.level_source == "isodata"
    _, default = build_mesh(vol, grid.voxel_size, grid.origin, model_default=0.05)
    assert default.level == 0.05 and default.level_source == "model default"


def test_largest_component_drops_floaters():
    x = np.linspace(-1, 1, 30)
    X, Y, Z = np.meshgrid(x, x, x, indexing="ij")
    big = 0.5 - np.sqrt((X + 0.3) ** 2 + Y**2 + Z**2)
    small = 0.2 - np.sqrt((X - 0.65) ** 2 + Y**2 + Z**2)
    vol = np.maximum(big, small).astype(np.float32)
    both = marching_cubes(vol, 0.0, 2 / 29, (-1, -1, -1))
    kept = largest_component(both)
    assert len(both.split(only_watertight=False)) == 2
    assert 0 < len(kept.faces) < len(both.faces) and kept.is_watertight
    assert kept.vertices[:, 0].max() < 0.3  # the big ball (centred at x = -0.3) is what remains


def test_decimation_and_smoothing(sphere):
    _, _, grid, vol = sphere
    mesh = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)
    small = decimate(mesh, 1000)
    assert len(small.faces) <= 1000 and len(small.faces) > 500
    assert np.abs(_radii(small) - RADIUS).max() < 0.05 * RADIUS
    assert decimate(mesh, 10**9) is mesh
    smooth = smooth_taubin(mesh, iterations=10)
    assert np.abs(_radii(smooth).mean() - RADIUS) < 0.01 * RADIUS  # Taubin does not shrink
    assert len(smooth.faces) == len(mesh.faces)


def test_export_formats_round_trip(tmp_path, sphere):
    G, planes, grid, vol = sphere
    mesh = decimate(marching_cubes(vol, 0.0, grid.voxel_size, grid.origin), 500)
    mesh.visual.vertex_colors = vertex_colors(G, planes, mesh.vertices)
    paths = export_mesh(mesh, tmp_path / "s", parse_formats("ply, OBJ,glb,stl"))
    assert [p.name for p in paths] == ["s.ply", "s.obj", "s.glb", "s.stl"]
    ply = trimesh.load(tmp_path / "s.ply", process=False)
    np.testing.assert_allclose(ply.vertices, mesh.vertices, atol=1e-6)
    np.testing.assert_array_equal(ply.visual.vertex_colors, mesh.visual.vertex_colors)
    for name in ("s.obj", "s.glb", "s.stl"):
        loaded = trimesh.load(tmp_path / name, force="mesh")
        assert len(loaded.faces) == len(mesh.faces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.glb", "s.obj", "s.ply", "s.stl"]
    with pytest.raises(EpigrafError, match="unknown mesh format"):
        parse_formats("ply,fbx")


def test_samples_exactly_at_the_level_still_give_closed_meshes():
    """Integer volumes put samples exactly on the level; raw scikit-image leaves holes there (its
    open bug), so the level is moved off the samples by an ulp."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        vol = rng.integers(-3, 4, size=(7, 6, 5)).astype(np.float32)
        mesh = marching_cubes(vol, 0.0, (0.1, 0.2, 0.3))
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        merged = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=True)
        assert merged.is_watertight and len(merged.vertices) == len(mesh.vertices)


def test_samples_a_hair_off_the_level_give_meshes_that_survive_vertex_merging():
    """A sample 1e-30 above the level puts every vertex of its edges on the sample itself; those
    coincident vertices are moved apart, so readers that merge vertices on load still see a closed mesh."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        vol = rng.integers(-3, 4, size=(7, 6, 5)).astype(np.float32)
        vol[vol == 0] = np.float32(1e-30) * rng.choice([-1, 1], size=int((vol == 0).sum()))
        mesh = marching_cubes(vol, 0.0, (0.1, 0.2, 0.3))
        assert len(np.unique(mesh.vertices.round(8), axis=0)) == len(mesh.vertices)
        assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
        merged = trimesh.Trimesh(vertices=mesh.vertices, faces=mesh.faces, process=True)
        assert merged.is_watertight and merged.euler_number == mesh.euler_number


def _trimesh_facts(mesh) -> dict:
    """The same facts the slow way: trimesh's own cached properties."""
    watertight = bool(mesh.is_watertight)
    return {
        "vertices": len(mesh.vertices),
        "faces": len(mesh.faces),
        "watertight": watertight,
        "winding_consistent": bool(mesh.is_winding_consistent),
        "euler_number": int(mesh.euler_number),
        "area": float(mesh.area),
        "bounds": mesh.bounds.tolist(),
        "volume": float(mesh.volume) if watertight else None,
    }


def _variants(sphere_mesh):
    closed = sphere_mesh
    v, f = np.asarray(closed.vertices), np.asarray(closed.faces)
    flipped = f.copy()
    flipped[:40] = flipped[:40, ::-1]  # inconsistent winding, still closed
    fin = np.vstack([f, [[f[0, 0], f[0, 1], len(v)]]])  # a third face on one edge: non-manifold
    yield "closed", trimesh.Trimesh(v, f, process=False)
    yield "open", trimesh.Trimesh(v, f[10:], process=False)
    yield "flipped", trimesh.Trimesh(v, flipped, process=False)
    yield "fin", trimesh.Trimesh(np.vstack([v, v[:1] + 0.01]), fin, process=False)
    yield "unreferenced", trimesh.Trimesh(np.vstack([v, [[9.0, 9.0, 9.0]]]), f, process=False)


def test_mesh_report_agrees_with_trimesh_on_closed_open_and_non_manifold_meshes(sphere):
    from epigraf_tools.mesh import mesh_report

    _, _, grid, vol = sphere
    for name, mesh in _variants(marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)):
        ours, theirs = mesh_report(mesh), _trimesh_facts(mesh.copy())
        for key in ("vertices", "faces", "watertight", "winding_consistent", "euler_number"):
            assert ours[key] == theirs[key], (name, key)
        assert ours["area"] == pytest.approx(theirs["area"], rel=1e-12), name
        np.testing.assert_allclose(ours["bounds"], theirs["bounds"], rtol=0, atol=0, err_msg=name)
        if theirs["volume"] is None or not theirs["winding_consistent"]:
            assert ours["volume"] is None, name  # no enclosed volume without a closed, consistent surface
        else:  # trimesh integrates in another order: equal to float64 rounding
            assert ours["volume"] == pytest.approx(theirs["volume"], rel=1e-9), name


@pytest.mark.parametrize("level_offset", [-0.5, 0.5])  # the surface reaches the box / stays inside it
def test_a_padded_volume_gives_the_same_mesh_as_a_plain_one(sphere, level_offset):
    """extract_density into a padded_volume: marching cubes closes it in place, and the mesh is the same."""
    from epigraf_tools.isolevel import stats_of
    from epigraf_tools.mesh import _margin_buffer, padded_volume

    G, planes, grid, vol = sphere
    level = float(np.median(vol)) + level_offset * float(vol.std())
    out = padded_volume(grid.resolution)
    assert _margin_buffer(out) is not None and _margin_buffer(vol) is None and _margin_buffer(out[1:]) is None
    padded = extract_density(G, planes, grid=grid, method="separable", out=out)
    np.testing.assert_array_equal(padded, vol)  # the same computation into another buffer: same bytes
    a, b = stats_of(vol), stats_of(padded)
    assert (a.min, a.max) == (b.min, b.max)
    assert (a.mean, a.std) == pytest.approx((b.mean, b.std), rel=1e-12)  # float64 sums over other chunk splits
    np.testing.assert_array_equal(a.samples, b.samples)
    plain = marching_cubes(vol, level, grid.voxel_size, grid.origin)
    inplace = marching_cubes(padded, level, grid.voxel_size, grid.origin)
    assert inplace.is_watertight and plain.is_watertight
    assert len(inplace.faces) == len(plain.faces)
    key = lambda m: np.sort(np.round(m.vertices, 9).view([("x", "f8"), ("y", "f8"), ("z", "f8")]).ravel())  # noqa: E731
    np.testing.assert_allclose(
        key(inplace).view("f8"), key(plain).view("f8"), atol=1e-9, rtol=0
    )  # the same vertices (float64 sums in either order)
    np.testing.assert_allclose(inplace.volume, plain.volume, rtol=1e-9)


def test_marching_cubes_with_a_known_value_range_makes_the_same_mesh(sphere):
    _, _, grid, vol = sphere
    plain = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)
    known = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin, value_range=(float(vol.min()), float(vol.max())))
    np.testing.assert_array_equal(plain.vertices, known.vertices)
    np.testing.assert_array_equal(plain.faces, known.faces)


def _edge_facts_by_counting(faces: np.ndarray) -> tuple[bool, bool, int]:
    """edge_facts' definition spelled out with dictionaries (trimesh's meaning of both flags)."""
    from collections import Counter

    undirected, directed = Counter(), Counter()
    for tri in faces.tolist():
        for i in range(3):
            a, b = tri[i], tri[(i + 1) % 3]
            undirected[min(a, b), max(a, b)] += 1
            directed[a, b] += 1
    watertight = all(c == 2 for c in undirected.values())
    winding = not any(c > 1 and undirected[min(a, b), max(a, b)] == 2 for (a, b), c in directed.items())
    return watertight, winding, len(undirected)


def test_edge_facts_match_their_definition_on_random_meshes():
    from epigraf_tools.mesh import edge_facts

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(3, 12))
        faces = rng.integers(0, n, (int(rng.integers(1, 20)), 3))
        if trial % 3 == 0:  # closed (each face and its flip): watertight, and consistent unless repeated
            faces = np.concatenate([faces, faces[:, ::-1]])
        if trial % 5 == 0:  # repeated faces: directed edges repeat
            faces = np.concatenate([faces, faces])
        assert edge_facts(faces, n) == _edge_facts_by_counting(faces), faces


def test_small_page_buffer_is_a_writable_float32_array_on_its_own_mapping():
    import mmap

    from epigraf_tools.mesh import padded_volume, small_page_buffer

    buf = small_page_buffer((3, 4, 5))
    assert buf.shape == (3, 4, 5) and buf.dtype == np.float32 and buf.flags.c_contiguous and buf.flags.writeable
    assert isinstance(buf.base, mmap.mmap) and not buf.any()  # not numpy's allocator (and its huge-page advice)
    buf[2, 3, 4] = 7.0
    assert buf.sum() == 7.0
    vol = padded_volume((5, 4, 3))
    assert vol.shape == (5, 4, 3) and vol.base.shape == (5, 6, 7) and isinstance(vol.base.base, mmap.mmap)
