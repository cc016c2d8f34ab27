"""Official snapshot import: official-format pickles built here from the fixture weights are read
without running their code, reproduce the official outputs, and carry their config over."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
import sys

import pytest
import torch
from official_pickle_factory import (
    BUFFER_NAMES,
    generator_snapshot_bytes,
    init_kwargs_for,
    load_experiment_config,
    mini_init_kwargs,
    official_snapshot_bytes,
)

from epigraf_tools.checkpoints.official_pickle import convert_official, read_official_snapshot
from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import Generator, GeneratorConfig

from support import MINI_CONFIG, make_tiny_generator

CAMERA0 = [0.0, 1.57, 0.0]


@pytest.fixture(scope="module")
def mini_snap(official_snapshot_pkl):
    return read_official_snapshot(official_snapshot_pkl)


def test_g_ema_state_is_read_bit_exactly(mini_snap, official_g_state):
    assert list(mini_snap.g_ema_state) == list(official_g_state)
    for key, value in official_g_state.items():
        assert torch.equal(mini_snap.g_ema_state[key], value), key
    # G (the non-EMA copy, offset by 0.5 in the file) is read separately and never confused with G_ema
    key = "mapping.fc0.weight"
    assert torch.allclose(mini_snap.g_state[key], official_g_state[key] + 0.5)


def test_config_is_carried_over(mini_snap, official_g_state):
    expected = GeneratorConfig(
        **MINI_CONFIG, mean_camera_pose=official_g_state["mapping.mean_camera_pose"].tolist(), name="ffhq_128_posed"
    )
    assert mini_snap.generator_config == expected
    assert mini_snap.config["dataset"]["camera"]["fov"] == 12.0
    assert mini_snap.config["experiment_name"].startswith("ffhq_128_posed_epigraf_patch_beta_p64")
    assert mini_snap.kimg == pytest.approx(0.064)
    assert mini_snap.training_set_kwargs["resolution"] == 128


def test_converted_generator_reproduces_official_outputs(mini_snap, reference):
    G = mini_snap.generator()
    z = torch.from_numpy(reference["z"]).float()
    with torch.no_grad():
        ws = G.mapping(z, None, truncation_psi=0.7)
        torch.testing.assert_close(ws, torch.from_numpy(reference["ws__psi0.7"]), atol=1e-4, rtol=0)
        planes = G.planes(ws[:1], noise_mode="const")
        det = G.render_planes(planes, torch.tensor([CAMERA0]), resolution=64, deterministic=True)
    ref = torch.from_numpy(reference["render_det_raw__psi0.7__seed0__cam0"])
    # end to end from our own tri-planes: the parity suite's bound (sharp densities amplify 1e-5 plane noise)
    torch.testing.assert_close(det["image"][0], ref, atol=2.5e-4, rtol=0)


def test_discriminator_and_optimizer_state_for_resume(mini_snap, official_d_state):
    assert set(mini_snap.d_state) == set(official_d_state)
    assert all(torch.equal(mini_snap.d_state[k], v) for k, v in official_d_state.items())
    d = mini_snap.d_config
    assert (d["img_resolution"], d["channel_base"], d["channel_max"]) == (64, 2048, 128)
    assert d["num_additional_start_blocks"] == 1 and d["hyper_mod"] and d["patch_params_cond"]
    assert mini_snap.g_opt.hyperparams["lr"] == 0.0025
    param_names = {k for k in mini_snap.g_state if k.rsplit(".", 1)[1] not in BUFFER_NAMES}
    assert set(mini_snap.g_opt.state) == param_names  # re-keyed from Parameter objects to names
    assert mini_snap.d_opt.state["b4.out.weight"]["exp_avg"].shape == official_d_state["b4.out.weight"].shape
    assert mini_snap.augment_state["p"].item() == pytest.approx(0.2)
    try:
        import epigraf_tools.models.discriminator  # noqa: F401
    except ImportError:
        pytest.skip("models.discriminator is not available in this checkout")
    D = mini_snap.discriminator()
    assert torch.equal(D.state_dict()["b4.out.weight"], official_d_state["b4.out.weight"])


def test_cuda_tagged_storages_load_on_cpu(tmp_path, official_g_state, fixture_dir):
    experiment = load_experiment_config(fixture_dir)
    g_kwargs, _ = mini_init_kwargs(experiment, official_g_state["mapping.mean_camera_pose"])
    data = official_snapshot_bytes(
        official_g_state, experiment, g_init_kwargs=g_kwargs, with_optimizers=False, cuda_tagged=True
    )
    assert b"cuda:0" in data
    path = tmp_path / "cuda.pkl"
    path.write_bytes(data)
    snap = read_official_snapshot(path)
    assert snap.g_ema_state["mapping.fc0.weight"].device.type == "cpu"
    assert torch.equal(snap.g_ema_state["mapping.fc0.weight"], official_g_state["mapping.fc0.weight"])


def test_convert_writes_a_loadable_folder(official_snapshot_pkl, tmp_path, reference):
    out = convert_official(official_snapshot_pkl, tmp_path / "mini", include_discriminator=True)
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "config.json",
            "model.safetensors",
            "README.md",
            "official_config.json",
            "discriminator.safetensors",
            "discriminator_config.json",
        ]
    )
    G = Generator.from_pretrained(out)
    ws = G.mapping(torch.from_numpy(reference["z"]).float(), None, truncation_psi=0.7)
    torch.testing.assert_close(ws, torch.from_numpy(reference["ws__psi0.7"]), atol=1e-4, rtol=0)
    provenance = json.loads((out / "official_config.json").read_text())
    assert provenance["source_sha256"] == hashlib.sha256(official_snapshot_pkl.read_bytes()).hexdigest()
    assert provenance["experiment_config"]["dataset"]["cube_scale"] == 0.2
    assert "env" not in provenance["experiment_config"]  # cluster paths are not carried over
    card = (out / "README.md").read_text()
    assert "license_name: nvidia-source-code-license-nc" in card
    assert "[-0.2, 0.2]^3" in card and "field of view 12 degrees" in card
    assert provenance["source_sha256"] in card
    assert json.loads((out / "discriminator_config.json").read_text())["channel_base"] == 2048


def test_convert_refuses_to_overwrite_and_keeps_the_old_model(official_snapshot_pkl, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "config.json").write_text("{}")
    with pytest.raises(EpigrafError, match="already holds a model"):
        convert_official(official_snapshot_pkl, out)
    assert (out / "config.json").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temporary leftovers


def test_tiny_gpc_class_conditional_config_round_trips(tmp_path):
    """A config beyond the fixture: classes, camera conditioning, derived channel_base, old code
    without density_shift (-> 0), white background."""
    G = make_tiny_generator(3, c_dim=4, camera_cond=True, white_back=True, mean_camera_pose=[0.125, 1.375, 0.0])
    data = generator_snapshot_bytes(G, g_init_kwargs=init_kwargs_for(G.config, with_channel_base=False))
    path = tmp_path / "tiny.pkl"
    path.write_bytes(data)
    snap = read_official_snapshot(path)
    expected = dataclasses.replace(G.config, name="tiny_32")
    assert snap.generator_config == expected
    assert snap.config["dataset"]["home"] == "${env:HOME}"  # resolvers are never evaluated
    G2 = snap.generator()
    z, c = torch.randn(2, G.z_dim), torch.eye(4)[:2]
    angles = torch.tensor([[0.2, 1.3, 0.0], [-0.1, 1.6, 0.0]])
    with torch.no_grad():
        torch.testing.assert_close(G2.mapping(z, c, camera_angles=angles), G.mapping(z, c, camera_angles=angles))


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e["model"]["generator"].update(backbone="stylegan3-r"), "backbone 'stylegan3-r'"),
        (lambda e: e["model"]["generator"]["bg_model"].update(type="plane"), "background model 'plane'"),
        (lambda e: e["model"]["generator"].pop("tri_plane"), "not an EpiGRAF tri-plane generator"),
        (lambda e: e["model"]["generator"]["tri_plane"].update(feat_dim=4), "shape mismatch"),
        (lambda e: e["dataset"]["camera"].pop("fov"), "dataset.camera.fov|camera.fov"),
    ],
)
def test_unexpected_configs_are_named(tmp_path, change, message):
    from official_pickle_factory import experiment_for

    G = make_tiny_generator()
    experiment = experiment_for(G.config)
    change(experiment)
    path = tmp_path / "bad.pkl"
    path.write_bytes(generator_snapshot_bytes(G, experiment=experiment))
    with pytest.raises(EpigrafError, match=message):
        read_official_snapshot(path).generator()


def test_unknown_network_class_is_named(tmp_path):
    G = make_tiny_generator()
    path = tmp_path / "odd.pkl"
    path.write_bytes(generator_snapshot_bytes(G, class_overrides={"synthesis.tri_plane_mlp": "MysteryMLP"}))
    with pytest.raises(EpigrafError, match="unknown network class 'MysteryMLP' at G_ema.synthesis.tri_plane_mlp"):
        read_official_snapshot(path)


def test_not_a_pickle_and_missing_g_ema(tmp_path):
    bad = tmp_path / "notes.pkl"
    bad.write_text("hello")
    with pytest.raises(EpigrafError, match="not a readable pickle"):
        read_official_snapshot(bad)
    import pickle

    empty = tmp_path / "empty.pkl"
    empty.write_bytes(pickle.dumps({"G": None, "stats": {}}))
    with pytest.raises(EpigrafError, match="no G_ema network"):
        read_official_snapshot(empty)


def test_include_discriminator_checks_d_shapes(tmp_path, fixture_dir, official_g_state, official_d_state):
    """A D tensor whose shape does not follow the D config is refused before any file is written."""
    try:
        import epigraf_tools.models.discriminator  # noqa: F401
    except ImportError:
        pytest.skip("models.discriminator is not available in this checkout")
    experiment = load_experiment_config(fixture_dir)
    g_kwargs, d_kwargs = mini_init_kwargs(experiment, official_g_state["mapping.mean_camera_pose"])
    d_state = dict(official_d_state)
    d_state["b4.out.weight"] = torch.zeros(7, *d_state["b4.out.weight"].shape[1:])
    data = official_snapshot_bytes(
        official_g_state, experiment, d_state=d_state, g_init_kwargs=g_kwargs, d_init_kwargs=d_kwargs
    )
    path = tmp_path / "bad-d.pkl"
    path.write_bytes(data)
    out = tmp_path / "out"
    with pytest.raises(EpigrafError, match=r"the official D does not match .*b4\.out\.weight"):
        convert_official(path, out, include_discriminator=True)
    assert not out.exists()
    convert_official(path, out)  # without D, G alone still converts


def test_large_tensors_are_summarised_not_listed_in_official_config():
    from epigraf_tools.checkpoints.official_pickle import MAX_LISTED_ELEMENTS, _jsonable

    assert _jsonable({"pose": torch.tensor([0.0, 1.5, 0.0])}) == {"pose": [0.0, 1.5, 0.0]}
    big = torch.zeros(MAX_LISTED_ELEMENTS + 1).expand(1000, -1)
    assert _jsonable([big]) == [f"<tensor [1000, {MAX_LISTED_ELEMENTS + 1}] float32>"]


def test_convert_snapshot_checks_first_then_writes_and_reports(official_snapshot_pkl, tmp_path, monkeypatch):
    from epigraf_tools.checkpoints.official_pickle import convert_snapshot

    out = tmp_path / "mini"
    with pytest.raises(EpigrafError, match="not found"):
        convert_snapshot(tmp_path / "missing.pkl", out, progress=False)
    with pytest.raises(EpigrafError, match="push_to_hub takes a repo id without @revision"):
        convert_snapshot(official_snapshot_pkl, out, push_to_hub="me/repo@v1", progress=False)
    assert not out.exists()  # refused before anything was read or written
    seen = []
    result = convert_snapshot(official_snapshot_pkl, out, device="cpu", progress=False, on_written=seen.append)
    assert seen == [result] and result.folder == out and result.url is None
    assert result.files == sorted(p.name for p in out.iterdir()) and "model.safetensors" in result.files
    assert result.num_params == sum(p.numel() for p in Generator.from_pretrained(out).parameters())


def test_loading_a_snapshot_builds_no_meta_generator(official_snapshot_pkl):
    # A meta-device build imports torch._dynamo on its first operation: 1.5 s added to every command
    # that loads a .pkl (measured 1.49 s -> 0.40-0.81 s per load). A fresh process, as a command is.
    code = (
        "import sys, torch; from epigraf_tools.checkpoints.loading import load_generator; "
        f"load_generator({str(official_snapshot_pkl)!r}, torch.device('cpu'), progress=False); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
