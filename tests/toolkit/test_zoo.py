"""The model zoo: honest entries, the embedded default, official checkpoints fetched from their share
page (emulated) and converted once, and Hub entries with pinned revisions and checksums."""

from __future__ import annotations

import hashlib
import os

import pytest
import torch
from hub_emulator import HubEmulator, YandexDiskEmulator, isolate_hub_env, model_files
from official_pickle_factory import generator_snapshot_bytes

from epigraf_tools.checkpoints import zoo
from epigraf_tools.checkpoints.hub import ChecksumMismatchError
from epigraf_tools.errors import EpigrafError, ModelNotFoundError
from epigraf_tools.models import Generator

from support import make_tiny_generator


@pytest.fixture()
def env(monkeypatch, tmp_path):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    monkeypatch.setenv("EPIGRAF_CACHE", str(tmp_path / "epigraf-cache"))
    monkeypatch.setattr(zoo, "ZOO", dict(zoo.ZOO))  # entries registered by a test stay in that test
    return tmp_path


@pytest.fixture()
def share(monkeypatch):
    with YandexDiskEmulator() as emulator:
        monkeypatch.setenv("EPIGRAF_YADISK_API", emulator.api)
        yield emulator


def test_official_entries_are_honest():
    for name, res, classes in (("ffhq512", 512, 0), ("plants256", 256, 198), ("food256", 256, 10)):
        entry = zoo.get_entry(name)
        assert entry.kind == "official-pickle" and entry.hub_repo is None  # no official Hub copy exists
        assert entry.source.startswith("https://disk.yandex.ru/d/")
        assert "NVIDIA" in entry.licence and "non-commercial" in entry.licence
        assert (entry.resolution, entry.num_classes) == (res, classes)
    assert zoo.get_entry("FFHQ512").name == "ffhq512"


def test_default_not_installed_is_one_clear_line(env, monkeypatch):
    monkeypatch.setattr(zoo, "embedded_model_dir", lambda: env / "assets" / "default")
    with pytest.raises(ModelNotFoundError, match="embedded default model is not installed") as info:
        zoo.resolve_zoo_model("default")
    assert "\n" not in str(info.value)
    assert zoo.entry_info(zoo.get_entry("default"))["status"] == "not installed"


def test_default_when_installed(env, monkeypatch):
    folder = make_tiny_generator(5).save_pretrained(env / "assets" / "default")
    monkeypatch.setattr(zoo, "embedded_model_dir", lambda: folder)
    assert zoo.resolve_zoo_model("default") == folder
    info = zoo.entry_info(zoo.get_entry("default"))
    assert (info["status"], info["resolution"], info["classes"]) == ("installed", 32, 0)


def test_official_entry_is_fetched_converted_once_and_reused_offline(env, share):
    G = make_tiny_generator(7)
    data = generator_snapshot_bytes(G, with_optimizers=False)
    share.publish(zoo.get_entry("ffhq512").source, "network-snapshot-005000.pkl", data)
    stages = []
    folder = zoo.resolve_zoo_model("ffhq512", progress=lambda stage, done, total: stages.append(stage))
    assert folder == env / "epigraf-cache" / "converted" / "ffhq512"
    assert torch.equal(Generator.from_pretrained(folder).mapping.w_avg, G.mapping.w_avg)
    card = (folder / "README.md").read_text()
    assert "https://disk.yandex.ru/d/XJ0k9-kQyHouwQ" in card and hashlib.sha256(data).hexdigest() in card
    assert any(s.startswith("download") for s in stages) and any(s.startswith("convert") for s in stages)
    assert not (env / "epigraf-cache" / "downloads" / "ffhq512").exists()  # the pickle is not kept by default
    served = len(share.requests)
    assert zoo.resolve_zoo_model("ffhq512", offline=True) == folder
    assert len(share.requests) == served
    assert zoo.entry_info(zoo.get_entry("ffhq512"))["status"] == "converted"


def test_official_entry_from_a_shared_folder_keeping_the_pickle(env, share):
    G = make_tiny_generator(8)
    url = zoo.get_entry("food256").source
    share.publish_folder(url, {"readme.txt": b"hi", "food.pkl": generator_snapshot_bytes(G, with_optimizers=False)})
    folder = zoo.resolve_zoo_model("food256", keep_pickle=True)
    assert (env / "epigraf-cache" / "downloads" / "food256" / "food.pkl").is_file()
    assert Generator.from_pretrained(folder).config.z_dim == G.config.z_dim


def test_official_entry_checksum_mismatch_converts_nothing(env, share):
    url = zoo.get_entry("plants256").source
    share.publish(url, "plants.pkl", generator_snapshot_bytes(make_tiny_generator(), with_optimizers=False))
    share.reported_sha256["plants.pkl"] = "0" * 64
    with pytest.raises(EpigrafError, match="SHA-256 .* expected 0000000000000000.*discarded"):
        zoo.resolve_zoo_model("plants256")
    assert not (env / "epigraf-cache" / "converted" / "plants256").exists()
    assert not list((env / "epigraf-cache" / "downloads" / "plants256").glob("*"))


def test_official_entry_errors_point_to_the_manual_route(env, share):
    with pytest.raises(EpigrafError, match="offline mode is on.*disk.yandex.ru"):
        zoo.resolve_zoo_model("ffhq512", offline=True)
    with pytest.raises(EpigrafError, match="could not fetch ffhq512 from its share page .*spec=FILE.pkl"):
        zoo.resolve_zoo_model("ffhq512")  # nothing published: the share service answers 404


def test_hub_entry_with_pinned_revision_and_checksum(env, monkeypatch):
    files = model_files(make_tiny_generator(9).save_pretrained(env / "tiny"))
    with HubEmulator() as hub:
        pinned = hub.add_commit("zoo/tiny", files)
        hub.add_commit("zoo/tiny", model_files(make_tiny_generator(10).save_pretrained(env / "other")))
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        digest = hashlib.sha256(files["model.safetensors"]).hexdigest()
        zoo.register_entry(
            zoo.ZooEntry(
                "tiny",
                "Tiny test model",
                "hub",
                source="test",
                licence="MIT",
                hub_repo="zoo/tiny",
                revision=pinned,
                sha256={"model.safetensors": digest},
            )
        )
        folder = zoo.resolve_zoo_model("tiny", hub_progress=False)
        assert folder.name == pinned
        assert zoo.entry_info(zoo.get_entry("tiny"))["status"] == "cached"
        zoo.register_entry(
            zoo.ZooEntry(
                "tiny-bad",
                "Tampered",
                "hub",
                source="test",
                licence="MIT",
                hub_repo="zoo/tiny",
                revision=pinned,
                sha256={"model.safetensors": "f" * 64},
            )
        )
        with pytest.raises(ChecksumMismatchError):
            zoo.resolve_zoo_model("tiny-bad", hub_progress=False)


def test_unknown_name_and_registry_rules():
    with pytest.raises(ModelNotFoundError, match="not in the model zoo"):
        zoo.resolve_zoo_model("nope")
    with pytest.raises(ValueError, match="already exists"):
        zoo.register_entry(zoo.get_entry("ffhq512"))
    with pytest.raises(ValueError, match="needs hub_repo"):
        zoo.register_entry(zoo.ZooEntry("x", "x", "hub", source="s", licence="l"))


# ----------------------------------------------------------------------------- hostile share pages
HOSTILE_NAMES = [
    "../../evil.pkl",
    "../evil.pkl",
    "/tmp/evil.pkl",
    "..",
    ".",
    "",
    ".bashrc",
    "a\\..\\..\\evil.pkl",
    "evil\x00.pkl",
    "x" * 5000 + ".pkl",
    "sub/dir/evil.pkl",
    "\u202eevil.pkl",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_server_file_names_never_escape_the_download_folder(env, share, name):
    G = make_tiny_generator(11)
    share.publish(zoo.get_entry("ffhq512").source, name, generator_snapshot_bytes(G, with_optimizers=False))
    before = {p for p in env.rglob("*")}
    try:
        folder = zoo.resolve_zoo_model("ffhq512", keep_pickle=True)
    except EpigrafError as exc:  # refusing is fine too, as long as it is one line
        assert "\n" not in str(exc)
    else:
        assert folder == env / "epigraf-cache" / "converted" / "ffhq512"
    cache = (env / "epigraf-cache").resolve()
    downloads = cache / "downloads" / "ffhq512"
    allowed = (cache, downloads, cache / "converted", cache / "downloads", cache / ".ffhq512.lock")
    for path in {p for p in env.rglob("*")} - before:
        resolved = path.resolve()
        inside = resolved in allowed or any(resolved.is_relative_to(a) for a in (downloads, cache / "converted"))
        assert inside, path
        if resolved.is_relative_to(downloads) and resolved.is_file():
            assert not resolved.name.startswith(".") and len(resolved.name) <= 200, resolved.name
    assert not (env.parent / "evil.pkl").exists() and not os.path.exists("/tmp/evil.pkl")


@pytest.fixture()
def fast_timeouts(monkeypatch):
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", "1")
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_STALL_S", "1.5")


@pytest.mark.parametrize(
    "mode, prefix, message",
    [
        ("hang", "/v1/", "could not reach the share service"),
        ("drip", "/v1/", "stalled"),
        ("hang", "/files/", "failed"),
        ("drip", "/files/", "stalled"),
        ("short-body", "/files/", "incomplete"),
        ("http500", "/v1/", "HTTP 500"),
        ("http500", "/files/", "HTTP 500"),
        ("redirect-loop", "/v1/", "HTTP 302"),
        ("not-json", "/v1/", "not JSON"),
        ("empty-json", "/v1/", "does not point to a file or folder"),
    ],
)
def test_hostile_share_servers_fail_fast_with_one_line(env, share, fast_timeouts, monkeypatch, mode, prefix, message):
    import time

    if mode == "drip":  # a byte a second beats any socket timeout above 1 s: the stall watch must catch it
        monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", "5")

    share.publish(zoo.get_entry("ffhq512").source, "snap.pkl", b"x" * 5000)
    share.fault(mode, prefix)
    start = time.monotonic()
    with pytest.raises(EpigrafError) as info:
        zoo.resolve_zoo_model("ffhq512")
    elapsed = time.monotonic() - start
    text = str(info.value)
    assert message in text and "\n" not in text and elapsed < 15, (text, elapsed)
    downloads = env / "epigraf-cache" / "downloads"
    assert not downloads.exists() or not [p for p in downloads.rglob("*") if p.is_file()]  # no partial file
    assert not (env / "epigraf-cache" / "converted" / "ffhq512").exists()


def test_bad_timeout_setting_is_one_clear_error(env, share, monkeypatch):
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_STALL_S", "soon")
    with pytest.raises(EpigrafError, match="EPIGRAF_DOWNLOAD_STALL_S='soon' must be a positive number"):
        zoo.resolve_zoo_model("ffhq512")


def test_describe_model_lists_describes_checks_and_writes(tmp_path):
    import json

    folder = tmp_path / "m"
    make_tiny_generator(0).save_pretrained(folder)
    table = zoo.describe_model(device="cpu", out=tmp_path / "report")
    assert table == [zoo.entry_info(e) for e in zoo.zoo_entries()]
    assert json.loads((tmp_path / "report" / "models.json").read_text())[0]["name"] == table[0]["name"]
    info = zoo.describe_model(str(folder), check=True, device="cpu", progress=False)
    assert info["kind"] == "folder" and info["config"]["img_resolution"] == info["check"]["img_resolution"]
    assert info["check"]["parameters"] > 0 and info["check"]["device"] == "cpu"
    with pytest.raises(EpigrafError, match="check=True needs a model spec"):
        zoo.describe_model(check=True)
    (tmp_path / "file").write_text("")
    with pytest.raises(EpigrafError, match="out .* exists and is not a folder"):
        zoo.describe_model(out=tmp_path / "file")


def test_eg3d_entries_name_their_ngc_files_and_licence():
    names = ["ffhq512-64", "ffhq512-128", "ffhqrebalanced512-64", "ffhqrebalanced512-128", "afhqcats512-128"]
    for file in [*names, "shapenetcars128-64"]:
        entry = zoo.get_entry(f"eg3d-{file}")
        assert entry.kind == "official-pickle" and entry.hub_repo is None
        assert entry.url == f"https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/versions/1/files/{file}.pkl"
        assert entry.source == "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d"
        assert entry.licence == "NVIDIA Source Code License (non-commercial)"
        assert not entry.sha256 and entry.download_mb is None  # NVIDIA publishes neither; we invent none
        assert zoo.entry_info(entry)["status"] == "fetched on first use"
    assert zoo.get_entry("eg3d-shapenetcars128-64").resolution == 128


def test_eg3d_entry_is_downloaded_from_its_url_and_converted_safely(env, share):
    import dataclasses

    import eg3d_fixture
    from eg3d_pickle_factory import fixture_snapshot_bytes

    from epigraf_tools.models.eg3d import EG3DGenerator

    g_state = {k: torch.from_numpy(v) for k, v in eg3d_fixture.load_npz("G_ema_state.npz").items()}
    share.publish("ngc", "ffhq512-128.pkl", fixture_snapshot_bytes(eg3d_fixture.load_meta(), g_state))
    entry = dataclasses.replace(zoo.get_entry("eg3d-ffhq512-128"), url=f"{share.url}/files/ngc/ffhq512-128.pkl")
    zoo.register_entry(entry, replace=True)
    folder = zoo.resolve_zoo_model("eg3d-ffhq512-128")
    assert folder == env / "epigraf-cache" / "converted" / "eg3d-ffhq512-128"
    G = EG3DGenerator.from_pretrained(folder)
    torch.testing.assert_close(G.backbone.mapping.w_avg, g_state["backbone.mapping.w_avg"])
    assert "catalog.ngc.nvidia.com" in (folder / "README.md").read_text()
    assert zoo.entry_info(zoo.get_entry("eg3d-ffhq512-128"))["status"] == "converted"
    zoo.register_entry(dataclasses.replace(entry, name="eg3d-missing", url=f"{share.url}/files/ngc/none.pkl"))
    with pytest.raises(EpigrafError, match="could not fetch eg3d-missing from http.*none.pkl.*spec=FILE.pkl"):
        zoo.resolve_zoo_model("eg3d-missing")
