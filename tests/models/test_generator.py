"""Generator behaviour: truncation, config and save/load round trips, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from epigraf_tools.models import Generator, GeneratorConfig

ANGLES = torch.tensor([[0.0, 1.5707963, 0.0]])


def test_truncation_psi_zero_gives_w_avg_everywhere(tiny_generator):
    z = torch.randn(3, tiny_generator.z_dim)
    ws = tiny_generator.mapping(z, None, truncation_psi=0.0)
    torch.testing.assert_close(ws, tiny_generator.mapping.w_avg.expand_as(ws))


def test_truncation_cutoff_only_touches_first_ws(tiny_generator):
    z = torch.randn(2, tiny_generator.z_dim)
    full = tiny_generator.mapping(z, None)
    cut = tiny_generator.mapping(z, None, truncation_psi=0.5, truncation_cutoff=2)
    w_avg = tiny_generator.mapping.w_avg
    torch.testing.assert_close(cut[:, :2], w_avg + 0.5 * (full[:, :2] - w_avg))
    torch.testing.assert_close(cut[:, 2:], full[:, 2:])


def test_num_ws_follows_triplane_resolution():
    assert GeneratorConfig(triplane_res=512).num_ws == 16
    assert GeneratorConfig(triplane_res=64).num_ws == 10


def test_config_round_trip(tmp_path):
    cfg = GeneratorConfig(triplane_res=32, class_names=["a", "b"], c_dim=2, white_back=True, fov=30.0)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert GeneratorConfig.from_dict(data) == cfg
    with pytest.raises(ValueError, match="unknown generator config keys"):
        GeneratorConfig.from_dict({**data, "not_a_key": 1})


@pytest.mark.parametrize("bad", [dict(triplane_res=48), dict(fov=0.0), dict(ray_start=1.2, ray_end=1.0)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)


def test_save_load_round_trip_is_bit_identical(tiny_generator, tmp_path):
    tiny_generator.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = Generator.from_pretrained(tmp_path / "m")
    z = torch.randn(2, tiny_generator.z_dim)
    with torch.no_grad():
        a = tiny_generator.render(tiny_generator.mapping(z, None), ANGLES.repeat(2, 1), deterministic=True)
        b = loaded.render(loaded.mapping(z, None), ANGLES.repeat(2, 1), deterministic=True)
    # exact: the same weights through the same code on the same batch
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["depth"], b["depth"])


def test_from_pretrained_names_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        Generator.from_pretrained(tmp_path)


def test_same_generator_seed_gives_same_image_and_other_seed_differs(tiny_generator):
    ws = tiny_generator.mapping(torch.randn(1, tiny_generator.z_dim), None)
    with torch.no_grad():
        a = tiny_generator.render(ws, ANGLES, generator=torch.Generator().manual_seed(1))["image"]
        b = tiny_generator.render(ws, ANGLES, generator=torch.Generator().manual_seed(1))["image"]
        c = tiny_generator.render(ws, ANGLES, generator=torch.Generator().manual_seed(2))["image"]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_chunked_rendering_equals_unchunked(tiny_generator):
    ws = tiny_generator.mapping(torch.randn(2, tiny_generator.z_dim), None)
    with torch.no_grad():
        planes = tiny_generator.planes(ws)
        a = tiny_generator.render_planes(planes, ANGLES.repeat(2, 1), generator=torch.Generator().manual_seed(0))
        b = tiny_generator.render_planes(
            planes, ANGLES.repeat(2, 1), generator=torch.Generator().manual_seed(0), chunk_rays=100
        )
    torch.testing.assert_close(a["image"], b["image"], atol=1e-6, rtol=0)


def test_training_forward_backpropagates_into_every_parameter(tiny_generator):
    G = tiny_generator.train()
    G.progressive_update(100.0)
    assert 0 < G.nerf_noise_std < 1
    img = G(
        torch.randn(2, G.z_dim),
        None,
        ANGLES.repeat(2, 1),
        resolution=8,
        patch_params={"scales": torch.full((2, 2), 0.5), "offsets": torch.full((2, 2), 0.25)},
    )
    assert img.shape == (2, 3, 8, 8)
    img.square().mean().backward()
    no_grad = [n for n, p in G.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert no_grad == []


def test_from_pretrained_raises_model_level_errors_naming_file_and_tensor(tiny_generator, tmp_path):
    """The models package raises ValueError subclasses; the toolkit turns them into EpigrafError."""
    from safetensors.torch import load_file, save_file

    from epigraf_tools.models import ConfigError, ModelFileError

    folder = tiny_generator.save_pretrained(tmp_path / "m")
    state = load_file(str(folder / "model.safetensors"))
    state["mapping.w_avg"] = torch.full_like(state["mapping.w_avg"], float("nan"))
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(ModelFileError, match="model.safetensors: tensor mapping.w_avg has .* NaN"):
        Generator.from_pretrained(folder)
    data = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**data, "white_back": "no"}))
    with pytest.raises(ConfigError, match="config.json: field 'white_back' must be true or false"):
        Generator.from_pretrained(folder)
    assert issubclass(ConfigError, ValueError) and issubclass(ModelFileError, ValueError)


def test_budget_is_part_of_config_validation():
    from epigraf_tools.models import ConfigError

    with pytest.raises(ConfigError, match="above the budget"):
        GeneratorConfig(z_dim=16384, w_dim=16384, map_depth=8)


def test_device_is_where_the_weights_live(tiny_generator):
    assert tiny_generator.device == torch.device("cpu")
    assert tiny_generator.device == next(tiny_generator.parameters()).device


def test_truncate_ws_is_the_mapping_networks_truncation(tiny_generator):
    from epigraf_tools.models.mapping import truncate_ws

    G = tiny_generator
    z = torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0))
    raw = G.mapping(z, None)
    assert torch.equal(
        G.mapping(z, None, truncation_psi=0.6, truncation_cutoff=2), truncate_ws(raw, G.mapping.w_avg, 0.6, 2)
    )
    centres = torch.randn(3, raw.shape[-1], generator=torch.Generator().manual_seed(1))
    per_sample = truncate_ws(raw, centres, 0.5)
    torch.testing.assert_close(per_sample, centres[:, None] + 0.5 * (raw - centres[:, None]), rtol=1e-5, atol=1e-6)
    assert truncate_ws(raw, centres, 1.0) is raw


def test_save_pretrained_writes_through_the_one_atomic_writer(tiny_generator, tmp_path, monkeypatch):
    import epigraf_tools.atomic as atomic

    seen = []
    real = atomic.temp_name
    monkeypatch.setattr(atomic, "temp_name", lambda final, suffix=None: seen.append(real(final, suffix)) or seen[-1])
    out = tiny_generator.save_pretrained(tmp_path / "m")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]
    assert len(seen) == 2 and all(p.name.startswith(atomic.TEMP_PREFIX) for p in seen)  # sweepable temp names


def test_ray_and_pitch_defaults_have_one_definition():
    import epigraf_tools.camera as toolkit_camera
    import epigraf_tools.training.poses as poses
    from epigraf_tools.models import cameras
    from epigraf_tools.models.renderer import RenderOptions
    from epigraf_tools.training.config import TrainConfig

    assert GeneratorConfig().render_options() == RenderOptions()
    t = TrainConfig()
    # ray_start/ray_end default to None (the dataset's cameras); what None stands for is the renderer's
    assert (t.num_ray_steps, t.value("ray_start", 64), t.value("ray_end", 64)) == (
        RenderOptions.num_steps,
        RenderOptions.ray_start,
        RenderOptions.ray_end,
    )
    assert getattr(toolkit_camera, "PITCH_EPS", cameras.PITCH_EPS) is cameras.PITCH_EPS  # Camera uses the model's math
    assert poses.PITCH_EPS is cameras.PITCH_EPS
