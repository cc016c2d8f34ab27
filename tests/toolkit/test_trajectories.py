"""epigraf_tools/trajectories.py: every path against poses computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from epigraf_tools.camera import Camera
from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import GeneratorConfig
from epigraf_tools.trajectories import (
    DEFAULT_FRAMES,
    TRAJECTORIES,
    front_circle,
    get_trajectory,
    line,
    load_keyframes,
    orbit,
    points,
    wiggle,
    yaw_sweep,
)

HALF_PI = math.pi / 2


def values(cams, name):
    return np.array([getattr(c, name) for c in cams])


def test_front_circle_is_the_official_zoom_and_fly_loop():
    cams = front_circle(frames=5, base=Camera(fov=12.0))  # t = 0, 1/4, 1/2, 3/4, 1
    np.testing.assert_allclose(values(cams, "yaw"), [0, 0.3, 0, -0.3, 0], atol=1e-12)
    np.testing.assert_allclose(values(cams, "pitch"), [HALF_PI + 0.2, HALF_PI, HALF_PI - 0.2, HALF_PI, HALF_PI + 0.2])
    np.testing.assert_allclose(values(cams, "fov"), [12, 13, 12, 11, 12], atol=1e-12)
    np.testing.assert_allclose(cams[1].position, [math.cos(0.3), 0.0, math.sin(0.3)], atol=1e-12)


def test_wiggle_and_line_match_the_official_definitions():
    w = wiggle(frames=3)
    np.testing.assert_allclose(values(w, "yaw"), [-1.57, 0, 1.57])
    np.testing.assert_allclose(values(w, "pitch"), [HALF_PI + 0.5, HALF_PI - 0.5, HALF_PI + 0.5])
    ln = line(frames=3)
    np.testing.assert_allclose(values(ln, "yaw"), [-1.57, 0, 1.57])
    np.testing.assert_allclose(values(ln, "pitch"), [0.835] * 3)
    # pitch 0.835 rad from +y: the camera looks down on the object from above the equator
    assert ln[1].position[1] == pytest.approx(math.cos(0.835))


def test_points_three_official_views_held_for_frames():
    p = points()
    np.testing.assert_allclose(values(p, "yaw"), [0, -0.3, 0.3])
    np.testing.assert_allclose(values(p, "pitch"), [1.57] * 3)
    np.testing.assert_allclose(values(points(frames=7), "yaw"), [0, 0, -0.3, -0.3, 0.3, 0.3])
    with pytest.raises(EpigrafError, match="frames"):
        points(frames=2)


def test_orbit_is_a_full_turn_that_loops():
    cams = orbit(frames=4, base=Camera(radius=2.0))
    np.testing.assert_allclose(values(cams, "yaw"), [0, HALF_PI, math.pi, 3 * HALF_PI])
    positions = np.stack([c.position for c in cams])
    np.testing.assert_allclose(positions, [[2, 0, 0], [0, 0, 2], [-2, 0, 0], [0, 0, -2]], atol=1e-12)


def test_yaw_sweep_swings_around_the_base_yaw():
    cams = yaw_sweep(frames=4, base=Camera(yaw=0.1, pitch=1.4), amplitude=0.5)
    np.testing.assert_allclose(values(cams, "yaw"), [0.1, 0.6, 0.1, -0.4], atol=1e-12)
    np.testing.assert_allclose(values(cams, "pitch"), [1.4] * 4)


def test_defaults_and_config_base():
    cfg = GeneratorConfig(img_resolution=32, triplane_res=16, fov=30.0, radius=1.2)
    for name in TRAJECTORIES:
        cams, _ = get_trajectory(name, config=cfg)
        assert len(cams) == DEFAULT_FRAMES[name]
        assert all(c.radius == 1.2 for c in cams)
    assert get_trajectory("orbit", config=cfg)[0][0].fov == 30.0


def test_unknown_trajectory_and_bad_frames():
    with pytest.raises(EpigrafError, match="unknown trajectory 'spiral'"):
        get_trajectory("spiral")
    with pytest.raises(EpigrafError, match="does not exist"):
        get_trajectory("missing.yaml")
    with pytest.raises(EpigrafError, match="frames"):
        get_trajectory("orbit", frames=0)


def test_keyframes_yaml_degrees_linear(tmp_path):
    path = tmp_path / "path.yaml"
    path.write_text(
        "frames: 3\nfps: 24\ndegrees: true\nkeyframes:\n  - {yaw: -30, pitch: 90}\n  - {yaw: 30, fov: 14}\n"
    )
    cams, options = get_trajectory(path)
    assert options == {"fps": 24}
    np.testing.assert_allclose(values(cams, "yaw"), np.radians([-30, 0, 30]))
    np.testing.assert_allclose(values(cams, "pitch"), [HALF_PI] * 3)
    np.testing.assert_allclose(values(cams, "fov"), [12, 13, 14])


def test_keyframes_json_loop_at_and_smooth(tmp_path):
    path = tmp_path / "path.json"
    spec = {"loop": True, "keyframes": [{"yaw": 0.0}, {"yaw": 1.0, "radius": 1.5}]}
    path.write_text(json.dumps(spec))
    cams, _ = get_trajectory(path, frames=4)  # 0 -> 1 -> back to 0, stopping one frame short
    np.testing.assert_allclose(values(cams, "yaw"), [0, 0.5, 1.0, 0.5])
    np.testing.assert_allclose(values(cams, "radius"), [1.0, 1.25, 1.5, 1.25])
    spec = {"interpolation": "smooth", "keyframes": [{"yaw": 0.0}, {"yaw": 1.0, "at": 0.25}, {"yaw": 0.0}]}
    cams, _ = load_keyframes(spec, frames=9)  # t = k / 8: keyframe 1 at t = 0.25 -> frame 2
    yaws = values(cams, "yaw")
    assert yaws[2] == pytest.approx(1.0) and yaws[1] == pytest.approx(0.5)  # smoothstep(0.5) = 0.5
    assert yaws[4] == pytest.approx(1 - (3 * (1 / 3) ** 2 - 2 * (1 / 3) ** 3))  # t = 0.5: u = 1/3


@pytest.mark.parametrize(
    "text, message",
    [
        ("keyframes: []", "non-empty"),
        ("keyframes: [{yaw: 0, roll: 1}]", "unknown keys roll"),
        ("keyframes: [{pitch: 100}]", "keyframe 0: pitch"),
        ("speed: 2\nkeyframes: [{yaw: 0}]", "unknown keys speed"),
        ("keyframes: [{yaw: 0}, {yaw: 1, at: 1.5}, {yaw: 0}]", "increase"),
        ("keyframes: [{yaw: 0}\n", "not valid YAML"),
    ],
)
def test_keyframe_errors_name_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(EpigrafError, match=message):
        get_trajectory(path, frames=4)
