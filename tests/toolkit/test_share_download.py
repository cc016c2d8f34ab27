"""epigraf_tools/checkpoints/share_download.py: safe file names, resolving a Yandex Disk public link, and streamed
downloads that verify size and SHA-256 and leave nothing half-written (against a local emulator)."""

from __future__ import annotations

import hashlib

import pytest
from hub_emulator import YandexDiskEmulator

from epigraf_tools.checkpoints.share_download import (
    DEFAULT_YANDEX_API,
    SharedFile,
    display_name,
    download_file,
    resolve_yandex_public,
    safe_child,
    yandex_api,
)
from epigraf_tools.errors import EpigrafError

LINK = "https://disk.yandex.ru/d/abc"
DATA = bytes(range(256)) * 64


@pytest.fixture()
def disk(monkeypatch):
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", "5")
    with YandexDiskEmulator() as emulator:
        monkeypatch.setenv("EPIGRAF_YADISK_API", emulator.api)
        yield emulator


def test_safe_child_refuses_paths():
    for name in ("../x", "/abs", "..", "", ".hidden", "a/b", "a\\b", "a\x00b", "x" * 300):
        with pytest.raises(EpigrafError, match="plain file name"):
            safe_child("/tmp/somewhere", name)


def test_safe_child_accepts_plain_names(tmp_path):
    assert safe_child(tmp_path, "network-snapshot-001.pkl") == tmp_path.resolve() / "network-snapshot-001.pkl"


@pytest.mark.parametrize(
    "name, shown",
    [("a/b/../model.pkl", "model.pkl"), ("C:\\x\\m.pkl", "m.pkl"), ("we$ird name?.pkl", "we_ird name_.pkl"),
     ("", "download.bin"), (None, "download.bin"), ("...", "download.bin"), ("x" * 500, "x" * 200)],
)  # fmt: skip
def test_display_name_is_a_harmless_basename(name, shown):
    assert display_name(name) == shown


def test_api_endpoint_from_the_environment(monkeypatch):
    monkeypatch.delenv("EPIGRAF_YADISK_API", raising=False)
    assert yandex_api() == DEFAULT_YANDEX_API
    monkeypatch.setenv("EPIGRAF_YADISK_API", "http://127.0.0.1:9/api")
    assert yandex_api() == "http://127.0.0.1:9/api"


def test_resolve_a_file_and_a_folder(disk):
    disk.publish(LINK, "network.pkl", DATA)
    shared = resolve_yandex_public(LINK)
    assert isinstance(shared, SharedFile)
    assert (shared.name, shared.size, shared.sha256) == ("network.pkl", len(DATA), hashlib.sha256(DATA).hexdigest())
    disk.publish_folder(LINK + "f", {"notes.txt": b"hi", "net.pkl": DATA})
    assert resolve_yandex_public(LINK + "f").name == "net.pkl"
    disk.publish_folder(LINK + "g", {"a.pkl": DATA, "b.pkl": DATA})
    with pytest.raises(EpigrafError, match="expected one .pkl file .*found a.pkl, b.pkl"):
        resolve_yandex_public(LINK + "g")
    with pytest.raises(EpigrafError, match="HTTP 404"):
        resolve_yandex_public(LINK + "missing")


def test_download_verifies_and_renames(disk, tmp_path):
    disk.publish(LINK, "network.pkl", DATA)
    shared = resolve_yandex_public(LINK)
    seen = []
    out = download_file(shared.href, tmp_path / "n.pkl", size=shared.size, sha256=shared.sha256,
                        progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert out == tmp_path / "n.pkl" and out.read_bytes() == DATA
    assert seen[-1] == (len(DATA), len(DATA)) and [p.name for p in tmp_path.iterdir()] == ["n.pkl"]


def test_a_wrong_checksum_or_size_keeps_no_file(disk, tmp_path):
    disk.publish(LINK, "network.pkl", DATA)
    href = resolve_yandex_public(LINK).href
    with pytest.raises(EpigrafError, match="has SHA-256 .* the file was discarded"):
        download_file(href, tmp_path / "n.pkl", size=len(DATA), sha256="0" * 64)
    with pytest.raises(EpigrafError, match="more than the 100 bytes it announced"):
        download_file(href, tmp_path / "n.pkl", size=100)
    with pytest.raises(EpigrafError, match=r"incomplete \(16384 of 20000 bytes\)"):
        download_file(href, tmp_path / "n.pkl", size=20000)
    assert list(tmp_path.iterdir()) == []


def test_a_partial_file_left_by_a_killed_process_is_completed(disk, tmp_path):
    disk.publish(LINK, "network.pkl", DATA)
    href = resolve_yandex_public(LINK).href
    (tmp_path / "n.pkl.part").write_bytes(DATA[:1000])
    out = download_file(href, tmp_path / "n.pkl", size=len(DATA), sha256=hashlib.sha256(DATA).hexdigest())
    assert out.read_bytes() == DATA and not (tmp_path / "n.pkl.part").exists()
    assert any(method == "GET" for method, _ in disk.requests)
