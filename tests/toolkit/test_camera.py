"""epigraf_tools/camera.py: poses against hand-computed matrices, conversions, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epigraf_tools.camera import Camera, CameraError, camera_from_options, cameras_to_tensors, parse_look_at
from epigraf_tools.models import GeneratorConfig
from epigraf_tools.models.cameras import cam2world_from_angles, generate_rays


def test_frontal_camera_matches_the_documented_axes():
    # Camera on +x looking at the origin: right = world -z, up = world +y, backwards = world +x.
    expected = np.array([[0, 0, 1, 1], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(Camera().cam2world("opengl"), expected, atol=1e-12)
    cv = expected @ np.diag([1, -1, -1, 1])  # OpenCV: y down, z forwards
    np.testing.assert_allclose(Camera().cam2world("opencv"), cv, atol=1e-12)


def test_yaw_quarter_turn_moves_the_camera_to_plus_z():
    cam = Camera(yaw=math.pi / 2, radius=2.0)
    np.testing.assert_allclose(cam.position, [0, 0, 2], atol=1e-12)
    expected = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(cam.cam2world(), expected, atol=1e-12)


def test_pitch_is_the_polar_angle_from_plus_y_and_look_at_shifts_the_orbit():
    cam = Camera(yaw=0.0, pitch=math.pi / 3, radius=1.0, look_at=(0.1, 0.2, 0.3))
    np.testing.assert_allclose(cam.position, [0.1 + math.sin(math.pi / 3), 0.2 + 0.5, 0.3], atol=1e-12)
    forward = -cam.cam2world()[:3, 2]
    np.testing.assert_allclose(forward, -cam.direction, atol=1e-12)


def test_world2cam_inverts_cam2world():
    cam = Camera(yaw=0.7, pitch=1.1, radius=1.3, look_at=(0.01, -0.02, 0.03))
    for conv in ("opengl", "opencv"):
        np.testing.assert_allclose(cam.world2cam(conv) @ cam.cam2world(conv), np.eye(4), atol=1e-12)


def test_tensors_are_bit_identical_to_the_model_angles_path():
    cams = [Camera(yaw=0.3, pitch=1.2), Camera(yaw=-1.0, pitch=2.0, radius=1.0)]
    got = cameras_to_tensors(cams).cam2world
    ref = cam2world_from_angles(torch.tensor([c.angles for c in cams], dtype=torch.float32), 1.0)
    assert torch.equal(got, ref)  # exact: the same float32 functions on the same batch (a zero target adds 0)
    np.testing.assert_allclose(got[0].double().numpy(), cams[0].cam2world(), atol=1e-6)


@pytest.mark.parametrize(
    "cam",
    [Camera(), Camera(yaw=0.4, pitch=1.3, fov=18.0), Camera(yaw=-2.5, pitch=2.8, radius=2.7, fov=30.0)],
)
@pytest.mark.parametrize("world", ["model", "eg3d"])
def test_eg3d_round_trip(cam, world):
    label = cam.to_eg3d(resolution=128, world=world)
    assert label.shape == (25,)
    back = Camera.from_eg3d(label, resolution=128, world=world)
    for name in ("yaw", "pitch", "radius", "fov"):
        assert getattr(back, name) == pytest.approx(getattr(cam, name), abs=1e-9)
    np.testing.assert_allclose(back.look_at, cam.look_at, atol=1e-9)


def test_eg3d_round_trip_with_look_at_keeps_the_pose():
    cam = Camera(yaw=0.3, pitch=1.4, radius=1.1, look_at=(0.0, 0.05, 0.0))
    back = Camera.from_eg3d(cam.to_eg3d(64), 64)
    np.testing.assert_allclose(back.cam2world(), cam.cam2world(), atol=1e-9)  # same pose; look_at is re-chosen
    assert back.fov == pytest.approx(cam.fov)


def test_eg3d_world_puts_the_frontal_camera_on_plus_z():
    # EG3D's frontal camera sits at (0, 0, r) with OpenCV axes x right, y down, z towards the origin.
    label = Camera(radius=2.0).to_eg3d(512, world="eg3d")
    expected = np.array([[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 2], [0, 0, 0, 1]], dtype=float)
    np.testing.assert_allclose(label[:16].reshape(4, 4), expected, atol=1e-12)
    fx = label[16]
    assert label[18] == 0.5 and label[21] == 0.5 and label[20] == fx
    assert fx == pytest.approx(511 / (2 * 512 * math.tan(math.radians(6))))


def test_intrinsics_project_the_renderers_rays_onto_their_pixels():
    cam = Camera(yaw=0.5, pitch=1.2, fov=20.0)
    res = 9
    t = cameras_to_tensors([cam], dtype=torch.float64)
    origins, dirs, _ = generate_rays(t.cam2world, t.fov, res, res)
    K, w2c = cam.intrinsics(res), cam.world2cam("opencv")
    for row, col in [(0, 0), (0, 8), (4, 4), (7, 2)]:
        point = (origins[0, row * res + col] + dirs[0, row * res + col] * 0.9).numpy()
        uvw = K @ (w2c @ np.append(point, 1.0))[:3]
        np.testing.assert_allclose(uvw[:2] / uvw[2], [col, row], atol=1e-9)


def test_from_cam2world_refuses_roll():
    c2w = Camera(yaw=0.2).cam2world()
    roll = np.eye(4)
    roll[:2, :2] = [[math.cos(0.3), -math.sin(0.3)], [math.sin(0.3), math.cos(0.3)]]
    with pytest.raises(CameraError, match="roll"):
        Camera.from_cam2world(c2w @ roll, fov=12.0)


def test_from_eg3d_refuses_off_centre_intrinsics_and_wrong_lengths():
    label = Camera().to_eg3d(64)
    label[18] = 0.4
    with pytest.raises(CameraError, match="cx"):
        Camera.from_eg3d(label, 64)
    with pytest.raises(CameraError, match="25"):
        Camera.from_eg3d(np.zeros(16), 64)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"pitch": 95.0}, "pitch .* radians.*degrees"),
        ({"pitch": -0.1}, r"\[0, pi\] radians"),
        ({"yaw": 45.0}, "yaw .* radians"),
        ({"fov": 0.21}, "fov .* degrees.*radians"),
        ({"fov": 180.0}, "fov"),
        ({"radius": 0.0}, "radius must be positive"),
        ({"radius": float("nan")}, "radius must be a finite"),
        ({"look_at": (0.0, 1.0)}, "look_at must be three"),
    ],
)
def test_validation_names_units(kwargs, message):
    with pytest.raises(CameraError, match=message):
        Camera(**kwargs)


def test_camera_error_is_a_value_error_and_degrees_helpers():
    assert issubclass(CameraError, ValueError)
    cam = Camera.from_degrees(yaw=30, pitch=60)
    assert cam.yaw == pytest.approx(math.pi / 6) and cam.pitch_degrees == pytest.approx(60)


def test_defaults_come_from_the_config_and_options_override():
    cfg = GeneratorConfig(img_resolution=32, triplane_res=16, fov=30.0, radius=1.5, ray_start=0.7, ray_end=1.3)
    cam = camera_from_options(cfg, yaw=10.0, pitch=80.0, degrees=True, look_at=parse_look_at("0,0.1,0"))
    assert (cam.fov, cam.radius) == (30.0, 1.5)
    assert cam.yaw == pytest.approx(math.radians(10)) and cam.look_at == (0.0, 0.1, 0.0)
    with pytest.raises(CameraError, match="look_at must be three numbers"):
        parse_look_at("1,2")


def test_dict_round_trip():
    cam = Camera(yaw=0.1, pitch=1.0, radius=1.2, fov=14.0, look_at=(0.0, 0.01, 0.0))
    assert Camera.from_dict(cam.to_dict()) == cam


def test_blender_camera_casts_the_renderers_rays():
    """A pinhole in Blender's terms (angle across the image edges, z-up world) reproduces every ray."""
    cam = Camera.from_degrees(yaw=35.0, pitch=70.0, radius=2.7, fov=18.0, look_at=(0.1, -0.05, 0.02))
    res = 9
    matrix, angle = cam.to_blender(res)
    c2w = torch.from_numpy(cam.cam2world()[None])
    origins, dirs, _ = generate_rays(c2w, cam.fov, res, res)
    to_blender = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    # Blender: pixel (row r, col c) centre on the image plane at distance 1 spans [-tan(a/2), tan(a/2)] edge to edge
    half = math.tan(angle / 2)
    c, r = np.meshgrid(np.arange(res), np.arange(res))
    x = ((c + 0.5) / res * 2 - 1) * half
    y = (1 - (r + 0.5) / res * 2) * half
    local = np.stack([x, y, -np.ones_like(x)], axis=-1).reshape(-1, 3)
    world = local @ matrix[:3, :3].T
    world /= np.linalg.norm(world, axis=1, keepdims=True)
    np.testing.assert_allclose(world, dirs[0].numpy() @ to_blender.T, atol=1e-6)  # float32 rays
    np.testing.assert_allclose(matrix[:3, 3], to_blender @ cam.position, atol=1e-12)
    assert np.linalg.det(matrix[:3, :3]) == pytest.approx(1.0)
