"""epigraf_tools/isolevel.py: model-derived default level, isodata suggestion, streamed statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest

from epigraf_tools.isolevel import DensityStats, choose_level, default_level, stats_of, suggest_level
from epigraf_tools.models import GeneratorConfig


def test_default_level_is_sigma_25_in_the_volume_units():
    cfg = GeneratorConfig(density_shift=0.0)
    assert default_level(cfg, "raw") == pytest.approx(25.0, abs=1e-9)  # the official threshold
    assert default_level(cfg, "sigma") == 25.0
    shifted = GeneratorConfig(density_shift=-1.0)
    raw = default_level(shifted, "raw")
    assert math.log1p(math.exp(raw + shifted.density_shift)) == pytest.approx(25.0, rel=1e-12)
    relu = GeneratorConfig(density_shift=2.0, clamp_mode="relu")
    assert default_level(relu, "raw") == 23.0


def test_streamed_stats_equal_whole_volume_stats():
    rng = np.random.default_rng(0)
    vol = rng.normal(size=(10, 11, 12)).astype(np.float32)
    stats = DensityStats(vol.size, max_samples=97)
    for k in range(0, 10, 3):  # uneven slabs
        stats.update(vol[k : k + 3])
    assert stats.min == vol.min() and stats.max == vol.max()
    assert stats.mean == pytest.approx(vol.astype(np.float64).mean(), abs=1e-12)
    assert stats.std == pytest.approx(vol.astype(np.float64).std(), rel=1e-9)
    np.testing.assert_array_equal(stats.samples, vol.ravel()[:: stats.stride])  # one global stride
    summary = stats.summary()
    assert set(summary["percentiles"]) >= {"p1", "p50", "p99"}
    assert summary["percentiles"]["p1"] < summary["percentiles"]["p50"] < summary["percentiles"]["p99"]
    # transposed (non-contiguous) views are read in memory order without a full copy
    assert stats_of(vol.transpose(2, 1, 0)).max == vol.max()


def test_suggest_level_separates_empty_from_solid():
    rng = np.random.default_rng(1)
    empty = rng.normal(-20, 2, size=9000)
    solid = rng.normal(60, 5, size=1000)
    level = suggest_level(np.concatenate([empty, solid]))
    assert level == pytest.approx((-20 + 60) / 2, abs=1.5)  # midway between the two populations' means
    assert suggest_level(np.full(5, 3.0)) == 3.0


def test_choose_level_prefers_the_model_default_inside_the_range():
    stats = stats_of(np.linspace(-30, 80, 1000, dtype=np.float32))
    assert choose_level(25.0, stats) == (25.0, "model default")
    level, source = choose_level(100.0, stats)
    assert source == "isodata" and -30 < level < 80
    assert choose_level(None, stats)[1] == "isodata"


def test_suggest_level_is_scikit_images_isodata_threshold():
    skimage_filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(0)
    cases = [
        rng.normal(size=5000),
        np.concatenate([rng.normal(-3, 1, 3000), rng.normal(2, 0.5, 1000)]),
        rng.exponential(size=20000) * 10 - 2,
        rng.integers(0, 5, 999).astype(float),  # few distinct values: many empty bins
    ]
    for values in cases:
        values = values.astype(np.float32)
        want = float(skimage_filters.threshold_isodata(values.astype(np.float64), nbins=1024))
        assert suggest_level(values) == want  # the same definition, computed without importing scikit-image


def test_stats_without_moments_keep_range_and_samples():
    vol = np.random.default_rng(5).normal(size=(30, 20, 50)).astype(np.float32)
    full, light = stats_of(vol), stats_of(vol, moments=False)
    assert (light.min, light.max) == (full.min, full.max) == (float(vol.min()), float(vol.max()))
    np.testing.assert_array_equal(light.samples, full.samples)
    assert math.isnan(light.mean) and math.isnan(light.std) and not math.isnan(full.std)
    assert not light.saw_nan
    vol[3, 4, 5] = np.nan
    assert stats_of(vol, moments=False).saw_nan


def test_min_and_max_skip_nan_voxels_exactly():
    vol = np.random.default_rng(6).normal(size=(4, 300, 300)).astype(np.float32)
    vol[0, 0, 0] = np.nan  # in the chunk that also holds the minimum and the maximum
    vol[0, 0, 1], vol[0, 0, 2] = -9.0, 9.0
    stats = stats_of(vol)
    assert (stats.min, stats.max) == (-9.0, 9.0) and stats.saw_nan
    assert math.isnan(stats.mean)  # the sums take the NaN in
    only_nan = stats_of(np.full(3, np.nan, np.float32))
    assert (only_nan.min, only_nan.max) == (math.inf, -math.inf) and only_nan.saw_nan  # no range at all
