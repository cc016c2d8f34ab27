"""EG3DGenerator.save_pretrained / from_pretrained: the folder round-trips the fixture model exactly,
and a config or weights file that does not match is refused with a message naming it."""

from __future__ import annotations

import json

import pytest
import torch
from eg3d_fixture import assert_reproduces_fixture
from safetensors.torch import load_file, save_file

from epigraf_tools.models import ModelFileError
from epigraf_tools.models.config import ConfigError
from epigraf_tools.models.eg3d import EG3DGenerator


@pytest.fixture()
def saved(tmp_path, eg3d_generator):
    return eg3d_generator.save_pretrained(tmp_path / "eg3d")


def test_round_trip_reproduces_fixture(saved, eg3d_generator, eg3d_reference):
    config = json.loads((saved / "config.json").read_text())
    assert config["model_family"] == "eg3d"
    G = EG3DGenerator.from_pretrained(saved)
    assert G.cfg == eg3d_generator.cfg
    assert_reproduces_fixture(G, eg3d_reference)


def test_nan_weights_refused(saved):
    state = load_file(str(saved / "model.safetensors"))
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name] = state[name].clone().fill_(float("nan"))
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(ModelFileError, match=f"tensor {name} has .* NaN"):
        EG3DGenerator.from_pretrained(saved)


def test_wrong_shape_refused_before_reading(saved):
    state = load_file(str(saved / "model.safetensors"))
    state["decoder.net.0.weight"] = torch.zeros(3, 3)
    save_file(state, str(saved / "model.safetensors"))
    with pytest.raises(ModelFileError, match="decoder.net.0.weight has shape"):
        EG3DGenerator.from_pretrained(saved)


def test_bad_config_named(saved):
    path = saved / "config.json"
    data = json.loads(path.read_text())
    data["rendering_kwargs"]["ray_end"] = 1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="config.json: rendering_kwargs.ray_end"):
        EG3DGenerator.from_pretrained(saved)
    data.pop("model_family")
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="'model_family' must be 'eg3d'"):
        EG3DGenerator.from_pretrained(saved)
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="JSON object"):
        EG3DGenerator.from_pretrained(saved)
