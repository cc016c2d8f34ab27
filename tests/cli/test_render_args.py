"""cli/render_args.py: the rendering commands' checks before loading, model loading, output folders, progress."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.cli.render_args import (
    CameraArgs,
    build_camera,
    check_camera_values,
    check_common,
    check_request,
    load_model,
    load_request,
    prepare_out,
    progress_bar,
    seeds_from_text,
    video_options,
)
from epigraf_tools.errors import EpigrafError
from epigraf_tools.latents import Truncation
from epigraf_tools.rendering import RenderSettings


def test_seeds_from_text():
    assert seeds_from_text("0-2,5") == [0, 1, 2, 5]
    with pytest.raises(EpigrafError, match="bad seed"):
        seeds_from_text("x")


def test_check_common_returns_validated_settings():
    trunc, settings = check_common(0.7, 4, 64, 2)
    assert isinstance(trunc, Truncation) and isinstance(settings, RenderSettings)
    assert (trunc.psi, trunc.cutoff, settings.resolution) == (0.7, 4, 64)


@pytest.mark.parametrize(
    "args, message",
    [
        ((2.5, None, None, 1), r"\[0, 2\]"),
        ((1.0, None, 0, 1), "resolution"),
        ((1.0, None, None, 0), "--batch-size must be a positive integer, got 0"),
        ((1.0, None, None, True), "--batch-size must be a positive integer"),
    ],
)
def test_check_common_refuses_bad_values(args, message):
    with pytest.raises(EpigrafError, match=message):
        check_common(*args)


def test_camera_values_are_range_checked_without_a_model():
    check_camera_values(0.3, 1.5, 12.0, 2.7, "0,0,0.1", False)
    check_camera_values(None, None, None, None, None, False)
    with pytest.raises(EpigrafError, match="pitch"):
        check_camera_values(None, 95.0, None, None, None, False)
    with pytest.raises(EpigrafError, match="look"):
        check_camera_values(None, None, None, None, "1,2", False)


def test_load_model_and_build_camera(model_dir):
    G, name = load_model(str(model_dir), "cpu", quiet=True)
    assert name == str(model_dir) and next(G.parameters()).device == torch.device("cpu")
    camera = build_camera(G.config, 10.0, 80.0, None, None, None, True)
    assert camera.yaw == pytest.approx(torch.pi * 10 / 180) and camera.fov == pytest.approx(G.config.fov)


def test_check_request_checks_everything_before_a_model():
    seeds, trunc, settings = check_request(
        "0-1", 0.7, None, 32, 2, True, CameraArgs(None, None, None, None, None, False)
    )
    assert seeds == [0, 1] and trunc.psi == 0.7 and settings.deterministic and settings.resolution == 32
    with pytest.raises(EpigrafError, match="pitch"):
        check_request("0", 1.0, None, None, 1, False, CameraArgs(None, 95.0, None, None, None, False))


def test_load_request_loads_checks_and_prepares(model_dir, tmp_path):
    camera = CameraArgs(10.0, 80.0, None, None, None, True)
    req = load_request(str(model_dir), "cpu", True, Truncation(0.7), None, camera, tmp_path / "o")
    assert req.label == str(model_dir) and req.class_index is None and req.out.is_dir()
    assert req.camera.yaw == pytest.approx(torch.pi * 10 / 180)
    with pytest.raises(EpigrafError):  # the cutoff is checked against the loaded model's num_ws
        load_request(str(model_dir), "cpu", True, Truncation(0.7, 10_000), None, camera, tmp_path / "o")


def test_video_options_prefers_the_flag_then_the_file():
    assert video_options(None, 18, {}).fps == 30.0
    assert video_options(None, 18, {"fps": 24.0}).fps == 24.0
    assert video_options(60.0, 18, {"fps": 24.0}).fps == 60.0


def test_prepare_out(tmp_path):
    assert prepare_out(tmp_path / "a" / "b").is_dir()
    (tmp_path / "f").write_text("")
    with pytest.raises(EpigrafError, match="cannot create --out"):
        prepare_out(tmp_path / "f" / "x")


def test_progress_bar(capsys):
    with progress_bar("render", quiet=True) as update:
        update(1, 2)
    assert capsys.readouterr() == ("", "")
    with progress_bar("render", quiet=False) as update:
        update(2, 2)
    out, err = capsys.readouterr()
    assert out == "" and "render" in err and "2/2" in err
