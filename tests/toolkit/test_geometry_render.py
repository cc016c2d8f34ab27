"""``geometry_render``: the lit iso-surface lines up with the colour renderer, and its shading follows the light."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epigraf_tools.camera import Camera
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.errors import EpigrafError
from epigraf_tools.geometry_export import seed_planes
from epigraf_tools.geometry_render import IsoSurface, Lighting, march, model_slab, occupied_span, render_isosurface
from epigraf_tools.geometry_views import GeometryShading, seed_surface
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings, render_views

RADIUS = 0.2  # the analytic sphere's radius in world units
BOX = 0.3  # half side of its volume


def sphere_surface(resolution: int = 48, level: float = 0.0) -> IsoSurface:
    """A sphere of RADIUS at the origin as a 'density' that grows inwards: V = RADIUS - |p| (level 0)."""
    axis = np.linspace(-BOX, BOX, resolution)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    vol = (RADIUS - np.sqrt(x**2 + y**2 + z**2)).astype(np.float32)
    step = 2 * BOX / (resolution - 1)
    return IsoSurface(vol, (step,) * 3, (-BOX,) * 3, level)


FRONT = Camera(yaw=0.0, pitch=math.pi / 2, radius=1.0, fov=30.0)


def test_sphere_depth_normals_and_silhouette():
    out = render_isosurface(sphere_surface(), [FRONT], 65)
    c = 32  # the centre pixel looks straight at the sphere's nearest point
    assert out["mask"][0, c, c]
    assert out["depth"][0, c, c] == pytest.approx(1.0 - RADIUS, abs=2e-3)  # within a sixth of a voxel
    np.testing.assert_allclose(out["normals"][0, c, c], [0, 0, 1], atol=0.02)  # faces the viewer
    # silhouette: the projected disc, radius r / sqrt(d^2 - r^2) in tan units
    f = 32 / math.tan(math.radians(15))
    disc = RADIUS / math.sqrt(1 - RADIUS**2) * f
    yy, xx = np.mgrid[0:65, 0:65] - c
    expected = np.hypot(xx, yy) <= disc
    iou = (expected & out["mask"][0]).sum() / (expected | out["mask"][0]).sum()
    assert iou > 0.95, iou
    assert not out["image"][0][~out["mask"][0]].any()  # black background off the surface


def test_shading_follows_the_light():
    surface = sphere_surface()
    front = Lighting(key_direction=(0, 0, -1), fill_intensity=0.0, ambient_intensity=0.0, specular=0.0)
    out = render_isosurface(surface, [FRONT], 65, front)["image"][0].astype(float).mean(-1)
    assert out.std() > 10  # not blank
    centre, rim = out[32, 32], out[32, 32 + 22]  # normal towards the camera vs. tilted ~64 degrees away
    assert centre > rim + 40
    left = Lighting(key_direction=(1, 0, 0), fill_intensity=0.0, ambient_intensity=0.0, specular=0.0)
    lit = render_isosurface(surface, [FRONT], 65, left)["image"][0].astype(float).mean(-1)
    assert lit[32, 32 - 15] > lit[32, 32 + 15] + 40  # light from the left brightens the left side only


def test_empty_volume_and_bad_lighting():
    out = render_isosurface(sphere_surface(level=1.0), [FRONT], 16)  # level above every value
    assert not out["mask"].any() and not out["image"].any()
    with pytest.raises(EpigrafError, match="color"):
        render_isosurface(sphere_surface(), [FRONT], 16, Lighting(color=(2, 0, 0)))
    with pytest.raises(EpigrafError, match="resolution"):
        render_isosurface(sphere_surface(), [FRONT], 1)


@pytest.fixture(scope="module")
def default_model():
    return load_generator(None, "cpu", progress=False)


@pytest.mark.parametrize("yaw, pitch", [(0.0, math.pi / 2), (0.35, math.pi / 2), (-0.3, 1.45), (0.2, 1.75)])
def test_silhouette_matches_alpha_mask_of_default_model(default_model, yaw, pitch):
    """IoU >= 0.9 between the shaded image's surface mask and the colour render's alpha > 0.5.

    Measured: 0.967, 0.954, 0.957, 0.968 (64 px, 128^3 volume). Views stay near the front: from wide or
    high angles the colour renderer's slab reaches beyond the tri-plane cube, where the network's response
    to zero plane features shows up as opacity that no volume of the cube holds (pitch 1.3 gives 0.906).
    """
    G = default_model
    trunc = Truncation(0.7).validate(G.num_ws)
    cam = Camera.default(G.config, yaw=yaw, pitch=pitch)
    geo = seed_surface(G, 0, trunc, None, GeometryShading(volume_resolution=128, method="separable"))
    shaded = render_isosurface(geo.surface, [cam], 64, slab=model_slab(G.config))
    planes, _ = seed_planes(G, 0, trunc, None)
    alpha = render_views(G, planes, [cam], RenderSettings(resolution=64, deterministic=True))["alpha"]
    colour_mask = alpha[0, 0, 0].numpy() > 0.5
    mask = shaded["mask"][0]
    iou = (mask & colour_mask).sum() / (mask | colour_mask).sum()
    assert colour_mask.mean() > 0.1  # the object is in view
    assert iou >= 0.9, iou


def test_key_light_casts_a_shadow():
    """A ball in front of a wall, lit from the front at 45 degrees: its shadow darkens one side of the wall only."""
    n = 64
    axis = np.linspace(-BOX, BOX, n)
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    ball = 0.1 - np.sqrt(x**2 + y**2 + z**2)
    wall = np.minimum(x + 0.25, -0.2 - x)  # a slab at x in [-0.25, -0.2], behind the ball seen from +x
    step = 2 * BOX / (n - 1)
    surface = IsoSurface(np.maximum(ball, wall).astype(np.float32), (step,) * 3, (-BOX,) * 3, 0.0)
    light = dict(key_direction=(1.0, 0.0, -1.0), fill_intensity=0.0, ambient_intensity=0.0, specular=0.0)
    sides = {}
    for shadows in (False, True):
        img = render_isosurface(surface, [FRONT], 65, Lighting(shadows=shadows, **light))["image"][0].mean(-1)
        sides[shadows] = (float(img[32, 32 - 20]), float(img[32, 32 + 20]))  # the wall left and right of the ball
    assert sides[False][0] == pytest.approx(sides[False][1], abs=2) and sides[False][0] > 60
    assert min(sides[True]) < 10 and max(sides[True]) > 60  # one side in the ball's shadow


def test_a_ray_that_misses_the_box_gets_an_empty_span_and_no_march():
    """Shadow rays start two voxels off the surface, so just outside the box where the surface touches a face.

    One that runs nearly parallel to that face (a 3e-8 direction component, as an orbit camera's key light
    gave) exits the box's slab half a million units behind its start: its span must still come back empty
    (near > far), not as [far + 1, near - 1], which the march then walked a voxel at a time for ever.
    """
    surface = sphere_surface(level=-1.0)  # every value above the level: every block may hold the surface
    origins = torch.tensor([[BOX + 0.016, 0.0, 0.0], [BOX + 0.016, 0.0, 0.0], [0.0, 0.0, -1.0]])
    dirs = torch.tensor([[3e-8, 0.577, 0.816], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    near, far = torch.zeros(3), surface.box_range(origins, dirs)[1]
    assert far[0] < -1e5 and far[1] > 0  # the first misses the box far behind its start; the others cross it
    span_near, span_far = occupied_span(surface, origins, dirs, near, far)
    assert span_near[0] > span_far[0]  # empty
    assert span_near[1] < span_far[1] and span_near[2] < span_far[2]  # untouched where the box is crossed
    t = march(surface, origins, dirs, near, far, 0.5)  # returns at once (hung before the fix)
    assert math.isnan(float(t[0])) and math.isfinite(float(t[1])) and math.isfinite(float(t[2]))
