"""The restricted unpickler: official snapshots load, malicious pickles are refused with nothing run.

Each payload below is first shown to be live (plain pickle would run it and create the marker
file), then our reader must refuse it, name the culprit, and leave no marker behind.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess

import pytest
import torch
from official_pickle_factory import Persistent, pickle_with_fake_modules

from epigraf_tools.errors import EpigrafError
from epigraf_tools.official_pickle import read_official_snapshot
from epigraf_tools.safe_pickle import PersistentObject, RestrictedUnpickler, UnsafePickleError, safe_load


def call_pickle(module: str, name: str, *args) -> bytes:
    """Protocol-2 bytes for ``module.name(*args)`` (GLOBAL + args tuple + REDUCE)."""
    args_bytes = pickle.dumps(tuple(args), protocol=2)[2:-1]
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\n" + args_bytes + b"R."


class _OsSystem:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


class _Popen:
    def __init__(self, argv: list[str]) -> None:
        self.argv = argv

    def __reduce__(self):
        return (subprocess.Popen, (self.argv,))


def _snapshot_with(payload_obj) -> bytes:
    return pickle.dumps({"training_set_kwargs": {}, "G_ema": payload_obj}, protocol=4)


def _touch_code(marker) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _getattr_chain(marker) -> bytes:
    """getattr(__import__('os'), 'system')('touch marker'), written opcode by opcode."""
    return b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(Vtouch " + str(marker).encode() + b"\ntR."


PAYLOADS = {
    "os.system": (lambda m: _snapshot_with(_OsSystem(f"touch {m}")), "posix.system|os.system|nt.system"),
    "builtins.eval": (lambda m: call_pickle("builtins", "eval", _touch_code(m)), "builtins.eval"),
    "builtins.exec": (lambda m: call_pickle("builtins", "exec", _touch_code(m)), "builtins.exec"),
    "subprocess.Popen": (lambda m: _snapshot_with(_Popen(["touch", str(m)])), "subprocess.Popen"),
    "getattr chain": (_getattr_chain, "builtins.getattr"),
    "numpy runstring": (
        lambda m: call_pickle("numpy.testing._private.utils", "runstring", _touch_code(m), {}),
        "numpy.testing._private.utils.runstring",
    ),
}


@pytest.mark.parametrize("kind", sorted(PAYLOADS))
def test_malicious_payloads_are_refused_and_nothing_runs(tmp_path, kind):
    build, culprit = PAYLOADS[kind]
    live_marker = tmp_path / "live"
    data = build(live_marker)
    if kind != "numpy runstring":  # prove the payload is real: stock pickle runs it
        obj = pickle.loads(data)
        obj = obj.get("G_ema") if isinstance(obj, dict) else obj
        if isinstance(obj, subprocess.Popen):
            obj.wait()
        assert live_marker.exists()
    marker = tmp_path / "must-not-exist"
    path = tmp_path / "evil.pkl"
    path.write_bytes(build(marker))
    with pytest.raises(UnsafePickleError, match=culprit) as info:
        read_official_snapshot(path)
    assert "nothing from the file was executed" in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("torch", "load"),
        ("torch.serialization", "load"),
        ("torch._utils", "_import_dotted_name"),
        ("torch.hub", "load"),
        ("numpy", "load"),
        ("pickle", "loads"),
        ("_pickle", "loads"),
        ("copyreg", "_reconstructor"),
        ("torch.nn.modules.module", "register_module_forward_hook"),
        ("src.training.networks_epigraf", "Generator"),
        ("src.torch_utils.persistence", "_src_to_module"),
        ("builtins", "open"),
        ("io", "open"),
        ("shutil", "rmtree"),
    ],
)
def test_allowed_looking_but_dangerous_callables_are_refused(tmp_path, module, name):
    data = call_pickle(module, name, str(tmp_path / "x"))
    with pytest.raises(UnsafePickleError, match=f"refusing to load {module}.{name}"):
        safe_load(io.BytesIO(data))


def test_module_src_is_never_executed(tmp_path):
    marker = tmp_path / "exec-ran"
    evil_net = Persistent(
        "Generator", {"_parameters": {}, "_buffers": {}, "_modules": {}}, module_src=_touch_code(marker)
    )
    obj = safe_load(io.BytesIO(pickle_with_fake_modules({"G_ema": evil_net})))
    assert isinstance(obj["G_ema"], PersistentObject) and obj["G_ema"].class_name == "Generator"
    assert not marker.exists()
    assert not hasattr(obj["G_ema"], "module_src")  # the source text is not even kept


def test_storage_payload_with_code_is_refused(tmp_path):
    marker = tmp_path / "inner"
    inner = io.BytesIO()
    torch.save(_OsSystem(f"touch {marker}"), inner, _use_new_zipfile_serialization=False)
    torch.load(io.BytesIO(inner.getvalue()), weights_only=False)  # live: a plain torch.load runs it
    assert marker.exists()
    marker.unlink()
    data = call_pickle("torch.storage", "_load_from_bytes", inner.getvalue())
    with pytest.raises(UnsafePickleError, match="storage holds more than tensor data"):
        safe_load(io.BytesIO(data))
    assert not marker.exists()


def test_patching_an_allowed_callable_is_refused():
    # GLOBAL torch._utils._rebuild_tensor_v2, then BUILD with a state: an attempt to modify it
    data = b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n}X\x0c\x00\x00\x00__defaults__)sb."
    with pytest.raises(UnsafePickleError, match="tries to modify"):
        safe_load(io.BytesIO(data))


def test_persistent_ids_and_bad_meta_are_refused():
    with pytest.raises(UnsafePickleError, match="persistent id"):
        safe_load(io.BytesIO(b"\x80\x02X\x03\x00\x00\x00abcQ."))  # BINPERSID
    data = call_pickle(
        "src.torch_utils.persistence",
        "_reconstruct_persistent_obj",
        {"type": "class", "version": 5, "class_name": "G", "state": {}, "module_src": ""},
    )
    with pytest.raises(UnsafePickleError, match="version 5"):
        safe_load(io.BytesIO(data))


def test_truncated_pickle_is_a_clear_error():
    data = pickle.dumps({"a": torch.zeros(3)}, protocol=4)
    with pytest.raises(EpigrafError, match="not a readable pickle"):
        safe_load(io.BytesIO(data[: len(data) // 2]))


def test_every_global_of_a_real_official_snapshot_is_allowed(fixture_dir):
    """reference.json lists the globals seen in the pickle the official code wrote for the fixture."""
    globals_seen = json.loads((fixture_dir / "reference.json").read_text())["snapshot"]["pickle_globals"]
    unpickler = RestrictedUnpickler(io.BytesIO(b""))
    for qualname in globals_seen:
        module, _, name = qualname.rpartition(".")
        unpickler.find_class(module, name)  # must not raise
    assert len(globals_seen) > 15


def test_plain_data_round_trips():
    import numpy as np

    obj = {
        "t": torch.arange(6.0).reshape(2, 3)[:, 1:],
        "p": torch.nn.Parameter(torch.ones(2)),
        "a": np.arange(4, dtype=np.float32),
        "s": np.float64(0.5),
        "set": {1, 2},
        "b": b"\x00\x01",
    }
    out = safe_load(io.BytesIO(pickle.dumps(obj, protocol=4)))
    assert torch.equal(out["t"], obj["t"]) and isinstance(out["p"], torch.nn.Parameter)
    assert np.array_equal(out["a"], obj["a"]) and out["s"] == 0.5 and out["set"] == {1, 2} and out["b"] == b"\x00\x01"
