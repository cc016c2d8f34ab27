"""Constants and factories shared by the tests (importable as ``support``: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import torch

from epigraf_tools.models import Generator, GeneratorConfig

# The official "mini" configuration (shared/fixtures/official_mini/official_experiment_config.yaml).
MINI_CONFIG = dict(
    img_resolution=128,
    triplane_res=64,
    channel_base=4096,
    channel_max=128,
    num_ray_steps=24,
    density_shift=-1.0,
    cube_scale=0.2,
    fov=12.0,
    ray_start=0.88,
    ray_end=1.12,
)

# A generator small enough for fast CPU tests (random weights).
TINY_CONFIG = dict(
    img_resolution=32,
    triplane_res=16,
    channel_base=256,
    channel_max=32,
    feat_dim=8,
    mlp_hid_dim=16,
    z_dim=32,
    w_dim=32,
    num_ray_steps=8,
    cube_scale=0.2,
)


def make_tiny_generator(seed: int = 0, **overrides) -> Generator:
    """A random tiny generator whose density is meaningful (a soft blob around the origin)."""
    torch.manual_seed(seed)
    G = Generator(GeneratorConfig(**{**TINY_CONFIG, **overrides})).eval()
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G


def assert_images_close(a, b, max_fraction: float = 0.01) -> None:
    """uint8 images from float renders that took different code paths (batch sizes, chunking).

    oneDNN/BLAS choose GEMM kernels by batch shape and SIMD width (AVX2 vs AVX-512), so the floats can
    differ in their last bits; a value on a rounding boundary then lands one level apart. Allow that:
    at most 1 level anywhere, on at most ``max_fraction`` of the values.
    """
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert diff.max(initial=0) <= 1, f"images differ by {diff.max()} levels"
    assert (diff > 0).mean() <= max_fraction, f"{(diff > 0).mean():.2%} of values differ"
