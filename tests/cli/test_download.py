"""``epigraf download SPEC``: Hub models into the HF cache (emulated Hub), official zoo entries via
their share page (emulated), then offline use."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hub_emulator import HubEmulator, YandexDiskEmulator, isolate_hub_env, model_files
from official_pickle_factory import generator_snapshot_bytes

from epigraf_tools.checkpoints import zoo

from support import make_tiny_generator


@pytest.fixture()
def hub(tmp_path, monkeypatch):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    monkeypatch.setenv("EPIGRAF_CACHE", str(tmp_path / "epigraf-cache"))
    files = model_files(make_tiny_generator(12).save_pretrained(tmp_path / "src"))
    with HubEmulator() as emulator:
        emulator.add_commit("org/tiny", files)
        monkeypatch.setenv("HF_ENDPOINT", emulator.url)
        yield emulator, files


def test_download_hub_model_then_offline(cli, hub, tmp_path, monkeypatch):
    emulator, files = hub
    result = cli(["download", "org/tiny", "--device", "cpu", "--out", str(tmp_path / "copy")])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip().splitlines()[-1])
    assert folder.is_relative_to(tmp_path / "hf-cache") and (folder / "model.safetensors").is_file()
    assert "Checked:" in result.stdout
    assert (tmp_path / "copy" / "model.safetensors").read_bytes() == files["model.safetensors"]
    assert not (tmp_path / "copy" / "model.safetensors").is_symlink()
    served = len(emulator.requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    again = cli(["download", "--model", "org/tiny", "--no-verify"])
    assert again.exit_code == 0 and Path(again.stdout.strip()) == folder
    assert len(emulator.requests) == served


def test_checksum_option(cli, one_error_line, hub):
    _, files = hub
    good = hashlib.sha256(files["model.safetensors"]).hexdigest()
    assert cli(["download", "org/tiny", "--sha256", good, "-q"]).exit_code == 0
    assert "refusing to use it" in one_error_line(cli(["download", "org/tiny", "--sha256", "e" * 64, "-q"]))
    assert "64 hexadecimal digits" in one_error_line(cli(["download", "org/tiny", "--sha256", "abc"]))


@pytest.mark.parametrize(
    "args, message",
    [
        (["org/missing"], "not found"),
        (["org/tiny@nope"], "revision 'nope' not found"),
        (["download-me"], "expected a zoo name"),
        ([], "missing SPEC"),
        (["ffhq512", "--sha256", "a" * 64], "--sha256 applies to Hub models"),
    ],
)
def test_errors(cli, one_error_line, hub, args, message):
    assert message in one_error_line(cli(["download", *args, "-q"]))


def test_local_paths_are_refused(cli, one_error_line, hub, tmp_path):
    folder = make_tiny_generator().save_pretrained(tmp_path / "local")
    assert "already a local folder" in one_error_line(cli(["download", str(folder)]))


def test_download_official_zoo_entry(cli, tmp_path, monkeypatch):
    isolate_hub_env(monkeypatch, tmp_path / "hf-cache")
    monkeypatch.setenv("EPIGRAF_CACHE", str(tmp_path / "epigraf-cache"))
    with YandexDiskEmulator() as share:
        monkeypatch.setenv("EPIGRAF_YADISK_API", share.api)
        share.publish(
            zoo.get_entry("plants256").source,
            "plants.pkl",
            generator_snapshot_bytes(make_tiny_generator(13), with_optimizers=False),
        )
        result = cli(["download", "plants256", "--keep-pickle"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "epigraf-cache" / "converted" / "plants256"
    assert Path(result.stdout.strip().splitlines()[-1]) == folder
    assert (tmp_path / "epigraf-cache" / "downloads" / "plants256" / "plants.pkl").is_file()
    assert "disk.yandex.ru" in (folder / "README.md").read_text()


# ----------------------------------------------------------------------------- hostile inputs
@pytest.mark.parametrize("revision", ["../../x", "/tmp/x", "a/../../x", ".."])
def test_revision_that_escapes_the_cache_is_refused_before_any_request(cli, one_error_line, hub, tmp_path, revision):
    emulator, _ = hub
    assert "not a valid branch, tag or commit" in one_error_line(cli(["download", "org/tiny", "--revision", revision]))
    assert emulator.requests == []
    assert not (tmp_path / "x").exists() and not (tmp_path / "hf-cache" / "x").exists()


def test_corrupt_download_without_sha256_is_exit_2(cli, one_error_line, hub):
    emulator, _ = hub
    emulator.corrupt.add(("org/tiny", "model.safetensors"))
    assert "model.safetensors is not a valid safetensors file" in one_error_line(cli(["download", "org/tiny"]))


@pytest.mark.parametrize(
    "mode, message",
    [
        ("empty-json", "not a Hub API response"),
        ("not-json", "not a Hub API response"),
        ("http500", "500"),
        ("redirect-loop", "redirect"),
        ("hang", "stalled"),
        ("drip", "stalled"),
    ],
)
def test_hostile_hub_answers_are_one_line_even_with_retries(
    cli, one_error_line, hub, monkeypatch, tmp_path, mode, message
):
    emulator, _ = hub
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_TIMEOUT_S", "1")
    monkeypatch.setenv("EPIGRAF_DOWNLOAD_STALL_S", "1.5")
    emulator.fault(mode, "/api/")
    result = cli(["download", "org/tiny", "--quiet"])
    assert message in one_error_line(result).lower() or message in result.stderr
    assert result.stdout == ""
    assert not list((tmp_path / "hf-cache").rglob("*.incomplete"))
