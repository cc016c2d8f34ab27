"""epigraf_tools/volume.py: the separable density equals the point-wise field and the official volume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.volume import FoldedField, as_planes, extract_density, make_volume_grid

from support import TINY_CONFIG, make_tiny_generator


def _random_planes(G: Generator, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    c, r = G.config.feat_dim, G.config.triplane_res
    return torch.randn(1, 3, c, r, r, generator=gen)


def _pointwise(G: Generator, planes: torch.Tensor, grid, value: str = "raw") -> np.ndarray:
    """Independent reference: meshgrid of world points through G.query."""
    axes = [torch.from_numpy(grid.axis(a)).float() for a in range(3)]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(1, -1, 3)
    out = G.query(planes, pts)["sigma_raw" if value == "raw" else "sigma"]
    return out.reshape(*grid.resolution).detach().numpy()


@pytest.mark.parametrize(
    "resolution, box, center",
    [
        (2, None, None),
        (9, None, None),
        ((7, 12, 5), (0.25, 0.3, 0.5), (0.05, -0.03, 0.02)),  # off-centre, partly outside the tri-plane cube
        ((13, 6, 10), 0.12, (-0.1, 0.08, 0.15)),
    ],
)
def test_separable_and_naive_equal_the_pointwise_field(resolution, box, center):
    G = make_tiny_generator(density_shift=-0.5)
    planes = _random_planes(G)
    grid = make_volume_grid(G.config.cube_scale, resolution, box, center)
    expected = _pointwise(G, planes, grid)
    # tiny tiles and slabs so several of each are exercised
    sep = extract_density(G, planes, grid=grid, method="separable", tile_bytes=256, slab_voxels=50)
    naive = extract_density(G, planes, grid=grid, method="naive", slab_voxels=50)
    assert sep.shape == naive.shape == tuple(grid.resolution)
    np.testing.assert_allclose(naive, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(sep, expected, atol=1e-5, rtol=0)
    sigma = extract_density(G, planes, grid=grid, value="sigma", method="separable")
    np.testing.assert_allclose(sigma, _pointwise(G, planes, grid, "sigma"), atol=1e-5, rtol=0)


@pytest.mark.parametrize("n_layers", [1, 3])
def test_separable_handles_other_mlp_depths(n_layers):
    G = make_tiny_generator(mlp_n_layers=n_layers)
    planes = _random_planes(G, 1)
    grid = make_volume_grid(G.config.cube_scale, (6, 7, 8), 0.3, (0.01, 0.02, -0.03))
    np.testing.assert_allclose(
        extract_density(G, planes, grid=grid, method="separable"), _pointwise(G, planes, grid), atol=1e-5, rtol=0
    )


def test_regular_grid_matches_the_official_volume(reference, mini_generator):
    """density64_regular: the official extract_geometry density on l = linspace(-0.15, 0.15, 64)."""
    grid = make_volume_grid(0.2, 64, box=0.3)
    np.testing.assert_allclose(grid.axis(0), np.linspace(-0.15, 0.15, 64), atol=1e-12)
    for psi, seed in (("0.7", 0), ("1.0", 3)):
        expected = reference[f"density64_regular__psi{psi}__seed{seed}"]
        official_planes = torch.from_numpy(reference[f"planes__psi{psi}__seed{seed}"]).reshape(1, 3, 32, 64, 64)
        vol = extract_density(mini_generator, official_planes, grid=grid, method="separable")
        np.testing.assert_allclose(vol, expected, atol=1e-4, rtol=0)  # fixture README: <= 1e-4
    # and from ws, through our own tri-plane synthesis (which matches the official planes to ~1e-4)
    ws = torch.from_numpy(reference["ws__psi0.7"][1:2])
    vol = extract_density(mini_generator, ws, grid=grid, method="separable")
    np.testing.assert_allclose(vol, reference["density64_regular__psi0.7__seed3"], atol=5e-4, rtol=1e-5)


def test_writes_into_a_memory_map_in_mrc_order(tmp_path):
    G = make_tiny_generator()
    planes = _random_planes(G)
    grid = make_volume_grid(G.config.cube_scale, (5, 6, 7))
    mm = np.lib.format.open_memmap(tmp_path / "v.npy", mode="w+", dtype=np.float32, shape=grid.shape_zyx)
    seen = []
    out = extract_density(G, planes, grid=grid, method="separable", out=mm.transpose(2, 1, 0), slab_voxels=60,
                          on_slab=lambda k0, slab: seen.append((k0, slab.shape)))  # fmt: skip
    assert np.shares_memory(out, mm)
    np.testing.assert_allclose(mm.transpose(2, 1, 0), _pointwise(G, planes, grid), atol=1e-5)
    assert [k for k, _ in seen] == [0, 2, 4, 6] and seen[0][1] == (2, 6, 5)
    # an x-major C-contiguous target works too (strided writes)
    xyz = np.zeros(grid.resolution, dtype=np.float32)
    extract_density(G, planes, grid=grid, method="separable", out=xyz)
    # 60-voxel slabs vs whole-volume slabs: different matmul shapes, so oneDNN may pick other kernels
    # (12 of 210 values differed by 3e-8 on an AVX-512 Xeon)
    np.testing.assert_allclose(xyz, mm.transpose(2, 1, 0), atol=1e-6, rtol=1e-6)


def test_a_sink_sees_every_slab_in_order_from_one_reused_buffer():
    """Streaming (what export-volume writes from): the same values, the volume never held whole."""
    G = make_tiny_generator()
    planes = _random_planes(G)
    grid = make_volume_grid(G.config.cube_scale, (5, 6, 7))
    whole = extract_density(G, planes, grid=grid, method="separable", slab_voxels=60)
    copies, buffers, progress = [], set(), []
    result = extract_density(G, planes, grid=grid, method="separable", slab_voxels=60,
                             sink=lambda k0, slab: (copies.append((k0, slab.copy())), buffers.add(slab.ctypes.data)),
                             progress=lambda d, t: progress.append(d))  # fmt: skip
    assert result is None and [k for k, _ in copies] == [0, 2, 4, 6] and progress[-1] == 210
    assert len(buffers) == 1  # one buffer, refilled
    np.testing.assert_array_equal(np.concatenate([c for _, c in copies]), whole.transpose(2, 1, 0))
    with pytest.raises(ValueError, match="sink"):
        extract_density(G, planes, grid=grid, sink=lambda k0, slab: None, out=whole)


def test_default_volume_layout_and_progress():
    G = make_tiny_generator()
    calls = []
    vol = extract_density(
        G, _random_planes(G), resolution=4, method="separable", progress=lambda d, t: calls.append((d, t))
    )
    assert vol.shape == (4, 4, 4) and vol.dtype == np.float32
    assert vol.T.flags.c_contiguous  # [z, y, x] memory: MRC order
    assert calls[-1] == (64, 64)


def test_grid_defaults_and_validation():
    grid = make_volume_grid(0.2, 5)
    assert grid.size == (0.4, 0.4, 0.4) and grid.origin == (-0.2, -0.2, -0.2)
    assert np.allclose(grid.voxel_size, 0.1)
    g2 = make_volume_grid(0.475, (3, 4, 5), box=(1, 2, 3), center=(0.5, 0, -1))
    np.testing.assert_allclose(g2.axis(1), np.linspace(-1, 1, 4))
    assert g2.origin == (0.0, -1.0, -2.5)
    for bad in (
        dict(resolution=1),
        dict(resolution=2049),
        dict(box=-1.0),
        dict(box=(1, 2)),
        dict(center=(0, float("nan"), 0)),
    ):
        with pytest.raises(EpigrafError):
            make_volume_grid(0.2, **{"resolution": 4, **bad})
    assert make_volume_grid(0.2, 2049, force=True).resolution == (2049,) * 3


def test_rejects_bad_values_and_batches():
    G = make_tiny_generator()
    with pytest.raises(EpigrafError, match="value type"):
        extract_density(G, _random_planes(G), resolution=3, value="density")
    with pytest.raises(ValueError, match="one volume at a time"):
        as_planes(G, torch.zeros(2, 3, 8, 16, 16))
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    assert as_planes(G, ws[0]).shape == (1, 3, 8, 16, 16)


def test_folded_field_reproduces_the_mlp():
    G = Generator(GeneratorConfig(**{**TINY_CONFIG, "mlp_n_layers": 2})).eval()
    folded = FoldedField.from_generator(G, torch.device("cpu"))
    feats = torch.randn(3, 50, G.config.feat_dim)
    hidden = (feats @ folded.proj.t()).sum(0) + folded.bias0
    expected = G.synthesis.tri_plane_mlp(feats.mean(0))[:, -1]
    torch.testing.assert_close(folded.hidden_to_density(hidden), expected.detach(), atol=1e-5, rtol=1e-5)
    assert folded.kernel_slope == 0.2


def test_auto_falls_back_to_pytorch_without_the_kernel(monkeypatch):
    monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")
    G = make_tiny_generator()
    planes = _random_planes(G)
    grid = make_volume_grid(G.config.cube_scale, 5)
    # exact: without the kernel "auto" runs the very same separable code on the same slabs
    np.testing.assert_array_equal(
        extract_density(G, planes, grid=grid, method="auto"), extract_density(G, planes, grid=grid, method="separable")
    )
    with pytest.raises(RuntimeError, match="EPIGRAF_NO_KERNELS"):
        extract_density(G, planes, grid=grid, method="kernel")


def test_the_volume_grid_has_its_own_name():
    import epigraf_tools

    assert epigraf_tools.make_volume_grid is make_volume_grid
    assert "make_grid" not in epigraf_tools.__all__  # images.make_grid tiles pictures; no alias
