"""``load_init_networks``: G and, where the source has one, D for ``epigraf train --init``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from epigraf_tools.checkpoints.init_weights import load_init_networks
from epigraf_tools.checkpoints.official_pickle import convert_official, read_official_snapshot
from epigraf_tools.errors import EpigrafError

DEFAULT = Path(__file__).resolve().parents[2] / "epigraf_tools" / "assets" / "default"


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_pickle_and_its_converted_folder_give_d(official_snapshot_pkl, official_d_state, tmp_path):
    init = load_init_networks(str(official_snapshot_pkl), progress=False)
    assert init.D is not None and init.d_source == str(official_snapshot_pkl)
    assert all(torch.equal(init.D.state_dict()[k], v) for k, v in official_d_state.items())
    assert _same(init.G, read_official_snapshot(official_snapshot_pkl).generator())
    folder = convert_official(official_snapshot_pkl, tmp_path / "mini", include_discriminator=True)
    from_folder = load_init_networks(str(folder), progress=False)
    assert from_folder.d_source.endswith("discriminator.safetensors") and _same(from_folder.D, init.D)


def test_a_model_without_d_and_a_bad_spec():
    init = load_init_networks(str(DEFAULT), progress=False)
    assert init.D is None and init.d_source is None and init.G.config.img_resolution == 64
    with pytest.raises(EpigrafError):
        load_init_networks("no/such/dir/", progress=False)
