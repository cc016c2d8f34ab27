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


def _sphere(radius: float = 0.2) -> dict:
    return {
        "family": "sphere",
        "radius": radius,
        "bound_radius": radius,
        "color": [1.0, 0.0, 0.0],
        "rotation": np.eye(3).tolist(),
    }


def test_textured_background_is_the_sky_map_at_infinity():
    """Pixels the object leaves uncovered show sky_colour of their ray direction, from any camera distance."""
    from epigraf_tools.models.cameras import cam2world_from_angles, generate_rays
    from epigraf_tools.training.panorama import sky_colour

    cfg = SynthConfig(resolution=32, supersample=1, background="textured")
    near = render_shape(_sphere(), 0.7, 1.3, cfg)
    far = render_shape(
        _sphere(), 0.7, 1.3, SynthConfig(resolution=32, supersample=1, background="textured", radius=2.0)
    )
    _, dirs, _ = generate_rays(
        cam2world_from_angles(torch.tensor([[0.7, 1.3, 0.0]], dtype=torch.float64), 1.0), 30.0, 32, 32
    )
    sky = (sky_colour(dirs[0]).reshape(32, 32, 3).clamp(0, 1) * 255).round().numpy()
    corner = (slice(0, 6), slice(0, 6))  # the sphere (angular radius 11.5 of 15 degrees) never reaches it
    assert np.array_equal(near[corner], sky[corner]) and np.array_equal(far[corner], sky[corner])
    assert near[16, 16, 0] > 80 and near[16, 16, 1] == near[16, 16, 2] == 0  # the red sphere in the middle


def test_black_and_transparent_backgrounds(tmp_path):
    black = render_shape(_sphere(), 0.0, 1.57, SynthConfig(resolution=16, supersample=1, background="black"))
    assert black.shape == (16, 16, 3) and black[0, 0].tolist() == [0, 0, 0]
    rgba = render_shape(_sphere(), 0.0, 1.57, SynthConfig(resolution=16, supersample=2, background="none"))
    white = render_shape(_sphere(), 0.0, 1.57, SynthConfig(resolution=16, supersample=2))
    assert rgba.shape == (16, 16, 4)
    assert np.array_equal(rgba[..., :3], white)  # the colour is the white-background image ...
    assert rgba[0, 0, 3] == 0 and rgba[8, 8, 3] == 255  # ... and alpha the object's coverage
    edge = rgba[..., 3][(rgba[..., 3] > 0) & (rgba[..., 3] < 255)]
    assert edge.size > 0  # anti-aliased silhouette
    with pytest.raises(ValueError, match="unknown background"):
        SynthConfig(background="sky")


@pytest.mark.filterwarnings("ignore:camera poses are not zero-centred")
@pytest.mark.parametrize(("background", "white_back"), [("white", True), ("textured", False), ("none", True)])
def test_dataset_json_records_the_background(tmp_path, background, white_back):
    from epigraf_tools.training.data import ImageDataset

    out = make_synthetic_dataset(tmp_path / "d.zip", SynthConfig(num_images=2, resolution=16, background=background))
    with zipfile.ZipFile(out) as zf:
        camera = json.loads(zf.read("dataset.json"))["camera"]
    assert camera["background"] == background and camera["white_back"] is white_back
    image = ImageDataset(out, check_sizes=False)[0]["image"]
    assert image.shape == (3, 16, 16)  # RGBA images train as RGB
    if background == "none":  # ... over white, as the colour was written
        assert image[:, 0, 0].tolist() == [255, 255, 255]
