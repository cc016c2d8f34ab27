"""``epigraf models``: the zoo table, JSON output, describing and checking one model."""

from __future__ import annotations

import json

import pytest

from epigraf_tools.checkpoints import zoo

from support import make_tiny_generator


@pytest.fixture(autouse=True)
def no_default(tmp_path, monkeypatch):
    monkeypatch.setenv("EPIGRAF_CACHE", str(tmp_path / "epigraf-cache"))
    monkeypatch.setattr(zoo, "embedded_model_dir", lambda: tmp_path / "assets" / "default")


def test_table_lists_the_zoo_with_licences(cli):
    result = cli(["models"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("default", "ffhq512", "plants256", "food256", "NVIDIA-NC", "not installed"):
        assert name in result.stdout


def test_json_and_out_file(cli, tmp_path):
    result = cli(["models", "--json", "--out", str(tmp_path / "report")])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    eg3d = ["ffhq512-64", "ffhq512-128", "ffhqrebalanced512-64", "ffhqrebalanced512-128", "afhqcats512-128"]
    eg3d = [f"eg3d-{n}" for n in [*eg3d, "shapenetcars128-64"]]
    assert [r["name"] for r in rows] == ["default", "ffhq512", "plants256", "food256", *eg3d]
    assert json.loads((tmp_path / "report" / "models.json").read_text()) == rows
    ffhq = rows[1]
    assert (ffhq["resolution"], ffhq["classes"], ffhq["source"]) == (512, 0, "https://disk.yandex.ru/d/XJ0k9-kQyHouwQ")


def test_describe_and_check_a_folder(cli, tmp_path):
    folder = make_tiny_generator().save_pretrained(tmp_path / "tiny")
    result = cli(["models", "--model", str(folder), "--check", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["kind"] == "folder" and info["config"]["triplane_res"] == 16
    assert info["check"]["num_ws"] == 6 and info["check"]["parameters"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--check"], "--check needs --model"),
        (["--model", "no-such-model"], "expected a zoo name"),
        (["--model", "default", "--check"], "embedded default model is not installed"),
    ],
)
def test_errors_are_one_line(cli, args, message):
    result = cli(["models", *args])
    assert result.exit_code == 2 and message in result.stderr and len(result.stderr.strip().splitlines()) == 1
