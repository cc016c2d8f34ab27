"""The toolkit's view of an EG3D generator (epigraf_tools/eg3d_model.py) against the official eg3d_mini fixture.

Tolerances: ws, points and raw renders 1e-4 (the fixture README's float32 CPU figures), the
super-resolved image 1e-3; volumes on the regular grid 1e-4.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from eg3d_fixture import load_meta, load_npz, mini_config

from epigraf_tools.camera import Camera
from epigraf_tools.eg3d_model import EG3DModel, as_toolkit_model, to_eg3d_points
from epigraf_tools.isolevel import default_level
from epigraf_tools.latents import Truncation, ws_from_seeds
from epigraf_tools.models.eg3d import EG3DGenerator
from epigraf_tools.rendering import RenderSettings, render_views
from epigraf_tools.volume import extract_density, make_volume_grid


@pytest.fixture(scope="module")
def ref() -> dict[str, np.ndarray]:
    return load_npz("reference_outputs.npz")


@pytest.fixture(scope="module")
def model() -> EG3DModel:
    G = EG3DGenerator(mini_config(load_meta())).eval().requires_grad_(False)
    G.load_state_dict({k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}, strict=True)
    return as_toolkit_model(G)


@pytest.fixture(scope="module")
def ws(model, ref) -> torch.Tensor:
    return ws_from_seeds(model, [0, 3], Truncation(0.7))[0]


def close(a: torch.Tensor | np.ndarray, b: np.ndarray, atol: float) -> None:
    np.testing.assert_allclose(np.asarray(a, dtype=np.float64), b, atol=atol, rtol=0)


def test_default_camera_and_conditioning_are_the_official_frontal_pose(model, ref):
    cam = Camera.default(model.config)
    assert (cam.yaw, cam.pitch, cam.radius, cam.look_at) == (0.0, math.pi / 2, 2.7, (0.0, 0.0, 0.0))
    label = model.label(cam).numpy()[0]
    close(label[:16], ref["c_cond"][0, :16], 1e-6)  # gen_samples.py's frontal pose
    close(label[16:], [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], 1e-6)  # the dataset labels' focal
    close(model.conditioning_label(), ref["c_cond"], 0)  # gen_samples.py's conditioning (fov 18)
    assert model.config.pivot == pytest.approx((0.2, 0.0, 0.0))  # EG3D's (0, 0, 0.2) in the model world


@pytest.mark.parametrize("k", [0, 1])
def test_official_labels_round_trip_through_camera(model, ref, k):
    cam = Camera.from_eg3d(ref["c_cams"][k], model.config.label_resolution, world="eg3d")
    close(model.label(cam), ref["c_cams"][k][None], 1e-6)
    assert 1.40 < cam.pitch < 1.47  # EG3D's pitch offset -0.2: polar angle about arccos(0.4 / pi), camera above
    if k == 1:
        assert cam.yaw < 0  # EG3D's yaw +0.4 turns the camera towards EG3D +x = model -z


def test_ws_match_the_official_mapping_and_cutoff_14_is_all(model, ref, ws):
    close(ws, ref["ws__psi0.7"], 1e-4)
    cut, _ = ws_from_seeds(model, [0, 3], Truncation(0.7, 14))
    assert torch.equal(cut, ws)


@pytest.mark.parametrize("k", [0, 1])
def test_jitter_free_renders_match_the_fixture(model, ref, ws, k):
    cam = Camera.from_eg3d(ref["c_cams"][k], model.config.label_resolution, world="eg3d")
    planes = model.planes(ws[:1])
    raw = render_views(model, planes, [cam], RenderSettings(deterministic=True, raw=True), bg_ws=ws[:1])
    tag = f"psi0.7__seed0__cam{k}"
    close(raw["image"][0, 0], ref[f"render_det_image_raw__{tag}"], 1e-4)
    hit = raw["alpha"][0, 0].numpy() > 1e-3
    close(np.where(hit, raw["depth"][0, 0].numpy(), 0), np.where(hit, ref[f"render_det_depth__{tag}"], 0), 1e-4)
    full = render_views(model, planes, [cam], RenderSettings(deterministic=True), bg_ws=ws[:1], normals=True)
    close(full["image"][0, 0], ref[f"render_det_image__{tag}"], 1e-3)
    assert full["depth"].shape[-1] == full["normals"].shape[-1] == 128  # neural maps at the image size
    n = full["normals"][0, 0].permute(1, 2, 0).numpy()
    lit = full["alpha"][0, 0, 0].numpy() > 1e-3
    np.testing.assert_allclose(np.linalg.norm(n[lit], axis=-1), 1.0, atol=1e-4)


@pytest.mark.parametrize("yaw", [0.0, 0.6])
def test_normals_of_a_sphere_in_the_camera_frame(model, ws, monkeypatch, yaw):
    """An analytic ball (radius 0.3 at the origin): normals x right, y up, z towards the viewer, as EpiGRAF's."""

    def ball(planes, coords, directions=None):
        r = coords.norm(dim=-1, keepdim=True)
        return {"rgb": torch.zeros(*coords.shape[:-1], 32), "sigma": 40 * (0.3 - r) + 1}

    monkeypatch.setattr(model.eg3d, "sample_points", ball)
    cam = Camera.default(model.config).replace(yaw=yaw, fov=12.0)
    settings = RenderSettings(deterministic=True, raw=True, resolution=33)
    out = render_views(model, model.planes(ws[:1]), [cam], settings, normals=True)
    n = out["normals"][0, 0].permute(1, 2, 0).numpy()  # [H, W, 3], row 0 at the top
    np.testing.assert_allclose(n[16, 16], [0, 0, 1], atol=0.02)  # the centre pixel faces the camera
    assert n[16, 16 + 7, 0] > 0.3 and n[16, 16 - 7, 0] < -0.3  # right of centre points right
    assert n[16 - 7, 16, 1] > 0.3 and n[16 + 7, 16, 1] < -0.3  # above centre points up
    # The surface is at 2.4; the soft shell (sigma = softplus(40 (0.3 - r))) puts the expected depth ~0.2 inside.
    assert 2.4 < float(out["depth"][0, 0, 0, 16, 16]) < 2.65


def test_seeded_render_does_not_depend_on_the_batch(model, ws):
    planes = model.planes(ws)
    cams = [Camera.default(model.config)]
    both = render_views(model, planes, cams, RenderSettings(raw=True), noise_keys=[5, 6], bg_ws=ws)
    one = render_views(model, planes[1:], cams, RenderSettings(raw=True), noise_keys=[6], bg_ws=ws[1:])
    torch.testing.assert_close(both["image"][1], one["image"][0], atol=1e-6, rtol=0)
    other = render_views(model, planes[1:], cams, RenderSettings(raw=True), noise_keys=[7], bg_ws=ws[1:])
    assert not torch.equal(other["image"], one["image"])


def test_points_in_the_model_world_are_eg3d_points_rotated(model, ref, ws):
    planes = model.planes(ws[:1])
    eg3d_pts = torch.from_numpy(ref["points"])[None]
    model_pts = torch.stack([eg3d_pts[..., 2], eg3d_pts[..., 1], -eg3d_pts[..., 0]], dim=-1)
    torch.testing.assert_close(to_eg3d_points(model_pts), eg3d_pts)
    close(model.density(planes, model_pts)[0], ref["points_sigma__psi0.7__seed0"], 1e-4)
    out = model.query(planes, model_pts)
    close(out["rgb"][0], ref["points_features__psi0.7__seed0"][:, :3] * 2 - 1, 2e-4)
    sigma = torch.nn.functional.softplus(torch.from_numpy(ref["points_sigma__psi0.7__seed0"]) - 1)
    close(out["sigma"][0], sigma.numpy(), 1e-4)
    close(out["sigma_raw"][0], ref["points_sigma__psi0.7__seed0"], 1e-4)


def test_both_families_offer_the_toolkit_surface(model):
    from epigraf_tools.model_api import ToolkitGenerator

    from support import make_tiny_generator

    assert isinstance(model, ToolkitGenerator) and isinstance(make_tiny_generator(), ToolkitGenerator)
    assert not isinstance(model.eg3d, ToolkitGenerator)  # the bare EG3D generator needs as_toolkit_model


def test_volume_on_the_regular_grid_matches_the_fixture_after_the_axis_change(model, ref, ws):
    grid = make_volume_grid(model.config.cube_scale, 64)  # default box: [-box_warp/2, box_warp/2]^3
    assert grid.origin == pytest.approx((-0.55,) * 3)
    vol = extract_density(model, ws[:1], grid=grid)  # V[i, j, k] at model (x_i, y_j, z_k)
    eg3d = ref["shape64_regular_raw__psi0.7__seed0"]  # V_e[i, j, k] at EG3D (x_i, y_j, z_k)
    close(vol, np.flip(eg3d, 0).transpose(2, 1, 0), 1e-4)  # model (x, y, z) = EG3D (z, y, -x)
    # The MRC data array (vol.T, [z, y, x]) is laid out like the official shapes MRC (x flipped, no transpose),
    # which samples a slightly irregular grid and pads its faces with -1000: compare the interior.
    official, pad = ref["shape64__psi0.7__seed0"], int(30 * 64 / 256)
    inner = (slice(pad, -pad),) * 3
    assert np.corrcoef(vol.T[inner].ravel(), official[inner].ravel())[0, 1] > 0.97
    sigma = extract_density(model, ws[:1], grid=make_volume_grid(model.config.cube_scale, 8), value="sigma")
    raw = extract_density(model, ws[:1], grid=make_volume_grid(model.config.cube_scale, 8))
    close(sigma, torch.nn.functional.softplus(torch.from_numpy(raw) - 1).numpy(), 1e-6)


def test_default_level_is_eg3d_recommendation(model):
    assert default_level(model.config, "raw") == 10.0
    assert default_level(model.config, "sigma") == pytest.approx(math.log1p(math.exp(9.0)))
    assert model.c_dim == 0 and model.config.class_names is None


def test_auto_ray_limits_render_the_same_through_the_toolkit_and_the_generator(model, ref, ws):
    """ray_start = ray_end = 'auto' (no fixture has it): the toolkit's chunked render with the fast field
    takes each ray's limits from the whole view, as the generator's one-call render does; 1e-4 as above."""
    from epigraf_tools.models.eg3d import EG3DDraws

    config = mini_config(load_meta())
    rk = {**config.rendering_kwargs, "ray_start": "auto", "ray_end": "auto"}
    G = EG3DGenerator(dataclasses.replace(config, rendering_kwargs=rk)).eval().requires_grad_(False)
    G.load_state_dict({k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}, strict=True)
    auto = as_toolkit_model(G)
    box, radius = auto.config.box_warp, auto.config.radius
    assert auto.config.auto_ray_limits
    assert auto.config.ray_start <= radius - box / 2 and auto.config.ray_end >= radius + box / 2
    cam = Camera.from_eg3d(ref["c_cams"][1], auto.config.label_resolution, world="eg3d")
    cam = dataclasses.replace(cam, fov=40.0)  # wide enough that the corner rays miss the cube
    planes = auto.planes(ws[:1])
    settings = RenderSettings(deterministic=True, raw=True, chunk_rays=97)  # chunks that split rows
    toolkit = render_views(auto, planes, [cam], settings, bg_ws=ws[:1])["image"][0, 0]
    res = auto.config.raw_resolution
    draws = EG3DDraws.deterministic(1, res * res, int(rk["depth_resolution"]))
    generator = G.render(planes, auto.label(cam), res, draws)["image_raw"][0]
    close(toolkit, generator.numpy(), 1e-4)
    numeric = render_views(model, planes, [cam], settings, bg_ws=ws[:1])["image"][0, 0]  # the numeric slab
    assert np.abs(toolkit.numpy() - numeric.numpy()).max() > 1e-3  # 'auto' samples other depths
