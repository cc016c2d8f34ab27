"""Multi-view videos along a camera trajectory: the ``epigraf video`` command as a Python API.

Encoding: H.264 (libx264) in yuv420p through imageio-ffmpeg's bundled ffmpeg, with an explicit
``-crf`` (imageio's own ``quality`` knob is switched off, so the CRF you pass is the CRF ffmpeg uses),
``-movflags +faststart`` for streaming, and odd frame sizes padded by one black row/column (yuv420p
needs even sizes). Frames are rendered in batches of cameras and streamed to ffmpeg, so memory does
not grow with the number of frames. Every frame of a seed uses the seed's ray noise (no shimmer).
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path, temp_name, write_text_atomic
from .camera import Camera
from .distributed import DistContext, barrier, shard
from .eg3d_model import as_toolkit_model, conditioned_on
from .errors import EpigrafError
from .images import depth_to_uint8, gray_to_rgb, grid_columns, make_grid, pad_to_even, to_uint8
from .latents import SampleRequest, Truncation, provenance, ws_from_seeds
from .models import Generator
from .rendering import RenderSettings, check_cameras, prepare_field, render_views
from .sampling import IMAGE_ENCODING, Progress, background_ws, check_batch_size, family_provenance, planes_for

CRF_RANGE = (0, 51)


@dataclass(frozen=True)
class VideoOptions:
    """fps: frames per second; crf: x264 constant rate factor (0 lossless .. 51 worst; 18 looks clean)."""

    fps: float = 30.0
    crf: int = 18
    preset: str = "medium"

    def validate(self) -> VideoOptions:
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float)) or not 0 < self.fps <= 240:
            raise EpigrafError(f"fps must be a number in (0, 240], got {self.fps!r}")
        if isinstance(self.crf, bool) or not isinstance(self.crf, int) or not CRF_RANGE[0] <= self.crf <= CRF_RANGE[1]:
            raise EpigrafError(f"crf must be an integer in [0, 51] (lower = better quality), got {self.crf!r}")
        presets = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
        if self.preset not in presets:
            raise EpigrafError(f"unknown x264 preset {self.preset!r}; expected one of {', '.join(presets)}")
        return self


def check_frames(frames: int | None, name: str = "frames") -> int | None:
    if frames is None:
        return None
    if isinstance(frames, bool) or not isinstance(frames, int) or frames < 1:
        raise EpigrafError(f"{name} must be a positive integer, got {frames!r}")
    return frames


class Mp4Writer:
    """Stream uint8 frames [H, W, 3] into an H.264/yuv420p mp4 that appears only when complete.

    Use as a context manager; on an exception the partial file is removed. All frames must share one
    size; odd sizes are padded to even. ``comment`` goes into the container metadata.
    """

    def __init__(self, path: str | Path, options: VideoOptions = VideoOptions(), comment: str | None = None) -> None:
        self.path = Path(path)
        self.options = options.validate()
        self.params = ["-crf", str(options.crf), "-preset", options.preset, "-movflags", "+faststart"]
        if comment:
            self.params += ["-metadata", f"comment={comment}"]
        self.count = 0
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._atomic = None
        self._tmp: Path | None = None

    def __enter__(self) -> Mp4Writer:
        self._atomic = atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        return self

    def write(self, frame: np.ndarray) -> None:
        import imageio_ffmpeg

        frame = pad_to_even(np.ascontiguousarray(frame, dtype=np.uint8))
        if self._writer is None:
            self._size = frame.shape[:2]
            self._writer = imageio_ffmpeg.write_frames(
                str(self._tmp),
                (self._size[1], self._size[0]),
                fps=self.options.fps,
                codec="libx264",
                pix_fmt_out="yuv420p",
                quality=None,  # no imageio quality mapping: our -crf is the only rate control
                macro_block_size=1,  # we pad to even sizes ourselves instead of letting ffmpeg rescale
                output_params=self.params,
                ffmpeg_log_level="error",
            )
            self._writer.send(None)
        elif frame.shape[:2] != self._size:
            raise EpigrafError(f"video frames must share one size: {frame.shape[:2]} after {self._size}")
        self._writer.send(frame)
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if exc_type is None and self.count == 0:
                exc_type, exc = EpigrafError, EpigrafError("no frames to write")
                raise exc
        finally:
            self._atomic.__exit__(exc_type, exc, tb)


def write_mp4(
    path: str | Path, frames: Iterable[np.ndarray], options: VideoOptions = VideoOptions(), comment: str | None = None
) -> Path:
    """Encode uint8 frames [H, W, 3] to an H.264/yuv420p mp4 (atomically); returns the path."""
    with Mp4Writer(path, options, comment) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def count_frames(path: str | Path) -> int:
    """Decode the video's stream and count its frames (the bundled ffmpeg; no ffprobe needed)."""
    import imageio_ffmpeg

    return int(imageio_ffmpeg.count_frames_and_secs(str(path))[0])


def render_seed_frames(
    G: Generator,
    ws: torch.Tensor,
    seed: int,
    cameras: Sequence[Camera],
    settings: RenderSettings,
    batch_size: int,
    depth: bool = False,
    on_batch: Progress | None = None,
) -> Iterable[tuple[np.ndarray, np.ndarray | None]]:
    """Yield (frame uint8 [H, W, 3], depth frame uint8 [H, W, 3] or None) for one seed.

    ws: [1, num_ws, w_dim], one latent seen from every camera (its tri-planes are made once), or
    [len(cameras), num_ws, w_dim], one latent per frame (``view_conditioned_ws``: tri-planes per frame).
    """
    per_frame = ws.shape[0] > 1
    if per_frame and ws.shape[0] != len(cameras):
        raise EpigrafError(f"need one ws or one per camera ({len(cameras)}), got {ws.shape[0]}")
    if not per_frame:
        planes = planes_for(G, ws, settings.noise_mode)
        field = prepare_field(G, planes)  # once per seed, shared by every frame batch
        bg = background_ws(G, ws)
    near, far = G.config.ray_start, G.config.ray_end
    done = 0
    for start in range(0, len(cameras), batch_size):
        cams = list(cameras[start : start + batch_size])
        if per_frame:  # B latents, each rendered from its own camera only: out[:, 0] is the frame
            part = ws[start : start + len(cams)]
            planes = planes_for(G, part, settings.noise_mode)
            out = render_views(G, planes, [[c] for c in cams], settings, [seed] * len(cams), background_ws(G, part))
            out = {k: v[:, 0] for k, v in out.items()}
        else:  # one latent from B cameras: out[0] holds the frames
            out = render_views(G, planes, cams, settings, noise_keys=[seed], bg_ws=bg, field=field)
            out = {k: v[0] for k, v in out.items()}
        frames = to_uint8(out["image"])
        alpha = out["alpha"][:, 0].float().cpu().numpy()
        dist = out["depth"][:, 0].float().cpu().numpy()
        for i, cam in enumerate(cams):
            depth_frame = None
            if depth:
                shift = float(np.linalg.norm(cam.position)) - G.config.radius
                depth_frame = gray_to_rgb(depth_to_uint8(dist[i], alpha[i], near + shift, far + shift))
            yield frames[i], depth_frame
        done += len(cams)
        if on_batch is not None:
            on_batch(done, len(cameras))


def view_conditioned_ws(
    G: Generator, seed: int, cameras: Sequence[Camera], truncation: Truncation = Truncation()
) -> torch.Tensor:
    """An EG3D seed's ws with the mapping conditioned on each camera in turn: [len(cameras), num_ws, w_dim].

    Row i is what ``epigraf sample --condition-on-view`` maps for camera i, so frame i of such a video
    is that sample. (EG3D's own gen_videos.py conditions every frame on one fixed camera instead.)
    EpiGRAF models have no camera conditioning: refused by ``conditioned_on``.
    """
    return torch.cat([ws_from_seeds(conditioned_on(G, cam), [seed], truncation)[0] for cam in cameras])


def video_metadata(
    G: Generator,
    seeds: Sequence[int],
    classes: Sequence[int | None],
    cameras: Sequence[Camera],
    truncation: Truncation,
    settings: RenderSettings,
    options: VideoOptions,
    trajectory: str | None,
    model: str | None,
    condition_on_view: bool = False,
) -> dict[str, Any]:
    meta = {
        **provenance(G, model, truncation, list(seeds), list(classes)),
        "trajectory": trajectory,
        "frames": len(cameras),
        "fps": options.fps,
        "crf": options.crf,
        "codec": "h264 (libx264), yuv420p",
        "resolution": settings.resolved_resolution(G),
        "deterministic": settings.deterministic,
        "noise_mode": settings.noise_mode,
        "layer": settings.layer,
        "ray_noise": "none" if settings.deterministic else "torch.Generator().manual_seed(seed), shared by all frames",
        "image_encoding": IMAGE_ENCODING,
        "cameras": [c.to_dict() for c in cameras],
        **family_provenance(G, settings),
    }
    if condition_on_view:  # not one label for the video: each frame's camera's own
        meta.pop("eg3d_conditioning_label", None)
        meta["eg3d_conditioning"] = "each frame on its own camera"
        meta["eg3d_conditioning_labels"] = [(G.label(c)[0].double().numpy().round(8) + 0.0).tolist() for c in cameras]
    return meta


def render_video(
    G: Generator,
    seeds: Sequence[int],
    cameras: Sequence[Camera],
    out_dir: str | Path,
    grid: bool = False,
    depth: bool = False,
    truncation: Truncation = Truncation(),
    class_index: int | None = None,
    settings: RenderSettings | None = None,
    options: VideoOptions = VideoOptions(),
    batch_size: int = 8,
    columns: int | None = None,
    trajectory: str | None = None,
    model: str | None = None,
    ctx: DistContext | None = None,
    progress: Progress | None = None,
    condition_on_view: bool = False,
) -> list[Path]:
    """Render one mp4 per seed (seedNNNN.mp4), or with ``grid`` one grid.mp4 of all seeds.

    ``condition_on_view`` (EG3D models only): the mapping sees each frame's own camera, so the
    latent follows the view (``view_conditioned_ws``); by default every frame shows the seed's latent
    conditioned on the frontal camera, as ``epigraf sample`` maps it.

    ``depth`` adds a depth video beside each (…_depth.mp4: near bright, far dark). A JSON sidecar
    with the same stem records seeds, truncation, class, cameras and encoding. ``batch_size`` is the
    number of frames rendered together. Under torchrun (``ctx``) seeds are sharded; for grids each
    rank stores its seeds' frames in this run's own temporary folder and rank 0 encodes the grid.
    Progress reports frames done / frames to do on this rank.
    """
    G = as_toolkit_model(G)
    settings = (settings or RenderSettings()).validate()
    options = options.validate()
    request = SampleRequest.check(seeds, truncation, class_index, G)
    check_batch_size(batch_size)
    if not cameras:
        raise EpigrafError("the trajectory has no cameras")
    if condition_on_view:
        conditioned_on(G, cameras[0])  # refuses an EpiGRAF model before any work
    check_cameras(G, cameras)
    ctx = ctx or DistContext()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    seeds, class_index = list(request.seeds), request.class_index
    mine = shard(seeds, ctx.rank, ctx.world_size)
    total = len(mine) * len(cameras)

    def reporter(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, _n: progress(offset + done, total)

    def seed_ws(seed: int) -> tuple[torch.Tensor, list[int | None]]:
        if condition_on_view:
            return view_conditioned_ws(G, seed, cameras, truncation), [None]
        return ws_from_seeds(G, [seed], truncation, class_index)

    written: list[Path] = []
    if not grid:
        for k, seed in enumerate(mine):
            ws, classes = seed_ws(seed)
            meta = video_metadata(
                G, [seed], classes, cameras, truncation, settings, options, trajectory, model, condition_on_view
            )
            stem = f"seed{seed:04d}"
            frames = render_seed_frames(G, ws, seed, cameras, settings, batch_size, depth, reporter(k * len(cameras)))
            written += _write_videos(out, stem, frames, depth, options, meta)
        return written

    tmp_dir = _grid_scratch(out, ctx)
    try:
        if ctx.is_main:  # made inside the try: an interrupt at any point removes it
            tmp_dir.mkdir()
        barrier(ctx)
        res = settings.resolved_resolution(G)
        for k, seed in enumerate(mine):
            ws, _ = seed_ws(seed)
            shape = (len(cameras), 2, res, res, 3)
            store = np.lib.format.open_memmap(tmp_dir / f"{seed}.npy", "w+", np.uint8, shape)
            for i, (frame, dframe) in enumerate(
                render_seed_frames(G, ws, seed, cameras, settings, batch_size, depth, reporter(k * len(cameras)))
            ):
                store[i, 0] = frame
                if dframe is not None:
                    store[i, 1] = dframe
            store.flush()
            del store
        barrier(ctx)
        if ctx.is_main:
            stores = [np.load(tmp_dir / f"{seed}.npy", mmap_mode="r") for seed in seeds]
            classes = [ws_from_seeds(G, [s], Truncation(), class_index)[1][0] for s in seeds] if G.c_dim else []
            meta = video_metadata(
                G,
                seeds,
                classes or [None] * len(seeds),
                cameras,
                truncation,
                settings,
                options,
                trajectory,
                model,
                condition_on_view,
            )
            columns = columns or grid_columns(len(seeds))
            meta["grid_columns"] = columns
            fill = 255 if G.config.white_back else 0

            def grid_frames() -> Iterable[tuple[np.ndarray, np.ndarray | None]]:
                for i in range(len(cameras)):
                    frame = make_grid([s[i, 0] for s in stores], columns, fill=fill)
                    yield frame, (make_grid([s[i, 1] for s in stores], columns) if depth else None)

            written += _write_videos(out, "grid", grid_frames(), depth, options, meta)
    finally:
        if ctx.is_main:  # on success, failure or interruption alike
            shutil.rmtree(tmp_dir, ignore_errors=True)
    barrier(ctx)
    return written


def _grid_scratch(out: Path, ctx: DistContext) -> Path:
    """The name of this run's own scratch folder for grid frames (chosen by rank 0, shared by all ranks).

    A name of its own per run, so that two runs into one folder cannot delete each other's frames;
    one left by a killed run is removed by the next write into the folder (``epigraf_tools.atomic``).
    """
    name = [str(temp_name(out / "grid.frames")) if ctx.is_main else None]
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.broadcast_object_list(name, src=0)
    return Path(name[0])


def _write_videos(
    out: Path,
    stem: str,
    frames: Iterable[tuple[np.ndarray, np.ndarray | None]],
    depth: bool,
    options: VideoOptions,
    meta: dict[str, Any],
) -> list[Path]:
    """Write stem.mp4 (+ stem_depth.mp4, encoded in lockstep) from one pass over ``frames``, then stem.json."""
    comment = json.dumps({k: meta[k] for k in meta if k != "cameras"}, sort_keys=True)
    paths = [out / f"{stem}.mp4"]
    with contextlib.ExitStack() as stack:
        colour = stack.enter_context(Mp4Writer(paths[0], options, comment))
        depth_writer = None
        if depth:
            paths.append(out / f"{stem}_depth.mp4")
            depth_writer = stack.enter_context(Mp4Writer(paths[1], options, comment))
        for frame, depth_frame in frames:
            colour.write(frame)
            if depth_writer is not None:
                depth_writer.write(depth_frame)
    if depth:
        meta = {**meta, "depth_video": paths[1].name}
    return [*paths, write_text_atomic(out / f"{stem}.json", json.dumps(meta, indent=2) + "\n")]
