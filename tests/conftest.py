"""Shared test fixtures: the official reference data (from ../shared) and a tiny random generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from epigraf_tools.models import Generator, GeneratorConfig

REPO_ROOT = Path(__file__).resolve().parents[1]


def _fixture_dir() -> Path:
    env = os.environ.get("EPIGRAF_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "fixtures" / "official_mini"


FIXTURE_DIR = _fixture_dir()

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


@pytest.fixture(scope="session")
def fixture_dir() -> Path:
    if not (FIXTURE_DIR / "reference_outputs.npz").is_file():
        pytest.skip(f"official reference fixtures not found at {FIXTURE_DIR}")
    return FIXTURE_DIR


@pytest.fixture(scope="session")
def reference(fixture_dir: Path) -> dict[str, np.ndarray]:
    with np.load(fixture_dir / "reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def official_g_state(fixture_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(fixture_dir / "G_ema_state.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


@pytest.fixture(scope="session")
def official_d_state(fixture_dir: Path) -> dict[str, torch.Tensor]:
    with np.load(fixture_dir / "D_state.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


@pytest.fixture(scope="session")
def mini_generator(official_g_state) -> Generator:
    G = Generator(GeneratorConfig(**MINI_CONFIG)).eval()
    G.load_state_dict(official_g_state, strict=True)
    return G


@pytest.fixture()
def tiny_generator() -> Generator:
    return make_tiny_generator()
