"""The prepared inference field equals the reference ``query_field`` (models/fast_field.py)."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.models.fast_field import FastTriPlaneField
from epigraf_tools.models.triplane import TriPlaneMLP, query_field


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_fast_field_matches_reference(n_layers):
    torch.manual_seed(0)
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16, n_layers=n_layers).eval()
    with torch.no_grad():
        for layer in mlp.model:
            layer.bias.normal_()
    planes = torch.randn(2, 3, 8, 16, 16)
    points = (torch.rand(2, 500, 3) * 2 - 1) * 0.25  # some points fall outside the +-0.2 cube
    ref = query_field(planes, mlp, points, cube_scale=0.2)
    fast = FastTriPlaneField(planes, mlp, cube_scale=0.2)(points)
    assert fast.shape == (2, 500, 4)
    torch.testing.assert_close(fast, ref, atol=1e-5, rtol=1e-5)  # float32 sums of 12 taps


def test_fast_field_rejects_wrong_batch():
    mlp = TriPlaneMLP(feat_dim=4, hid_dim=8)
    field = FastTriPlaneField(torch.randn(1, 3, 4, 8, 8), mlp, 0.2)
    with pytest.raises(ValueError, match="batch"):
        field(torch.zeros(2, 5, 3))


@pytest.mark.parametrize("n_layers", [1, 2, 3])
def test_folded_mlp_on_the_plane_sum_equals_the_mlp_on_the_mean(n_layers):
    torch.manual_seed(1)
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16, n_layers=n_layers).eval()
    feats = torch.randn(3, 50, 8)  # three plane features per point
    folded = mlp.folded()
    x = feats.sum(dim=0)
    for layer in folded.layers:
        x = x @ layer.weight.t() + layer.bias
        if layer.activation == "lrelu":
            x = torch.nn.functional.leaky_relu(x, 0.2)  # without its gain: folded into the next layer
    with torch.no_grad():
        torch.testing.assert_close(x * folded.out_gain, mlp(feats.mean(dim=0)), atol=1e-5, rtol=1e-5)


def test_generator_hands_out_its_inference_field(tiny_generator):
    G = tiny_generator
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    planes = G.planes(ws)
    points = (torch.rand(1, 64, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1) * G.config.cube_scale
    with torch.no_grad():
        ref = query_field(planes, G.synthesis.tri_plane_mlp, points, G.config.cube_scale)
    torch.testing.assert_close(G.inference_field(planes)(points), ref, atol=1e-5, rtol=1e-5)
