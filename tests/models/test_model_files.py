"""models/model_files.py: config.json parsing, the safetensors header check and the finite-weights check."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from epigraf_tools.models import ConfigError, GeneratorConfig, ModelFileError
from epigraf_tools.models.model_files import MAX_CONFIG_BYTES, check_finite, check_weights_file, read_config_file

from support import TINY_CONFIG


def test_read_config_file_round_trips_and_names_the_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(GeneratorConfig(**TINY_CONFIG).to_dict()))
    assert read_config_file(path) == GeneratorConfig(**TINY_CONFIG)
    path.write_text(json.dumps({**GeneratorConfig(**TINY_CONFIG).to_dict(), "feat_dim": 0}))
    with pytest.raises(ConfigError, match=r"^config.json: .*feat_dim"):
        read_config_file(path)


@pytest.mark.parametrize(
    "content, message",
    [(b"{not json", "not valid JSON"), (b"\xff\xfe", "not valid JSON"), (b"1" * 5000, "not a usable JSON config")],
)
def test_read_config_file_refuses_what_is_not_a_config(tmp_path, content, message):
    path = tmp_path / "config.json"
    path.write_bytes(content)
    with pytest.raises((ModelFileError, ConfigError), match=message):
        read_config_file(path)


def test_read_config_file_refuses_oversized_files_before_parsing(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b" " * (MAX_CONFIG_BYTES + 1))
    with pytest.raises(ModelFileError, match="at most"):
        read_config_file(path)


def test_check_weights_file_compares_keys_shapes_and_dtypes(tmp_path):
    expected = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    path = tmp_path / "model.safetensors"
    save_file({"a": torch.ones(2, 3), "b": torch.ones(4)}, str(path))
    check_weights_file(path, expected)  # matches: no error
    for tensors, message in [
        ({"a": torch.ones(2, 3)}, "missing b"),
        ({"a": torch.ones(2, 3), "b": torch.ones(4), "c": torch.ones(1)}, "unexpected c"),
        ({"a": torch.ones(3, 2), "b": torch.ones(4)}, r"shape \[3, 2\]"),
        ({"a": torch.ones(2, 3, dtype=torch.float64), "b": torch.ones(4)}, "dtype F64"),
    ]:
        save_file(tensors, str(path))
        with pytest.raises(ModelFileError, match=message):
            check_weights_file(path, expected)
    path.write_bytes(path.read_bytes()[:-3])  # truncated: the header's offsets no longer cover the file
    with pytest.raises(ModelFileError, match="not a valid safetensors file"):
        check_weights_file(path, expected)


def test_check_finite_names_the_tensor():
    check_finite({"w": torch.ones(3), "i": torch.arange(3), "d": torch.ones(2, dtype=torch.float64)}, "x")
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ModelFileError, match="tensor w has 1 NaN or infinite values"):
            check_finite({"w": torch.tensor([1.0, bad])}, "model.safetensors")
    with pytest.raises(ModelFileError, match="tensor d"):
        check_finite({"d": torch.tensor([float("nan")], dtype=torch.float64)}, "x")
