"""epigraf_tools/eg3d_volume: the separable EG3D volume equals the model's own decoder, point by point.

The reference is ``eg3d_density_reference`` (``EG3DGenerator.sample_points`` on every voxel's world
point, as EG3D's shape extraction). A random tiny EG3D generator is enough: only the decoder and
``box_warp`` matter, and the planes are random. Grids with odd sizes that reach beyond the planes
check the align_corners=False mapping, the zero padding and the (x, y) / (x, z) / (z, x) plane axes.
Tolerance 1e-5: the paths are float32 and sum the same terms in other orders (values are O(1)).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.eg3d_volume import eg3d_density, eg3d_density_reference
from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator
from epigraf_tools.volume import FoldedField


@pytest.fixture(scope="module")
def eg3d_setup() -> tuple[EG3DGenerator, torch.Tensor, list[np.ndarray]]:
    torch.manual_seed(0)
    G = EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16)).eval()
    with torch.no_grad():
        for p in G.decoder.parameters():
            p.normal_()  # biases too, so every term of the folding matters
    planes = torch.randn(1, 3, 32, 24, 24)
    half = 0.55 * G.rendering_kwargs["box_warp"]  # a little beyond the planes on every side
    axes = [np.linspace(-half, half, 21), np.linspace(-half * 0.8, half, 17), np.linspace(-half, half * 0.7, 13)]
    return G, planes, axes


def test_folded_decoder_on_the_plane_sum_equals_the_decoder(eg3d_setup):
    G, planes, _ = eg3d_setup
    folded = FoldedField.from_eg3d(G, torch.device("cpu"))
    assert folded.act0 == "softplus" and folded.kernel_supported and folded.kernel_slope is None
    feats = torch.randn(3, 200, 32)
    got = folded.hidden_to_density(feats.sum(0) @ folded.proj.t() + folded.bias0)
    with torch.no_grad():
        want = G.decoder(feats.permute(1, 0, 2)[None].transpose(1, 2).contiguous())["sigma"][0, :, 0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("value", ["raw", "sigma"])
def test_separable_eg3d_volume_equals_the_decoder_sampled_point_by_point(eg3d_setup, value):
    G, planes, axes = eg3d_setup
    ref = eg3d_density_reference(G, planes, axes, value=value, chunk=1000)
    got = eg3d_density(G, planes, axes, value=value, method="separable", slab_voxels=900)
    assert got.shape == (21, 17, 13) and got.transpose(2, 1, 0).flags.c_contiguous
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)
    assert ref.max() - ref.min() > 0.1  # a field that varies: the test can fail


def test_voxels_outside_the_planes_see_zero_features(eg3d_setup):
    G, planes, _ = eg3d_setup
    far = [np.array([-3.0, 3.0]), np.array([-3.0, 3.0]), np.array([-3.0, 3.0])]
    folded = FoldedField.from_eg3d(G, torch.device("cpu"))
    empty = folded.hidden_to_density(folded.bias0[None].clone())  # the decoder on all-zero features
    np.testing.assert_allclose(eg3d_density(G, planes, far, method="separable"), float(empty), atol=1e-6)


def test_eg3d_volume_checks_its_inputs(eg3d_setup):
    G, planes, axes = eg3d_setup
    with pytest.raises(ValueError, match="value type"):
        eg3d_density(G, planes, axes, value="alpha")
    with pytest.raises(ValueError, match="reference"):
        eg3d_density(G, planes, axes, method="naive")
    with pytest.raises(ValueError, match="one sample"):
        eg3d_density(G, torch.zeros(2, 3, 32, 8, 8), axes)
    with pytest.raises(ValueError, match="out must be"):
        eg3d_density(G, planes, axes, out=np.zeros((2, 2, 2), np.float32))


@pytest.mark.kernel
@pytest.mark.parametrize("value", ["raw", "sigma"])
def test_fused_softplus_kernel_equals_the_reference(eg3d_setup, value):
    from epigraf_tools.kernels import kernel_status, load_density_kernel

    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    G, planes, axes = eg3d_setup
    axes = [np.linspace(-0.55, 0.55, 70), axes[1], axes[2]]  # one full 64-voxel block and a ragged end
    ref = eg3d_density_reference(G, planes, axes, value=value)
    got = eg3d_density(G, planes, axes, value=value, method="kernel", slab_voxels=5000)
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.kernel
def test_fused_softplus_kernel_gives_the_same_volume_on_1_and_2_threads(eg3d_setup):
    from epigraf_tools.kernels import kernel_status, load_density_kernel

    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    G, planes, axes = eg3d_setup
    axes = [np.linspace(-0.5, 0.5, 130), axes[1], axes[2]]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = eg3d_density(G, planes, axes, method="kernel")
        torch.set_num_threads(2)
        two = eg3d_density(G, planes, axes, method="kernel")
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)  # rows are independent: threads change no sum's order


def test_product_units_flag_only_units_whose_exponentials_stay_normal():
    from epigraf_tools.volume import product_units

    nan = float("nan")
    a_lo = torch.tensor([-5.0, -79.0, -5.0, -81.0, -5.0, nan, 0.0])
    a_hi = torch.tensor([5.0, 79.0, 5.0, 0.0, 45.0, 1.0, 1.0])
    b_lo = torch.tensor([-5.0, -79.0, -5.0, 0.0, -5.0, 0.0, nan])
    b_hi = torch.tensor([5.0, 0.0, 81.0, 1.0, 45.0, 1.0, 1.0])
    flags = product_units((a_lo, a_hi), (b_lo, b_hi), 80.0)
    assert flags.dtype == torch.uint8
    # within; within at both ends; b beyond; a beyond; a + b beyond; NaN in a; NaN in b
    assert flags.tolist() == [1, 1, 0, 0, 0, 0, 0]


@pytest.mark.kernel
def test_units_beyond_the_product_range_keep_the_plain_softplus(eg3d_setup, monkeypatch):
    # planes 40x larger push some first-layer terms past the product form's range: those units take the
    # plain softplus inside the same slab call, and the volume still equals the decoder point by point
    import epigraf_tools.volume as volume
    from epigraf_tools.kernels import kernel_status, load_density_kernel

    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    if not module.product_form:
        pytest.skip("this build has no product form (neither AVX-512 nor AVX2 + FMA)")
    G, planes, axes = eg3d_setup
    planes = planes * 40.0
    seen: list[torch.Tensor] = []
    real = volume.product_units
    monkeypatch.setattr(volume, "product_units", lambda *args: seen.append(real(*args)) or seen[-1])
    ref = eg3d_density_reference(G, planes, axes)
    got = eg3d_density(G, planes, axes, method="kernel", slab_voxels=900)
    flags = torch.stack(seen)
    assert 0 < int(flags.sum()) < flags.numel(), "expected both kinds of unit"
    scale = float(np.abs(ref).max())
    np.testing.assert_allclose(got, ref, atol=1e-5 * scale, rtol=1e-5)


@pytest.mark.kernel
@pytest.mark.parametrize("method", ["separable", "kernel"])
@pytest.mark.parametrize("value", ["raw", "sigma"])
def test_the_model_order_volume_equals_the_eg3d_order_volume_after_the_axis_change(eg3d_setup, method, value):
    # Model point (x, y, z) is EG3D point (-z, y, x): the model-order array [z, y, x] read as [i, j, k] is the
    # EG3D-order volume on the axes (-z, y, x). Odd sizes, a ragged 64-voxel block along the model's x.
    from epigraf_tools.eg3d_volume import eg3d_density_model_order
    from epigraf_tools.kernels import kernel_status, load_density_kernel

    if method == "kernel" and load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    G, planes, axes = eg3d_setup
    mx, my, mz = np.linspace(-0.5, 0.52, 70), axes[1], axes[2][::-1].copy()
    want = eg3d_density_reference(G, planes, [-mz, my, mx], value=value)
    out = np.full((len(mz), len(my), len(mx)), np.nan, np.float32)
    seen: list[int] = []
    eg3d_density_model_order(
        G, planes, [mx, my, mz], value, out, method, on_slab=lambda k0, s: seen.append(k0), slab_voxels=3000
    )
    np.testing.assert_allclose(out, want, atol=1e-5, rtol=1e-5)
    assert seen == list(range(0, len(mz), max(1, 3000 // (len(mx) * len(my)))))  # every slab, in order


def test_an_eg3d_volume_streams_to_a_sink_slab_by_slab_as_it_fills_an_array(eg3d_setup):
    # export-volume writes EG3D volumes through extract_density's sink, like EpiGRAF ones
    from epigraf_tools.eg3d_model import as_toolkit_model
    from epigraf_tools.volume import extract_density, make_volume_grid

    G, planes, _ = eg3d_setup
    model = as_toolkit_model(G)
    grid = make_volume_grid(model.config.cube_scale, 19)
    whole = extract_density(model, planes, grid=grid, method="separable", slab_voxels=19 * 19 * 4)
    parts: list[tuple[int, np.ndarray]] = []
    got = extract_density(
        model,
        planes,
        grid=grid,
        method="separable",
        slab_voxels=19 * 19 * 4,
        sink=lambda k0, s: parts.append((k0, s.copy())),
    )
    assert got is None and [k0 for k0, _ in parts] == [0, 4, 8, 12, 16]
    np.testing.assert_array_equal(np.concatenate([s for _, s in parts]), whole.transpose(2, 1, 0))
