"""epigraf_tools/rendering.py: equals the model's renderer, reproducible noise, any camera, normals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from render_scene import opaque_sphere

from epigraf_tools.camera import Camera, CameraError
from epigraf_tools.errors import EpigrafError
from epigraf_tools.rendering import RenderSettings, ray_draws, render_views, surface_normals

from support import make_tiny_generator


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator()


@pytest.fixture(scope="module")
def planes(G):
    with torch.no_grad():
        return G.planes(G.mapping(torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(1)), None))


@pytest.fixture(scope="module")
def sphere():
    return opaque_sphere()


def test_matches_generator_render_planes_with_the_same_draws(G, planes):
    cams = [Camera(yaw=0.2, pitch=1.3), Camera(yaw=-0.4, pitch=1.7, fov=14.0)]
    out = render_views(G, planes, cams, RenderSettings(resolution=16), noise_keys=[5, 7])
    assert out["image"].shape == (2, 2, 3, 16, 16) and out["depth"].shape == (2, 2, 1, 16, 16)
    for b, key in enumerate([5, 7]):
        for v, cam in enumerate(cams):
            with torch.no_grad():
                ref = G.render_planes(
                    planes[b : b + 1], torch.tensor([cam.angles]), 16, fov=cam.fov, draws=ray_draws([key], 256, 8)
                )
            torch.testing.assert_close(out["image"][b, v], ref["image"][0], atol=1e-5, rtol=0)
            torch.testing.assert_close(out["alpha"][b, v], ref["alpha"][0], atol=1e-5, rtol=0)


def test_deterministic_matches_the_models_deterministic_mode(G, planes):
    out = render_views(G, planes[:1], [Camera()], RenderSettings(resolution=8, deterministic=True))
    with torch.no_grad():
        ref = G.render_planes(planes[:1], torch.tensor([Camera().angles]), 8, deterministic=True)
    torch.testing.assert_close(out["image"][0, 0], ref["image"][0], atol=1e-5, rtol=0)


def test_noise_depends_only_on_the_key_not_on_the_batch(G, planes):
    settings = RenderSettings(resolution=12)
    pair = render_views(G, planes, [Camera(), Camera(yaw=0.5)], settings, noise_keys=[11, 3])
    alone = render_views(G, planes[1:], [Camera(yaw=0.5)], settings, noise_keys=[3])
    # batch 2x2 vs 1x1: the MLP's matmuls take other kernels, so last bits may differ; noise from another
    # key would differ by far more
    torch.testing.assert_close(pair["image"][1, 1], alone["image"][0, 0], atol=1e-5, rtol=0)
    other = render_views(G, planes[1:], [Camera(yaw=0.5)], settings, noise_keys=[4])
    assert not torch.equal(other["image"], alone["image"])
    with pytest.raises(EpigrafError, match="noise_keys"):
        render_views(G, planes, [Camera()], settings)


def test_per_sample_camera_lists(G, planes):
    settings = RenderSettings(resolution=8, deterministic=True)
    out = render_views(G, planes, [[Camera(yaw=0.1)], [Camera(yaw=-0.3)]], settings)
    ref = render_views(G, planes[1:], [Camera(yaw=-0.3)], settings)
    torch.testing.assert_close(out["image"][1], ref["image"][0])
    with pytest.raises(CameraError, match="equally long"):
        render_views(G, planes, [[Camera()], [Camera(), Camera()]], settings)


def test_sphere_orientation_depth_and_normals(sphere):
    G, planes = sphere
    out = render_views(G, planes, [Camera()], RenderSettings(resolution=33, deterministic=True), normals=True)
    img = out["image"][0, 0]
    c = 16
    assert out["alpha"][0, 0, 0, c, c] > 0.999 and out["alpha"][0, 0, 0, 0, 0] < 1e-3  # corners miss the sphere
    assert img[0, c, c] > 0.3  # red = +x faces the frontal camera (it sits on +x)
    assert img[2, c, 2] > 0.1 > -0.1 > img[2, c, 30]  # image right is world -z: blue falls to the right
    assert img[1, 4, c] > 0.1 > -0.1 > img[1, 28, c]  # image up is world +y
    # the first hit lies on the radius-0.1 sphere: depth ~ 0.9 (8 ray steps blur it by a few mm)
    assert 0.89 < float(out["depth"][0, 0, 0, c, c]) < 0.93
    n = out["normals"][0, 0]
    torch.testing.assert_close(n[:, c, c], torch.tensor([0.0, 0.0, 1.0]), atol=0.02, rtol=0)  # towards the viewer
    assert n[0, c, 28] > 0.5 and n[1, 4, c] > 0.5  # right side points right, top points up (camera frame)
    assert torch.all(n[:, 0, 0] == 0)  # no surface, no normal


def test_yaw_turns_the_camera_towards_plus_z(sphere):
    G, planes = sphere
    out = render_views(G, planes, [Camera(yaw=math.pi / 2)], RenderSettings(resolution=9, deterministic=True))
    assert out["image"][0, 0, 2, 4, 4] > 0.3  # the blue (+z) side faces this camera


def test_far_camera_samples_the_same_slab(sphere):
    G, planes = sphere
    settings = RenderSettings(resolution=9, deterministic=True)
    near = render_views(G, planes, [Camera(radius=1.0)], settings)
    far = render_views(G, planes, [Camera(radius=1.7)], settings)
    # the centre ray is the same line: same samples, same colour, depth longer by exactly 0.7
    torch.testing.assert_close(far["image"][0, 0, :, 4, 4], near["image"][0, 0, :, 4, 4], atol=1e-5, rtol=0)
    assert float(far["depth"][0, 0, 0, 4, 4] - near["depth"][0, 0, 0, 4, 4]) == pytest.approx(0.7, abs=1e-4)
    with pytest.raises(CameraError, match="inside the object"):
        render_views(G, planes, [Camera(radius=0.1)], settings)


def test_surface_normals_of_an_analytic_sphere(sphere):
    G, planes = sphere
    dirs = torch.nn.functional.normalize(torch.randn(1, 50, 3, generator=torch.Generator().manual_seed(0)), dim=-1)
    normals = surface_normals(G, planes, dirs * 0.1)
    cos = (normals * dirs).sum(-1)
    assert float(cos.min()) > 0.98  # outward, along the radius


def test_settings_validation():
    with pytest.raises(EpigrafError, match="resolution"):
        RenderSettings(resolution=0).validate()
    with pytest.raises(EpigrafError, match="maximum"):
        RenderSettings(resolution=100000).validate()
    assert np.isclose(RenderSettings().validate().chunk_rays or 0, 0)


def test_background_layers_and_a_foreground_only_alpha():
    """With a background network: all = fg + bg * T, and alpha, depth and fg never depend on the background."""
    import copy

    G = make_tiny_generator(2, bg_model="sphere", bg_channel_base=64, bg_channel_max=16)
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(4)), None)
        planes = G.planes(ws)
    bg_ws = G.synthesis.background_ws(ws)
    cams = [Camera(yaw=0.3, pitch=1.4)]

    def render(model, layer):
        return render_views(model, planes, cams, RenderSettings(resolution=12, layer=layer), [9], bg_ws=bg_ws)

    out = {layer: render(G, layer) for layer in ("all", "fg", "bg")}
    for layer in ("fg", "bg"):
        assert torch.equal(out[layer]["alpha"], out["all"]["alpha"])
        assert torch.equal(out[layer]["depth"], out["all"]["depth"])
    alpha = out["all"]["alpha"]
    assert 0.01 < float(alpha.min()) and float(alpha.max()) < 0.99  # both layers visible somewhere
    # final transmittance and 1 - alpha differ by the last sample's opacity (its delta is 1e-3)
    recomposed = out["fg"]["image"] + out["bg"]["image"] * (1 - alpha)
    torch.testing.assert_close(
        out["all"]["image"], recomposed, atol=2e-3 * float(out["bg"]["image"].abs().max()), rtol=0
    )

    scrambled = copy.deepcopy(G)
    with torch.no_grad():
        for p in scrambled.synthesis.bg_model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    other = {layer: render(scrambled, layer) for layer in ("all", "fg")}
    assert torch.equal(other["fg"]["image"], out["fg"]["image"])
    assert torch.equal(other["all"]["alpha"], alpha) and torch.equal(other["all"]["depth"], out["all"]["depth"])
    assert (other["all"]["image"] - out["all"]["image"]).abs().max() > 1e-2


def test_background_layer_needs_a_background_network(G, planes):
    with pytest.raises(EpigrafError, match="layer 'bg' needs a model with a background network"):
        render_views(G, planes[:1], [Camera()], RenderSettings(resolution=4, deterministic=True, layer="bg"))
    with pytest.raises(EpigrafError, match="layer must be one of"):
        RenderSettings(layer="sky").validate()
    fg = render_views(G, planes[:1], [Camera()], RenderSettings(resolution=4, deterministic=True, layer="fg"))
    full = render_views(G, planes[:1], [Camera()], RenderSettings(resolution=4, deterministic=True))
    assert torch.equal(fg["image"], full["image"])  # without a background, the foreground is everything
