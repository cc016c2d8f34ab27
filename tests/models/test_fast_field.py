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


def _field_and_grads(fn, planes, mlp, upstream):
    """Output of fn(planes) and the gradients of <output, upstream> for the planes and every MLP parameter."""
    planes = planes.clone().requires_grad_(True)
    mlp.zero_grad(set_to_none=True)
    out = fn(planes)
    (out * upstream).sum().backward()
    return out.detach(), planes.grad, [p.grad for p in mlp.parameters()]


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("chunk", [7, 8192])  # several chunks with a ragged last one, and one chunk
def test_differentiable_field_gives_the_reference_values_and_gradients(n_layers, chunk, monkeypatch):
    import epigraf_tools.models.fast_field as fast_field

    monkeypatch.setattr(fast_field, "CHUNK_POINTS", chunk)
    torch.manual_seed(2)
    # float64: the two paths sum in different orders, and in float32 a leaky-ReLU input within
    # rounding of 0 may take either slope; in float64 both agree to ~1e-12
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16, n_layers=n_layers).double()
    with torch.no_grad():
        for layer in mlp.model:
            layer.bias.normal_()
    planes = torch.randn(2, 3, 8, 12, 12, dtype=torch.float64)
    points = (torch.rand(2, 300, 3, dtype=torch.float64) * 2 - 1) * 0.25  # some outside the +-0.2 cube
    upstream = torch.randn(2, 300, 4, dtype=torch.float64)
    ref = _field_and_grads(lambda p: query_field(p, mlp, points, 0.2), planes, mlp, upstream)
    fast = _field_and_grads(
        lambda p: FastTriPlaneField(p, mlp, 0.2, differentiable=True)(points), planes, mlp, upstream
    )
    torch.testing.assert_close(fast[0], ref[0], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(fast[1], ref[1], atol=1e-10, rtol=1e-10)
    for got, want in zip(fast[2], ref[2], strict=True):
        torch.testing.assert_close(got, want, atol=1e-9, rtol=1e-10)


def test_differentiable_field_in_float32_stays_within_rounding_of_the_reference():
    torch.manual_seed(3)
    mlp = TriPlaneMLP(feat_dim=8, hid_dim=16, n_layers=2)
    planes = torch.randn(1, 3, 8, 16, 16)
    points = (torch.rand(1, 2000, 3) * 2 - 1) * 0.2
    upstream = torch.randn(1, 2000, 4)
    ref = _field_and_grads(lambda p: query_field(p, mlp, points, 0.2), planes, mlp, upstream)
    fast = _field_and_grads(
        lambda p: FastTriPlaneField(p, mlp, 0.2, differentiable=True)(points), planes, mlp, upstream
    )
    torch.testing.assert_close(fast[0], ref[0], atol=1e-5, rtol=1e-5)
    # relative L2 of the gradient difference: float32 rounding plus the odd leaky-ReLU kink
    for got, want in zip([fast[1], *fast[2]], [ref[1], *ref[2]], strict=True):
        assert ((got - want).norm() / want.norm()).item() < 1e-3


def test_training_render_on_the_cpu_uses_the_fast_field_and_matches_the_reference(tiny_generator, monkeypatch):
    import epigraf_tools.models.fast_field as fast_field

    calls = []
    real = fast_field.training_field_raw
    monkeypatch.setattr(fast_field, "training_field_raw", lambda *a: calls.append(1) or real(*a))
    G = tiny_generator.double().train()
    G.requires_grad_(True)
    z = torch.randn(2, G.z_dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    angles = torch.tensor([[0.3, 1.4, 0.0], [-0.2, 1.7, 0.0]], dtype=torch.float64)
    results = []
    for fast in (True, False):
        G.fast_cpu_field = fast
        G.zero_grad(set_to_none=True)
        ws = G.mapping(z, None)
        img = G._render(ws, angles, deterministic=True, resolution=16)["image"]
        img.square().sum().backward()
        results.append((img.detach(), {n: p.grad.clone() for n, p in G.named_parameters() if p.grad is not None}))
    assert len(calls) == 2  # coarse and fine pass of the fast run, none in the reference run
    (img_fast, grads_fast), (img_ref, grads_ref) = results
    torch.testing.assert_close(img_fast, img_ref, atol=1e-10, rtol=1e-10)
    assert grads_fast.keys() == grads_ref.keys() and any("tri_plane_mlp" in n for n in grads_fast)
    for name, grad in grads_ref.items():
        torch.testing.assert_close(grads_fast[name], grad, atol=1e-9, rtol=1e-8, msg=name)


def test_points_that_need_gradients_go_through_the_reference(tiny_generator):
    """A camera being optimised (inversion) needs d image / d rays: the fast field has none."""
    G = tiny_generator
    planes = G.planes(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None))
    field = G._field_fn(planes)
    points = ((torch.rand(1, 50, 3) * 2 - 1) * G.config.cube_scale).requires_grad_(True)
    field(points)[..., -1].sum().backward()
    assert points.grad is not None and points.grad.abs().sum() > 0
