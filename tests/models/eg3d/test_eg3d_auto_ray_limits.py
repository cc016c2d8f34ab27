"""rendering_kwargs ray_start = ray_end = 'auto': per-ray limits from the box_warp cube, as the official renderer.

The official-code comparison is in tests/benchmarks/test_official_eg3d.py (where a checkout is present);
here: the limits against geometry worked out by hand, the official fill rule for rays that miss the
cube, the per-ray depth path against the scalar one, and the config rules.
"""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.models.config import ConfigError
from epigraf_tools.models.eg3d import EG3DConfig
from epigraf_tools.models.eg3d.renderer import auto_ray_limits, box_ray_limits, ray_limits, stratified_depths


def test_box_limits_by_hand():
    origins = torch.tensor([[0.0, 0.0, -3.0], [0.0, 0.0, -3.0], [0.1, 0.2, 0.0], [2.0, 2.0, -3.0]])
    cz = (1 - 0.15**2) ** 0.5
    dirs = torch.tensor([[0.0, 0.0, 1.0], [0.15, 0.0, cz], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    start, end = box_ray_limits(origins, dirs, 1.0)
    assert start.shape == end.shape == (4, 1)
    # the second enters by the z = -0.5 face (x = 0.38 there) and leaves by x = 0.5 before z = 0.5; the third
    # starts inside the cube (its entry lies behind it); the fourth misses: the official -1 / -2 marks
    torch.testing.assert_close(start[:, 0], torch.tensor([2.5, 2.5 / cz, -0.6, -1.0]))
    torch.testing.assert_close(end[:, 0], torch.tensor([3.5, 0.5 / 0.15, 0.4, -2.0]))


def test_rays_that_miss_take_the_least_and_greatest_entry_of_those_that_hit():
    origins = torch.tensor([[[0.0, 0.0, -3.0], [0.3, 0.0, -2.0], [5.0, 5.0, -3.0]]])
    dirs = torch.tensor([[[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]])
    start, end = auto_ray_limits(origins, dirs, 1.0)
    torch.testing.assert_close(start[0, :, 0], torch.tensor([2.5, 1.5, 1.5]))
    torch.testing.assert_close(end[0, :, 0], torch.tensor([3.5, 2.5, 2.5]))  # the miss: max entry, not exit
    none_hit = auto_ray_limits(origins[:, 2:], dirs[:, 2:], 1.0)
    assert (none_hit[0] == -1).all() and (none_hit[1] == -2).all()  # an empty range: nothing is sampled


def test_per_ray_depths_equal_the_scalar_path_for_equal_limits():
    u = torch.rand(2, 5, 7, 1, generator=torch.Generator().manual_seed(0))
    scalar = stratified_depths(2, 5, 2.25, 3.3, 7, u)
    per_ray = stratified_depths(2, 5, torch.full((2, 5, 1), 2.25), torch.full((2, 5, 1), 3.3), 7, u)
    torch.testing.assert_close(per_ray, scalar, rtol=0, atol=1e-6)  # linspace vs arange / (n - 1): rounding
    varied = stratified_depths(1, 2, torch.tensor([[[1.0], [2.0]]]), torch.tensor([[[2.0], [4.0]]]), 3, None)
    assert varied.shape == (1, 2, 3, 1)
    assert (varied[0, 0] >= 1.0).all() and (varied[0, 0] <= 2.5).all() and (varied[0, 1] >= 2.0).all()


def _rendering_kwargs(**changes):
    rk = dict(EG3DConfig().rendering_kwargs)
    rk.update(changes)
    return rk


def test_the_config_takes_auto_for_both_ends_only():
    config = EG3DConfig(rendering_kwargs=_rendering_kwargs(ray_start="auto", ray_end="auto"))
    origins, dirs = torch.tensor([[[0.0, 0.0, -3.0]]]), torch.tensor([[[0.0, 0.0, 1.0]]])
    start, end = ray_limits(config.rendering_kwargs, origins, dirs)
    assert float(start) == 2.5 and float(end) == 3.5
    assert ray_limits(EG3DConfig().rendering_kwargs, origins, dirs) == (2.25, 3.3)
    with pytest.raises(ConfigError, match="both be 'auto' or both numbers"):
        EG3DConfig(rendering_kwargs=_rendering_kwargs(ray_start="auto"))
    with pytest.raises(ConfigError, match="both be 'auto' or both numbers"):
        EG3DConfig(rendering_kwargs=_rendering_kwargs(ray_end="auto"))
