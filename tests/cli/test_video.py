"""``epigraf video``: tiny end-to-end runs (orbit, grid, keyframe file), bad arguments."""

from __future__ import annotations

import pytest

from epigraf_tools.video import count_frames

FAST = ["--resolution", "16", "--device", "cpu", "--quiet"]


def test_video_end_to_end(cli, model_dir, tmp_path):
    res = cli(["video", "--model", model_dir, "--seeds", "3", "--trajectory", "orbit", "--frames", "5",
               "--depth", "--out", tmp_path / "v", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "v" / "seed0003.mp4") == 5 and (tmp_path / "v" / "seed0003_depth.mp4").is_file()
    res = cli(["video", "--model", model_dir, "--seeds", "0-3", "--grid", "--trajectory", "wiggle", "--frames", "4",
               "--out", tmp_path / "g", *FAST])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "g" / "grid.mp4") == 4


def test_keyframe_file_trajectory(cli, model_dir, tmp_path):
    path = tmp_path / "path.yaml"
    path.write_text("frames: 4\nfps: 12\ndegrees: true\nkeyframes:\n  - {yaw: -20}\n  - {yaw: 20, radius: 1.2}\n")
    res = cli(["video", "--model", model_dir, "--trajectory", path, "--out", tmp_path / "k", *FAST])
    assert res.exit_code == 0, res.output
    assert count_frames(tmp_path / "k" / "seed0000.mp4") == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["video", "--frames", "-5"], "--frames must be a positive integer"),
        (["video", "--frames", "0"], "--frames must be a positive integer"),
        (["video", "--truncation", "-0.1"], r"psi must lie in \[0, 2\]"),
        (["video", "--seeds", "-3"], "out of range"),
        (["video", "--trajectory", "spiral"], "unknown trajectory 'spiral'"),
        (["video", "--crf", "70"], "crf"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_and_no_files(cli, one_error_line, model_dir, tmp_path, args, message):
    out = tmp_path / "never"
    res = cli([*args, "--model", model_dir, "--out", out, "--device", "cpu"])
    one_error_line(res, match=message, stream="output")
    assert not out.exists()


def test_help_has_examples(cli):
    res = cli(["video", "--help"])
    assert res.exit_code == 0 and "Examples" in res.output and "epigraf video" in res.output


def test_video_shading_geometry(cli, model_dir, tmp_path):
    args = ["video", "--model", model_dir, "--seeds", "2", "--trajectory", "orbit", "--frames", "4", "--quiet"]
    result = cli([*args, "--shading", "geometry", "--volume-resolution", "24", "--resolution", "16", "--out", tmp_path])
    assert result.exit_code == 0, result.output
    assert count_frames(tmp_path / "seed0002.mp4") == 4
    assert (tmp_path / "seed0002.json").is_file()


def test_video_geometry_refuses_depth(cli, one_error_line, model_dir, tmp_path):
    result = cli(["video", "--model", model_dir, "--shading", "geometry", "--depth", "--out", tmp_path / "v"])
    one_error_line(result, "--depth", "--shading geometry")
    assert not (tmp_path / "v").exists()
