"""Model specs: zoo name, local folder, official .pkl (in memory) and Hub id[@revision], in that order."""

from __future__ import annotations

import pytest
import torch
from hub_emulator import HubEmulator, isolate_hub_env, model_files
from official_pickle_factory import generator_snapshot_bytes

from epigraf_tools.checkpoints import zoo
from epigraf_tools.checkpoints.loading import ModelSpec, classify_spec, load_generator, resolve_model_dir
from epigraf_tools.errors import EpigrafError, ModelNotFoundError

from support import make_tiny_generator


@pytest.fixture()
def env(monkeypatch, tmp_path):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    monkeypatch.setenv("EPIGRAF_CACHE", str(tmp_path / "epigraf-cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _same(a, b) -> bool:
    z = torch.randn(2, a.z_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return torch.equal(a.mapping(z, None), b.mapping(z, None))


def test_classification(env):
    folder = make_tiny_generator().save_pretrained(env / "model")
    (env / "snap.pkl").write_bytes(b"\x80\x04.")
    assert classify_spec(None) == ModelSpec("zoo", "default")
    assert classify_spec("FFHQ512") == ModelSpec("zoo", "ffhq512")
    assert classify_spec(str(folder)) == ModelSpec("folder", str(folder))
    assert classify_spec("snap.pkl") == ModelSpec("pickle", "snap.pkl")
    assert classify_spec("org/name@v2") == ModelSpec("hub", "org/name", "v2")
    (env / "org" / "name").mkdir(parents=True)
    make_tiny_generator().save_pretrained(env / "org" / "name")
    assert classify_spec("org/name").kind == "folder"  # a local folder wins over the Hub


@pytest.mark.parametrize(
    "spec, message",
    [
        ("./missing", "no such model file or folder"),
        ("weights.pkl", "no such model file or folder"),
        ("ffhq", "expected a zoo name"),
        ("model/config.json", "pass the folder that holds config.json"),
        ("empty", "is not a model folder"),
        ("org/name@bad rev", "no such model file|not a Hub model id"),
    ],
)
def test_bad_specs_are_clear(env, spec, message):
    make_tiny_generator().save_pretrained(env / "model")
    (env / "empty").mkdir()
    with pytest.raises(EpigrafError, match=message):
        classify_spec(spec)


def test_load_from_folder_and_pickle(env):
    G = make_tiny_generator(4)
    G.save_pretrained(env / "model")
    (env / "official.pkl").write_bytes(generator_snapshot_bytes(G, with_optimizers=False))
    assert _same(load_generator(env / "model"), G)
    from_pickle = load_generator("official.pkl", progress=False)  # converted in memory
    assert _same(from_pickle, G) and not from_pickle.training
    with pytest.raises(EpigrafError, match="is an official pickle"):
        resolve_model_dir("official.pkl")


def test_load_from_hub_with_revision(env, monkeypatch):
    G1, G2 = make_tiny_generator(1), make_tiny_generator(2)
    with HubEmulator() as hub:
        first = hub.add_commit("org/tiny", model_files(G1.save_pretrained(env / "g1")))
        hub.add_commit("org/tiny", model_files(G2.save_pretrained(env / "g2")))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert _same(load_generator("org/tiny", progress=False), G2)
        assert _same(load_generator(f"org/tiny@{first}", progress=False), G1)


def test_default_model(env, monkeypatch):
    monkeypatch.setattr(zoo, "embedded_model_dir", lambda: env / "assets" / "default")
    with pytest.raises(ModelNotFoundError, match="embedded default model is not installed"):
        load_generator()
    G = make_tiny_generator(6)
    G.save_pretrained(env / "assets" / "default")
    assert _same(load_generator(), G)


def test_broken_folder_is_a_clear_error(env):
    folder = make_tiny_generator().save_pretrained(env / "model")
    (folder / "model.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(EpigrafError, match="could not load the model in"):
        load_generator(folder)
