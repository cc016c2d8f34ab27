"""``load_init_networks``: G and, where the source has one, D for ``epigraf train --init``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from official_pickle_factory import load_experiment_config, mini_init_kwargs, official_snapshot_bytes

from epigraf_tools.checkpoints.init_weights import load_init_networks
from epigraf_tools.checkpoints.official_pickle import convert_official, read_official_snapshot
from epigraf_tools.errors import EpigrafError

DEFAULT = Path(__file__).resolve().parents[2] / "epigraf_tools" / "assets" / "default"


@pytest.fixture(scope="module")
def official_pkl(tmp_path_factory, fixture_dir, official_g_state, official_d_state) -> Path:
    experiment = load_experiment_config(fixture_dir)
    g_kwargs, d_kwargs = mini_init_kwargs(experiment, official_g_state["mapping.mean_camera_pose"])
    data = official_snapshot_bytes(
        official_g_state, experiment, d_state=official_d_state, g_init_kwargs=g_kwargs, d_init_kwargs=d_kwargs
    )
    path = tmp_path_factory.mktemp("official") / "network-snapshot-000000.pkl"
    path.write_bytes(data)
    return path


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_pickle_and_its_converted_folder_give_d(official_pkl, official_d_state, tmp_path):
    init = load_init_networks(str(official_pkl), progress=False)
    assert init.D is not None and init.d_source == str(official_pkl)
    assert all(torch.equal(init.D.state_dict()[k], v) for k, v in official_d_state.items())
    assert _same(init.G, read_official_snapshot(official_pkl).generator())
    folder = convert_official(official_pkl, tmp_path / "mini", include_discriminator=True)
    from_folder = load_init_networks(str(folder), progress=False)
    assert from_folder.d_source.endswith("discriminator.safetensors") and _same(from_folder.D, init.D)


def test_a_model_without_d_and_a_bad_spec():
    init = load_init_networks(str(DEFAULT), progress=False)
    assert init.D is None and init.d_source is None and init.G.config.img_resolution == 64
    with pytest.raises(EpigrafError):
        load_init_networks("no/such/dir/", progress=False)
