"""epigraf_tools/interpolation.py: schedules, slerp, truncation placement, endpoints = the seeds' images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.camera import Camera
from epigraf_tools.errors import EpigrafError
from epigraf_tools.interpolation import (
    KeyframeLatents,
    Step,
    interpolation_steps,
    num_frames,
    render_interpolation,
    slerp,
)
from epigraf_tools.latents import Truncation, truncate, ws_from_seeds
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.sampling import generate_samples
from epigraf_tools.trajectories import orbit
from epigraf_tools.video import count_frames

from support import assert_images_close, make_tiny_generator

SETTINGS = RenderSettings(resolution=16)


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator()


def test_slerp_endpoints_and_arc():
    a, b = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    assert torch.equal(slerp(a, b, 0.0), a) and torch.equal(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)[0]
    assert float(torch.atan2(mid[1], mid[0])) == pytest.approx(np.pi / 4)  # halfway along the arc
    assert float(mid.norm()) == pytest.approx(1.5)  # lengths interpolate linearly


def test_schedules():
    assert len(interpolation_steps(3, 4)) == 2 * 4 + 1
    assert interpolation_steps(3, 4)[-1] == Step(1, 2, 1.0)
    looped = interpolation_steps(3, 4, loop=True)
    assert len(looped) == 12 and looped[-1].a == 2 and looped[-1].b == 0 and looped[-1].t < 1
    strip = interpolation_steps(2, 3, strip=True)
    assert [s.t for s in strip] == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert num_frames(4, 5, loop=True) == 20
    with pytest.raises(EpigrafError, match="two keyframe"):
        interpolation_steps(1, 4)
    with pytest.raises(EpigrafError, match="positive"):
        interpolation_steps(2, -3)


def test_w_space_truncation_before_or_after_interpolation_agree(G):
    trunc = Truncation(0.6)
    keys = KeyframeLatents(G, [2, 9], None, trunc)
    ws = keys.ws_for([Step(0, 1, 0.25)], "w")
    a, _ = ws_from_seeds(G, [2], trunc)
    b, _ = ws_from_seeds(G, [9], trunc)
    torch.testing.assert_close(ws, torch.lerp(a, b, 0.25), atol=1e-6, rtol=0)
    torch.testing.assert_close(ws, truncate(torch.lerp(keys.ws[:1], keys.ws[1:], 0.25), G.mapping.w_avg, trunc))


@pytest.mark.parametrize("space", ["z", "w"])
def test_endpoints_are_the_seeds_own_images(G, tmp_path, space):
    trunc = Truncation(0.7)
    files = render_interpolation(
        G, [4, 11], tmp_path, frames=2, space=space, output="strip", truncation=trunc, settings=SETTINGS
    )
    strip = np.asarray(Image.open(files[0]))
    assert strip.shape == (16, 48, 3)  # one transition: t = 0, 0.5, 1
    first, last = (s.image for s in generate_samples(G, [4, 11], truncation=trunc, settings=SETTINGS))
    # the strip renders its frames in another batch than generate_samples: other GEMM kernels
    assert_images_close(strip[:, :16], first)
    assert_images_close(strip[:, 32:], last)
    assert not np.array_equal(strip[:, 16:32], first)
    meta = json.loads(files[1].read_text())
    assert meta["space"] == space and meta["truncation_psi"] == 0.7 and meta["schedule"][1] == [4, 11, 0.5]


def test_mp4_with_a_moving_camera(G, tmp_path):
    total = num_frames(3, 3, loop=True)
    files = render_interpolation(
        G, [0, 1, 2], tmp_path, frames=3, loop=True, cameras=orbit(total, Camera.default(G.config)),
        settings=SETTINGS, batch_size=4, trajectory="orbit",
    )  # fmt: skip
    assert files[0].name == "interp_z_0-1-2.mp4" and count_frames(files[0]) == 9
    with pytest.raises(EpigrafError, match="one per frame"):
        render_interpolation(G, [0, 1], tmp_path, frames=3, cameras=orbit(5), settings=SETTINGS)


def test_latent_keyframes_in_the_python_api(G, tmp_path):
    """A StoredLatent keyframe holding seed 4's w interpolates exactly as seed 4 does (the same float32 ws, so
    the ws are compared bit for bit); space z and another model's latent are refused."""
    from epigraf_tools.latent_files import LatentFileError, StoredLatent

    four = StoredLatent(ws_from_seeds(G, [4])[0][0].numpy(), "w", Camera(), {}, tmp_path / "four.npz")
    trunc = Truncation(0.5)
    mixed = KeyframeLatents(G, [four, 11], None, trunc)
    seeds = KeyframeLatents(G, [4, 11], None, trunc)
    steps = [Step(0, 1, t) for t in (0.0, 0.3, 1.0)]
    assert torch.equal(mixed.ws_for(steps, "w"), seeds.ws_for(steps, "w"))
    assert mixed.names == ["four", "11"] and mixed.noise_seeds == [0, 11]
    files = render_interpolation(G, [four, 11], tmp_path, frames=1, space="w", output="strip", settings=SETTINGS)
    assert files[0].name == "interp_w_four-11.png"
    with pytest.raises(EpigrafError, match="four.npz is a w latent with no z: use w"):
        render_interpolation(G, [four, 11], tmp_path, frames=1, space="z", settings=SETTINGS)
    other = StoredLatent(np.zeros((G.num_ws, G.config.w_dim + 1), np.float32), "w", Camera(), {}, tmp_path / "x.npz")
    with pytest.raises(LatentFileError, match="made for another model"):
        render_interpolation(G, [other, 11], tmp_path / "never", frames=1, space="w", settings=SETTINGS)
    assert not (tmp_path / "never").exists()
