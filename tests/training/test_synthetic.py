"""The procedural shapes dataset: geometry, cameras and file layout."""

from __future__ import annotations

import io
import json
import math
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.training.synthetic import (
    SynthConfig,
    make_synthetic_dataset,
    random_shape,
    render_shape,
    shape_sdf,
)


@pytest.mark.parametrize("family", ["sphere", "box", "torus", "capsule"])
def test_shapes_fit_their_bounding_radius(family):
    rng = np.random.RandomState(3)
    params = random_shape(family, rng, 0.1, 0.2)
    dirs = torch.nn.functional.normalize(torch.randn(2000, 3, dtype=torch.float64), dim=-1)
    r = params["bound_radius"]
    assert (shape_sdf(params, dirs * (r + 1e-3)) > 0).all()  # everything inside the bounding sphere
    assert (shape_sdf(params, dirs * r * 0.85) < 0).any()  # and nearly fills it (rounded corners)


def test_sphere_silhouette_has_the_projected_size():
    cfg = SynthConfig(resolution=64, supersample=1, fov=30.0)
    params = {
        "family": "sphere",
        "radius": 0.2,
        "bound_radius": 0.2,
        "color": [1.0, 0.0, 0.0],
        "rotation": np.eye(3).tolist(),
    }
    img = render_shape(params, 0.3, 1.4, cfg)
    covered = (img.astype(float).sum(-1) < 3 * 250).mean()
    # angular radius asin(0.2); image half-width tan(15 deg) at unit focal length
    expected = math.pi * math.tan(math.asin(0.2)) ** 2 / (2 * math.tan(math.radians(15))) ** 2
    assert abs(covered - expected) < 0.03


def test_dataset_zip_layout_and_poses(tmp_path):
    out = make_synthetic_dataset(tmp_path / "d.zip", SynthConfig(num_images=8, resolution=16, seed=1))
    with zipfile.ZipFile(out) as zf:
        meta = json.loads(zf.read("dataset.json"))
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
        img = np.array(Image.open(io.BytesIO(zf.read(names[0]))))
    assert len(names) == 8 and img.shape == (16, 16, 3)
    assert set(meta["camera_angles"]) == set(names)
    assert [label for _, label in meta["labels"]] == [0, 1, 2, 3, 0, 1, 2, 3]
    assert meta["class_names"] == ["sphere", "box", "torus", "capsule"]
    pitches = np.array([a[1] for a in meta["camera_angles"].values()])
    assert np.all(np.abs(pitches - math.pi / 2) <= 0.5)
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="unknown shape"):
        SynthConfig(shapes=("cone",))


def test_class_names_reach_the_generator_config(tmp_path):
    from epigraf_tools.training.config import TrainConfig
    from epigraf_tools.training.data import ImageDataset

    out = make_synthetic_dataset(tmp_path / "d.zip", SynthConfig(num_images=4, resolution=16, seed=1))
    ds = ImageDataset(out)
    assert ds.class_names == ["sphere", "box", "torus", "capsule"]
    cfg = TrainConfig(data=str(out)).generator_config(16, ds.c_dim, [0.0, 1.57, 0.0], ds.class_names)
    assert cfg.class_names == ds.class_names and cfg.c_dim == 4
