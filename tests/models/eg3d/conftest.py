"""Session fixtures over the official EG3D reference fixture (eg3d_mini; found by tests/eg3d_fixture.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eg3d_fixture import load_meta, load_npz, mini_config

from epigraf_tools.models.eg3d import EG3DGenerator


@pytest.fixture(scope="session")
def eg3d_meta() -> dict:
    return load_meta()


@pytest.fixture(scope="session")
def eg3d_reference() -> dict[str, np.ndarray]:
    return load_npz("reference_outputs.npz")


@pytest.fixture(scope="session")
def eg3d_state() -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}


@pytest.fixture(scope="session")
def eg3d_generator(eg3d_meta, eg3d_state) -> EG3DGenerator:
    G = EG3DGenerator(mini_config(eg3d_meta)).eval().requires_grad_(False)
    G.load_state_dict(eg3d_state, strict=True)
    return G
