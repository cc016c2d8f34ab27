"""Finds the official EG3D reference fixture (eg3d_mini) and builds the generator it describes.

``$EPIGRAF_EG3D_FIXTURES`` or ../shared/fixtures/eg3d_mini next to the repository; tests that need
it are skipped cleanly when it is absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator

REPO_ROOT = Path(__file__).resolve().parents[3]


def eg3d_fixture_dir() -> Path:
    env = os.environ.get("EPIGRAF_EG3D_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "fixtures" / "eg3d_mini"


EG3D_FIXTURE_DIR = eg3d_fixture_dir()
FILES = ("reference.json", "reference_outputs.npz", "G_ema_state.npz")


def _require() -> Path:
    missing = [f for f in FILES if not (EG3D_FIXTURE_DIR / f).is_file()]
    if missing:
        pytest.skip(f"EG3D fixture not found at {EG3D_FIXTURE_DIR} (missing {', '.join(missing)})")
    return EG3D_FIXTURE_DIR


@pytest.fixture(scope="session")
def eg3d_meta() -> dict:
    return json.loads((_require() / "reference.json").read_text())


@pytest.fixture(scope="session")
def eg3d_reference() -> dict[str, np.ndarray]:
    with np.load(_require() / "reference_outputs.npz") as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="session")
def eg3d_state() -> dict[str, torch.Tensor]:
    with np.load(_require() / "G_ema_state.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def mini_config(meta: dict) -> EG3DConfig:
    """The fixture's official G_kwargs plus the dataset-derived arguments."""
    kwargs = dict(meta["config"]["c"]["G_kwargs"])
    res = meta["inputs_and_calls"]["render"]
    return EG3DConfig.from_dict(
        {
            **kwargs,
            "c_dim": 25,
            "img_resolution": res["image_resolution"],
            "img_channels": 3,
            "neural_rendering_resolution": res["neural_rendering_resolution"],
        }
    )


@pytest.fixture(scope="session")
def eg3d_generator(eg3d_meta, eg3d_state) -> EG3DGenerator:
    G = EG3DGenerator(mini_config(eg3d_meta)).eval().requires_grad_(False)
    G.load_state_dict(eg3d_state, strict=True)
    return G
