"""``epigraf video``: tiny end-to-end runs (orbit, grid, keyframe file), bad arguments."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

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


@pytest.mark.parametrize("command", ["video", "sample"])
def test_a_trajectory_that_flies_into_the_slab_is_refused_before_any_output(cli, one_error_line, model_dir, tmp_path,
                                                                            command):  # fmt: skip
    path = tmp_path / "dolly.yaml"  # the default camera, then one inside the renderer's slab
    path.write_text("frames: 3\nkeyframes:\n  - {yaw: 0}\n  - {yaw: 0, radius: 0.05}\n")
    out = tmp_path / "never"
    line = one_error_line(cli([command, "--model", model_dir, "--trajectory", path, "--out", out, *FAST]))
    assert "inside the object's slab" in line and not out.exists()


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


def _first_frame(path) -> np.ndarray:
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    frame = np.frombuffer(next(reader), np.uint8).reshape(h, w, 3).astype(np.float64)
    reader.close()
    return frame


def test_video_layer_shows_one_colour_layer_as_sample_does(cli, tiny_model_dir, tmp_path):
    bg_model = tiny_model_dir(2, bg_model="sphere", bg_channel_base=64, bg_channel_max=16)
    still = tmp_path / "still.yaml"
    still.write_text("frames: 2\nkeyframes:\n  - {yaw: 0}\n  - {yaw: 0}\n")  # the default camera, held
    base = ["--model", bg_model, "--seeds", "1", "--resolution", "32", "--device", "cpu", "--quiet"]
    for layer in ("all", "fg", "bg"):
        res = cli(["video", *base, "--trajectory", still, "--crf", "0", "--layer", layer, "--out", tmp_path / layer])
        assert res.exit_code == 0, res.output
        assert json.loads((tmp_path / layer / "seed0001.json").read_text())["layer"] == layer
        res = cli(["sample", *base, "--layer", layer, "--out", tmp_path / f"s{layer}"])
        assert res.exit_code == 0, res.output
    # Each video's frame is (up to yuv420p chroma subsampling) the sample of its own layer, not another's.
    for layer in ("all", "fg", "bg"):
        frame = _first_frame(tmp_path / layer / "seed0001.mp4")
        gaps = {
            other: np.abs(frame - np.asarray(Image.open(tmp_path / f"s{other}" / "seed0001.png"), np.float64)).mean()
            for other in ("all", "fg", "bg")
        }
        assert min(gaps, key=gaps.get) == layer, gaps


def test_video_layer_errors_are_sample_s(cli, one_error_line, model_dir, tmp_path):
    res = cli(["video", "--model", model_dir, "--layer", "bg", "--frames", "2", "--out", tmp_path / "v", *FAST])
    one_error_line(res, "layer 'bg' needs a model with a background network")
    res = cli(["video", "--model", model_dir, "--layer", "sky", "--out", tmp_path / "v", *FAST])
    one_error_line(res, "layer must be one of all, fg, bg")
    res = cli(["video", "--model", model_dir, "--layer", "fg", "--shading", "geometry", "--out", tmp_path / "v", *FAST])
    one_error_line(res, "--layer picks a colour layer")
    assert not (tmp_path / "v").exists() or not list((tmp_path / "v").iterdir())
