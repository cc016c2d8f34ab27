"""epigraf_tools/seeds.py: parsing seed lists, the seed-count bound, latents as the official scripts draw them."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from epigraf_tools.errors import EpigrafError
from epigraf_tools.seeds import MAX_SEEDS, parse_seeds, z_from_seed, z_from_seeds


def test_seed_count_is_bounded_before_the_range_is_expanded():
    start = time.perf_counter()
    with pytest.raises(EpigrafError, match=f"at most {MAX_SEEDS:,}"):
        parse_seeds("0-99999999999")
    assert time.perf_counter() - start < 1.0  # refused by counting, not by building a list
    with pytest.raises(EpigrafError, match="at most"):
        parse_seeds(f"0-{MAX_SEEDS - 1},{MAX_SEEDS}")  # a single seed past the bound counts too
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS


def test_ranges_are_inclusive_order_is_kept_and_duplicates_dropped():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(" 9, 2-3 ,2,9") == [9, 2, 3]
    assert parse_seeds("5") == [5] and parse_seeds(str(2**32 - 1)) == [2**32 - 1]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("  ", "empty"),
        ("5-2", "the end is smaller than the start"),
        ("a-b", "bad seed 'a-b'"),
        ("1,x", "bad seed 'x'"),
        ("1,,2", "bad seed ''"),
        ("-3", "out of range"),
        (str(2**32), "out of range"),
    ],
)
def test_bad_seed_lists_are_named(text, message):
    with pytest.raises(EpigrafError, match=message):
        parse_seeds(text)


def test_z_is_numpy_randomstate_randn():
    z = z_from_seed(7, z_dim=16)
    assert z.shape == (1, 16) and z.dtype == torch.float32
    expected = torch.from_numpy(np.random.RandomState(7).randn(1, 16)).float()
    assert torch.equal(z, expected)  # the same float64 draw, rounded once to float32 on both sides
    zs = z_from_seeds([7, 3], z_dim=16)
    assert zs.shape == (2, 16) and torch.equal(zs[0], z[0]) and torch.equal(zs[1], z_from_seed(3, 16)[0])
