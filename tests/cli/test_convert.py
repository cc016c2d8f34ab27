"""``epigraf convert PKL OUT_DIR [--push-to-hub REPO_ID]``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hub_emulator import isolate_hub_env
from official_pickle_factory import generator_snapshot_bytes

from epigraf_tools.models import Generator

from support import make_tiny_generator


@pytest.fixture()
def snapshot(tmp_path, monkeypatch):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    G = make_tiny_generator(11)
    path = tmp_path / "network-snapshot-000100.pkl"
    path.write_bytes(generator_snapshot_bytes(G, with_optimizers=False))
    return path, G


def test_convert_writes_a_model_folder(cli, one_error_line, snapshot, tmp_path):
    pkl, G = snapshot
    out = tmp_path / "models" / "tiny"
    result = cli(["convert", str(pkl), str(out), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "Wrote" in result.stdout and "model.safetensors" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
        "official_config.json",
    ]
    assert torch.equal(Generator.from_pretrained(out).mapping.w_avg, G.mapping.w_avg)
    again = cli(["convert", str(pkl), str(out), "--quiet"])
    assert "already holds a model" in one_error_line(again)
    assert cli(["convert", "--model", str(pkl), "--out", str(out), "--overwrite", "-q"]).exit_code == 0


def test_malicious_pickle_is_refused_without_output(cli, one_error_line, tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    import pickle

    pkl = tmp_path / "evil.pkl"
    pkl.write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    out = tmp_path / "out"
    line = one_error_line(cli(["convert", str(pkl), str(out), "-q"]))
    assert "refusing to load posix.system" in line or "refusing to load os.system" in line
    assert not marker.exists() and not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["evil.pkl"]  # no temporary folder left behind


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--include-discriminator"], "has no discriminator"),
        (["--push-to-hub", "not a repo"], "not a Hub model id"),
        (["--push-to-hub", "me/repo@v1"], "without @revision"),
        (["--push-to-hub", "me/repo"], "needs a token"),
        (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
    ],
)
def test_bad_arguments_exit_2_and_write_nothing(cli, one_error_line, snapshot, tmp_path, extra, message):
    pkl, _ = snapshot
    out = tmp_path / "out"
    line = one_error_line(cli(["convert", str(pkl), str(out), "-q", *extra]))
    assert message in line
    assert not out.exists()


def test_missing_arguments(cli, one_error_line, tmp_path):
    assert "usage: epigraf convert PKL OUT_DIR" in one_error_line(cli(["convert"]))
    assert "not found" in one_error_line(cli(["convert", str(tmp_path / "x.pkl"), str(tmp_path)]))


def test_push_to_hub(cli, snapshot, tmp_path, monkeypatch):
    import huggingface_hub

    pkl, _ = snapshot
    uploads = []

    class FakeApi:
        def __init__(self, endpoint=None, token=None):
            pass

        def create_repo(self, repo_id, private=None, exist_ok=False):
            uploads.append(("create", repo_id, private))

        def upload_folder(self, repo_id, folder_path, commit_message):
            uploads.append(("upload", repo_id, sorted(os.listdir(folder_path))))
            return type("Info", (), {"commit_url": f"https://hf.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    result = cli(["convert", str(pkl), str(tmp_path / "m"), "--push-to-hub", "me/tiny", "--private"])
    assert result.exit_code == 0, result.output
    assert uploads[0] == ("create", "me/tiny", True)
    assert uploads[1][2] == ["README.md", "config.json", "model.safetensors", "official_config.json"]
    assert "Pushed to https://hf.co/me/tiny/commit/abc" in result.stdout


# ----------------------------------------------------------------------------- hostile pickles
CLI_HOSTILE = [
    "memo index 2^31 (9 bytes)",
    "stride-0 [1e9, 1e9] tensor in G's kwargs (listed on convert)",
    "self-referencing module tree",
    "5000-deep nested tuples",
    "zip-format storage with a deflated record (zip bomb)",
    "self-doubling ${...} chain in the experiment config (hang)",
]


@pytest.fixture(scope="module")
def hostile():
    from official_pickle_factory import hostile_pickles

    return hostile_pickles()


@pytest.mark.parametrize("name", CLI_HOSTILE)
def test_hostile_pickle_exits_2_in_one_line_without_output(cli, one_error_line, hostile, tmp_path, name):
    data, pattern = hostile[name]
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(data)
    out = tmp_path / "out"
    line = one_error_line(cli(["convert", str(pkl), str(out), "-q"]))
    assert re.search(pattern, line), line
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["bad.pkl"]


@pytest.mark.parametrize("command", ["convert", "sample"])
def test_segfault_pickle_exits_2_through_the_console_script(hostile, tmp_path, command):
    """The issue's crash: a numpy scalar of a dtype patched by BUILD. Run as a user would (a child
    process), so that a crash fails this test instead of killing the test run."""
    data, pattern = hostile["void scalar as stats.cur_nimg (segfault on convert)"]
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(data)
    out = tmp_path / "out"
    args = [str(pkl), str(out)] if command == "convert" else ["--model", str(pkl), "--out", str(out), "--seeds", "0"]
    epigraf = Path(sys.executable).with_name("epigraf")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([str(epigraf), command, *args, "-q"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-1000:])
    # under -q the error is the only line on stderr (no progress bar before it)
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("Error: ") and re.search(pattern, errors[0]), proc.stderr
    assert not out.exists()


@pytest.mark.parametrize(
    "name", ["memo index 2^31 (9 bytes)", "stride-0 [1e9, 1e9] tensor in G's kwargs (listed on convert)"]
)
def test_hostile_pickle_exits_2_in_models_check_and_sample(cli, hostile, tmp_path, name):
    data, pattern = hostile[name]
    pkl = tmp_path / "bad.pkl"
    pkl.write_bytes(data)
    for args in (["models", "--model", str(pkl), "--check", "--device", "cpu"], ["sample", "--model", str(pkl), "-q"]):
        result = cli([*args, "--out", str(tmp_path / "o")] if args[0] == "sample" else args)
        assert result.exit_code == 2, result.output
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
        assert len(errors) == 1 and re.search(pattern, errors[0]), result.stderr
        assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_two_concurrent_converts_into_one_folder_exactly_one_wins(snapshot, tmp_path, monkeypatch):
    """Both pass the up-front 'already holds a model' check; the claim when files move decides."""
    import threading

    from epigraf_tools.checkpoints import official_pickle
    from epigraf_tools.errors import EpigrafError

    pkl, G = snapshot
    out = tmp_path / "models" / "tiny"
    barrier = threading.Barrier(2)
    read = official_pickle.read_official_snapshot

    def read_then_wait(*args, **kwargs):
        snap = read(*args, **kwargs)
        barrier.wait(timeout=60)  # both runs are now past check_output_folder
        return snap

    monkeypatch.setattr(official_pickle, "read_official_snapshot", read_then_wait)
    results: list[str] = []

    def convert() -> None:
        try:
            official_pickle.convert_official(pkl, out)
            results.append("ok")
        except EpigrafError as exc:
            results.append(str(exc))

    threads = [threading.Thread(target=convert) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2 and results.count("ok") == 1, results
    assert next(r for r in results if r != "ok").endswith("already holds a model; pass overwrite=True to replace it")
    assert torch.equal(Generator.from_pretrained(out).mapping.w_avg, G.mapping.w_avg)
    assert [p.name for p in out.parent.iterdir()] == ["tiny"]  # no temporary folder left
