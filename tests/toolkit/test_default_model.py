"""The embedded default model is a real trained model: its geometry has the dataset's size.

The model was trained on `epigraf dataset synth` data: one primitive (sphere, box, torus, capsule)
at the origin whose bounding radius lies in [0.12, 0.22] world units. Meshes extracted from its
samples at an opaque density level (sigma = 10: opaque within ~0.1 world units) must be closed,
centred, and of a size that the dataset's shapes have; an untrained or broken model fills the box
with density (bounding radius ~0.6) or nothing, and fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epigraf_tools.checkpoints.zoo import embedded_model_dir

MODEL_DIR = embedded_model_dir()
pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "model.safetensors").is_file(), reason="the embedded default model is not installed"
)

LEVEL = 10.0
MIN_BOUND, MAX_BOUND = 0.12, 0.22  # SynthConfig defaults the model was trained with


def dataset_equivalent_radius_range() -> tuple[float, float]:
    """Smallest and largest radius of a sphere with a shape's volume, over the dataset's families."""
    lo_r, hi_r = MIN_BOUND, MAX_BOUND
    sphere = (lo_r, hi_r)
    # box with unit-ratio limits 0.5..1 per axis scaled so the corner is at the bound radius
    box_lo = (
        8 * np.prod(np.array([0.5, 0.5, 1.0]) / np.linalg.norm([0.5, 0.5, 1.0])) * lo_r**3 * 3 / (4 * math.pi)
    ) ** (1 / 3)
    box_hi = (8 * (1 / math.sqrt(3)) ** 3 * hi_r**3 * 3 / (4 * math.pi)) ** (1 / 3)
    torus = [
        (2 * math.pi**2 * (r * (1 - f)) * (r * f) ** 2 * 3 / (4 * math.pi)) ** (1 / 3)
        for r, f in ((lo_r, 0.25), (hi_r, 0.45))
    ]
    capsule = [
        (math.pi * (r * f) ** 2 * (4 / 3 * r * f + 2 * (r - r * f)) * 3 / (4 * math.pi)) ** (1 / 3)
        for r, f in ((lo_r, 0.35), (hi_r, 0.55))
    ]
    lows = [sphere[0], box_lo, torus[0], capsule[0]]
    highs = [sphere[1], box_hi, torus[1], capsule[1]]
    return min(lows), max(highs)


@pytest.fixture(scope="module")
def default_model():
    from epigraf_tools import load_generator

    return load_generator(None, "cpu")


def sample_conditions(G) -> list[tuple[str, int | None, tuple[int, ...]]]:
    """(label, class index, seeds) to check: two seeds per class, or eight seeds of an unconditional model."""
    if G.c_dim:
        return [(name, i, (0, 1)) for i, name in enumerate(G.config.class_names)]
    return [("any", None, tuple(range(8)))]


def test_default_model_is_the_documented_one(default_model):
    cfg = default_model.config
    assert cfg.c_dim == 0 or cfg.class_names == ["sphere", "box", "torus", "capsule"]
    assert cfg.white_back and cfg.cube_scale == pytest.approx(0.35)
    assert (MODEL_DIR / "README.md").is_file()


def test_meshes_of_samples_have_the_datasets_size(default_model):
    from epigraf_tools import Truncation, extract_density, ws_from_seeds
    from epigraf_tools.mesh import build_mesh

    G = default_model
    eq_lo, eq_hi = dataset_equivalent_radius_range()
    cs = G.config.cube_scale
    res = 64
    for label, cls, seeds in sample_conditions(G):
        for seed in seeds:
            ws, _ = ws_from_seeds(G, [seed], Truncation(0.7), class_index=cls)
            with torch.no_grad():
                volume = extract_density(G, G.planes(ws), resolution=res, value="sigma")
            voxel = 2 * cs / (res - 1)
            assert volume.max() > LEVEL, (label, seed, float(volume.max()))  # an untrained model stays below
            mesh, report = build_mesh(volume, (voxel,) * 3, (-cs,) * 3, level=LEVEL, keep_largest=True)
            radii = np.linalg.norm(mesh.vertices, axis=1)
            eq_radius = (3 * abs(mesh.volume) / (4 * math.pi)) ** (1 / 3)
            centre = mesh.vertices.mean(axis=0)
            assert report.watertight, (label, seed, report)
            assert radii.max() < 1.35 * MAX_BOUND, (label, seed, radii.max())  # not a box-filling fog
            assert 0.6 * eq_lo < eq_radius < 1.2 * eq_hi, (label, seed, eq_radius, (eq_lo, eq_hi))
            assert np.linalg.norm(centre) < 0.06, (label, seed, centre)  # the object sits at the origin


def test_renders_show_one_centred_object_of_consistent_size_from_every_side(default_model):
    """Alpha silhouettes from four yaws: an object (not empty, not a box-filling haze) whose
    projected size barely changes around it, as for the dataset's compact shapes."""
    from epigraf_tools import Truncation, ws_from_seeds

    G = default_model
    yaws = (0.0, math.pi / 2, math.pi, -math.pi / 2)
    angles = torch.tensor([[y, math.pi / 2, 0.0] for y in yaws])
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    for label, class_index, seeds in sample_conditions(G):
        for seed in seeds[:4]:
            ws, _ = ws_from_seeds(G, [seed], Truncation(0.7), class_index=class_index)
            with torch.no_grad():
                out = G.render(ws.repeat(4, 1, 1), angles, resolution=48, deterministic=True)
            mask = out["alpha"][:, 0] > 0.5  # [4, H, W]
            frac = mask.float().mean(dim=(1, 2))
            assert ((frac > 0.03) & (frac < 0.6)).all(), (label, seed, frac)
            assert frac.max() / frac.min() < 2.0, (label, seed, frac)
            for m in mask:
                cy, cx = ys[m].mean().item(), xs[m].mean().item()
                assert abs(cy - 23.5) < 8 and abs(cx - 23.5) < 8, (label, seed, cy, cx)


def test_shipped_training_recipe_is_a_valid_config_with_the_model_settings():
    """train_config.yaml is the model card's reproduce recipe: it must parse as a TrainConfig, keep
    augmentation off (the model was trained before ADA existed; ADA is the default now) and agree
    with the shipped generator's architecture."""
    import json

    from epigraf_tools.training.config import TrainConfig, load_config_file

    cfg = TrainConfig(**load_config_file(MODEL_DIR / "train_config.yaml"))
    g = json.loads((MODEL_DIR / "config.json").read_text())
    assert cfg.augment == "noaug"
    keys = ("resolution", "triplane_res", "feat_dim", "z_dim", "w_dim", "num_ray_steps", "cube_scale", "fov")
    ours = {k: getattr(cfg, k) for k in keys}
    shipped = {k: g["img_resolution" if k == "resolution" else k] for k in keys}
    assert ours == shipped
