"""epigraf_tools/checkpoints/official_config.py: official experiment configs and constructor arguments mapped onto
GeneratorConfig / DiscriminatorConfig fields, and unsupported features refused by name."""

from __future__ import annotations

import dataclasses
import io
import pickle

import pytest
import torch
from official_pickle_factory import (
    EasyDict,
    Persistent,
    experiment_for,
    fake_official_modules,
    generator_snapshot_bytes,
    load_experiment_config,
    make_config_node,
)

from epigraf_tools.checkpoints.official_config import discriminator_config_from_official
from epigraf_tools.checkpoints.official_pickle import read_official_snapshot
from epigraf_tools.checkpoints.safe_pickle import safe_load
from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import GeneratorConfig

from support import make_tiny_generator


def test_missing_density_shift_means_zero(tmp_path):

    G = make_tiny_generator(1, density_shift=-1.0)
    path = tmp_path / "old.pkl"
    path.write_bytes(generator_snapshot_bytes(G, experiment=experiment_for(G.config, density_shift=False)))
    assert read_official_snapshot(path).generator_config.density_shift == 0.0


def _config_only(experiment: dict, g_init_kwargs: dict, state: dict | None = None):
    """Config extraction for full-size official configs, without building their weights."""
    import io

    from official_pickle_factory import EasyDict, Persistent, config_child, fake_official_modules, make_config_node

    from epigraf_tools.checkpoints.official_pickle import generator_config_from_official
    from epigraf_tools.checkpoints.safe_pickle import safe_load

    with fake_official_modules():
        root = make_config_node(experiment)
        cfg = config_child(root, "model.generator")
        g = Persistent(
            "Generator",
            {
                "_parameters": {},
                "_buffers": {},
                "_modules": {},
                "cfg": cfg,
                "_init_kwargs": EasyDict(cfg=cfg, **g_init_kwargs),
            },
        )
        import pickle

        data = pickle.dumps({"G_ema": g}, protocol=4)
    loaded = safe_load(io.BytesIO(data))["G_ema"]
    return generator_config_from_official(loaded, state or {})[2]


def test_ffhq512_like_config_with_gpc(fixture_dir):
    experiment = load_experiment_config(fixture_dir)
    gen = experiment["model"]["generator"]
    gen.update(cbase=32768, cmax=512, num_ray_steps=48, density_shift=0.0, camera_cond=True)
    gen["tri_plane"]["res"] = 512
    experiment["dataset"]["resolution"] = 512
    kwargs = dict(
        z_dim=512,
        w_dim=512,
        c_dim=0,
        img_resolution=512,
        img_channels=3,
        channel_base=32768,
        channel_max=512,
        mapping_kwargs=dict(
            num_layers=2,
            camera_cond=True,
            camera_cond_drop_p=0.0,
            camera_cond_noise_std=0.0,
            mean_camera_pose=torch.tensor([0.0, 1.5, 0.0]),
        ),
    )
    config = _config_only(experiment, kwargs)
    assert (config.img_resolution, config.triplane_res, config.channel_base, config.channel_max) == (
        512,
        512,
        32768,
        512,
    )
    assert config.camera_cond and config.num_ws == 16 and config.mean_camera_pose == [0.0, 1.5, 0.0]
    assert config.name == "ffhq_512_posed" and config.fov == 12.0


def test_megascans_like_config(fixture_dir):
    experiment = load_experiment_config(fixture_dir)
    experiment["dataset"] = {
        "name": "plants_${dataset.resolution}",
        "resolution": 256,
        "c_dim": 198,
        "cube_scale": 0.475,
        "white_back": True,
        "last_back": False,
        "camera": {"fov": 30.0, "ray_start": 0.75, "ray_end": 1.25, "radius": 1.0, "dist": "spherical_uniform"},
    }
    gen = experiment["model"]["generator"]
    gen.update(cbase=32768, cmax=512, num_ray_steps=48)
    gen["tri_plane"]["res"] = 256
    gen["bg_model"]["type"] = "sphere"
    kwargs = dict(
        z_dim=512,
        w_dim=512,
        c_dim=198,
        img_resolution=256,
        img_channels=3,
        mapping_kwargs=dict(num_layers=2, camera_cond=False),
    )
    fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    if "bg_num_steps" not in fields:
        with pytest.raises(EpigrafError, match="background model 'sphere'"):
            _config_only(experiment, kwargs)
        return
    config = _config_only(experiment, kwargs)
    assert (config.c_dim, config.white_back, config.cube_scale, config.fov) == (198, True, 0.475, 30.0)
    assert config.channel_base == 32768 and config.name == "plants_256"  # derived as int(cbase * fmaps)
    assert (config.bg_model, config.bg_num_steps, config.bg_channel_max) == ("sphere", 8, 128)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda g: g["tri_plane"].update(has_view_cond=True), "view-direction conditioning"),
        (lambda g: g["tri_plane"].update(posenc_period_len=64), "tri_plane.posenc_period_len"),
        (lambda g: g["tri_plane"].pop("feat_dim"), "has no tri_plane.feat_dim"),
    ],
)
def test_unsupported_or_missing_settings_are_named(fixture_dir, change, message):
    experiment = load_experiment_config(fixture_dir)
    change(experiment["model"]["generator"])
    with pytest.raises(EpigrafError, match=message):
        _config_only(experiment, dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=128))


def test_mapping_depth_is_counted_from_the_weights(fixture_dir):
    experiment = load_experiment_config(fixture_dir)
    state = {f"mapping.fc{i}.weight": torch.zeros(1) for i in range(3)}
    kwargs = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=128, mapping_kwargs=dict(num_layers=2))
    assert _config_only(experiment, kwargs, state).map_depth == 3
    assert _config_only(experiment, kwargs).map_depth == 2


def test_a_mean_pose_that_is_not_three_angles_is_refused(fixture_dir):
    experiment = load_experiment_config(fixture_dir)
    kwargs = dict(z_dim=512, w_dim=512, c_dim=0, img_resolution=128)
    with pytest.raises(EpigrafError, match=r"3 angles.*shape \[2\]"):
        _config_only(experiment, kwargs, {"mapping.mean_camera_pose": torch.zeros(2)})


def test_discriminator_settings_from_constructor_arguments_and_config():
    with fake_official_modules():
        cfg = make_config_node({"patch": {"resolution": 32, "patch_params_cond": True}, "hyper_mod": True})
        d = Persistent(
            "Discriminator",
            {"_init_kwargs": EasyDict(c_dim=5, channel_base=1024, conv_clamp=None, epilogue_kwargs={}), "cfg": cfg},
        )
        data = pickle.dumps({"D": d}, protocol=4)
    got = discriminator_config_from_official(safe_load(io.BytesIO(data))["D"])
    assert (got["c_dim"], got["img_resolution"], got["channel_base"], got["conv_clamp"]) == (5, 32, 1024, None)
    assert got["patch_params_cond"] and got["hyper_mod"] and not got["camera_cond"]
    assert (got["mbstd_group_size"], got["num_fp16_res"], got["channel_max"]) == (4, 4, 512)
