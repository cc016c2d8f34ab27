"""Bad values are one-line exit-2 errors before any model is loaded or any file is written."""

from __future__ import annotations

import pytest

from epigraf_tools.cli import export_mesh as export_mesh_module

from support import make_tiny_generator


def _no_model(*args, **kwargs):
    raise AssertionError("a model was loaded before the bad value was refused")


def test_huge_seed_range_is_exit_2_through_the_cli(cli, one_error_line, tmp_path):
    result = cli(["sample", "--seeds", "0-99999999999", "--out", str(tmp_path / "o"), "--quiet"])
    one_error_line(result, "100,000", stream="output")


@pytest.mark.parametrize("level", ["nan", "inf", "-inf"])
def test_non_finite_level_is_refused_before_any_work(cli, one_error_line, tmp_path, monkeypatch, level):
    monkeypatch.setattr(export_mesh_module, "load_model", _no_model)
    out = tmp_path / "o"
    result = cli(["export-mesh", "--seeds", "0", "--level", level, "--out", str(out)])
    one_error_line(result, "--level", "finite", stream="output")
    assert not out.exists()


def test_level_outside_the_range_writes_no_file(cli, one_error_line, tiny_model_dir, tmp_path):
    model = tiny_model_dir(5)
    out = tmp_path / "o"
    args = ["export-mesh", "--model", str(model), "--seeds", "0", "--resolution", "12", "--level", "9999"]
    result = cli([*args, "--out", str(out), "--quiet"])
    one_error_line(result, "outside the volume's value range [", stream="output")
    assert not out.exists() or not list(out.iterdir())


def test_grid_larger_than_memory_is_refused_even_with_force(cli, one_error_line, tmp_path, monkeypatch):
    monkeypatch.setattr(export_mesh_module, "load_model", _no_model)
    result = cli(["export-mesh", "--seeds", "0", "--resolution", "100000", "--force", "--out", str(tmp_path / "o")])
    one_error_line(result, "GiB", "--resolution", stream="output")


def test_volume_file_larger_than_the_free_disk_is_refused_even_with_force(cli, one_error_line, tmp_path, monkeypatch):
    from epigraf_tools.cli import export_volume as export_volume_module

    monkeypatch.setattr(export_volume_module, "load_model", _no_model)
    out = tmp_path / "o"
    result = cli(["export-volume", "--seeds", "0", "--resolution", "1000000", "--force", "--out", str(out)])
    one_error_line(result, "GiB free", "--resolution", stream="output")
    assert not out.exists()


def test_train_checks_the_dataset_before_loading_a_model(cli, one_error_line, tmp_path, monkeypatch):
    import epigraf_tools.checkpoints.loading as loading

    monkeypatch.setattr(loading, "load_generator", _no_model)
    model = tmp_path / "tiny"
    make_tiny_generator().save_pretrained(model)
    missing = tmp_path / "missing.zip"
    result = cli(["train", "--data", str(missing), "--model", str(model), "--out", str(tmp_path / "r")])
    one_error_line(result, "does not exist", stream="output")
    (tmp_path / "bad.zip").write_text("not a zip")
    result = cli(["train", "--data", str(tmp_path / "bad.zip"), "--out", str(tmp_path / "r")])
    one_error_line(result, "not a valid zip", stream="output")


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
def test_other_bad_values_are_one_line_exit_2(cli, one_error_line, tmp_path, args, needle):
    result = cli([*args, "--out", str(tmp_path / "o"), "--quiet"])
    one_error_line(result, needle, stream="output")
