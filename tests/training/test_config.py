"""training/config.py: option validation, derived values, (de)serialisation, config files, presets."""

from __future__ import annotations

import json

import pytest

from epigraf_tools.models import GeneratorConfig
from epigraf_tools.training.config import ConfigError, TrainConfig, load_config_file, preset, upgrade_stored_config


def test_config_fields_defaults_and_errors():
    cfg = TrainConfig(data="x.zip")
    assert (cfg.augment, cfg.augment_p, cfg.ada_target, cfg.ada_interval, cfg.ada_kimg) == ("ada", 0.0, 0.6, 4, 500.0)
    for field, value, match in [
        ("augment", "bgc", "augment must be one of ada, fixed, noaug"),
        ("augment_p", 1.5, "augment_p must be in"),
        ("ada_target", 2.0, "ada_target must be in"),
        ("ada_interval", 0, "ada_interval must be >= 1"),
        ("ada_kimg", 0.0, "ada_kimg must be positive"),
    ]:
        with pytest.raises(ConfigError, match=match):
            cfg.replace(**{field: value}).validate()
    assert upgrade_stored_config({"data": "x"})["augment"] == "noaug"
    assert upgrade_stored_config({"augment": "ada"})["augment"] == "ada"


def test_defaults_validate():
    TrainConfig(data="x.zip").validate()


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"data": ""}, "no training data given"),
        ({"batch": 0}, "batch must be positive, got 0"),
        ({"batch": 6, "batch_gpu": 4}, r"batch_gpu \(4\) must divide the batch \(6\)"),
        ({"kimg": 0}, "kimg must be positive"),
        ({"patch_res": 24}, "patch_res must be a power of two >= 4, got 24"),
        ({"triplane_res": 2}, "triplane_res must be a power of two >= 4, got 2"),
        ({"resolution": 100}, "resolution must be a power of two >= 4, got 100"),
        ({"resolution": 32, "patch_res": 64}, "patch_res 64 is larger than the resolution 32"),
        ({"gamma": "lots"}, "gamma must be a number or 'auto', got 'lots'"),
        ({"gamma": -1.0}, "gamma must be >= 0"),
        ({"betas": (0.0,)}, "betas must be two numbers"),
        ({"tick_kimg": -1.0}, "tick_kimg must be >= 0"),
        ({"metrics": ["fid_nope"]}, "unknown metric 'fid_nope'"),
        ({"patch_dist": "normal"}, "patch_dist must be 'beta' or 'uniform'"),
        ({"d_camera_cond": True, "camera_dist": "normal"}, "D camera conditioning needs the dataset's poses"),
    ],
)
def test_bad_options_are_named(changes, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(data="x.zip").replace(**changes).validate()


def test_auto_gamma_follows_resolution_and_batch():
    cfg = TrainConfig(data="x.zip", gamma="auto", batch=32)
    assert cfg.r1_gamma(256) == pytest.approx(0.0002 * 256**2 / 32)
    assert cfg.replace(gamma=0.5).r1_gamma(256) == 0.5


def test_ema_kimg_defaults_to_a_multiple_of_the_batch():
    cfg = TrainConfig(data="x.zip", batch=8, ema_kimg=None)
    assert cfg.resolved_ema_kimg() == pytest.approx(8 * cfg.ema_multiplier)
    assert cfg.replace(ema_kimg=3.0).resolved_ema_kimg() == 3.0


def test_generator_config_carries_the_dataset_and_the_options():
    cfg = TrainConfig(data="x.zip", z_dim=64, triplane_res=32)
    g = cfg.generator_config(64, 2, [0.0, 1.5, 0.0], class_names=["a", "b"])
    assert isinstance(g, GeneratorConfig)
    assert (g.img_resolution, g.c_dim, g.z_dim, g.triplane_res, g.class_names) == (64, 2, 64, 32, ["a", "b"])
    assert g.mean_camera_pose == [0.0, 1.5, 0.0]


def test_dict_round_trip_and_unknown_keys(tmp_path):
    cfg = TrainConfig(data="x.zip", batch=8, gamma=0.25)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown training option.*: bogus, zz"):
        TrainConfig.from_dict({**cfg.to_dict(), "zz": 1, "bogus": 2})
    cfg.save(tmp_path / "config.json")
    assert TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text())) == cfg
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]


def test_config_files_yaml_and_json_with_dashes(tmp_path):
    (tmp_path / "c.yaml").write_text("batch: 8\npatch-res: 32\n")
    assert load_config_file(tmp_path / "c.yaml") == {"batch": 8, "patch_res": 32}
    (tmp_path / "c.json").write_text('{"gamma": 0.5}')
    assert load_config_file(tmp_path / "c.json") == {"gamma": 0.5}
    (tmp_path / "empty.yaml").write_text("")
    assert load_config_file(tmp_path / "empty.yaml") == {}


@pytest.mark.parametrize(
    "name, text, match",
    [
        ("missing.yaml", None, "not found"),
        ("bad.json", "{oops", "cannot parse"),
        ("list.yaml", "- 1\n- 2\n", "must hold a mapping"),
        ("unknown.yaml", "batch: 4\nno_such: 1\n", "unknown training option.*no_such"),
    ],
)
def test_bad_config_files_are_named(tmp_path, name, text, match):
    if text is not None:
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config_file(tmp_path / name)


def test_presets_are_valid_configs_and_copies():
    for name in ("ffhq512", "res256", "small"):
        TrainConfig(data="x.zip", **preset(name)).validate()
    preset("small")["batch"] = 1
    assert preset("small")["batch"] == 16
    with pytest.raises(ConfigError, match="unknown preset 'huge'; choose one of ffhq512, res256, small"):
        preset("huge")


def test_resolve_train_config_merges_sources_in_order(tmp_path):
    from epigraf_tools.training.config import parse_sets, resolve_train_config

    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("batch: 8\nkimg: 2\n")
    cfg = resolve_train_config({"data": "d.zip", "kimg": 3.0, "seed": None}, "small", cfg_file, ["seed=7"])
    assert (cfg.batch, cfg.kimg, cfg.seed, cfg.data) == (8, 3.0, 7, "d.zip")  # file < explicit < sets
    assert parse_sets(["mirror=true", "out=runs/x"]) == {"mirror": True, "out": "runs/x"}
    with pytest.raises(ConfigError, match="^sets expects KEY=VALUE"):
        parse_sets(["nokey"])
    with pytest.raises(ConfigError, match="^sets: unknown training option 'bogus'"):
        parse_sets(["bogus=1"])
    with pytest.raises(ConfigError, match=r"^resume=latest needs out=RUN_DIR"):
        resolve_train_config({}, resume="latest")
    with pytest.raises(ConfigError, match="cannot resume: .* not found"):
        resolve_train_config({"out": str(tmp_path)}, resume=str(tmp_path / "nope"))
