"""epigraf_tools/kernels/plane_gather.cpp: the compiled tri-plane lookup equals the PyTorch taps.

Builds the kernel (once; then cached) like tests/toolkit/test_kernels.py, and skips when no compiler or
ninja is available. Tolerance 1e-5: the compiler may fuse multiply-adds that PyTorch rounds twice.
"""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.camera import Camera
from epigraf_tools.kernels import kernel_status, load_gather_kernel
from epigraf_tools.models.eg3d.fast_field import FastEG3DField
from epigraf_tools.models.eg3d.generator import OSGDecoder
from epigraf_tools.models.fast_field import FastTriPlaneField
from epigraf_tools.models.triplane import TriPlaneMLP
from epigraf_tools.rendering import RenderSettings, prepare_field, render_views

pytestmark = pytest.mark.kernel


@pytest.fixture(scope="module")
def gather():
    module = load_gather_kernel(build=True)
    if module is None:
        pytest.skip(f"plane_gather kernel unavailable: {kernel_status('plane_gather')}")
    return module


def _fields(batch: int) -> list[FastTriPlaneField]:
    torch.manual_seed(0)
    planes = torch.randn(batch, 3, 32, 20, 20)
    return [FastTriPlaneField(planes, TriPlaneMLP(32, 64), 0.2), FastEG3DField(planes, OSGDecoder(32), 0.5)]


@pytest.mark.parametrize("chunk", [7, 8192])  # chunks straddling batch items, and one chunk
def test_kernel_lookup_equals_the_pytorch_taps(gather, chunk, monkeypatch):
    import epigraf_tools.models.fast_field as fast_field

    monkeypatch.setattr(fast_field, "CHUNK_POINTS", chunk)
    points = (torch.rand(3, 500, 3, generator=torch.Generator().manual_seed(1)) * 2 - 1) * 0.3  # some outside
    calls = []
    spy = type("Spy", (), {"plane_gather": lambda *a: calls.append(1) or gather.plane_gather(*a)})
    for field in _fields(3):
        with torch.no_grad():
            want = field.raw(points)
        before = len(calls)
        field.gather_kernel = spy
        with torch.no_grad():
            got = field.raw(points)
        assert len(calls) > before and got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_kernel_maps_non_finite_points_to_the_zero_border(gather):
    field = _fields(1)[0]
    points = torch.tensor([[[float("nan"), 0.0, 0.0], [float("inf"), float("-inf"), 0.0], [1e30, -1e30, 3e38]]])
    sums = gather.plane_gather(field.table, points[0], field.read_x, field.read_y, field.offset[0, 0],
                               field.table.shape[0], 3, 0, *field.texel, field.pw)  # fmt: skip
    assert torch.isfinite(sums).all()
    assert sums[1:].abs().max() == 0  # every tap of a point far outside reads the zero border


def test_kernel_gives_the_same_bits_on_1_and_2_threads(gather):
    field = _fields(2)[0]
    field.gather_kernel = gather
    points = (torch.rand(2, 3000, 3, generator=torch.Generator().manual_seed(2)) * 2 - 1) * 0.2
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = field.raw(points)
        torch.set_num_threads(2)
        two = field.raw(points)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, two)  # every point is computed alone, whatever the split


def test_renders_use_the_cached_kernel_and_match_the_pytorch_path(gather, tiny_generator, monkeypatch):
    G = tiny_generator
    planes = G.planes(G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(0)), None))
    assert prepare_field(G, planes).gather_kernel is gather
    settings = RenderSettings(resolution=24)
    cam = Camera(yaw=0.2, pitch=1.5, fov=G.config.fov, radius=G.config.radius)
    fast = render_views(G, planes, [cam], settings, noise_keys=[3])["image"]
    monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")
    assert prepare_field(G, planes).gather_kernel is None
    plain = render_views(G, planes, [cam], settings, noise_keys=[3])["image"]
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=1e-5)


def test_the_build_command_reports_both_kernels(gather, capsys):
    from epigraf_tools.kernels.__main__ import main

    code = main()
    out = capsys.readouterr().out
    assert "plane_gather: loaded" in out and "density_slab:" in out
    assert code == (0 if "density_slab: loaded" in out else 1)
