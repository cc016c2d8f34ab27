"""Bad values are one-line exit-2 errors before any model is loaded or any file is written."""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from epigraf_tools.cli import export_mesh as export_mesh_module
from epigraf_tools.cli.app import app
from epigraf_tools.errors import EpigrafError
from epigraf_tools.seeds import MAX_SEEDS, parse_seeds

from support import make_tiny_generator

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_kernel_build(monkeypatch):
    monkeypatch.setenv("EPIGRAF_NO_KERNELS", "1")


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded before the bad value was refused")


def _one_line_exit_2(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for needle in needles:
        assert needle in lines[0], result.output


def test_seed_count_is_bounded_before_the_range_is_expanded():
    start = time.perf_counter()
    with pytest.raises(EpigrafError, match=f"at most {MAX_SEEDS:,}"):
        parse_seeds("0-99999999999")
    assert time.perf_counter() - start < 1.0  # refused by counting, not by building a list
    with pytest.raises(EpigrafError, match="at most"):
        parse_seeds(f"0-{MAX_SEEDS - 1},{MAX_SEEDS}")  # a single seed past the bound counts too
    assert len(parse_seeds(f"0-{MAX_SEEDS - 1}")) == MAX_SEEDS


def test_huge_seed_range_is_exit_2_through_the_cli(tmp_path):
    result = runner.invoke(app, ["sample", "--seeds", "0-99999999999", "--out", str(tmp_path / "o"), "--quiet"])
    _one_line_exit_2(result, "100,000")


@pytest.mark.parametrize("level", ["nan", "inf", "-inf"])
def test_non_finite_level_is_refused_before_any_work(tmp_path, monkeypatch, level):
    monkeypatch.setattr(export_mesh_module, "load_model", _no_model)
    out = tmp_path / "o"
    result = runner.invoke(app, ["export-mesh", "--seeds", "0", "--level", level, "--out", str(out)])
    _one_line_exit_2(result, "--level", "finite")
    assert not out.exists()


def test_level_outside_the_range_writes_no_file(tmp_path):
    model = tmp_path / "tiny"
    make_tiny_generator(5).save_pretrained(model)
    out = tmp_path / "o"
    args = ["export-mesh", "--model", str(model), "--seeds", "0", "--resolution", "12", "--level", "9999"]
    result = runner.invoke(app, [*args, "--out", str(out), "--quiet"])
    _one_line_exit_2(result, "outside the volume's value range [")
    assert not out.exists() or not list(out.iterdir())


def test_grid_larger_than_memory_is_refused_even_with_force(tmp_path, monkeypatch):
    monkeypatch.setattr(export_mesh_module, "load_model", _no_model)
    result = runner.invoke(
        app, ["export-mesh", "--seeds", "0", "--resolution", "100000", "--force", "--out", str(tmp_path / "o")]
    )
    _one_line_exit_2(result, "GiB", "--resolution")


def test_volume_file_larger_than_the_free_disk_is_refused_even_with_force(tmp_path, monkeypatch):
    from epigraf_tools.cli import export_volume as export_volume_module

    monkeypatch.setattr(export_volume_module, "load_model", _no_model)
    out = tmp_path / "o"
    result = runner.invoke(
        app, ["export-volume", "--seeds", "0", "--resolution", "1000000", "--force", "--out", str(out)]
    )
    _one_line_exit_2(result, "GiB free", "--resolution")
    assert not out.exists()


def test_train_checks_the_dataset_before_loading_a_model(tmp_path, monkeypatch):
    import epigraf_tools.checkpoints.loading as loading

    monkeypatch.setattr(loading, "load_generator", _no_model)
    model = tmp_path / "tiny"
    make_tiny_generator().save_pretrained(model)
    missing = tmp_path / "missing.zip"
    result = runner.invoke(app, ["train", "--data", str(missing), "--model", str(model), "--out", str(tmp_path / "r")])
    _one_line_exit_2(result, "does not exist")
    (tmp_path / "bad.zip").write_text("not a zip")
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "bad.zip"), "--out", str(tmp_path / "r")])
    _one_line_exit_2(result, "not a valid zip")


@pytest.mark.parametrize(
    "args, needle",
    [
        (["video", "--seeds", "0", "--frames", "0"], "--frames"),
        (["video", "--seeds", "0", "--frames", "-3"], "--frames"),
        (["video", "--seeds", "0", "--fps", "0"], "fps"),
        (["video", "--seeds", "0", "--fps", "nan"], "fps"),
        (["interpolate", "--seeds", "0,1", "--frames", "0"], "--frames"),
        (["sample", "--seeds", "0", "--resolution", "0"], "resolution"),
        (["sample", "--seeds", "0", "--resolution", "1000000"], "maximum"),
        (["sample", "--seeds", "0", "--truncation", "nan"], "truncation"),
        (["export-volume", "--seeds", "0", "--resolution", "0"], "resolution"),
        (["export-volume", "--seeds", "0", "--resolution", "1000000"], "--force"),
        (["export-mesh", "--seeds", "0", "--resolution", "1"], "resolution"),
    ],
)
def test_other_bad_values_are_one_line_exit_2(tmp_path, args, needle):
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "o"), "--quiet"])
    _one_line_exit_2(result, needle)
