"""The restricted unpickler: official snapshots load, malicious pickles are refused with nothing run.

Each payload below is first shown to be live (plain pickle would run it and create the marker
file), then our reader must refuse it, name the culprit, and leave no marker behind.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import re
import subprocess
import sys

import pytest
import torch
from official_pickle_factory import Persistent, hostile_pickles, pickle_with_fake_modules

from epigraf_tools.checkpoints.official_pickle import read_official_snapshot
from epigraf_tools.checkpoints.safe_pickle import PersistentObject, RestrictedUnpickler, UnsafePickleError, safe_load
from epigraf_tools.errors import EpigrafError


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


# ----------------------------------------------------------------------------- hostile files
# Each file attacks the reader once (crash, memory, CPU, patched library objects). They are all
# loaded in ONE child process under a memory limit and a timeout, because the unfixed reader
# segfaults, allocates gigabytes or hangs on some of them; each case then checks its own result.
HOSTILE = hostile_pickles()
_CHILD = r"""
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))  # a blow-up fails here, not on the machine
from pathlib import Path
from epigraf_tools.errors import EpigrafError
from epigraf_tools.checkpoints.official_pickle import convert_official
for path in sorted(Path(sys.argv[1]).glob("*.pkl")):
    try:
        convert_official(path, path.with_suffix(".out"))  # the whole path: read, build, list, write
        result = {"outcome": "loaded"}
    except EpigrafError as exc:
        result = {"outcome": "refused", "type": type(exc).__name__, "message": str(exc)}
    except BaseException as exc:
        result = {"outcome": "crashed", "type": type(exc).__name__, "message": str(exc)[:300]}
    print(json.dumps({"case": path.stem, **result}), flush=True)
"""


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("hostile")
    names = sorted(HOSTILE)
    for i, name in enumerate(names):
        (folder / f"{i:03d}.pkl").write_bytes(HOSTILE[name][0])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder)], capture_output=True, text=True, timeout=300, env=env
    )
    results = {names[int(r["case"])]: r for r in map(json.loads, proc.stdout.splitlines())}
    return {"results": results, "returncode": proc.returncode, "stderr": proc.stderr[-2000:]}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickles_are_refused_in_one_line(hostile_results, name):
    result = hostile_results["results"].get(name)
    assert result is not None, f"the reader died (rc {hostile_results['returncode']}): {hostile_results['stderr']}"
    assert result["outcome"] == "refused", result
    assert result["type"] == "UnsafePickleError", result
    assert re.search(HOSTILE[name][1], result["message"]), result["message"]
    assert "\n" not in result["message"]
    assert len(HOSTILE[name][0]) < 20 << 20  # tiny files: none needs more than a few MB to attack


def test_the_hostile_corpus_is_large_enough():
    assert len(HOSTILE) >= 20


def test_small_budgets_are_enforced(monkeypatch):
    """Budgets too large to reach in a test file, checked by lowering them."""
    import epigraf_tools.checkpoints.pickle_scan as scan
    import epigraf_tools.checkpoints.safe_pickle as sp

    data = pickle.dumps(list(range(3000)), protocol=4)
    monkeypatch.setattr(scan, "MAX_OPCODES", 1000)
    with pytest.raises(UnsafePickleError, match="more than 1,000 opcodes"):
        safe_load(io.BytesIO(data))
    monkeypatch.setattr(scan, "MAX_OPCODES", 10**7)
    monkeypatch.setattr(scan, "MAX_MARK_ITEMS", 100)
    with pytest.raises(UnsafePickleError, match="collects 1,000 items"):
        safe_load(io.BytesIO(data))
    monkeypatch.setattr(sp, "MAX_MATERIALISED_BYTES", 1000)
    with pytest.raises(UnsafePickleError, match="materialised"):
        safe_load(io.BytesIO(pickle.dumps([torch.zeros(100), torch.zeros(200)], protocol=4)))


def test_deep_module_chain_is_refused_without_recursion_error():
    from epigraf_tools.checkpoints.official_pickle import module_state_dict

    node = PersistentObject("FullyConnectedLayer", {"_parameters": {}, "_buffers": {}, "_modules": {}}, "", 6)
    for _ in range(5000):
        node = PersistentObject("SynthesisBlock", {"_parameters": {}, "_modules": {"b": node}}, "", 6)
    with pytest.raises(UnsafePickleError, match="nests modules deeper than"):
        module_state_dict(node, "G_ema")


def test_loaded_tensors_and_arrays_are_plain_and_share_nothing_patchable():
    import numpy as np

    from epigraf_tools.checkpoints.safe_pickle import PickledArray

    obj = {"t": torch.arange(4.0), "a": np.arange(3, dtype="<f8"), "s": np.float32(2.5), "b": np.bool_(True)}
    out = safe_load(io.BytesIO(pickle.dumps(obj, protocol=2)))
    assert isinstance(out["a"], PickledArray) and out["a"].dtype == np.dtype("<f8")
    np.testing.assert_array_equal(out["a"], [0.0, 1.0, 2.0])
    assert out["s"] == 2.5 and type(out["s"]) is float and out["b"] is True
    with pytest.raises(UnsafePickleError, match="modify a numpy array"):
        out["a"].__setstate__((1, (1,), None, False, b""))
    with pytest.raises(UnsafePickleError, match="big-endian"):
        safe_load(io.BytesIO(pickle.dumps(np.arange(3, dtype=">f8"), protocol=2)))
