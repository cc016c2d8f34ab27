"""epigraf_tools/latents.py: seeds -> z as officially, classes, truncation on the right layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.errors import EpigrafError
from epigraf_tools.latents import (
    SampleRequest,
    Truncation,
    class_from_seed,
    map_rows,
    provenance,
    resolve_class,
    truncate,
    truncation_centres,
    ws_from_seeds,
)

from support import make_tiny_generator


@pytest.fixture(scope="module")
def G():
    return make_tiny_generator()


@pytest.fixture(scope="module")
def G_cond():
    return make_tiny_generator(c_dim=3, class_names=["cat", "dog", "fox"])


def test_seeds_are_reproducible_and_drawn_like_the_official_scripts(G):
    ws, classes = ws_from_seeds(G, [3, 7])
    again, _ = ws_from_seeds(G, [7])
    assert torch.equal(ws[1:], again)  # a seed's w does not depend on its batch
    z = torch.from_numpy(np.random.RandomState(7).randn(1, G.z_dim)).float()
    assert torch.equal(again, map_rows(G, z, None))  # exact: the same z through the same batch-1 mapping
    assert classes == [None, None]


def test_psi_zero_is_w_avg_everywhere(G):
    ws, _ = ws_from_seeds(G, [0, 1, 2], Truncation(0.0))
    assert torch.allclose(ws, G.mapping.w_avg.expand_as(ws), atol=1e-6)


def test_psi_and_cutoff_act_on_the_first_ws_only(G):
    plain, _ = ws_from_seeds(G, [5])
    cut, _ = ws_from_seeds(G, [5], Truncation(0.5, cutoff=3))
    w_avg = G.mapping.w_avg
    torch.testing.assert_close(cut[:, :3], w_avg + 0.5 * (plain[:, :3] - w_avg))
    assert torch.equal(cut[:, 3:], plain[:, 3:])  # exact: the same batch-1 mapping, rows past the cutoff untouched
    full, _ = ws_from_seeds(G, [5], Truncation(0.5))
    torch.testing.assert_close(full, w_avg + 0.5 * (plain - w_avg))


def test_truncate_matches_the_mapping_networks_own_truncation(G):
    z = torch.randn(2, G.z_dim)
    ref = G.mapping(z, None, truncation_psi=0.7, truncation_cutoff=4)
    ours = truncate(G.mapping(z, None), G.mapping.w_avg, Truncation(0.7, 4))
    # two formulas (ours vs the mapping network's lerp) on the same w: equal up to rounding
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize(
    "truncation, message",
    [(Truncation(2.5), r"\[0, 2\]"), (Truncation(-0.1), r"\[0, 2\]"), (Truncation(0.7, 0), "cutoff")],
)
def test_truncation_validation(G, truncation, message):
    with pytest.raises(EpigrafError, match=message):
        ws_from_seeds(G, [0], truncation)
    with pytest.raises(EpigrafError, match="larger than"):
        Truncation(0.7, 99).validate(G.num_ws)


def test_classes_by_index_name_and_seed(G_cond, G):
    cfg = G_cond.config
    assert resolve_class(cfg, "dog") == 1 and resolve_class(cfg, "FOX") == 2 and resolve_class(cfg, "0") == 0
    assert resolve_class(cfg, 2) == 2 and resolve_class(cfg, None) is None
    with pytest.raises(EpigrafError, match="unknown class 'wolf'.*cat, dog, fox"):
        resolve_class(cfg, "wolf")
    with pytest.raises(EpigrafError, match="out of range"):
        resolve_class(cfg, "3")
    with pytest.raises(EpigrafError, match="unconditional"):
        resolve_class(G.config, 0)
    _, classes = ws_from_seeds(G_cond, [0, 1, 2, 3])
    assert classes == [int(np.random.RandomState(s).choice(np.arange(3), size=1)[0]) for s in range(4)]
    assert classes == [class_from_seed(s, 3) for s in range(4)]
    _, forced = ws_from_seeds(G_cond, [0, 1], class_index=2)
    assert forced == [2, 2]


def test_conditional_truncation_goes_to_the_class_centre(G_cond):
    ws, _ = ws_from_seeds(G_cond, [4, 9], Truncation(0.0), class_index=1)
    centre = truncation_centres(G_cond, [1])[0]
    torch.testing.assert_close(ws, centre.expand_as(ws))
    other = truncation_centres(G_cond, [2])[0]
    assert not torch.allclose(centre, other)


def test_provenance_names_the_model_seed_class_and_truncation(G_cond):
    trunc = Truncation(0.7, 2)
    one = provenance(G_cond, "zoo:tiny", trunc, 5, 1)
    assert one == {
        "model": "zoo:tiny",
        "seed": 5,
        "class_index": 1,
        "class_name": "dog",
        "truncation_psi": 0.7,
        "truncation_cutoff": 2,
    }
    many = provenance(G_cond, None, trunc, [1, 2], [0, 2])
    assert many["model"] == G_cond.config.name  # no label: the config's name
    assert many["seeds"] == [1, 2] and many["class_indices"] == [0, 2]
    assert many["class_names"] == ["cat", "fox"] and "seed" not in many


@pytest.mark.parametrize(
    "seeds, truncation, class_, message",
    [
        ([], Truncation(), None, "no seeds"),
        ("0-3", Truncation(), None, "list of integers"),
        ([1, -2], Truncation(), None, "seed -2"),
        ([1, True], Truncation(), None, "seed True"),
        ([2**32], Truncation(), None, "seed 4294967296"),
        ([1], Truncation(3.0), None, "psi"),
        ([1], Truncation(0.5, 10**6), None, "cutoff"),
        ([1], Truncation(), 7, "out of range"),
        ([1], Truncation(), "wolf", "unknown class"),
        ([1], Truncation(), 1.5, "index or a name"),
    ],
)
def test_sample_request_is_checked_in_one_place(G_cond, seeds, truncation, class_, message):
    with pytest.raises(EpigrafError, match=message):
        SampleRequest.check(seeds, truncation, class_, G_cond)


def test_sample_request_resolves_names_and_every_pipeline_uses_it(G_cond, tmp_path):
    from epigraf_tools.rendering import RenderSettings
    from epigraf_tools.sampling import generate_samples

    assert SampleRequest.check([3, 1], Truncation(0.7), "Dog", G_cond) == SampleRequest((3, 1), Truncation(0.7), 1)
    assert SampleRequest.check([3], class_="dog").class_index is None  # no model yet: names resolve later
    with pytest.raises(EpigrafError, match="out of range"):  # the toolkit refused this only by an IndexError
        next(generate_samples(G_cond, [0], class_index=5, settings=RenderSettings(resolution=8)))
