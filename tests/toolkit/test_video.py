"""epigraf_tools/video.py: readable H.264 files with the right frames and size, CRF, atomic writes."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from epigraf_tools.errors import EpigrafError
from epigraf_tools.latents import ws_from_seeds
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.sampling import generate_samples
from epigraf_tools.trajectories import get_trajectory
from epigraf_tools.video import Mp4Writer, VideoOptions, count_frames, render_seed_frames, render_video, write_mp4

from support import assert_images_close, make_tiny_generator


def noisy_frames(n, h, w, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, i, axis=1) for i in range(n)]


def test_odd_sizes_are_padded_and_frames_counted(tmp_path):
    path = write_mp4(tmp_path / "odd.mp4", noisy_frames(7, 17, 33), VideoOptions(fps=10))
    assert count_frames(path) == 7
    frames = list(iio.imiter(path, plugin="FFMPEG"))
    assert len(frames) == 7 and frames[0].shape == (18, 34, 3)
    assert not list(tmp_path.glob(".*"))


def test_the_crf_given_is_the_crf_applied(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (4, 32, 32, 1), dtype=np.uint8).repeat(3, axis=-1)  # no chroma loss
    errors, sizes = [], []
    for crf in (0, 45):
        path = write_mp4(tmp_path / f"q{crf}.mp4", list(gray), VideoOptions(crf=crf))
        decoded = np.stack(list(iio.imiter(path, plugin="FFMPEG"))).astype(int)
        errors.append(np.abs(decoded - gray).mean())
        sizes.append(path.stat().st_size)
    assert errors[0] < 2 < 20 < errors[1]  # crf 0 is (near) lossless, crf 45 is not
    assert sizes[0] > 4 * sizes[1]


def test_failed_writes_leave_no_file(tmp_path):
    def broken():
        yield from noisy_frames(2, 16, 16)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError):
        write_mp4(tmp_path / "broken.mp4", broken())
    with pytest.raises(EpigrafError, match="one size"):
        write_mp4(tmp_path / "sizes.mp4", [np.zeros((16, 16, 3), np.uint8), np.zeros((8, 8, 3), np.uint8)])
    with pytest.raises(EpigrafError, match="no frames"):
        with Mp4Writer(tmp_path / "empty.mp4"):
            pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [(VideoOptions(fps=0), "fps"), (VideoOptions(crf=60), "crf")])
def test_option_validation(options, message):
    with pytest.raises(EpigrafError, match=message):
        options.validate()


def test_render_video_per_seed_and_grid(tmp_path):
    G = make_tiny_generator()
    cams, _ = get_trajectory("front_circle", frames=6, config=G.config)
    settings = RenderSettings(resolution=16)
    files = render_video(G, [0, 1, 2], cams, tmp_path, depth=True, settings=settings, batch_size=4)
    assert {f.name for f in files} == {
        f"seed000{s}{suffix}" for s in range(3) for suffix in (".mp4", "_depth.mp4", ".json")
    }
    for name in ("seed0001.mp4", "seed0001_depth.mp4"):
        assert count_frames(tmp_path / name) == 6
        assert iio.improps(tmp_path / name, plugin="FFMPEG").shape[-3:] == (16, 16, 3)
    meta = json.loads((tmp_path / "seed0001.json").read_text())
    assert meta["frames"] == 6 and meta["seeds"] == [1] and len(meta["cameras"]) == 6
    grid = render_video(G, [0, 1, 2], cams, tmp_path / "g", grid=True, settings=settings, columns=3)
    assert [f.name for f in grid] == ["grid.mp4", "grid.json"]
    first = next(iter(iio.imiter(tmp_path / "g" / "grid.mp4", plugin="FFMPEG")))
    assert first.shape == (16, 48, 3)
    assert not list((tmp_path / "g").glob(".*"))


def test_video_frames_are_the_sample_images_of_their_cameras():
    G = make_tiny_generator()
    cams, _ = get_trajectory("points", config=G.config)
    settings = RenderSettings(resolution=16)
    ws, _ = ws_from_seeds(G, [6])
    frames = [f for f, _ in render_seed_frames(G, ws, 6, cams, settings, batch_size=2)]
    samples = [s.image for s in generate_samples(G, [6], cams, settings=settings)]
    for f, s in zip(frames, samples, strict=True):  # 2 cameras a batch vs all 6: other GEMM kernels
        assert_images_close(f, s)


def test_two_grid_runs_into_one_folder_both_succeed(tmp_path, monkeypatch):
    """A second run starting while the first renders must not delete the first run's frames."""
    import epigraf_tools.video as video

    G = make_tiny_generator()
    cams, _ = get_trajectory("front_circle", frames=3, config=G.config)
    settings = RenderSettings(resolution=16)
    out = tmp_path / "g"
    render = video.render_seed_frames
    inner: list = []

    def render_and_start_another_run(*args, **kwargs):
        if not inner:  # while the outer run renders its first seed, a whole second run writes into out
            inner.append(None)
            inner[0] = render_video(G, [5, 6], cams, out, grid=True, settings=settings)
        yield from render(*args, **kwargs)

    monkeypatch.setattr(video, "render_seed_frames", render_and_start_another_run)
    outer = render_video(G, [0, 1], cams, out, grid=True, settings=settings)
    assert [f.name for f in outer] == [f.name for f in inner[0]] == ["grid.mp4", "grid.json"]
    assert json.loads((out / "grid.json").read_text())["seeds"] == [0, 1]  # the later finisher's file
    assert count_frames(out / "grid.mp4") == 3
    assert not list(out.glob(".*"))


def test_interrupted_grid_run_removes_its_scratch_folder(tmp_path, monkeypatch):
    import epigraf_tools.video as video

    G = make_tiny_generator()
    cams, _ = get_trajectory("front_circle", frames=3, config=G.config)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C, or SIGTERM under the CLI, raises mid-render
        yield  # pragma: no cover

    monkeypatch.setattr(video, "render_seed_frames", interrupted)
    with pytest.raises(KeyboardInterrupt):
        render_video(G, [0, 1], cams, tmp_path, grid=True, settings=RenderSettings(resolution=16))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def eg3d_model():
    from eg3d_fixture import load_meta, load_npz, mini_config

    from epigraf_tools.eg3d_model import as_toolkit_model
    from epigraf_tools.models.eg3d import EG3DGenerator

    G = EG3DGenerator(mini_config(load_meta())).eval().requires_grad_(False)
    G.load_state_dict({k: torch.from_numpy(v) for k, v in load_npz("G_ema_state.npz").items()}, strict=True)
    return as_toolkit_model(G)


def test_view_conditioned_frames_are_the_view_conditioned_samples(eg3d_model):
    """Frame i of a --condition-on-view video is `sample --condition-on-view` from camera i, and differs from
    the frontally conditioned frame (so the conditioning really moves with the camera)."""
    from epigraf_tools.eg3d_model import conditioned_on
    from epigraf_tools.latents import Truncation
    from epigraf_tools.video import view_conditioned_ws

    G, seed, trunc = eg3d_model, 3, Truncation(0.7)
    cams, _ = get_trajectory("yaw_sweep", 3)
    settings = RenderSettings(raw=True, resolution=16)
    ws = view_conditioned_ws(G, seed, cams, trunc)
    assert ws.shape[0] == 3 and not torch.equal(ws[0], ws[1])
    frames = [f for f, _ in render_seed_frames(G, ws, seed, cams, settings, batch_size=2)]
    shared = [f for f, _ in render_seed_frames(G, ws_from_seeds(G, [seed], trunc)[0], seed, cams, settings, 2)]
    for cam, frame, plain in zip(cams, frames, shared, strict=True):
        (sample,) = generate_samples(conditioned_on(G, cam), [seed], [cam], trunc, settings=settings)
        assert_images_close(frame, sample.image)  # other batch shapes: at most 1 level on 1% of the values
        assert np.abs(frame.astype(int) - plain.astype(int)).max() > 8


def test_condition_on_view_refuses_an_epigraf_model(tmp_path):
    G = make_tiny_generator(0)
    cams, _ = get_trajectory("orbit", 2)
    with pytest.raises(EpigrafError, match="only EG3D models condition"):
        render_video(G, [0], cams, tmp_path / "v", condition_on_view=True)
    assert not (tmp_path / "v").exists()
