"""models/triplane.py: plane lookup axes and interpolation, the MLP decoder's shapes, density activation."""

from __future__ import annotations

import math

import pytest
import torch

from epigraf_tools.models.renderer import density_activation
from epigraf_tools.models.triplane import PLANE_AXES, TriPlaneMLP, query_field, sample_planes

R = 9  # plane resolution; a linear ramp sampled bilinearly with align_corners=True is reproduced exactly


def _ramp_planes(plane: int, along: str) -> torch.Tensor:
    """[1, 3, 1, R, R]: zeros except ``plane``, which holds its width (``along="w"``) or height coordinate."""
    ramp = torch.linspace(-1, 1, R)
    planes = torch.zeros(1, 3, 1, R, R)
    planes[0, plane, 0] = ramp.expand(R, R) if along == "w" else ramp[:, None].expand(R, R)
    return planes


@pytest.mark.parametrize("plane", [0, 1, 2])
@pytest.mark.parametrize("along", ["w", "h"])
def test_each_plane_is_indexed_by_its_documented_axes(plane, along):
    torch.manual_seed(plane)
    coords = torch.rand(1, 50, 3) * 2 - 1
    axis = PLANE_AXES[plane][0 if along == "w" else 1]
    got = sample_planes(_ramp_planes(plane, along), coords)
    # the other two planes are zero and the three features are averaged
    torch.testing.assert_close(got[..., 0], coords[..., axis] / 3, atol=1e-5, rtol=0)


def test_plane_axes_are_xy_xz_yz():
    assert PLANE_AXES == ((0, 1), (0, 2), (1, 2))


def test_points_outside_the_cube_read_zeros():
    planes = torch.ones(2, 3, 4, R, R)
    coords = torch.tensor([[[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]]]).expand(2, 2, 3)
    got = sample_planes(planes, coords)
    assert got.shape == (2, 2, 4)
    torch.testing.assert_close(got[:, 0], torch.ones(2, 4))
    torch.testing.assert_close(got[:, 1], torch.zeros(2, 4))


def test_query_field_divides_world_points_by_cube_scale():
    torch.manual_seed(0)
    planes = torch.randn(1, 3, 8, R, R)
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16)
    coords = torch.rand(1, 20, 3) * 2 - 1
    expected = mlp(sample_planes(planes, coords))
    torch.testing.assert_close(query_field(planes, mlp, coords * 0.2, cube_scale=0.2), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_mlp_keeps_leading_dimensions_and_has_n_layers(n_layers):
    mlp = TriPlaneMLP(feat_dim=6, hid_dim=10, n_layers=n_layers)
    assert len(mlp.model) == n_layers
    assert mlp(torch.randn(2, 5, 7, 6)).shape == (2, 5, 7, 4)


def test_mlp_needs_a_layer():
    with pytest.raises(ValueError, match="at least one layer"):
        TriPlaneMLP(n_layers=0)


def test_density_activation_values():
    raw = torch.tensor([-2.0, 0.0, 3.0])
    expected = torch.tensor([math.log1p(math.exp(-3.0)), math.log1p(math.exp(-1.0)), math.log1p(math.exp(2.0))])
    torch.testing.assert_close(density_activation(raw, density_shift=-1.0), expected)
    torch.testing.assert_close(density_activation(raw, 1.0, clamp_mode="relu"), torch.tensor([0.0, 1.0, 4.0]))
    assert (density_activation(torch.randn(100)) > 0).all()


def test_unknown_clamp_mode_is_named():
    with pytest.raises(ValueError, match="unknown clamp_mode 'tanh'.*'softplus' or 'relu'"):
        density_activation(torch.zeros(1), clamp_mode="tanh")
