"""Latent .npz files: round trip, strict validation (no pickles, shapes, finite), and pinning into G."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from epigraf_tools.camera import Camera
from epigraf_tools.latent_files import (
    LatentFileError,
    PinnedMapping,
    latent_label,
    load_latent,
    pin_latent,
    save_latent,
)
from epigraf_tools.latents import Truncation, ws_from_seeds
from epigraf_tools.sampling import generate_samples
from tests.support import make_tiny_generator


@pytest.fixture()
def G():
    return make_tiny_generator()


def write(tmp_path, G, **changes):
    ws = torch.randn(1, G.num_ws, G.config.w_dim)
    cam = Camera.from_degrees(15, 85, radius=G.config.radius, fov=G.config.fov)
    path = save_latent(tmp_path / "a.npz", ws, "w+", cam, G.config.img_resolution, [1.0, 0.5], [], {"model": "tiny"})
    if changes:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        arrays.update(changes)
        arrays = {k: v for k, v in arrays.items() if v is not None}
        np.savez(path, **arrays)
    return path, ws, cam


def test_round_trip(tmp_path, G):
    path, ws, cam = write(tmp_path, G)
    latent = load_latent(path, G)
    assert np.array_equal(latent.ws, ws[0].numpy()) and latent.space == "w+"
    assert latent.camera.yaw == pytest.approx(cam.yaw) and latent.camera.fov == cam.fov
    assert latent.metadata == {"model": "tiny"} and latent.tuned_model is None
    with np.load(path, allow_pickle=False) as data:
        assert data["eg3d_label"].shape == (25,) and data["loss_curve"].tolist() == [1.0, 0.5]
    assert latent_label("default", latent) == "default + latent a.npz"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"ws": None}, "has no 'ws' array"),
        ({"ws": np.zeros((3, 4, 5), np.float32)}, "must be a float array"),
        ({"ws": np.zeros((2, 2), np.int64)}, "must be a float array"),
        ({"ws": np.full((2, 2), np.nan, np.float32)}, "NaN or infinite"),
        ({"space": np.array("z")}, "'space' must be 'w' or 'w[+]'"),
        ({"metadata": np.array("{not json")}, "not valid JSON"),
        ({"metadata": np.array(json.dumps([1]))}, "JSON object"),
        ({"camera": np.zeros(3)}, "'camera' must be 7 finite numbers"),
        ({"camera": np.array([0, 9.0, 1, 30, 0, 0, 0])}, "not a valid camera"),
        ({"ws": np.array([{"x": 1}], dtype=object)}, "without pickles"),
    ],
)
def test_bad_files_are_refused(tmp_path, G, changes, message):
    path, _, _ = write(tmp_path, G, **changes)
    with pytest.raises(LatentFileError, match=message):
        load_latent(path)


def test_wrong_model_and_non_npz_are_refused(tmp_path, G):
    path, _, _ = write(tmp_path, G)
    other = make_tiny_generator(w_dim=G.config.w_dim * 2)
    with pytest.raises(LatentFileError, match="made for another model"):
        load_latent(path, other)
    (tmp_path / "x.npz").write_bytes(b"junk")
    with pytest.raises(LatentFileError, match="is not a .npz file"):
        load_latent(tmp_path / "x.npz")
    np.save(tmp_path / "one.npy", np.zeros(3))
    with pytest.raises(LatentFileError, match="not a .npz"):
        load_latent(tmp_path / "one.npy")
    with pytest.raises(LatentFileError, match="does not exist"):
        load_latent(tmp_path / "missing.npz")


def test_pinned_generator_renders_the_stored_latent(tmp_path, G):
    ws, _ = ws_from_seeds(G, [5])
    cam = Camera.default(G.config)
    path = save_latent(tmp_path / "s5.npz", ws, "w", cam, G.config.img_resolution, [], [], {})
    expected = next(generate_samples(make_tiny_generator(), [0], [cam])).image  # seed 0's ray noise ...
    reference = make_tiny_generator()
    reference_ws, _ = ws_from_seeds(reference, [5])
    pin_latent(G, load_latent(path))
    assert isinstance(G.mapping, PinnedMapping)
    got, _ = ws_from_seeds(G, [0, 1], Truncation(0.5))
    assert torch.allclose(got[0], got[1])
    truncated = G.mapping.w_avg + 0.5 * (reference_ws[0] - G.mapping.w_avg)
    assert torch.allclose(got[0], truncated, atol=1e-6)
    image = next(generate_samples(G, [0], [cam])).image  # ... with seed 5's latent
    assert not np.array_equal(image, expected)
    pinned_again = pin_latent(G, load_latent(path))  # pinning twice wraps the original mapping once
    assert not isinstance(pinned_again.mapping.original, PinnedMapping)
