"""Shared test fixtures: the official reference data (from ../shared) and a tiny random generator."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from epigraf_tools.models import Generator, GeneratorConfig

from support import MINI_CONFIG, TINY_CONFIG, make_tiny_generator  # noqa: F401  (re-exported)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _fixture_dir() -> Path:
    env = os.environ.get("EPIGRAF_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "fixtures" / "official_mini"


FIXTURE_DIR = _fixture_dir()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "kernel: may build or load the fused C++ density kernel (minutes cold)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``cuda``-marked tests skip cleanly where torch sees no CUDA device (benchmarks/gpu_check.py runs them)."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _pytorch_path_unless_kernel_test(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only tests marked ``kernel`` may compile the C++ kernel; every other test uses the PyTorch path.

    Set through the environment, so CLI subprocesses started by a test inherit it too.
    """
    if request.node.get_closest_marker("kernel") is None:
        monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")


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
def official_snapshot_pkl(tmp_path_factory, fixture_dir, official_g_state, official_d_state) -> Path:
    """A full official-format snapshot (G, D, G_ema, optimizers, augment pipe, vis, stats) of the fixture."""
    from official_pickle_factory import load_experiment_config, mini_init_kwargs, official_snapshot_bytes

    experiment = load_experiment_config(fixture_dir)
    g_kwargs, d_kwargs = mini_init_kwargs(experiment, official_g_state["mapping.mean_camera_pose"])
    data = official_snapshot_bytes(
        official_g_state, experiment, d_state=official_d_state, g_init_kwargs=g_kwargs, d_init_kwargs=d_kwargs
    )
    path = tmp_path_factory.mktemp("official") / "network-snapshot-000000.pkl"
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def mini_generator(official_g_state) -> Generator:
    G = Generator(GeneratorConfig(**MINI_CONFIG)).eval()
    G.load_state_dict(official_g_state, strict=True)
    return G


@pytest.fixture()
def tiny_generator() -> Generator:
    return make_tiny_generator()
