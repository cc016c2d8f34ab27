"""epigraf_tools/mesh_texture.py: UV unwrap, texel rasterisation, colour bake, GLB and OBJ+MTL+PNG files."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from analytic_fields import COLOR_GAIN, sphere_generator

from epigraf_tools.errors import EpigrafError
from epigraf_tools.mesh import export_mesh, marching_cubes, vertex_colors
from epigraf_tools.mesh_texture import (
    bake_texture,
    check_texture_size,
    fill_empty,
    rasterize_uv,
    sample_texture,
    texture_image,
)
from epigraf_tools.volume import extract_density, make_volume_grid

pytest.importorskip("xatlas", reason="textured meshes need the optional xatlas package ([texture] extra)")

CENTER = (0.03, -0.02, 0.05)
RADIUS = 0.09


@pytest.fixture(scope="module")
def sphere_mesh():
    G, planes = sphere_generator(radius=RADIUS, center=CENTER)
    grid = make_volume_grid(G.config.cube_scale, 24)
    vol = extract_density(G, planes, grid=grid, method="separable")
    mesh = marching_cubes(vol, 0.0, grid.voxel_size, grid.origin)
    return G, planes, mesh


@pytest.fixture(scope="module")
def textured(sphere_mesh):
    G, planes, mesh = sphere_mesh
    return bake_texture(mesh.vertices, mesh.faces, 256, lambda p: vertex_colors(G, planes, p))


def _expected(points: np.ndarray) -> np.ndarray:
    raw = np.clip(COLOR_GAIN * (points - np.asarray(CENTER)), -1, 1)
    return np.round((raw + 1) * 127.5)


def test_rasterize_covers_a_triangle_exactly_and_barycentrics_reconstruct_the_centre():
    uvs = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the lower-left half of the unit square (v up)
    face_id, bary = rasterize_uv(uvs, np.array([[0, 1, 2]]), 8)
    rows, cols = np.mgrid[0:8, 0:8]
    u, v = (cols + 0.5) / 8, 1 - (rows + 0.5) / 8
    inside = u + v <= 1
    np.testing.assert_array_equal(face_id >= 0, inside)
    centre = bary[inside] @ uvs  # barycentric blend of the corners = the texel centre
    np.testing.assert_allclose(centre, np.stack([u[inside], v[inside]], axis=-1), atol=1e-12)


def test_degenerate_uv_triangles_cover_nothing():
    uvs = np.array([[0.2, 0.2], [0.6, 0.6], [0.9, 0.9]])  # collinear
    face_id, _ = rasterize_uv(uvs, np.array([[0, 1, 2]]), 16)
    assert (face_id < 0).all()


def test_fill_empty_copies_the_nearest_covered_texel():
    img = np.zeros((4, 4, 3), dtype=np.uint8)
    covered = np.zeros((4, 4), dtype=bool)
    img[0, 0], covered[0, 0] = 10, True
    img[3, 3], covered[3, 3] = 200, True
    out = fill_empty(img, covered)
    assert out[0, 1, 0] == 10 and out[3, 2, 0] == 200 and out[1, 0, 0] == 10


def test_texture_holds_the_field_colour_at_each_texel(sphere_mesh, textured):
    mesh = sphere_mesh[2]
    assert len(textured.faces) == len(mesh.faces)  # same surface, vertices split on chart seams
    assert len(textured.vertices) >= len(mesh.vertices)
    image = texture_image(textured)
    assert image.shape == (256, 256, 3)
    face_id, bary = rasterize_uv(textured.visual.uv, textured.faces, 256)
    covered = face_id >= 0
    assert covered.mean() > 0.3  # charts fill a good share of the image
    points = np.einsum("nk,nkd->nd", bary[covered], textured.vertices[textured.faces[face_id[covered]]])
    # the analytic colour at each texel's 3-D point: exact up to the colour query's float32 rounding
    assert np.abs(image[covered].astype(float) - _expected(points)).max() <= 1
    # the texels between charts were filled (no black background left to bleed in)
    assert (image[~covered].sum(-1) > 0).mean() > 0.99


def test_texture_matches_the_vertex_colours_where_both_exist(sphere_mesh, textured):
    G, planes, _ = sphere_mesh
    at_vertices = sample_texture(texture_image(textured), textured.visual.uv).astype(int)
    vertex = vertex_colors(G, planes, textured.vertices)[:, :3].astype(int)
    diff = np.abs(at_vertices - vertex).max(axis=1)
    # a vertex sits on a chart border, so the nearest texel centre is up to half a texel away
    # (the texture spans ~2 cm of surface per texel here, ~0.25 colour levels): small differences only
    assert np.median(diff) <= 2 and np.percentile(diff, 95) <= 8


def test_glb_and_obj_files_load_back_with_their_texture(textured, sphere_mesh, tmp_path):
    mesh = sphere_mesh[2]
    paths = export_mesh(mesh, tmp_path / "ball", ["glb", "obj", "ply"], textured=textured)
    assert sorted(p.name for p in paths) == ["ball.glb", "ball.mtl", "ball.obj", "ball.ply", "ball.png"]
    assert (
        "ball.png" in (tmp_path / "ball.mtl").read_text() and "mtllib ball.mtl" in (tmp_path / "ball.obj").read_text()
    )
    want = texture_image(textured)
    for name in ("ball.glb", "ball.obj"):
        loaded = trimesh.load(tmp_path / name, force="mesh", process=False)
        assert isinstance(loaded.visual, trimesh.visual.TextureVisuals), name
        np.testing.assert_array_equal(texture_image(loaded), want)
        # the UVs still point at the same colours (glTF flips v on write and trimesh flips it back)
        got = sample_texture(texture_image(loaded), loaded.visual.uv).astype(float)
        assert np.median(np.abs(got - _expected(loaded.vertices)).max(axis=1)) <= 2, name
    ply = trimesh.load(tmp_path / "ball.ply", process=False)
    assert len(ply.vertices) == len(mesh.vertices)  # PLY keeps the untextured mesh (no seams)
    assert not list(tmp_path.glob(".epigraf-tmp-*"))


@pytest.mark.parametrize("size", [8, 10_000, 256.5, True, "512"])
def test_bad_texture_sizes(size):
    with pytest.raises(EpigrafError, match="texture size"):
        check_texture_size(size)
