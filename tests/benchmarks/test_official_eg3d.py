"""benchmarks/official_eg3d.py against the official EG3D code, where a checkout is on this machine.

``$EPIGRAF_EG3D_OFFICIAL_SRC`` (or /tmp/eg3d-official) is the eg3d/ folder of an NVlabs/eg3d
checkout; without one these tests skip. They prove that the benchmark's two sides run the same
weights: our generator with the official state dict gives the official sigma at the official grid.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SRC = Path(os.environ.get("EPIGRAF_EG3D_OFFICIAL_SRC", "/tmp/eg3d-official"))


@pytest.fixture(scope="module")
def official_eg3d():
    if not any((p / "training" / "triplane.py").is_file() for p in (SRC, SRC / "eg3d")):
        pytest.skip(f"no official EG3D checkout at {SRC} (set EPIGRAF_EG3D_OFFICIAL_SRC)")
    sys.path.insert(0, str(BENCHMARKS))
    import official_eg3d

    official_eg3d.import_official(SRC)
    try:  # the official code's own imports (e.g. requests, via its dnnlib) may be missing here
        import gen_samples  # noqa: F401
        import training.triplane  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"the official EG3D code needs {exc.name}")
    return official_eg3d


def test_a_wrong_folder_is_one_clear_error(official_eg3d, tmp_path):
    with pytest.raises(SystemExit, match="not an EG3D checkout"):
        official_eg3d.import_official(tmp_path)


def test_both_sides_give_the_same_sigma_on_the_official_grid(official_eg3d):
    from epigraf_tools.eg3d_model import EG3DModel

    official = official_eg3d.official_ffhq_generator(SRC)
    G = official_eg3d.ours_from_official(official)
    z = torch.from_numpy(np.random.RandomState(1).randn(1, G.z_dim)).float()
    c = EG3DModel(G).conditioning_label()
    sigma, points = official_eg3d.official_shapes_volume(official, z, c, resolution=16)
    with torch.no_grad():
        planes = G.planes(G.mapping(z, c, truncation_psi=0.7, truncation_cutoff=14), noise_mode="const")
        ours = G.sample_points(planes, points[None])["sigma"].reshape(-1)
    assert sigma.shape == (16**3,) and float(sigma.std()) > 0
    torch.testing.assert_close(ours, sigma, atol=1e-4, rtol=0)  # fixture tolerance; different code paths


def test_auto_ray_limits_and_per_ray_depths_match_the_official_renderer(official_eg3d, monkeypatch):
    """ray_start = ray_end = 'auto': the official box limits (misses marked -1 / -2) and the official
    stratified depths for per-ray limits, jitter zeroed on both sides; rays from cameras around the
    cube and some that miss it."""
    from training.volumetric_rendering import math_utils
    from training.volumetric_rendering.renderer import ImportanceRenderer

    from epigraf_tools.models.eg3d.renderer import box_ray_limits, stratified_depths

    g = torch.Generator().manual_seed(0)
    origins = torch.nn.functional.normalize(torch.randn(2, 500, 3, generator=g), dim=-1) * 2.7
    dirs = torch.nn.functional.normalize(-origins + 0.6 * torch.randn(2, 500, 3, generator=g), dim=-1)
    official = math_utils.get_ray_limits_box(origins, dirs, box_side_length=1.0)
    ours = box_ray_limits(origins, dirs, 1.0)
    missed = official[0] == -1
    assert 0 < int(missed.sum()) < missed.numel()  # both kinds of ray are in the test
    for a, b in zip(ours, official, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    start, end = official[0].clone(), official[1].clone()
    start[missed], end[missed] = 2.0, 3.0
    monkeypatch.setattr(torch, "rand_like", torch.zeros_like)  # the official sampler's jitter
    want = ImportanceRenderer().sample_stratified(origins, start, end, 48)
    got = stratified_depths(2, 500, start, end, 48, torch.zeros(2, 500, 48, 1))
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
