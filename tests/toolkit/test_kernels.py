"""epigraf_tools/kernels: the fused C++ density kernel equals the pure-PyTorch path.

The only tests that may build the kernel (a cold JIT build takes 1-3 minutes, later runs load it from the
epigraf-tools kernel cache); it is skipped when no compiler or ninja is available.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from pathlib import Path

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
    assert module is not None, kernel_status()
    assert hasattr(module, "relu_slab") and hasattr(module, "softplus_slab")


def x_blocked(t: torch.Tensor, width: int) -> torch.Tensor:
    """[n, H, W] -> the slab kernels' x-blocked [n, ceil(W / width), H, width], padded with NaN.

    NaN padding: a padded voxel that leaked into the output would show.
    """
    n, h, w = t.shape
    nb = -(-w // width)
    padded = torch.nn.functional.pad(t, (0, nb * width - w), value=float("nan"))
    return padded.view(n, h, nb, width).permute(0, 2, 1, 3).contiguous()


def _relu_slab(module, A, B, nC, alpha, beta, gamma, npos, mode, shift, out) -> None:
    width = module.relu_block
    module.relu_slab(x_blocked(A, width), x_blocked(B, width), nC, alpha, beta, gamma, npos, mode, shift, out)


def _softplus_slab(module, A, B, C, w, bias, mode, shift, out) -> None:
    width = module.softplus_block
    module.softplus_slab(x_blocked(A, width), x_blocked(B, width), C, w, bias, mode, shift, out)


_ACTIVATIONS = {
    0: lambda x, shift: x,
    1: lambda x, shift: torch.nn.functional.softplus(x + shift),
    2: lambda x, shift: torch.relu(x + shift),
}


@pytest.mark.parametrize("rx", [1, 31, 32, 33, 64, 70, 129])
@pytest.mark.parametrize("mode", [0, 1, 2])
def test_slab_kernels_equal_their_formulas_for_any_row_length(rx, mode):
    # every row length against partial and whole x-blocks; odd row and section counts (the lone last pair)
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    g = torch.Generator().manual_seed(rx * 3 + mode)
    t, ry, h, npos, shift = 5, 3, 6, 4, -0.5
    shapes = [(ry, h, rx), (t, h, rx), (t, ry, h), (ry, rx), (t, rx), (t, ry), (h,)]
    A, B, C, alpha, beta, gamma, w = (torch.randn(*shape, generator=g) for shape in shapes)
    v = A.double()[None] + B.double()[:, None]  # [t, ry, h, rx]
    sign = torch.cat([torch.ones(npos), -torch.ones(h - npos)]).double()
    lin = alpha.double()[None] + beta.double()[:, None, :] + gamma.double()[..., None]

    out = torch.full((t, ry, rx), float("nan"))
    _relu_slab(module, A, B, C, alpha, beta, gamma, npos, mode, shift, out)
    want = _ACTIVATIONS[mode](lin + (sign[:, None] * torch.maximum(v, C.double()[..., None])).sum(2), shift)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)  # float32 sums in another order

    out = torch.full((t, ry, rx), float("nan"))
    _softplus_slab(module, A, B, C, w, 0.25, mode, shift, out)
    sp = torch.nn.functional.softplus(v + C.double()[..., None])
    want = _ACTIVATIONS[mode](0.25 + (w.double()[:, None] * sp).sum(2), shift)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)


def _product_slab(module, A, B, C, w, units, bias, mode, shift, out) -> None:
    """softplus_product_slab on unblocked A [Ry, H, Rx] (or None), B [T, H, Rx], C [T, Ry, H] (or None)."""
    width, none = module.softplus_block, torch.empty(0)
    A = none if A is None else x_blocked(A, width)
    module.softplus_product_slab(A, x_blocked(B, width), none if C is None else C, w, units, bias, mode, shift, out)


@pytest.mark.parametrize("rx", [1, 33, 64, 70, 129])
@pytest.mark.parametrize("mode", [0, 1])
@pytest.mark.parametrize("terms", ["ab", "bc"])
def test_the_product_form_slab_equals_its_formula_with_any_mix_of_units(rx, mode, terms):
    # flagged units take log(1 + e^a e^b) (AVX-512 and AVX2 + FMA builds), the others the plain softplus;
    # one unflagged unit has values far beyond the product form's range, which the plain path handles.
    # Both forms: A + B (EG3D's own axis order) and B + C (the model world's); odd row and section counts.
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    g = torch.Generator().manual_seed(rx * 7 + mode)
    t, ry, h, shift = 5, 3, 7, -0.5
    B, w = torch.randn(t, h, rx, generator=g) * 4, torch.randn(h, generator=g)
    if terms == "ab":
        A, C = torch.randn(ry, h, rx, generator=g) * 4, None
        A[:, 5] *= 40.0
        v = A.double()[None] + B.double()[:, None]  # [t, ry, h, rx]
    else:
        A, C = None, torch.randn(t, ry, h, generator=g) * 4
        C[..., 5] *= 40.0
        v = B.double()[:, None] + C.double()[..., None]
    units = torch.tensor([1, 0, 1, 1, 0, 0, 1], dtype=torch.uint8)
    out = torch.full((t, ry, rx), float("nan"))
    _product_slab(module, A, B, C, w, units, 0.25, mode, shift, out)
    sp = torch.nn.functional.softplus(v)
    want = _ACTIVATIONS[mode](0.25 + (w.double()[:, None] * sp).sum(2), shift)
    torch.testing.assert_close(out.double(), want, rtol=1e-5, atol=1e-5)

    # no unit flagged: softplus_slab's own loop (no A term, or no C term), bit for bit
    plain, none = torch.full_like(out, float("nan")), torch.full_like(out, float("nan"))
    width = module.softplus_block
    a_arg = torch.empty(0) if A is None else x_blocked(A, width)
    module.softplus_slab(a_arg, x_blocked(B, width), torch.empty(0) if C is None else C, w, 0.25, mode, shift, plain)
    _product_slab(module, A, B, C, w, torch.zeros(h, dtype=torch.uint8), 0.25, mode, shift, none)
    assert torch.equal(plain, none)


def test_the_product_form_slab_checks_its_flags():
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    A, B, w, out = torch.randn(2, 3, 8), torch.randn(2, 3, 8), torch.randn(3), torch.empty(2, 2, 8)
    for units in (torch.ones(3), torch.ones(2, dtype=torch.uint8), torch.ones(3, 1, dtype=torch.uint8)):
        with pytest.raises(RuntimeError, match="product"):
            _product_slab(module, A, B, None, w, units, 0.0, 0, 0.0, out)
    units = torch.ones(3, dtype=torch.uint8)
    with pytest.raises(RuntimeError, match="two terms"):  # all three terms, or B alone
        _product_slab(module, A, B, torch.randn(2, 2, 3), w, units, 0.0, 0, 0.0, out)
    with pytest.raises(RuntimeError, match="two terms"):
        _product_slab(module, None, B, None, w, units, 0.0, 0, 0.0, out)
    with pytest.raises(RuntimeError, match="C must be|inconsistent"):
        _product_slab(module, None, B, torch.randn(2, 3, 3), w, units, 0.0, 0, 0.0, out)


def _kernel_product_softplus(module, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """softplus(a + b) through softplus_product_slab: one flagged unit, A = a and B = b along one row."""
    n = len(a)
    out = torch.full((1, 1, n), float("nan"))
    A, B = (torch.from_numpy(x.astype(np.float32)).reshape(1, 1, n) for x in (a, b))
    _product_slab(module, A, B, None, torch.ones(1), torch.ones(1, dtype=torch.uint8), 0.0, 0, 0.0, out)
    return out.reshape(-1).numpy()


def test_the_product_form_is_within_a_few_ulps_and_2e_7_of_float64_softplus():
    """Allowed: 3 ulps of the true value plus 2e-7 absolute (measured: 2 ulps plus 1.22e-7).

    The absolute part is float32 rounding of u = 1 + e^a e^b: where a + b is very negative the result is
    right to ~1e-7 in absolute terms (softplus512 is right to a few ulps there). The sweep covers the
    whole flagged range (|a|, |b|, a + b <= product_limit), split between a and b at random.
    """
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    if not module.product_form:
        pytest.skip("this build has no product form (neither AVX-512 nor AVX2 + FMA): the plain softplus runs instead")
    limit = float(module.product_limit)
    rng = np.random.default_rng(0)
    v = np.concatenate([np.linspace(-limit, limit, 400_001), rng.uniform(-3.0, 3.0, 100_000), [0.0, limit]])
    a = np.clip(v * rng.uniform(-0.5, 1.5, v.size), -limit, limit).astype(np.float32)
    b = np.clip(v - a, -limit, np.minimum(limit, limit - a)).astype(np.float32)
    got = _kernel_product_softplus(module, a, b).astype(np.float64)
    want = torch.nn.functional.softplus(torch.from_numpy(a).double() + torch.from_numpy(b).double(), threshold=1e300)
    want = want.numpy()
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    err = np.abs(got - want)
    worst = int(np.argmax(err - 3 * ulp))
    assert err[worst] <= 3 * ulp[worst] + 2e-7, f"softplus({a[worst]} + {b[worst]}) off by {err[worst]:.3g}"
    assert (got >= 0).all()


@pytest.mark.parametrize("name", ["relu_slab", "softplus_slab"])
def test_slab_kernels_refuse_operands_that_are_not_x_blocked(name):
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    t, ry, h, rx = 2, 2, 4, 40
    B, out = torch.randn(t, h, rx), torch.empty(t, ry, rx)
    small = (torch.randn(ry, rx), torch.randn(t, rx), torch.randn(t, ry))
    width = getattr(module, "relu_block" if name == "relu_slab" else "softplus_block")

    def call(A: torch.Tensor, B: torch.Tensor) -> None:
        if name == "relu_slab":
            module.relu_slab(A, B, torch.randn(t, ry, h), *small, 2, 0, 0.0, out)
        else:
            module.softplus_slab(A, B, torch.empty(0), torch.randn(h), 0.0, 0, 0.0, out)

    with pytest.raises(RuntimeError, match="x-blocked|expects"):
        call(torch.randn(ry, h, rx), B)  # the [n, H, Rx] layout of earlier builds
    with pytest.raises(RuntimeError, match="x-blocked"):
        call(x_blocked(torch.randn(ry, h, rx + width), width), x_blocked(B, width))  # one block too many


def _kernel_softplus(module, values: np.ndarray) -> np.ndarray:
    """softplus(values) through softplus_slab with one hidden unit (w = 1, bias 0, B = C = 0).

    The row length is not a multiple of the 64-voxel block, so the last values take the partial block.
    """
    n, width = len(values), module.softplus_block
    a = x_blocked(torch.from_numpy(values.astype(np.float32)).reshape(1, 1, n), width)
    b = x_blocked(torch.zeros(1, 1, n), width)
    out = torch.full((1, 1, n), float("nan"))
    module.softplus_slab(a, b, torch.zeros(1, 1, 1), torch.ones(1), 0.0, 0, 0.0, out)
    return out.reshape(-1).numpy()


def _assert_softplus_accurate(module) -> None:
    """The kernel's softplus against float64 softplus over a dense sweep and the extremes.

    Allowed: 4 float32 ulps of the true value (both paths measure about 2 in tools/fit_softplus_table.py)
    plus 1e-9 absolute, the table path's value for v below -21 (the true one is smaller still).
    """
    sweep = np.linspace(-45.0, 45.0, 900_001)
    extremes = np.array([0.0, -0.0, 1e-30, -1e-30, 20.9999, 21.0, -21.0, -87.5, 88.0, -1e4, 1e4, -3e38, 3e38])
    values = np.concatenate([sweep, extremes, [-np.inf, np.inf], np.linspace(-3.0, 3.0, 13)]).astype(np.float32)
    got = _kernel_softplus(module, values).astype(np.float64)
    want = torch.nn.functional.softplus(torch.from_numpy(values).double(), threshold=1e300).numpy()
    assert not np.isnan(got).any()
    finite = np.isfinite(want)
    ulp = np.spacing(np.abs(want[finite]).astype(np.float32)).astype(np.float64)
    err = np.abs(got[finite] - want[finite])
    worst = int(np.argmax(err / (4 * ulp + 1e-9)))
    assert err[worst] <= 4 * ulp[worst] + 1e-9, f"softplus({values[finite][worst]}) off by {err[worst]:.3g}"
    assert got[values == np.inf].item() == np.inf and 0.0 <= got[values == -np.inf].item() < 1e-9


def test_kernel_softplus_is_within_a_few_ulps_of_float64_softplus():
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    _assert_softplus_accurate(module)
    native = "native" in kernel_status()
    if native and "avx512f" in Path("/proc/cpuinfo").read_text(errors="replace").split():
        assert module.softplus_path() == "avx512-table"  # -march=native on this CPU compiles the table path in


def test_the_portable_build_takes_the_exp_log1p_path_with_the_same_accuracy(monkeypatch):
    """The build without -march=native (the fall-back flag set): on x86-64 plain SSE2, no AVX-512.

    It goes into its own cache folder (kept between runs: a cold build takes about a minute), because a
    portable build in the main cache would be loaded in place of a native one that is not built yet.
    """
    import epigraf_tools.kernels as kernels

    if kernels._compiler_available() is not None or os.environ.get(kernels.DISABLE_ENV, "") not in ("", "0"):
        pytest.skip(f"no kernel build here: {kernels._compiler_available() or kernels.DISABLE_ENV}")
    monkeypatch.setenv(kernels.CACHE_ENV, str(kernels.kernel_cache_root() / "portable-only"))
    monkeypatch.setattr(kernels, "_FLAG_SETS", (("-O3",),))
    for state in ("_cache", "_status", "_cache_status"):  # a new process, and this one's state comes back after
        monkeypatch.setattr(kernels, state, {})
    module = load_density_kernel()
    assert module is not None, kernel_status()
    assert kernel_status() == "loaded (portable build)"
    if platform.machine() in ("x86_64", "AMD64"):
        assert module.softplus_path() == "exp-log1p" and not module.product_form
    _assert_softplus_accurate(module)
    # without a product form the flags change nothing: softplus_slab itself, for A + B and for B + C (no A)
    g = torch.Generator().manual_seed(3)
    A, B, w = torch.randn(3, 5, 70, generator=g), torch.randn(4, 5, 70, generator=g), torch.randn(5, generator=g)
    plain, flagged = torch.empty(4, 3, 70), torch.empty(4, 3, 70)
    _softplus_slab(module, A, B, torch.empty(0), w, 0.1, 1, -1.0, plain)
    _product_slab(module, A, B, None, w, torch.ones(5, dtype=torch.uint8), 0.1, 1, -1.0, flagged)
    assert module.product_form or torch.equal(plain, flagged)
    C = torch.randn(4, 3, 5, generator=g)
    _product_slab(module, None, B, C, w, torch.ones(5, dtype=torch.uint8), 0.1, 0, 0.0, flagged)
    sp = torch.nn.functional.softplus(B.double()[:, None] + C.double()[..., None])
    torch.testing.assert_close(flagged.double(), 0.1 + (w.double()[:, None] * sp).sum(2), rtol=1e-5, atol=1e-5)


def test_the_loaded_kernel_is_the_build_of_the_current_source():
    """A changed density_slab.cpp gets a new build key, so an old cached binary is never loaded for it."""
    import epigraf_tools.kernels as kernels

    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    tag = "native" if "native" in kernel_status() else "portable"
    threaded = "threaded" in kernel_status()
    flags = next(f for f in kernels._FLAG_SETS if kernels._tag(f) == tag and ("-fopenmp" in f) == threaded)
    key = kernels.build_key(kernels.DENSITY_SOURCE, flags)
    assert module.__name__ == kernels._module_name("density_slab", key, tag)
    assert hasattr(module, "softplus_path")  # only builds of this source have it
    assert module.threaded() == threaded  # the status tells the truth about OpenMP


def test_gcc_builds_share_the_rows_over_torch_threads():
    """Without -fopenmp, ATen's parallel_for compiles serially and a 2-core volume takes as long as 1 core."""
    import epigraf_tools.kernels as kernels

    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    if platform.system() != "Linux" or "clang" in kernels.compiler_version(os.environ.get("CXX", "c++")).lower():
        pytest.skip("OpenMP is only required of gcc on Linux here")
    assert module.threaded() and "threaded" in kernel_status(), kernel_status()


def test_without_a_compiler_the_best_cached_build_still_loads(monkeypatch):
    """A better flag set that was never built (and cannot be, without a compiler) does not lose the cached one."""
    import epigraf_tools.kernels as kernels

    if load_density_kernel() is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    monkeypatch.setattr(kernels, "_FLAG_SETS", (("-O3", "-DEPIGRAF_UNBUILT_VARIANT"), *kernels._FLAG_SETS))
    monkeypatch.setattr(kernels, "_cache", {})
    monkeypatch.setattr(kernels, "_compiler_available", lambda: "no C++ compiler (test)")
    assert not kernels.kernel_is_cached()
    module = load_density_kernel()
    assert module is not None and hasattr(module, "relu_slab"), kernel_status()
    assert kernel_status().startswith("loaded (")


@pytest.mark.parametrize("name", ["relu_slab", "softplus_slab", "softplus_product_slab"])
def test_a_slab_kernel_lets_other_python_threads_run(name):
    # export-volume's disk writer is a Python thread: it must not wait for each slab's kernel call.
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    ry, h, rx, t = 64, 64, 512, 256  # one call of 0.1-1 s: a held GIL would stop the loop below throughout
    width = module.relu_block if name == "relu_slab" else module.softplus_block
    A, B = x_blocked(torch.randn(ry, h, rx), width), x_blocked(torch.randn(t, h, rx), width)
    out = torch.empty(t, ry, rx)
    if name == "relu_slab":
        C, small = torch.randn(t, ry, h), (torch.randn(ry, rx), torch.randn(t, rx), torch.randn(t, ry))
        call = lambda: module.relu_slab(A, B, C, *small, 32, 0, 0.0, out)  # noqa: E731
    elif name == "softplus_slab":
        C, w = torch.randn(t, ry, h), torch.randn(h)
        call = lambda: module.softplus_slab(A, B, C, w, 0.0, 0, 0.0, out)  # noqa: E731
    else:
        w, units = torch.randn(h), torch.ones(h, dtype=torch.uint8)
        call = lambda: module.softplus_product_slab(A, B, torch.empty(0), w, units, 0.0, 0, 0.0, out)  # noqa: E731
    span: list[float] = []

    def kernel() -> None:
        span.append(time.perf_counter())
        call()
        span.append(time.perf_counter())

    ticks: list[float] = []
    worker = threading.Thread(target=kernel)
    worker.start()
    while worker.is_alive():
        ticks.append(time.perf_counter())
    worker.join()
    start, end = span
    assert end - start > 0.05, "the call was too short to tell"
    inside = [x for x in ticks if start + 0.02 < x < end - 0.02]
    assert len(inside) > 100, f"{len(inside)} Python steps ran during {end - start:.3f} s of one kernel call"


def _gather_module():
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"density kernel unavailable: {kernel_status()}")
    return module


@pytest.mark.parametrize(("channels", "hidden", "layers"), [(32, 64, 2), (5, 16, 2), (8, 12, 3), (32, 64, 1)])
def test_the_compiled_gather_equals_the_embedding_bag_path(channels, hidden, layers):
    # Batch 2, a non-square plane, C not a multiple of the vector width, points inside, on and beyond
    # the cube's faces (clamped onto the zero border), and exactly on texel centres.
    from epigraf_tools.models.fast_field import FastTriPlaneField

    module = _gather_module()
    torch.manual_seed(0)
    G = make_tiny_generator(feat_dim=channels, mlp_hid_dim=hidden, mlp_n_layers=layers)
    planes = torch.randn(2, 3, channels, 9, 13)
    points = torch.cat([torch.rand(2, 500, 3) * 0.6 - 0.3, torch.rand(2, 40, 3) * 4 - 2], dim=1)
    points[:, :3] = torch.tensor([[0.2, -0.2, 0.0], [0.0, 0.0, 0.0], [-0.2, 0.2, 0.2]])  # corners and the centre
    plain = FastTriPlaneField(planes, G.synthesis.tri_plane_mlp, 0.2)
    gathered = FastTriPlaneField(planes, G.synthesis.tri_plane_mlp, 0.2)
    fused = FastTriPlaneField(planes, G.synthesis.tri_plane_mlp, 0.2)
    assert gathered.use_gather_kernel(module.triplane_gather)
    assert fused.use_gather_kernel(module.triplane_gather, module.triplane_field)
    # The compiler may fuse a texel coordinate's multiply-add (FMA): one float32 ulp of a coordinate near 10
    # moves a bilinear weight by ~1e-6, and features of these random planes (|f| ~ 4) by a few 1e-6; the
    # MLP's sums run in another order than the GEMM's.
    torch.testing.assert_close(gathered.features(points), plain.features(points), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(gathered(points), plain(points), atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(fused(points), plain(points), atol=2e-5, rtol=1e-5)


def test_the_compiled_gather_serves_the_eg3d_field_and_its_plane_axes():
    from epigraf_tools.models.eg3d.config import EG3DConfig
    from epigraf_tools.models.eg3d.generator import EG3DGenerator

    module = _gather_module()
    torch.manual_seed(0)
    G = EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16)).eval()
    planes = torch.randn(1, 3, 32, 16, 16)
    points = torch.rand(1, 700, 3) * 1.4 - 0.7
    plain, gathered, fused = G.inference_field(planes), G.inference_field(planes), G.inference_field(planes)
    assert gathered.use_gather_kernel(module.triplane_gather)
    assert fused.use_gather_kernel(module.triplane_gather, module.triplane_field)  # softplus, 33 outputs
    for key, value in plain(points).items():
        torch.testing.assert_close(gathered(points)[key], value, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(fused(points)[key], value, atol=2e-5, rtol=1e-5)


def test_a_nan_point_gives_nan_features_and_infinite_ones_read_the_border():
    from epigraf_tools.models.fast_field import FastTriPlaneField

    module = _gather_module()
    G = make_tiny_generator()
    planes = torch.randn(1, 3, 8, 16, 16)
    field = FastTriPlaneField(planes, G.synthesis.tri_plane_mlp, 0.2)
    assert field.use_gather_kernel(module.triplane_gather)
    points = torch.tensor([[[float("nan"), 0.0, 0.0], [float("inf"), float("-inf"), 0.0], [0.0, 0.0, 0.0]]])
    feats = field.features(points)
    assert torch.isnan(feats[0]).all()  # no index out of range, no crash
    assert torch.isfinite(feats[1:]).all()
    expected = FastTriPlaneField(planes, G.synthesis.tri_plane_mlp, 0.2).features(points[:, 1:])
    torch.testing.assert_close(feats[1:], expected, atol=2e-5, rtol=1e-5)


def test_renders_use_the_built_kernel_and_match_without_it(monkeypatch):
    from epigraf_tools.camera import Camera
    from epigraf_tools.rendering import RenderSettings, prepare_field, render_views

    module = _gather_module()
    G = make_tiny_generator()
    planes = G.planes(G.mapping(torch.randn(1, G.config.z_dim), None))
    field = prepare_field(G, planes)
    assert field._gather is module.triplane_gather and field._field is module.triplane_field  # built: used
    cams, settings = [Camera(yaw=0.4, pitch=1.3)], RenderSettings(resolution=24)
    fused = render_views(G, planes, cams, settings, noise_keys=[3])["image"]
    monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")
    assert prepare_field(G, planes)._field is None
    plain = render_views(G, planes, cams, settings, noise_keys=[3])["image"]
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("k", [0, 1])
def test_eg3d_renders_through_the_compiled_field_match_the_official_fixture(k):
    # The toolkit's EG3D renders query FastEG3DField, compiled once the kernel is built: the official
    # eg3d_mini fixture's jitter-free raw renders to its stated 1e-4.
    eg3d_fixture = pytest.importorskip("eg3d_fixture")
    from epigraf_tools.camera import Camera
    from epigraf_tools.eg3d_model import as_toolkit_model
    from epigraf_tools.latents import Truncation, ws_from_seeds
    from epigraf_tools.models.eg3d import EG3DGenerator
    from epigraf_tools.rendering import RenderSettings, render_views

    _gather_module()
    meta, ref = eg3d_fixture.load_meta(), eg3d_fixture.load_npz("reference_outputs.npz")  # (skips when absent)
    state = eg3d_fixture.load_npz("G_ema_state.npz")
    G = EG3DGenerator(eg3d_fixture.mini_config(meta)).eval().requires_grad_(False)
    G.load_state_dict({key: torch.from_numpy(v) for key, v in state.items()}, strict=True)
    model = as_toolkit_model(G)
    ws = ws_from_seeds(model, [0, 3], Truncation(0.7))[0]
    cam = Camera.from_eg3d(ref["c_cams"][k], model.config.label_resolution, world="eg3d")
    raw = render_views(model, model.planes(ws[:1]), [cam], RenderSettings(deterministic=True, raw=True), bg_ws=ws[:1])
    expected = ref[f"render_det_image_raw__psi0.7__seed0__cam{k}"]
    np.testing.assert_allclose(raw["image"][0, 0].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 65535, 65536, 65537, 200003])
def test_value_moments_equal_a_float64_reference(n):
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"fused kernel unavailable ({kernel_status()})")
    rng = np.random.default_rng(n)
    x = (rng.normal(size=n) * 40 + 3).astype(np.float32)
    lo, hi, total, total_sq, nan = module.value_moments(torch.from_numpy(x))
    as64 = x.astype(np.float64)
    if n:
        assert (lo, hi) == (float(x.min()), float(x.max()))  # exact: min and max of the same floats
        assert total == pytest.approx(as64.sum(), rel=1e-12, abs=1e-9)  # float64 sums in another order
        assert total_sq == pytest.approx((as64 * as64).sum(), rel=1e-12)
    else:
        assert (lo, hi, total, total_sq) == (math.inf, -math.inf, 0.0, 0.0)
    assert nan is False


def test_value_moments_skip_nan_in_the_range_and_do_not_depend_on_threads():
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"fused kernel unavailable ({kernel_status()})")
    x = np.random.default_rng(3).normal(size=300_001).astype(np.float32)
    x[[5, 70_000, 300_000]] = np.nan  # in a vector, in another chunk, in the scalar tail
    x[123] = -np.inf
    lo, hi, total, _, nan = module.value_moments(torch.from_numpy(x))
    assert nan is True and math.isnan(total)
    assert lo == -math.inf and hi == float(np.nanmax(x))
    x[123] = 0.0
    x[[5, 70_000, 300_000]] = 1.0
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(module.value_moments(torch.from_numpy(x)))
    finally:
        torch.set_num_threads(before)
    assert results[0] == results[1]  # partial results combine in chunk order: bit-identical
    all_nan = np.full(10, np.nan, np.float32)
    assert module.value_moments(torch.from_numpy(all_nan))[:2] == (math.inf, -math.inf)


def test_volume_statistics_are_the_same_with_and_without_the_kernel(monkeypatch):
    """DensityStats through value_moments and through NumPy: the same range, subsample and NaN flag."""
    import epigraf_tools.isolevel as isolevel

    if load_density_kernel() is None:
        pytest.skip(f"fused kernel unavailable ({kernel_status()})")
    vol = np.random.default_rng(8).normal(size=(17, 33, 129)).astype(np.float32)
    vol[4, 5, 6] = np.nan
    vol[9, 1, 2] = 7.5  # the maximum, in a slab after the NaN
    with_kernel = isolevel.DensityStats(vol.size, max_samples=1000)
    assert with_kernel._compiled is not None
    monkeypatch.setattr(isolevel, "_compiled_moments", lambda: None)
    without = isolevel.DensityStats(vol.size, max_samples=1000)
    for k in range(0, 17, 5):  # uneven slabs
        with_kernel.update(vol[k : k + 5])
        without.update(vol[k : k + 5])
    assert (with_kernel.min, with_kernel.max) == (without.min, without.max) == (np.nanmin(vol), 7.5)
    assert with_kernel.saw_nan and without.saw_nan
    np.testing.assert_array_equal(with_kernel.samples, without.samples)
    vol[4, 5, 6] = 0.0
    a = isolevel.stats_of(vol)
    monkeypatch.undo()
    b = isolevel.stats_of(vol)
    assert b._compiled is not None and a._compiled is None
    assert (a.mean, a.std) == pytest.approx((b.mean, b.std), rel=1e-12)
    read_only = vol.copy()
    read_only.flags.writeable = False  # torch cannot share it: the NumPy path takes it
    c = isolevel.stats_of(read_only)
    assert (c.min, c.max, c.mean) == (b.min, b.max, pytest.approx(b.mean, rel=1e-12))


@pytest.mark.parametrize("align_corners", [True, False])
def test_plane_rows_equal_grid_sample_on_axis_aligned_grids(align_corners):
    """The kernel's separable bilinear taps against grid_sample: non-square planes, odd channel counts,
    grids reaching beyond the plane (zero padding) and grids that hit texel centres exactly."""
    from epigraf_tools.volume import _plane_features

    module = load_density_kernel()
    if module is None:
        pytest.skip(f"fused kernel unavailable ({kernel_status()})")
    gen = torch.Generator().manual_seed(4)
    for c, h, w in [(32, 64, 48), (5, 7, 9), (1, 1, 3)]:
        plane = torch.randn(c, h, w, generator=gen) * 3
        for u, v in [
            (torch.linspace(-0.97, 0.99, 70), torch.linspace(-1, 1, 33)),
            (torch.linspace(-1.4, 1.3, 41), torch.linspace(-1.2, 1.5, 17)),  # partly outside the plane
            (torch.linspace(-1, 1, w), torch.linspace(-1, 1, h)),  # align_corners=True: exactly on texels
        ]:
            ours = _plane_features(plane, u, v, align_corners, kernel=module)
            ref = _plane_features(plane, u, v, align_corners)
            assert ours.shape == ref.shape == (c, len(v), len(u))
            # the same taps and weights; the four products summed in another order (and with FMAs)
            torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5 * float(plane.abs().max()))
    outside = torch.tensor([-3.0, 3.0])
    assert _plane_features(plane, outside, outside, align_corners, kernel=module).abs().max() == 0


def test_plane_rows_refuse_taps_outside_the_plane():
    module = load_density_kernel()
    if module is None:
        pytest.skip(f"fused kernel unavailable ({kernel_status()})")
    plane = torch.zeros(2, 4, 4)
    good, weight = torch.tensor([0, 3]), torch.ones(2)
    assert module.plane_rows(plane, good, good, weight, weight, good, good, weight, weight).shape == (2, 2, 2)
    for bad in (torch.tensor([0, 4]), torch.tensor([-1, 0])):
        with pytest.raises(RuntimeError, match="outside the plane"):
            module.plane_rows(plane, good, bad, weight, weight, good, good, weight, weight)
        with pytest.raises(RuntimeError, match="outside the plane"):
            module.plane_rows(plane, good, good, weight, weight, bad, good, weight, weight)
    with pytest.raises(RuntimeError, match="int64"):
        module.plane_rows(plane, good.int(), good, weight, weight, good, good, weight, weight)
