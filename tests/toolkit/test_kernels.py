"""epigraf_tools/kernels: the fused C++ density kernel equals the pure-PyTorch path.

The only tests that may build the kernel (a cold JIT build takes 1-3 minutes, later runs load it from the
epigraf-tools kernel cache); it is skipped when no compiler or ninja is available.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.kernels import kernel_status, load_density_kernel
from epigraf_tools.volume import extract_density, make_volume_grid

from support import make_tiny_generator

pytestmark = pytest.mark.kernel  # the conftest keeps every unmarked test on the PyTorch path


def test_fused_kernel_matches_the_pytorch_path(mini_generator, reference):
    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    # the official mini model (64 hidden units) with its real planes; odd sizes exercise ragged blocks
    planes = torch.from_numpy(reference["planes__psi1.0__seed3"]).reshape(1, 3, 32, 64, 64)
    grid = make_volume_grid(0.2, (67, 33, 9), box=(0.41, 0.3, 0.2), center=(0.0, 0.02, -0.05))
    for value in ("raw", "sigma"):
        fused = extract_density(mini_generator, planes, grid=grid, value=value, method="kernel", slab_voxels=5000)
        torch_path = extract_density(mini_generator, planes, grid=grid, value=value, method="separable")
        np.testing.assert_allclose(fused, torch_path, atol=5e-5, rtol=1e-5)  # float32 sums in another order
    assert extract_density(mini_generator, planes, resolution=4, method="auto").shape == (4, 4, 4)
    # a linear first layer (1-layer MLP) runs through the kernel with slope 1
    G = make_tiny_generator(mlp_n_layers=1)
    planes = torch.randn(1, 3, 8, 16, 16)
    np.testing.assert_allclose(
        extract_density(G, planes, resolution=(5, 70, 6), method="kernel"),
        extract_density(G, planes, resolution=(5, 70, 6), method="separable"),
        atol=1e-5,
    )


def test_fused_kernel_gives_the_same_volume_on_1_and_2_threads(mini_generator, reference):
    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    planes = torch.from_numpy(reference["planes__psi1.0__seed3"]).reshape(1, 3, 32, 64, 64)
    grid = make_volume_grid(0.2, (70, 31, 12))  # odd rows: the last row of a pair goes alone
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = extract_density(mini_generator, planes, grid=grid, method="kernel")
        torch.set_num_threads(2)
        two = extract_density(mini_generator, planes, grid=grid, method="kernel")
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)  # rows are independent: threads change no sum's order
    sep = extract_density(mini_generator, planes, grid=grid, method="separable")
    # values span about +-55 here; every float32 path is ~7e-5 from a float64 evaluation, i.e. ~1e-6 of the range
    np.testing.assert_allclose(one, sep, atol=2e-6 * float(np.ptp(sep)))


def test_a_cached_build_loads_without_compiler_ninja_or_cpp_extension(monkeypatch):
    import torch.utils.cpp_extension

    import epigraf_tools.kernels as kernels

    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    monkeypatch.setattr(kernels, "_cache", {})  # a new process
    monkeypatch.setattr(kernels, "_compiler_available", lambda: "no C++ compiler (test)")

    def no_build(*args, **kwargs):
        raise AssertionError("a cached build must not go through cpp_extension.load")

    monkeypatch.setattr(torch.utils.cpp_extension, "load", no_build)
    module = load_density_kernel()
    assert module is not None and hasattr(module, "relu_slab") and hasattr(module, "softplus_slab")
