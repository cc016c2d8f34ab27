"""epigraf_tools/sampling.py: files, metadata, reproducibility, sharding."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from epigraf_tools.camera import Camera
from epigraf_tools.distributed import DistContext
from epigraf_tools.images import read_png_metadata, to_uint8
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings, render_views
from epigraf_tools.sampling import generate_samples, save_samples

from support import assert_images_close, make_tiny_generator

SETTINGS = RenderSettings(resolution=16)


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator()


def png(path):
    return np.asarray(Image.open(path))


def test_seeds_are_reproducible_and_independent_of_batch_size(G):
    a = [s.image for s in generate_samples(G, [0, 1, 2], settings=SETTINGS, batch_size=3)]
    b = [s.image for s in generate_samples(G, [0, 1, 2], settings=SETTINGS, batch_size=1)]
    c = [s.image for s in generate_samples(G, [2], settings=SETTINGS)]
    for x, y in zip(a, b, strict=True):  # batch 3 vs 1: other GEMM kernels in the renderer's MLP
        assert_images_close(x, y)
    assert_images_close(a[2], c[0])
    assert not np.array_equal(a[0], a[1])


def test_psi_zero_gives_the_w_avg_image(G):
    samples = list(generate_samples(G, [3, 8], truncation=Truncation(0.0), settings=SETTINGS))
    ws = G.mapping.w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1)
    with torch.no_grad():
        planes = G.planes(ws)
    for s in samples:  # the same w_avg scene, rendered with each seed's ray noise
        ref = render_views(G, planes, [Camera.default(G.config)], SETTINGS, noise_keys=[s.seed])
        assert_images_close(s.image, to_uint8(ref["image"][0, 0]))  # batch 2 vs 1 through the MLP
    det = RenderSettings(resolution=16, deterministic=True)
    a, b = generate_samples(G, [3, 8], truncation=Truncation(0.0), settings=det)
    assert_images_close(a.image, b.image)  # rows of one batch may fall in different GEMM tiles


def test_save_samples_writes_images_maps_metadata_and_grid(G, tmp_path):
    files = save_samples(
        G, [0, 5], tmp_path, truncation=Truncation(0.7, 2), settings=SETTINGS,
        grid=True, depth=True, normals=True, alpha=True, model="tiny-test",
    )  # fmt: skip
    names = sorted(f.name for f in files)
    for seed in ("seed0000", "seed0005"):
        for suffix in ("", "_depth", "_normals", "_alpha"):
            assert f"{seed}{suffix}.png" in names
            if suffix:
                assert f"{seed}{suffix}.npy" in names
        assert f"{seed}.json" in names
    assert "grid.png" in names
    assert png(tmp_path / "seed0000.png").shape == (16, 16, 3)
    assert png(tmp_path / "grid.png").shape == (16, 32, 3)
    assert np.load(tmp_path / "seed0005_normals.npy").shape == (16, 16, 3)
    depth = np.load(tmp_path / "seed0005_depth.npy")
    alpha = np.load(tmp_path / "seed0005_alpha.npy")
    assert depth.dtype == np.float32 and np.all((depth == 0) | ((depth > 0.8) & (depth < 1.2)))
    assert np.all((alpha >= 0) & (alpha <= 1 + 1e-6))
    meta = read_png_metadata(tmp_path / "seed0005.png")
    assert meta["seed"] == 5 and meta["truncation_psi"] == 0.7 and meta["truncation_cutoff"] == 2
    assert meta["class_index"] is None and meta["model"] == "tiny-test" and meta["resolution"] == 16
    assert meta["camera"]["pitch_degrees"] == pytest.approx(90) and len(meta["eg3d_label"]) == 25
    sidecar = json.loads((tmp_path / "seed0005.json").read_text())
    assert sidecar["views"][0]["files"][0] == "seed0005.png"
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_several_views_per_seed(G, tmp_path):
    cams = [Camera(yaw=-0.3), Camera(yaw=0.3)]
    save_samples(G, [1, 2], tmp_path, cameras=cams, settings=SETTINGS, grid=True)
    assert (tmp_path / "seed0001_view01.png").is_file()
    assert png(tmp_path / "grid.png").shape == (32, 32, 3)  # rows: seeds, columns: views
    assert read_png_metadata(tmp_path / "seed0002_view01.png")["camera"]["yaw"] == pytest.approx(0.3)


def test_sharded_ranks_write_exactly_the_single_process_files(G, tmp_path):
    seeds = [0, 1, 2, 3, 4]
    single = tmp_path / "single"
    save_samples(G, seeds, single, settings=SETTINGS, batch_size=2, grid=True, depth=True)
    shared = tmp_path / "sharded"
    for rank in (1, 0):  # rank 0 last: it writes the grid from every rank's files
        save_samples(G, seeds, shared, settings=SETTINGS, batch_size=3, grid=True, depth=True, ctx=DistContext(rank, 2))
    assert sorted(p.name for p in single.iterdir()) == sorted(p.name for p in shared.iterdir())
    for path in single.iterdir():
        if path.suffix in (".png", ".npy"):
            assert path.read_bytes() == (shared / path.name).read_bytes(), path.name
