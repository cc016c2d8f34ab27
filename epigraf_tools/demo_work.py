"""The work behind the browser demo (``epigraf demo``), with no UI toolkit in sight.

The Gradio page in :mod:`epigraf_tools.demo` only turns widgets into the arguments of these functions
and their results into widgets; everything that renders or writes lives here, so it is tested
without Gradio and reuses the same pipelines as the commands (``generate_samples``, ``render_video``,
``export_volumes`` + ``mesh_volume_file``): a seed in the page is the same picture as
``epigraf sample --seeds N``.

A public server must not grow without bound, so the loaded models are kept in a small LRU cache
(``ModelCache``) and each request writes into its own folder of which only the newest few are kept
(``WorkDirs``).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import Camera
from .errors import EpigrafError
from .images import alpha_to_uint8, depth_to_uint8, gray_to_rgb, normals_to_uint8
from .latents import Truncation, resolve_class
from .models import Generator

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], what is being done)
MAX_DEMO_RESOLUTION = 512  # a browser demo on a shared server: bigger renders belong to `epigraf sample`
MAX_ORBIT_FRAMES = 240
MAX_MESH_RESOLUTION = 256
DEFAULT_SPEC = "default"


def _quiet(_fraction: float, _what: str) -> None:
    pass


def model_key(spec: str | None) -> str:
    """The cache key of a model spec: stripped text, the embedded model for an empty one."""
    text = (spec or "").strip()
    return text or DEFAULT_SPEC


class ModelCache:
    """Loaded generators by spec, least recently used dropped beyond ``capacity`` (thread-safe).

    Loading is serialised by one lock, so two requests for a model not yet loaded load it once.
    ``allowed`` (specs) limits what may be loaded at all: a public page should not load whatever
    folder or Hub repo a visitor types; None allows every spec.
    """

    def __init__(self, device: str = "auto", capacity: int = 2, allowed: Sequence[str] | None = None) -> None:
        from .devices import resolve_device

        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise EpigrafError(f"the model cache needs room for at least one model, got capacity={capacity!r}")
        self.allowed = None if allowed is None else [model_key(spec) for spec in allowed]
        if self.allowed is not None and not self.allowed:
            raise EpigrafError("allowed is empty: list at least one model, or pass None to allow every spec")
        self.device = resolve_device(device)
        self.capacity = capacity
        self._models: OrderedDict[str, Generator] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, spec: str | None) -> Generator:
        """The generator for ``spec`` (zoo name, folder, official .pkl or Hub id; empty: the embedded model)."""
        from .checkpoints.loading import load_generator, require_epigraf_generator

        key = model_key(spec)
        if self.allowed is not None and key not in self.allowed:
            raise EpigrafError(f"this demo serves only these models: {', '.join(self.allowed)}")
        with self._lock:
            if key in self._models:
                self._models.move_to_end(key)
                return self._models[key]
            G = load_generator(None if key == DEFAULT_SPEC else key, self.device, progress=False)
            require_epigraf_generator(G, "demo")
            self._models[key] = G
            while len(self._models) > self.capacity:
                self._models.popitem(last=False)
            return G

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)


class WorkDirs:
    """One fresh folder per request under ``root``; only the newest ``keep`` survive.

    Gradio copies returned files into its own cache after the handler returns, so a folder cannot
    be removed by the request that made it; the next requests remove it instead.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, keep: int = 8) -> None:
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="epigraf-demo-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = max(1, keep)
        self._made: list[Path] = []
        self._lock = threading.Lock()

    def new(self, prefix: str) -> Path:
        with self._lock:
            path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=self.root))
            self._made.append(path)
            while len(self._made) > self.keep:
                shutil.rmtree(self._made.pop(0), ignore_errors=True)
            return path

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class ViewRequest:
    """What the page asks for: one seed, seen from (yaw, pitch) in degrees, at ``resolution`` pixels.

    ``class_`` is a class index or name (None: the seed picks it, as in ``epigraf sample``);
    ``resolution`` None is the model's own.
    """

    seed: int
    truncation: float = 1.0
    class_: int | str | None = None
    yaw: float = 0.0
    pitch: float = 90.0
    resolution: int | None = None

    def checked(self, G: Generator) -> tuple[int, Truncation, int | None, Camera, int]:
        """(seed, truncation, class index, camera, resolution), or an EpigrafError naming the bad control."""
        seed = _whole_number("seed", self.seed, 0, 2**32 - 1)
        truncation = Truncation(float(self.truncation)).validate(G.num_ws)
        cls = resolve_class(G.config, None if self.class_ in (None, "") else self.class_)
        camera = Camera.from_degrees(float(self.yaw), float(self.pitch), radius=G.config.radius, fov=G.config.fov)
        res = G.config.img_resolution if self.resolution is None else self.resolution
        res = _whole_number("resolution", res, 16, MAX_DEMO_RESOLUTION)
        return seed, truncation, cls, camera, res


def _whole_number(name: str, value: object, low: int, high: int) -> int:
    """``value`` as an int in [low, high]; widgets send floats such as 3.0, which are accepted when whole."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EpigrafError(f"{name} must be a whole number in [{low}, {high}], got {value!r}")
    if not math.isfinite(float(value)) or float(value) != int(value) or not low <= int(value) <= high:
        raise EpigrafError(f"{name} must be a whole number in [{low}, {high}], got {value!r}")
    return int(value)


@dataclass
class ViewMaps:
    """One view of one seed as pictures: image, depth, normals and alpha, each uint8 [H, W, 3]."""

    image: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    alpha: np.ndarray
    class_index: int | None


def render_maps(G: Generator, request: ViewRequest, progress: Progress = _quiet) -> ViewMaps:
    """Render the request's view with depth, normals and alpha (the maps ``epigraf sample`` writes as PNG)."""
    from .rendering import RenderSettings
    from .sampling import generate_samples

    seed, truncation, cls, camera, res = request.checked(G)
    progress(0.0, f"rendering seed {seed}")
    settings = RenderSettings(resolution=res)
    (sample,) = generate_samples(G, [seed], [camera], truncation, cls, settings, batch_size=1, normals=True)
    shift = float(np.linalg.norm(camera.position)) - G.config.radius  # near/far follow the camera (rendering.py)
    near, far = G.config.ray_start + shift, G.config.ray_end + shift
    depth = gray_to_rgb(depth_to_uint8(sample.depth, sample.alpha, near, far))
    progress(1.0, "done")
    return ViewMaps(
        sample.image,
        depth,
        normals_to_uint8(sample.normals),
        gray_to_rgb(alpha_to_uint8(sample.alpha)),
        sample.class_index,
    )


def render_orbit(
    G: Generator, request: ViewRequest, out_dir: Path, frames: int = 24, fps: float = 12.0, progress: Progress = _quiet
) -> Path:
    """A turntable mp4 of the seed (a full turn at the request's pitch, starting at its yaw); returns its path."""
    from .rendering import RenderSettings
    from .trajectories import orbit
    from .video import VideoOptions, render_video

    seed, truncation, cls, camera, res = request.checked(G)
    frames = _whole_number("frames", frames, 2, MAX_ORBIT_FRAMES)
    files = render_video(
        G,
        [seed],
        orbit(frames, base=camera),
        out_dir,
        truncation=truncation,
        class_index=cls,
        settings=RenderSettings(resolution=res),
        options=VideoOptions(fps=fps, crf=23, preset="veryfast"),
        trajectory="orbit",
        progress=lambda done, total: progress(done / max(total, 1), f"frame {done}/{total}"),
    )
    return next(p for p in files if p.suffix == ".mp4")


@dataclass
class GeometryFiles:
    """The files of one "extract mesh": the GLB to view, the MRC volume and its ChimeraX script."""

    glb: Path
    mrc: Path
    cxc: Path

    def downloads(self) -> list[Path]:
        return [self.glb, self.mrc, self.cxc]


def extract_geometry(
    G: Generator,
    request: ViewRequest,
    out_dir: Path,
    resolution: int = 64,
    model: str | None = None,
    progress: Progress = _quiet,
) -> GeometryFiles:
    """Density volume (MRC + .json + .cxc) of the seed, then its coloured marching-cubes mesh as GLB.

    One density extraction serves both: the mesh is built from the MRC file, exactly as
    ``epigraf export-mesh --volume seedNNNN.mrc`` would build it. The camera of the request is ignored
    (geometry is in world coordinates).
    """
    from .geometry_export import ExportHooks, GridOptions, MeshOptions, export_volumes, mesh_volume_file

    seed, truncation, cls, _camera, _res = request.checked(G)
    resolution = _whole_number("mesh resolution", resolution, 16, MAX_MESH_RESOLUTION)

    @contextlib.contextmanager
    def bar(_description: str) -> Iterator[Callable[[int, int], None]]:
        yield lambda done, total: progress(0.8 * done / max(total, 1), "density volume")

    @contextlib.contextmanager
    def stages(_description: str, names: list[str]) -> Iterator[Callable[[str], None]]:
        yield lambda name: progress(0.8 + 0.2 * names.index(name) / max(len(names), 1) if name in names else 0.8, name)

    hooks = ExportHooks(progress=bar, stages=stages)
    # The plain separable path: a web request must never wait for the fused kernel's first build (minutes),
    # and at the demo's grid sizes it takes well under a second anyway.
    grid = GridOptions(resolution=resolution, method="separable")
    export_volumes(G, [seed], out_dir, truncation=truncation, class_index=cls, grid=grid, model=model, hooks=hooks)
    mrc = out_dir / f"seed{seed:04d}.mrc"
    report = mesh_volume_file(mrc, out_dir, options=MeshOptions(formats=("glb",)), G=G, hooks=hooks)
    progress(1.0, "done")
    glb = out_dir / next(name for name in report.files if name.endswith(".glb"))
    return GeometryFiles(glb=glb, mrc=mrc, cxc=mrc.with_suffix(".cxc"))


def class_choices(G: Generator) -> list[str]:
    """The class picker's entries: names where the model has them, else indices (empty: unconditional)."""
    names = list(G.config.class_names or [])
    return [names[i] if i < len(names) else str(i) for i in range(G.c_dim)]


__all__ = [
    "GeometryFiles",
    "ModelCache",
    "ViewMaps",
    "ViewRequest",
    "WorkDirs",
    "class_choices",
    "extract_geometry",
    "model_key",
    "render_maps",
    "render_orbit",
]


INVERT_STEPS = 100  # latent steps the page starts with: ~15 s on one CPU core for the default model
MAX_INVERT_STEPS = 2000
MAX_PTI_STEPS = 500


@dataclass
class PhotoInversion:
    """What the page shows of an inverted photo: the preview PNG and the files to download."""

    preview: Path  # target | reconstruction | novel views (inversion_files.write_inversion)
    latent: Path  # NAME.npz, for `epigraf video --latent` etc.
    psnr: float


def invert_photo(
    G: Generator,
    photo: str | os.PathLike[str],
    yaw: float,
    pitch: float,
    steps: int,
    pti_steps: int,
    out: Path,
    progress: Progress = _quiet,
) -> PhotoInversion:
    """Invert an uploaded picture seen from (yaw, pitch) degrees: the same files as ``epigraf invert``.

    The page runs W-space projection (plus pivotal tuning when ``pti_steps`` > 0) with the sliders'
    camera; ``epigraf invert`` has every other option (W+, camera search, several starts).
    """
    from .inversion import InversionOptions
    from .inversion_files import invert_images

    steps = _whole_number("steps", steps, 1, MAX_INVERT_STEPS)
    pti_steps = _whole_number("PTI steps", pti_steps, 0, MAX_PTI_STEPS)
    if photo is None or not Path(photo).is_file():
        raise EpigrafError("upload a photo first")
    camera = Camera.from_degrees(float(yaw), float(pitch), radius=G.config.radius, fov=G.config.fov)
    options = InversionOptions(steps=steps, pti_steps=pti_steps)
    progress(0.0, "inverting")
    (done,) = invert_images(
        G, [photo], out, camera, options, progress=lambda d, n: progress(d / max(n, 1), "inverting")
    )
    progress(1.0, "done")
    return PhotoInversion(done.preview, done.latent, float(done.result.psnr))
