"""models/config.py through the paths users meet: every bad config.json or model.safetensors is one clear error
before any work.

Each case goes through ``load_generator`` (the path every command uses); a sample of them also goes
through ``epigraf sample --model BADFOLDER`` (exit 2, one line on stderr, no output written).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.cli.app import app
from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import ConfigError, Generator, GeneratorConfig
from epigraf_tools.models.config import MAX_PARAMETERS, estimate_parameters

from support import MINI_CONFIG, TINY_CONFIG, make_tiny_generator

runner = CliRunner()


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory) -> Path:
    return make_tiny_generator().save_pretrained(tmp_path_factory.mktemp("good") / "model")


def _copy(good: Path, dest: Path) -> Path:
    dest.mkdir(parents=True)
    for p in good.iterdir():
        (dest / p.name).write_bytes(p.read_bytes())
    return dest


def _with_config(good: Path, dest: Path, edit) -> Path:
    folder = _copy(good, dest)
    data = json.loads((folder / "config.json").read_text())
    data = edit(data)
    text = data if isinstance(data, str) else json.dumps(data)
    (folder / "config.json").write_text(text)
    return folder


def _set(key, value):
    return lambda d: {**d, key: value}


def _drop(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


# (case id, edit of the parsed config, text the one-line error must contain)
BAD_CONFIGS = [
    ("list-not-object", lambda d: [d], "JSON object"),
    ("string-not-object", lambda d: json.dumps("config"), "JSON object"),
    ("not-json", lambda d: "{not json", "not valid JSON"),
    ("ray-steps-float", _set("num_ray_steps", 8.5), "'num_ray_steps' must be an integer"),
    ("ray-steps-negative", _set("num_ray_steps", -5), "'num_ray_steps'"),
    ("ray-steps-huge", _set("num_ray_steps", 10**9), "'num_ray_steps'"),
    ("ray-steps-bool", _set("num_ray_steps", True), "'num_ray_steps' must be an integer"),
    ("ray-steps-string", _set("num_ray_steps", "8"), "'num_ray_steps' must be an integer"),
    ("missing-triplane-res", _drop("triplane_res"), "'triplane_res' is missing"),
    ("missing-z-dim", _drop("z_dim"), "'z_dim' is missing"),
    ("feat-dim-zero", _set("feat_dim", 0), "'feat_dim'"),
    ("class-names-int", _set("class_names", 5), "'class_names'"),
    ("class-names-ints", _set("class_names", [1, 2]), "'class_names'"),
    ("class-names-count", lambda d: {**d, "class_names": ["a", "b"]}, "class_names has 2 names but c_dim is 0"),
    ("white-back-string", _set("white_back", "no"), "'white_back' must be true or false"),
    ("white-back-int", _set("white_back", 0), "'white_back' must be true or false"),
    ("ray-start-nan", lambda d: json.dumps(d)[:-1] + ', "ray_start": NaN}', "'ray_start' must be a finite number"),
    ("ray-end-inf", lambda d: json.dumps(d)[:-1] + ', "ray_end": Infinity}', "'ray_end' must be a finite number"),
    ("fov-too-big", _set("fov", 400.0), "'fov'"),
    ("unknown-key", _set("num_ray_step", 8), "unknown generator config keys: num_ray_step"),
    ("z-dim-huge", _set("z_dim", 20_000_000), "'z_dim'"),
    ("z-dim-float", _set("z_dim", 2e7), "'z_dim' must be an integer"),
    ("widths-over-budget", lambda d: {**d, "z_dim": 16384, "w_dim": 16384, "map_depth": 8}, "parameters"),
    ("planes-over-budget", lambda d: {**d, "triplane_res": 2048, "feat_dim": 4096, "channel_base": 2**20}, "tri-plane"),
    ("triplane-res-not-pow2", _set("triplane_res", 48), "'triplane_res' must be a power of two"),
    ("img-resolution-huge", _set("img_resolution", 2**20), "'img_resolution'"),
    ("clamp-mode-unknown", _set("clamp_mode", "exp"), "'clamp_mode' must be one of"),
    ("bg-model-unknown", _set("bg_model", "cube"), "'bg_model' must be one of"),
    ("mean-pose-short", _set("mean_camera_pose", [0.0, 1.0]), "'mean_camera_pose'"),
    ("mean-pose-strings", _set("mean_camera_pose", ["a", "b", "c"]), "'mean_camera_pose[0]'"),
    ("map-depth-huge", _set("map_depth", 10**6), "'map_depth'"),
    ("channel-base-too-small", _set("channel_base", 2), "'channel_base'"),
    ("name-not-string", _set("name", {"x": 1}), "'name' must be a string"),
    ("model-type-other", _set("model_type", "stylegan"), "'model_type'"),
    ("format-version-2", _set("format_version", 2), "'format_version'"),
    ("conv-clamp-negative", _set("conv_clamp", -1.0), "'conv_clamp'"),
    ("beta-above-one", _set("w_avg_beta", 1.5), "'w_avg_beta'"),
    ("deep-nesting", lambda d: "[" * 100_000 + "]" * 100_000, "config.json"),
    ("huge-int-literal", lambda d: json.dumps(d)[:-1] + ', "z_dim": ' + "9" * 5000 + "}", "config.json"),
]


@pytest.mark.parametrize("edit, message", [c[1:] for c in BAD_CONFIGS], ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_one_clear_error(good_folder, tmp_path, edit, message):
    folder = _with_config(good_folder, tmp_path / "bad", edit)
    with pytest.raises(EpigrafError) as info:
        load_generator(str(folder))
    text = str(info.value)
    assert message in text and "config.json" in text and "\n" not in text, text


def test_ints_for_floats_are_accepted_and_normalised():
    cfg = GeneratorConfig(**{**TINY_CONFIG, "fov": 30, "conv_clamp": 256})
    assert isinstance(cfg.fov, float) and cfg.fov == 30.0 and isinstance(cfg.conv_clamp, float)


def test_validation_runs_on_direct_construction_and_replace():
    with pytest.raises(ConfigError, match="'white_back'"):
        GeneratorConfig(white_back="no")
    import dataclasses

    with pytest.raises(ConfigError, match="'num_ray_steps'"):
        dataclasses.replace(GeneratorConfig(**TINY_CONFIG), num_ray_steps=0)


def test_parameter_estimate_tracks_real_models():
    configs = [GeneratorConfig(), GeneratorConfig(**MINI_CONFIG), GeneratorConfig(**TINY_CONFIG)]
    configs.append(GeneratorConfig(**{**TINY_CONFIG, "bg_model": "sphere", "c_dim": 4}))
    for cfg in configs:
        G = Generator(cfg)
        real = sum(t.numel() for t in [*G.parameters(), *G.buffers()])
        # an arithmetic approximation on the high side: never below; for a tiny background network
        # (32-wide w, 128-wide blocks) its per-layer allowance dominates, hence the looser upper bound there
        high = 4.0 if cfg.bg_model else 1.5
        assert 0.95 <= estimate_parameters(cfg) / real <= high, (cfg, real)
    assert estimate_parameters(GeneratorConfig()) < MAX_PARAMETERS / 8


def test_over_budget_is_refused_before_allocating():
    with pytest.raises(ConfigError, match="above the budget"):  # valid fields, 2.9 G parameters together
        GeneratorConfig(z_dim=16384, w_dim=16384, map_depth=8)
    cfg = GeneratorConfig(**TINY_CONFIG)
    cfg.z_dim = 10**7  # changed after validation: Generator checks the budget again before building
    with pytest.raises(ConfigError, match="above the budget"):
        Generator(cfg)


# ----------------------------------------------------------------------------- weights
def _state(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _rewrite_weights(good: Path, dest: Path, edit) -> Path:
    folder = _copy(good, dest)
    state = edit(_state(folder))
    (folder / "model.safetensors").unlink()
    save_file(state, str(folder / "model.safetensors"))
    return folder


def _first(state):
    return next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)


def _poison(value):
    def edit(state):
        key = _first(state)
        state[key] = state[key].clone()
        state[key].view(-1)[0] = value
        return state

    return edit


def _raw_header(header: dict, data: bytes = b"") -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + data


BAD_WEIGHTS = [
    ("nan", lambda g, d: _rewrite_weights(g, d, _poison(float("nan"))), "NaN or infinite"),
    ("inf", lambda g, d: _rewrite_weights(g, d, _poison(float("inf"))), "NaN or infinite"),
    ("missing-key", lambda g, d: _rewrite_weights(g, d, lambda s: dict(list(s.items())[1:])), "missing"),
    ("extra-key", lambda g, d: _rewrite_weights(g, d, lambda s: {**s, "extra": torch.zeros(2)}), "unexpected extra"),
    (
        "wrong-shape",
        lambda g, d: _rewrite_weights(g, d, lambda s: {**s, _first(s): torch.zeros(3, 3)}),
        "has shape [3, 3]",
    ),
    (
        "wrong-dtype",
        lambda g, d: _rewrite_weights(g, d, lambda s: {**s, _first(s): s[_first(s)].double()}),
        "has dtype F64",
    ),
]


def _truncated(good: Path, dest: Path) -> Path:
    folder = _copy(good, dest)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: len(data) - 100])
    return folder


def _write_raw(raw: bytes):
    def make(good: Path, dest: Path) -> Path:
        folder = _copy(good, dest)
        (folder / "model.safetensors").write_bytes(raw)
        return folder

    return make


HUGE = {"mapping.fc0.weight": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}
LYING = {"mapping.fc0.weight": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}
BAD_WEIGHTS += [
    ("truncated", _truncated, "not a valid safetensors file"),
    ("empty", _write_raw(b""), "not a valid safetensors file"),
    ("header-length-huge", _write_raw(struct.pack("<Q", 2**62) + b"{}"), "not a valid safetensors file"),
    ("header-not-json", _write_raw(struct.pack("<Q", 4) + b"abcd"), "not a valid safetensors file"),
    ("huge-declared-shape", _write_raw(_raw_header(HUGE)), "not a valid safetensors file"),
    ("offsets-lie", _write_raw(_raw_header(LYING, b"\0" * 8)), "not a valid safetensors file"),
]


@pytest.mark.parametrize("make, message", [c[1:] for c in BAD_WEIGHTS], ids=[c[0] for c in BAD_WEIGHTS])
def test_bad_weights_are_one_clear_error(good_folder, tmp_path, make, message):
    folder = make(good_folder, tmp_path / "bad")
    with pytest.raises(EpigrafError) as info:
        load_generator(str(folder))
    text = str(info.value)
    assert message in text and "model.safetensors" in text and "\n" not in text, text


def test_consistent_huge_shape_is_refused_by_shape_before_reading(good_folder, tmp_path):
    """A header whose offsets are honest but whose shape is not the architecture's: refused by shape."""
    folder = _copy(good_folder, tmp_path / "bad")
    state = _state(folder)
    key = _first(state)
    header = {}
    offset = 0
    for name, tensor in state.items():
        shape = [64, 64] if name == key else list(tensor.shape)
        size = 4 * (64 * 64 if name == key else tensor.numel())
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    (folder / "model.safetensors").write_bytes(_raw_header(header, b"\0" * offset))
    with pytest.raises(EpigrafError, match=f"tensor {key} has shape \\[64, 64\\]"):
        load_generator(str(folder))


CLI_CASES = ["ray-steps-float", "missing-triplane-res", "white-back-string", "ray-start-nan", "z-dim-huge"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_sample_refuses_bad_config(good_folder, tmp_path, case):
    edit = next(c[1] for c in BAD_CONFIGS if c[0] == case)
    folder = _with_config(good_folder, tmp_path / "bad", edit)
    out = tmp_path / "out"
    result = runner.invoke(app, ["sample", "--model", str(folder), "--seeds", "0", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "config.json" in result.stderr, result.stderr
    assert not out.exists()


@pytest.mark.parametrize("case", ["nan", "truncated", "wrong-shape"])
def test_cli_sample_refuses_bad_weights(good_folder, tmp_path, case):
    make = next(c[1] for c in BAD_WEIGHTS if c[0] == case)
    folder = make(good_folder, tmp_path / "bad")
    out = tmp_path / "out"
    result = runner.invoke(app, ["sample", "--model", str(folder), "--seeds", "0", "--out", str(out), "--quiet"])
    assert result.exit_code == 2, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and "model.safetensors" in result.stderr, result.stderr
    assert not out.exists()
