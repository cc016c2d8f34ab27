"""'auto' widths and the memory-fitted batch chunk."""

from __future__ import annotations

import pytest

from epigraf_tools.errors import EpigrafError
from epigraf_tools.training.auto_config import (
    AUTO_OPTIONS,
    auto_value,
    choose_batch_gpu,
    estimate_step_bytes,
    seconds_text,
)
from epigraf_tools.training.config import PRESETS, TrainConfig


def test_full_size_resolutions_keep_the_official_widths():
    official = {"g_channel_base": 32768, "g_channel_max": 512, "d_channel_base": 16384, "d_channel_max": 512}
    for res in (256, 512):
        assert {k: auto_value(k, res) for k in official} == official
        assert auto_value("triplane_res", res) == res and auto_value("patch_res", res) == 64


def test_small_resolutions_get_small_networks_that_still_build():
    assert {k: auto_value(k, 32) for k in AUTO_OPTIONS} == {
        "triplane_res": 32,
        "g_channel_base": 4096,
        "g_channel_max": 64,
        "d_channel_base": 2048,
        "d_channel_max": 64,
        "patch_res": 16,
    }
    assert auto_value("g_channel_base", 64) == PRESETS["small"]["g_channel_base"] * 2
    cfg = TrainConfig(data="x")
    for res in (16, 32, 64, 128):
        d = cfg.discriminator_config(res, 0)
        assert d.nominal_resolution == res and d.img_resolution == auto_value("patch_res", res)
        assert cfg.generator_config(res, 0, [0.0, 1.57, 0.0]).triplane_res == max(res, 32)


def test_batch_chunk_is_the_largest_that_fits_and_an_impossible_step_is_refused():
    cfg = TrainConfig(data="x")
    g, d = cfg.generator_config(64, 0, [0.0, 1.57, 0.0]), cfg.discriminator_config(64, 0)
    one, eight = estimate_step_bytes(g, d, 1), estimate_step_bytes(g, d, 8)
    assert one < eight < estimate_step_bytes(g, d, 16)
    assert choose_batch_gpu(g, d, 64, 4, budget=10 * 2**40) == 64
    assert choose_batch_gpu(g, d, 64, 4, budget=eight) == 8
    assert choose_batch_gpu(g, d, 64, 4, budget=eight - 1) == 4
    assert choose_batch_gpu(g, d, 12, 4, budget=10 * 2**40) == 12
    assert choose_batch_gpu(g, d, 6, 4, budget=10 * 2**40) == 2  # 6 and 3 do not fit minibatch-std groups of 4
    with pytest.raises(EpigrafError) as err:
        choose_batch_gpu(g, d, 64, 4, budget=one - 1)
    assert "even with batch_gpu=1" in str(err.value) and "\n" not in str(err.value)


def test_seconds_text():
    assert [seconds_text(s) for s in (5, 125, 3 * 3600 + 20 * 60, float("inf"))] == ["5s", "2m 05s", "3h 20m", "?"]
