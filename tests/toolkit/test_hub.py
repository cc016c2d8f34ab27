"""Hub access against a local Hub emulator (HF_ENDPOINT) and a pre-filled cache (HF_HUB_OFFLINE=1)."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from hub_emulator import HubEmulator, isolate_hub_env, model_files

from epigraf_tools.checkpoints.hub import (
    ChecksumMismatchError,
    HubSpec,
    download_model,
    is_hub_spec,
    parse_hub_spec,
    push_folder,
)
from epigraf_tools.errors import EpigrafError, ModelNotFoundError
from epigraf_tools.models import Generator

from support import make_tiny_generator

REPO = "epigraf-test/tiny"


@pytest.fixture()
def cache(monkeypatch, tmp_path):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    return tmp_path / "hf-cache"


@pytest.fixture()
def tiny_files(tmp_path):
    """Two versions of a tiny model folder (different weights and names)."""
    versions = []
    for seed in (1, 2):
        G = make_tiny_generator(seed, name=f"tiny-v{seed}")
        versions.append(model_files(G.save_pretrained(tmp_path / f"v{seed}")))
    return versions


@pytest.fixture()
def hub():
    with HubEmulator() as emulator:
        yield emulator


def _name(folder) -> str:
    return json.loads((folder / "config.json").read_text())["name"]


def test_download_then_cache_hits_without_network(hub, cache, tiny_files, monkeypatch):
    hub.add_commit(REPO, tiny_files[0])
    folder = download_model(REPO, endpoint=hub.url, progress=False)
    assert folder.is_relative_to(cache) and _name(folder) == "tiny-v1"
    G = Generator.from_pretrained(folder)
    assert torch.equal(G.mapping.w_avg, make_tiny_generator(1).mapping.w_avg)
    assert ("GET", f"/{REPO}/resolve/{folder.name}/model.safetensors") in hub.requests

    served = len(hub.requests)
    hub.stop()  # no network from here on
    assert download_model(REPO, offline=True, progress=False) == folder
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at call time, after huggingface_hub was imported
    assert download_model(REPO, endpoint=hub_url_of_dead_server(), progress=False) == folder
    assert len(hub.requests) == served


def hub_url_of_dead_server() -> str:
    with HubEmulator() as dead:
        url = dead.url
    return url


def test_endpoint_from_environment_is_read_at_call_time(hub, cache, tiny_files, monkeypatch):
    hub.add_commit(REPO, tiny_files[0])
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    folder = download_model(REPO, progress=False)
    assert _name(folder) == "tiny-v1" and hub.requests


def test_revision_pinning(hub, cache, tiny_files):
    first = hub.add_commit(REPO, tiny_files[0], ref="v1")
    hub.repos[REPO].refs["main"] = first
    second = hub.add_commit(REPO, tiny_files[1], ref="main")
    assert _name(download_model(REPO, endpoint=hub.url, progress=False)) == "tiny-v2"
    pinned = download_model(f"{REPO}@{first}", endpoint=hub.url, progress=False)
    assert pinned.name == first and _name(pinned) == "tiny-v1"
    assert _name(download_model(REPO, revision="v1", endpoint=hub.url, progress=False)) == "tiny-v1"
    assert download_model(f"{REPO}@{second}", offline=True, progress=False).name == second


def test_clear_errors(hub, cache, tiny_files):
    hub.add_commit(REPO, tiny_files[0])
    hub.add_commit("epigraf-test/not-a-model", {"README.md": b"# hello"})
    with pytest.raises(ModelNotFoundError, match="Hub repo epigraf-test/missing not found"):
        download_model("epigraf-test/missing", endpoint=hub.url, progress=False)
    with pytest.raises(ModelNotFoundError, match="revision 'nope' not found"):
        download_model(f"{REPO}@nope", endpoint=hub.url, progress=False)
    with pytest.raises(ModelNotFoundError, match="not an epigraf-tools model folder"):
        download_model("epigraf-test/not-a-model", endpoint=hub.url, progress=False)
    with pytest.raises(EpigrafError, match="could not reach .* and it is not cached"):
        download_model(REPO, endpoint=hub_url_of_dead_server(), progress=False)
    with pytest.raises(EpigrafError, match="HF_HUB_OFFLINE=1 forbids downloading"):
        download_model(REPO, offline=True, progress=False)


def test_private_repo_needs_a_token(hub, cache, tiny_files):
    hub.add_commit("epigraf-test/private", tiny_files[0], private_token="hf_secret")
    with pytest.raises(ModelNotFoundError, match="HF_TOKEN"):
        download_model("epigraf-test/private", endpoint=hub.url, progress=False)
    folder = download_model("epigraf-test/private", endpoint=hub.url, token="hf_secret", progress=False)
    assert _name(folder) == "tiny-v1"


def test_checksum_mismatch_is_refused_and_deletes_nothing(hub, cache, tiny_files):
    hub.add_commit(REPO, tiny_files[0])
    good = {"model.safetensors": hashlib.sha256(tiny_files[0]["model.safetensors"]).hexdigest()}
    hub.corrupt.add((REPO, "model.safetensors"))
    with pytest.raises(ChecksumMismatchError, match="model.safetensors has SHA-256 .* refusing to use it"):
        download_model(REPO, endpoint=hub.url, sha256=good, progress=False)
    snapshot = next((cache / "models--epigraf-test--tiny" / "snapshots").iterdir())
    assert (snapshot / "config.json").is_file() and (snapshot / "model.safetensors").is_file()  # nothing deleted
    with pytest.raises(ChecksumMismatchError):  # still refused from the cache, even offline
        download_model(REPO, offline=True, sha256=good, progress=False)
    hub.corrupt.clear()
    folder = download_model(REPO, endpoint=hub.url, sha256=good, force=True, progress=False)
    assert Generator.from_pretrained(folder).config.name == "tiny-v1"


def test_hand_made_offline_cache(cache, tiny_files, monkeypatch):
    sha = "0123456789abcdef0123456789abcdef01234567"
    root = cache / "models--someone--tiny"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(sha)
    snapshot = root / "snapshots" / sha
    snapshot.mkdir(parents=True)
    for name, data in tiny_files[1].items():
        (snapshot / name).write_bytes(data)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_model("someone/tiny", progress=False) == snapshot
    digest = hashlib.sha256(tiny_files[1]["model.safetensors"]).hexdigest()
    assert download_model(f"someone/tiny@{sha}", sha256={"model.safetensors": digest}, progress=False) == snapshot


def test_spec_parsing():
    assert parse_hub_spec("org/name") == HubSpec("org/name", None)
    assert parse_hub_spec("org/name@v1.0") == HubSpec("org/name", "v1.0")
    assert str(parse_hub_spec("org/na-me.x@refs/pr/1")) == "org/na-me.x@refs/pr/1"
    for bad in ("name", "org/", "/abs/path", "org/name@", "a/b/c", "org/../x", "org/name@bad rev"):
        assert not is_hub_spec(bad)
        with pytest.raises(EpigrafError, match="not a Hub model id|not a valid Hub repo id"):
            parse_hub_spec(bad)


def test_push_folder_creates_the_repo_and_uploads(monkeypatch, tmp_path):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, endpoint=None, token=None):
            calls.append(("init", endpoint, token))

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls.append(("create", repo_id, private, exist_ok))

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls.append(("upload", repo_id, folder_path, commit_message))
            return type("Info", (), {"commit_url": f"https://hub/{repo_id}/commit/1"})()

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    url = push_folder(tmp_path, "me/converted", private=True, token="hf_x", endpoint="http://hub")
    assert url == "https://hub/me/converted/commit/1"
    assert calls[1] == ("create", "me/converted", True, True)
    assert calls[2][:3] == ("upload", "me/converted", str(tmp_path))
    with pytest.raises(EpigrafError, match="without @revision"):
        push_folder(tmp_path, "me/converted@main")


# ----------------------------------------------------------------------------- hostile revisions and servers
@pytest.mark.parametrize(
    "revision",
    [
        "../../x",
        "..",
        "/etc/passwd",
        "a/../b",
        "main/",
        ".hidden",
        "x.lock",
        "a b",
        "a\x00b",
        "a\\b",
        "a~1",
        "@",
        "x" * 300,
    ],
)
def test_revisions_that_could_escape_the_cache_are_refused(cache, revision):
    with pytest.raises(EpigrafError, match="not a valid branch, tag or commit"):
        download_model(REPO, revision=revision, endpoint="http://127.0.0.1:9")
    assert not (cache / "x").exists() and not (cache.parent / "x").exists()  # where refs/../../x would land


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/1", "feature/a-b_c", "a" * 40])
def test_ordinary_revisions_are_accepted(revision):
    from epigraf_tools.checkpoints.hub import validate_revision

    assert validate_revision(revision) == revision
    assert parse_hub_spec(f"org/name@{revision}").revision == revision


@pytest.fixture()
def fast_timeouts(monkeypatch):
    """Small limits so hostile-server tests finish in a few seconds."""
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", "1")
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_STALL_S", "1.5")


@pytest.mark.parametrize(
    "mode, prefix, message",
    [
        ("hang", "/api/", "stalled"),
        ("drip", "/api/", "stalled"),
        ("hang", "/epigraf-test/tiny/resolve/", "stalled"),
        ("http500", "/api/", "500"),
        # a loop ends in 'too many redirects', or, when the client gives up mid-write, in a read error
        ("redirect-loop", "/api/", ("redirect", "could not reach")),
        ("not-json", "/api/", "not a Hub API response"),
        ("empty-json", "/api/", "not a Hub API response"),
        ("short-body", "/api/", "could not"),
    ],
)
def test_hostile_hub_servers_fail_fast_with_one_line(cache, tiny_files, fast_timeouts, mode, prefix, message):
    import time

    with HubEmulator() as hub:
        hub.add_commit(REPO, tiny_files[0])
        hub.fault(mode, prefix)
        start = time.monotonic()
        with pytest.raises(EpigrafError) as info:
            download_model(REPO, endpoint=hub.url, progress=False)
        elapsed = time.monotonic() - start
    text = str(info.value)
    assert any(m in text.lower() or m in text for m in ((message,) if isinstance(message, str) else message)), text
    assert "\n" not in text and elapsed < 20, (text, elapsed)
    assert not list(cache.rglob("*.incomplete"))


def test_corrupt_blob_without_checksum_is_a_clear_load_error(cache, tiny_files):
    from epigraf_tools.checkpoints.loading import load_model_folder

    with HubEmulator() as hub:
        hub.add_commit(REPO, tiny_files[0])
        hub.corrupt.add((REPO, "model.safetensors"))
        folder = download_model(REPO, endpoint=hub.url, progress=False)
    with pytest.raises(EpigrafError, match="model.safetensors is not a valid safetensors file"):
        load_model_folder(folder)
