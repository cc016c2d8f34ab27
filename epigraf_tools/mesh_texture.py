"""Textured meshes: unwrap a mesh (xatlas) and bake the field's colour into an N x N texture.

Vertex colours are enough for a viewer, but Blender, game engines and most GLB pipelines expect a UV
map and an image. The bake queries the same colour function as the vertex colours (the field's rgb
at a world point, see ``mesh.vertex_colors``), once per texel centre, so a texel and a vertex at the
same place get the same colour; EpiGRAF's colour is view-independent, so nothing is lost.

Steps, with why:
* ``xatlas`` cuts the surface into charts and packs them into the unit square (it splits vertices on
  chart seams, so the textured mesh has more vertices than the coloured one, same faces and shape).
* Every texel centre is assigned to the triangle whose UV footprint covers it (vectorised over each
  triangle's bounding box of texels), its 3-D point is the barycentric blend of the triangle's corners,
  and the colour is queried there.
* Texels no triangle covers are filled from the nearest covered texel, so bilinear filtering and
  mip-maps at chart borders never blend in the empty background (the usual "seam bleeding").

UV convention: trimesh's (OpenGL/OBJ) one, v up with the image's first row at v = 1; trimesh flips v
itself when it writes glTF.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import EpigrafError

TEXTURE_SIZES = (16, 8192)  # smallest and largest texture side accepted
TEXTURE_FORMATS = ("glb", "obj")  # the formats that carry a UV map and an image
ColorFn = Callable[[np.ndarray], np.ndarray]  # world points [N, 3] float -> RGBA or RGB uint8 [N, 3|4]


def check_texture_size(size: int) -> int:
    """A texture side in pixels, within ``TEXTURE_SIZES``."""
    lo, hi = TEXTURE_SIZES
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or not lo <= int(size) <= hi:
        raise EpigrafError(f"texture size must be a whole number of pixels in [{lo}, {hi}], got {size!r}")
    return int(size)


def require_xatlas():
    """The optional ``xatlas`` module, or an error that says how to install it."""
    try:
        import xatlas
    except ImportError:
        raise EpigrafError("textured meshes need the xatlas package: pip install 'epigraf-tools[texture]'") from None
    return xatlas


def unwrap(vertices: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UV-unwrap a mesh: (vertex map [V'] into ``vertices``, faces [F, 3] into V', uvs [V', 2] in [0, 1]).

    Charts are packed for a ``size`` x ``size`` image with 2 texels between charts, so filtering at
    one chart's border does not reach its neighbour.
    """
    xatlas = require_xatlas()
    atlas = xatlas.Atlas()
    atlas.add_mesh(np.ascontiguousarray(vertices, dtype=np.float32), np.ascontiguousarray(faces, dtype=np.uint32))
    pack = xatlas.PackOptions()
    pack.resolution = int(size)
    pack.padding = 2
    atlas.generate(pack_options=pack)
    vmap, new_faces, uvs = atlas[0]
    return vmap.astype(np.int64), new_faces.astype(np.int64), uvs.astype(np.float64)


def rasterize_uv(uvs: np.ndarray, faces: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which triangle covers each texel centre, and where: (face index [H, W] (-1 = none), barycentrics [H, W, 3]).

    Texel (row r, column c) has its centre at u = (c + 0.5) / size, v = 1 - (r + 0.5) / size.
    """
    # Pixel coordinates of the corners: x along columns, y along rows (down).
    corners = np.stack([uvs[faces, 0] * size, (1.0 - uvs[faces, 1]) * size], axis=-1)  # [F, 3, 2]
    lo = np.clip(np.floor(corners.min(axis=1) - 0.5).astype(np.int64) + 1, 0, size)  # first centre >= min
    hi = np.clip(np.floor(corners.max(axis=1) - 0.5).astype(np.int64) + 1, 0, size)  # one past last centre <= max
    width = np.maximum(hi[:, 0] - lo[:, 0], 0)
    height = np.maximum(hi[:, 1] - lo[:, 1], 0)
    counts = width * height
    face_id = np.full((size, size), -1, dtype=np.int64)
    bary = np.zeros((size, size, 3), dtype=np.float64)
    total = int(counts.sum())
    if total == 0:
        return face_id, bary
    owner = np.repeat(np.arange(len(faces)), counts)
    local = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    col = lo[owner, 0] + local % width[owner]
    row = lo[owner, 1] + local // width[owner]
    p = np.stack([col + 0.5, row + 0.5], axis=-1)
    a, b, c = corners[owner, 0], corners[owner, 1], corners[owner, 2]
    v0, v1, v2 = b - a, c - a, p - a
    d00 = (v0 * v0).sum(-1)
    d01 = (v0 * v1).sum(-1)
    d11 = (v1 * v1).sum(-1)
    d20 = (v2 * v0).sum(-1)
    d21 = (v2 * v1).sum(-1)
    denom = d00 * d11 - d01 * d01
    ok = np.abs(denom) > 1e-9 * d00 * d11  # a triangle with (next to) no area in UV space covers nothing
    denom = np.where(ok, denom, 1.0)
    w1 = (d11 * d20 - d01 * d21) / denom
    w2 = (d00 * d21 - d01 * d20) / denom
    w0 = 1.0 - w1 - w2
    eps = -1e-9  # a centre exactly on a shared edge belongs to one of the two triangles (whichever is last)
    inside = ok & (w0 >= eps) & (w1 >= eps) & (w2 >= eps)
    face_id[row[inside], col[inside]] = owner[inside]
    bary[row[inside], col[inside]] = np.stack([w0, w1, w2], axis=-1)[inside]
    return face_id, bary


def fill_empty(image: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Copy each uncovered texel's colour from the nearest covered texel (image [H, W, C], covered [H, W])."""
    from scipy.ndimage import distance_transform_edt

    if covered.all() or not covered.any():
        return image
    _, (rows, cols) = distance_transform_edt(~covered, return_indices=True)
    return image[rows, cols]


def bake_texture(vertices: np.ndarray, faces: np.ndarray, size: int, color_fn: ColorFn):
    """A textured ``trimesh.Trimesh`` of the mesh (vertices [V, 3] world units, faces [F, 3]).

    ``color_fn`` maps world points [N, 3] to uint8 colours [N, 3] or [N, 4]; the texture is RGB.
    """
    import trimesh
    from PIL import Image

    size = check_texture_size(size)
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    if len(faces) == 0:
        raise EpigrafError("cannot texture a mesh without faces")
    vmap, uv_faces, uvs = unwrap(vertices, faces, size)
    positions = vertices[vmap]
    face_id, bary = rasterize_uv(uvs, uv_faces, size)
    covered = face_id >= 0
    image = np.zeros((size, size, 3), dtype=np.uint8)
    hit = face_id[covered]
    points = np.einsum("nk,nkd->nd", bary[covered], positions[uv_faces[hit]])
    if len(points):
        image[covered] = np.asarray(color_fn(points))[:, :3]
    image = fill_empty(image, covered)
    visual = trimesh.visual.TextureVisuals(
        uv=uvs, material=trimesh.visual.material.SimpleMaterial(image=Image.fromarray(image))
    )
    return trimesh.Trimesh(vertices=positions, faces=uv_faces, visual=visual, process=False)


def texture_image(mesh) -> np.ndarray:
    """The RGB texture [H, W, 3] uint8 of a textured mesh (as loaded by trimesh or made by ``bake_texture``)."""
    material = mesh.visual.material
    image = getattr(material, "image", None) or getattr(material, "baseColorTexture", None)
    if image is None:
        raise EpigrafError("the mesh has no texture image")
    return np.asarray(image.convert("RGB"))


def sample_texture(image: np.ndarray, uvs: np.ndarray) -> np.ndarray:
    """Nearest-texel colours [N, C] at uvs [N, 2] (trimesh's v-up convention), for checks and tests."""
    h, w = image.shape[:2]
    col = np.clip(np.floor(uvs[:, 0] * w).astype(np.int64), 0, w - 1)
    row = np.clip(np.floor((1.0 - uvs[:, 1]) * h).astype(np.int64), 0, h - 1)
    return image[row, col]


def obj_with_texture(mesh, stem_name: str) -> dict[str, bytes]:
    """The files of a textured OBJ: ``{stem}.obj``, ``{stem}.mtl`` and ``{stem}.png`` by name, as bytes.

    trimesh's OBJ writer returns the material files beside the text; their names are chosen here so
    two meshes in one folder never overwrite each other's material. The OBJ comes last, so that a
    writer going in order never leaves an OBJ whose material is missing.
    """
    from trimesh.exchange.obj import export_obj

    text, extras = export_obj(mesh, include_texture=True, mtl_name=f"{stem_name}.mtl", return_texture=True)
    image_name = f"{stem_name}.png"
    files: dict[str, bytes] = {}
    for name, data in extras.items():
        if name.endswith(".mtl"):
            body = data.decode("utf-8")
            for other in extras:
                if not other.endswith(".mtl"):
                    body = body.replace(other, image_name)
            files[f"{stem_name}.mtl"] = body.encode("utf-8")
        else:
            files[image_name] = data
    files[f"{stem_name}.obj"] = text.encode("utf-8")
    return files
