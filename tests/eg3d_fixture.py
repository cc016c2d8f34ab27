"""The official EG3D reference fixture (eg3d_mini), shared by tests/models/eg3d and the checkpoint tests.

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

REPO_ROOT = Path(__file__).resolve().parents[1]


def eg3d_fixture_dir() -> Path:
    env = os.environ.get("EPIGRAF_EG3D_FIXTURES")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "fixtures" / "eg3d_mini"


EG3D_FIXTURE_DIR = eg3d_fixture_dir()
FILES = ("reference.json", "reference_outputs.npz", "G_ema_state.npz")


def require_fixture() -> Path:
    missing = [f for f in FILES if not (EG3D_FIXTURE_DIR / f).is_file()]
    if missing:
        pytest.skip(f"EG3D fixture not found at {EG3D_FIXTURE_DIR} (missing {', '.join(missing)})")
    return EG3D_FIXTURE_DIR


def load_npz(name: str) -> dict[str, np.ndarray]:
    with np.load(require_fixture() / name) as data:
        return {k: data[k] for k in data.files}


def load_meta() -> dict:
    return json.loads((require_fixture() / "reference.json").read_text())


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


def assert_reproduces_fixture(G: EG3DGenerator, ref: dict[str, np.ndarray], atol: float = 1e-4) -> None:
    """A loaded generator gives the fixture's ws (psi 0.7), tri-planes and jitter-free raw render (seed 0, cam 0)."""
    from epigraf_tools.models.eg3d import EG3DDraws

    def close(a: torch.Tensor, b: np.ndarray) -> None:
        torch.testing.assert_close(a, torch.from_numpy(b), atol=atol, rtol=0)

    with torch.no_grad():
        ws = G.mapping(
            torch.from_numpy(ref["z"]),
            torch.from_numpy(ref["c_cond"]).expand(2, -1),
            truncation_psi=0.7,
            truncation_cutoff=14,
        )
        close(ws, ref["ws__psi0.7"])
        planes = G.planes(torch.from_numpy(ref["ws__psi0.7"])[:1], noise_mode="const")
        close(planes.reshape(96, 256, 256)[:, ::8, ::8], ref["planes_sub8__psi0.7__seed0"])
        rays = G.neural_rendering_resolution**2
        det = G.render(
            planes,
            torch.from_numpy(ref["c_cams"])[:1],
            draws=EG3DDraws.deterministic(1, rays, int(G.rendering_kwargs["depth_resolution"])),
        )
        close(det["image_raw"][0], ref["render_det_image_raw__psi0.7__seed0__cam0"])
