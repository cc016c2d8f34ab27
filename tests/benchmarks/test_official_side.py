"""The benchmarks' official side (``--official-src``): our weights in the official networks give our outputs.

Runs only where an official EpiGRAF tree is present (``EPIGRAF_OFFICIAL_SRC`` or /tmp/epigraf-official,
e.g. ``git -C MIRROR archive HEAD | tar -x -C /tmp/epigraf-official``) and omegaconf is installed;
skips cleanly otherwise. Tiny networks, so each test takes seconds.

Tolerances: renders 1e-4 on raw values (the parity fixture's bound for the same uniforms), volumes
1e-5 (point-wise vs separable float32 evaluation of the same field), losses 1e-5 relative and
gradients 1e-5 of the largest gradient (float32 rounding through a different operation order).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest
import torch

from support import TINY_CONFIG

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DEFAULT_OFFICIAL = Path("/tmp/epigraf-official")

TINY_G = dict(TINY_CONFIG, img_resolution=32, density_shift=-1.0)
TINY_D = dict(img_resolution=16, num_additional_start_blocks=1, channel_base=256, channel_max=32,
              mbstd_group_size=4, hyper_mod=True)  # fmt: skip


@pytest.fixture(scope="module")
def official_src() -> Path:
    root = Path(os.environ.get("EPIGRAF_OFFICIAL_SRC", DEFAULT_OFFICIAL))
    if not (root / "src" / "training" / "networks_epigraf.py").is_file():
        pytest.skip(f"no official EpiGRAF tree at {root} (set EPIGRAF_OFFICIAL_SRC)")
    pytest.importorskip("omegaconf", reason="the official code needs omegaconf")
    return root


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch):
    """Import a benchmark script as a module (the scripts import official_side from their folder)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))

    def load(name: str):
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    return load


def tiny_generator():
    from epigraf_tools.models import Generator, GeneratorConfig

    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**TINY_G)).eval()
    with torch.no_grad():  # a density head that makes surfaces inside the cube, so renders are not empty
        G.synthesis.tri_plane_mlp.model[-1].weight[-1] *= 20
    return G


def test_import_refuses_a_folder_that_is_not_the_official_tree(bench, tmp_path):
    official_side = bench("official_side")
    with pytest.raises(SystemExit, match="not an EpiGRAF source tree"):
        official_side.import_official(tmp_path)


def test_render_official_side_matches_ours(official_src, bench):
    """bench_render's two runs: official synthesis after torch.manual_seed(key) vs render_views(noise_keys=[key])."""
    bench_render = bench("bench_render")
    G = tiny_generator()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.config.z_dim), None)
    runs = bench_render.make_runs(G, ws, 16, None, official_src)
    with torch.no_grad():
        official, ours = runs["official"](), runs["ours"]()
        planes_off, planes_ours = runs["official planes"](), runs["ours planes"]()
    assert official.shape == ours.shape == (3, 16, 16)
    assert ours.std() > 1e-3  # something was rendered
    torch.testing.assert_close(official, ours, atol=1e-4, rtol=0)
    torch.testing.assert_close(planes_off.reshape(planes_ours.shape), planes_ours, atol=1e-5, rtol=0)


def test_render_official_side_uses_the_same_draws(official_src, bench):
    """A different noise key on our side must change the image: the agreement above is not trivial."""
    bench_render = bench("bench_render")
    G = tiny_generator()
    with torch.no_grad():
        ws = G.mapping(torch.randn(1, G.config.z_dim), None)
    runs = bench_render.make_runs(G, ws, 16, None, official_src)
    official = runs["official"]()
    bench_render.NOISE_KEY += 1
    try:
        other = runs["ours"]()
    finally:
        bench_render.NOISE_KEY -= 1
    assert (official - other).abs().max() > 1e-3


def test_volume_official_side_matches_ours(official_src, bench):
    bench_volume = bench("bench_volume")
    from epigraf_tools.volume import extract_density, make_volume_grid

    G = tiny_generator()
    with torch.no_grad():
        planes = G.planes(G.mapping(torch.randn(1, G.config.z_dim), None))
    grid = make_volume_grid(G.config.cube_scale, (12, 10, 8))  # unequal sizes: catches an axis-order mistake
    official = bench_volume.official_volume_fn(official_src, G, planes)(grid)
    ours = extract_density(G, planes, grid=grid, method="separable")
    assert official.shape == ours.shape == (12, 10, 8)
    assert official.std() > 1e-2
    torch.testing.assert_close(torch.from_numpy(official), torch.from_numpy(ours), atol=1e-5, rtol=0)


# Gradient gap allowed, relative to the largest gradient: the grid_sample field sums as the official
# code does (float32 rounding only); the fast training field sums in another order, which can also
# flip the slope of a leaky ReLU whose input is within rounding of 0 (a few 1e-5 seen at mini size).
GRAD_GAP = {False: 1e-5, True: 1e-3}


@pytest.mark.parametrize("fast_field", [False, True], ids=["grid_sample-field", "fast-field"])
def test_train_losses_and_gradients_match_on_draw_free_inputs(official_src, bench, fast_field):
    bench_train = bench("bench_train")
    off, official, ours = bench_train.build_sides(official_src, TINY_G, TINY_D, patch_res=16)
    ours.G.fast_cpu_field = fast_field
    inputs = bench_train.make_inputs(4, 1, img_resolution=32, z_dim=TINY_G["z_dim"])
    check = bench_train.same_inputs_check(off, official, ours, inputs)
    assert set(check) == {"Gall", "Dmain", "Dreg"}
    for phase, row in check.items():
        assert row["official"].keys() == row["ours"].keys()
        for key, value in row["official"].items():
            assert value == pytest.approx(row["ours"][key], rel=1e-5, abs=1e-7), (phase, key)
        n_off, n_ours, same_names = row["grads"]
        assert same_names and n_off == n_ours > 0
        assert row["grad_gap"] <= GRAD_GAP[fast_field] * row["grad_max"], phase
    # The check leaves both sides as they were: random draws again, and a timed step runs on each.
    assert "forward" not in vars(ours.G) and "forward" not in vars(official.G.synthesis)
    for side in (official, ours):
        side.phase("Gall", inputs, seed=3)
