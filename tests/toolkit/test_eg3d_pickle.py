"""Official EG3D snapshots: read safely, converted to our folder, reloaded, and reproducing the fixture.

The snapshot is built from the fixture's weights in the layout reference.json records
(tests/eg3d_pickle_factory.py; no official code); hostile EG3D-shaped pickles are refused with one line.
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from eg3d_fixture import assert_reproduces_fixture, load_meta, load_npz
from eg3d_pickle_factory import eg3d_snapshot_bytes, fake_eg3d_modules, fixture_snapshot_bytes

from epigraf_tools.checkpoints.eg3d_pickle import EG3DSnapshot
from epigraf_tools.checkpoints.loading import load_generator
from epigraf_tools.checkpoints.official_pickle import convert_official, read_official_snapshot
from epigraf_tools.checkpoints.safe_pickle import UnsafePickleError
from epigraf_tools.models.eg3d import DualDiscriminator, EG3DGenerator


@pytest.fixture(scope="module")
def meta() -> dict:
    return load_meta()


@pytest.fixture(scope="module")
def ref():
    return load_npz("reference_outputs.npz")


@pytest.fixture(scope="module")
def g_state():
    return {k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}


@pytest.fixture(scope="module")
def d_state():
    return {k: torch.from_numpy(v) for k, v in load_npz("D_state.npz").items()}


@pytest.fixture(scope="module")
def snapshot_bytes(meta, g_state, d_state) -> bytes:
    return fixture_snapshot_bytes(meta, g_state, d_state)


@pytest.fixture()
def pkl(tmp_path, snapshot_bytes):
    path = tmp_path / "network-snapshot-000000.pkl"
    path.write_bytes(snapshot_bytes)
    return path


def test_snapshot_globals_are_the_official_ones(snapshot_bytes, meta):
    """The factory's file asks for the globals the real snapshot does (reference.json), so the test is honest."""
    import io

    from epigraf_tools.checkpoints.safe_pickle import RestrictedUnpickler

    unpickler = RestrictedUnpickler(io.BytesIO(snapshot_bytes))
    unpickler.load()
    official = set(meta["snapshot"]["pickle_globals"])
    seen = {g.replace("numpy._core.", "numpy.core.") for g in unpickler.seen_globals}  # numpy 2 spelling
    eg3d_specific = {g for g in official if g.startswith(("training.", "torch_utils.", "torch.nn."))}
    assert eg3d_specific <= seen
    assert seen <= official | {"builtins.set"}, seen - official


def test_read_reproduces_fixture(pkl, ref, g_state, d_state):
    snap = read_official_snapshot(pkl)
    assert isinstance(snap, EG3DSnapshot)
    assert snap.generator_config.neural_rendering_resolution == 32
    assert snap.generator_config.rendering_kwargs["box_warp"] == 1.1
    for name, tensor in g_state.items():
        assert torch.equal(snap.g_ema_state[name], tensor), name
    G = snap.generator()
    assert isinstance(G, EG3DGenerator)
    assert_reproduces_fixture(G, ref)
    D = snap.discriminator()
    assert isinstance(D, DualDiscriminator)
    for name, tensor in d_state.items():
        assert torch.equal(D.state_dict()[name], tensor), name


def test_convert_and_reload_reproduce_fixture(pkl, tmp_path, ref):
    out = convert_official(pkl, tmp_path / "eg3d")
    config = json.loads((out / "config.json").read_text())
    assert config["model_family"] == "eg3d"
    card = (out / "README.md").read_text()
    assert "NVIDIA Source Code License-NC" in card and "nvidia-source-code-license-nc" in card
    assert "iso level for meshes: 10" in card
    provenance = json.loads((out / "official_config.json").read_text())
    assert provenance["source_sha256"] and provenance["module_src_sha256"]["TriPlaneGenerator"]
    G = load_generator(str(out))
    assert isinstance(G, EG3DGenerator)
    assert_reproduces_fixture(G, ref)


def test_load_generator_reads_an_eg3d_pickle_directly(pkl, ref):
    G = load_generator(str(pkl), progress=False)
    assert isinstance(G, EG3DGenerator)


# -- hostile EG3D-shaped pickles ------------------------------------------------------------------
def test_os_system_global_is_refused(tmp_path, meta, g_state):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = Evil()
    data = fixture_snapshot_bytes(meta, g_state, extra={"augment_pipe": evil})
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os)\.system") as info:
        read_official_snapshot(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()


def test_unexpected_persistent_class_is_refused(tmp_path, meta, g_state):
    data = fixture_snapshot_bytes(meta, g_state, class_overrides={"backbone.synthesis.b4": "MysteryBlock"})
    path = tmp_path / "odd.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="unknown network class 'MysteryBlock' at G_ema.backbone.synthesis.b4"):
        read_official_snapshot(path)


def test_unknown_plain_module_class_is_refused(tmp_path, meta, g_state):
    """A plain module under training.* that EG3D does not pickle is not an inert holder: refused by name."""
    with fake_eg3d_modules():
        import sys

        class Sneaky:
            pass

        Sneaky.__module__, Sneaky.__qualname__ = "training.triplane", "Sneaky"
        sys.modules["training.triplane"].Sneaky = Sneaky
        data = pickle.dumps({"G_ema": None, "x": Sneaky()}, protocol=4)
    path = tmp_path / "sneaky.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match="refusing to load training.triplane.Sneaky"):
        read_official_snapshot(path)


def test_wrong_shapes_are_refused(tmp_path, meta, g_state):
    bad = dict(g_state)
    bad["decoder.net.0.weight"] = torch.zeros(64, 16)
    path = tmp_path / "shapes.pkl"
    path.write_bytes(fixture_snapshot_bytes(meta, bad))
    with pytest.raises(Exception, match=r"decoder.net.0.weight: file \[64, 16\] vs config \[64, 32\]") as info:
        read_official_snapshot(path).generator()
    assert "\n" not in str(info.value)


def test_huge_tensor_is_refused_before_allocating(tmp_path, meta, g_state):
    """A tensor view claiming far more elements than its storage holds is refused by the safe loader."""
    from official_pickle_factory import legacy_storage_payload, tensor_from

    payload = legacy_storage_payload(torch.zeros(4))
    huge = tensor_from(payload, (1 << 20, 1 << 20), (1 << 20, 1))
    bad = dict(g_state)
    path = tmp_path / "huge.pkl"
    path.write_bytes(fixture_snapshot_bytes(meta, bad, extra={"training_set_kwargs": {"x": huge}}))
    with pytest.raises(UnsafePickleError, match="needs more than its storage") as info:
        read_official_snapshot(path)
    assert "\n" not in str(info.value)


def test_wrong_discriminator_class_is_refused(tmp_path, meta, g_state, d_state):
    path = tmp_path / "d.pkl"
    path.write_bytes(fixture_snapshot_bytes(meta, g_state, d_state, d_class_overrides={"": "Discriminator"}))
    with pytest.raises(UnsafePickleError, match="D is a Discriminator, expected EG3D's DualDiscriminator"):
        read_official_snapshot(path)


def test_convert_with_discriminator(pkl, tmp_path, d_state):
    from safetensors.torch import load_file

    out = convert_official(pkl, tmp_path / "with-d", include_discriminator=True)
    saved = load_file(str(out / "discriminator.safetensors"))
    assert set(saved) == set(d_state)
    d_config = json.loads((out / "discriminator_config.json").read_text())
    assert d_config["img_resolution"] == 128 and d_config["mbstd_group_size"] == 4


def test_bad_rendering_config_is_named(tmp_path, meta, g_state):
    attrs = meta["snapshot"]["attributes"]
    kwargs = json.loads(json.dumps(attrs["init_kwargs"]))
    kwargs["rendering_kwargs"]["ray_end"] = 1.0
    path = tmp_path / "cfg.pkl"
    path.write_bytes(eg3d_snapshot_bytes(kwargs, g_state, set(), 32))
    with pytest.raises(Exception, match="EG3D generator configuration is not supported: .*ray_end"):
        read_official_snapshot(path)
