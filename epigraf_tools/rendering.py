"""Render tri-planes from arbitrary ``Camera`` objects: images, depth, alpha and normals.

This is the toolkit's inference renderer. It follows the official sampler exactly (48 + 48 samples,
stratified jitter, importance sampling, the same compositing) but differs from a plain
``Generator.render_planes`` call in four ways, each documented in docs/toolkit.md:

* Reproducible noise: the uniforms behind ray jitter and importance sampling come from
  ``torch.Generator().manual_seed(key)`` on the CPU, one full image at a time, where ``key`` is the
  sample's seed. A seed therefore renders the same pixels whatever the batch, device or sharding;
  the frames of a video share the draws, so there is no shimmer from frame to frame.
  ``deterministic=True`` turns the noise off (no jitter, evenly spaced importance samples).
* Fast field queries: ``FastTriPlaneField`` (channels-last planes, folded weights), small ray
  chunks that stay in cache, and no autograd (benchmarks/bench_render.py measures the gain).
* Any camera: per-view fov, radius and look-at. The near/far planes follow the camera: they are the
  model's ``ray_start``/``ray_end`` shifted by (distance of the camera from the world origin minus
  the model's ``radius``), so the same slab around the object is sampled from any distance.
* Normals: the negated, normalised gradient of the raw density at the expected surface point of each
  ray (autograd through the reference field), expressed in the camera frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from .camera import Camera, CameraError, cameras_to_tensors, check_slab_distance
from .eg3d_model import is_eg3d
from .errors import EpigrafError
from .kernels import attach_field_kernels
from .models import Generator, RayDraws
from .models.cameras import generate_rays
from .models.fast_field import FastTriPlaneField
from .models.renderer import BackgroundFn, FieldFn, RenderOptions, render_rays

ALPHA_EPS = 1e-3  # rays whose opacity is below this have no surface: depth and normals are 0 there
MAX_RESOLUTION = 4096
# Which colour layer an image shows: the composite, the foreground alone (what the tri-plane renders,
# before a background network fills in behind it) or the background network's colour alone.
LAYERS = ("all", "fg", "bg")
LAYER_KEYS = {"fg": "foreground", "bg": "background"}  # render_rays' names of the two layers


@dataclass
class RenderSettings:
    """How images are rendered (defaults: the model's resolution, official stochastic sampling)."""

    resolution: int | None = None  # None: the model's img_resolution
    deterministic: bool = False  # True: no ray jitter, evenly spaced importance samples
    chunk_rays: int | None = None  # rays per chunk and sample; None: 2048 on CPU, 32768 on GPUs
    noise_mode: str = "const"  # tri-plane per-layer noise as the official scripts use
    workers: int | None = None  # CPU threads rendering chunks in parallel; None: torch.get_num_threads()
    raw: bool = False  # EG3D: the neural render instead of the super-resolved image (EpiGRAF: always raw)
    layer: str = "all"  # one of LAYERS; alpha, depth and normals are always the foreground's

    def validate(self) -> RenderSettings:
        if self.resolution is not None and (
            isinstance(self.resolution, bool) or not isinstance(self.resolution, int) or not 2 <= self.resolution
        ):
            raise EpigrafError(f"resolution must be an integer number of pixels >= 2, got {self.resolution!r}")
        if self.resolution is not None and self.resolution > MAX_RESOLUTION:
            raise EpigrafError(f"resolution {self.resolution} is above the supported maximum {MAX_RESOLUTION}")
        if self.chunk_rays is not None and self.chunk_rays < 1:
            raise EpigrafError(f"chunk_rays must be >= 1, got {self.chunk_rays}")
        if self.noise_mode not in ("const", "random", "none"):
            raise EpigrafError(f"noise_mode must be const, random or none, got {self.noise_mode!r}")
        if self.layer not in LAYERS:
            raise EpigrafError(f"layer must be one of {', '.join(LAYERS)}, got {self.layer!r}")
        return self

    def check_model(self, G: Generator) -> RenderSettings:
        """Refuse the background layer of a model that has no background network."""
        # An EG3D model has no ``synthesis`` and no background network: the same refusal.
        if self.layer == "bg" and getattr(getattr(G, "synthesis", None), "bg_model", None) is None:
            raise EpigrafError("layer 'bg' needs a model with a background network (bg_model sphere); this has none")
        return self

    def resolved_resolution(self, G: Generator) -> int:
        """The output image size: ``resolution``, else the model's (EG3D with ``raw``: its neural render's)."""
        if self.resolution:
            return self.resolution
        return getattr(G.config, "raw_resolution", G.config.img_resolution) if self.raw else G.config.img_resolution


def default_chunk_rays(device: torch.device) -> int:
    """2048 rays x 48 samples keep a CPU chunk's temporaries in cache; GPUs want big launches."""
    return 2048 if device.type == "cpu" else 32768


def ray_draws(keys: Sequence[int], num_rays: int, num_steps: int, deterministic: bool = False) -> RayDraws:
    """The renderer's uniforms for one image per key: perturb [K, R, S, 1], pdf [K, R, S] (CPU).

    Each key's draws come from its own ``torch.Generator().manual_seed(key)`` in the official order
    (jitter first, then the importance-sampling uniforms), so they do not depend on batching.
    """
    if deterministic:
        return RayDraws(None, None)
    cache: dict[int, RayDraws] = {}
    for key in keys:
        if key not in cache:
            gen = torch.Generator().manual_seed(int(key))
            cache[key] = RayDraws.draw(1, num_rays, num_steps, "cpu", gen)
    perturb = torch.cat([cache[k].perturb for k in keys], dim=0)
    pdf = torch.cat([cache[k].pdf for k in keys], dim=0)
    return RayDraws(perturb, pdf)


def _as_grid(cameras: Sequence[Camera] | Sequence[Sequence[Camera]], batch: int) -> list[list[Camera]]:
    """A flat list of V cameras (shared by every sample) or B lists of V cameras -> [B][V]."""
    if len(cameras) == 0:
        raise CameraError("no cameras to render")
    if isinstance(cameras[0], Camera):
        return [list(cameras)] * batch  # type: ignore[arg-type]
    grid = [list(row) for row in cameras]  # type: ignore[union-attr]
    if len(grid) != batch or len({len(row) for row in grid}) != 1:
        raise CameraError(f"need {batch} equally long camera lists (one per sample), got {[len(r) for r in grid]}")
    return grid


def check_cameras(G: Generator, cameras: Sequence[Camera]) -> None:
    """Refuse (CameraError) any camera the colour renderer cannot draw from, before any work is done.

    Commands call it before they create outputs; ``render_views`` checks again. EG3D models check
    their own way (their cameras become EG3D labels; 'auto' ray limits need no check).
    """
    if is_eg3d(G):
        G.check_cameras(cameras)
        return
    if cameras:  # the nearest camera decides, as in render_views
        nearest = float(cameras_to_tensors(list(cameras)).distance.min())
        check_slab_distance(nearest, G.config.radius, G.config.ray_start)


def render_views(
    G: Generator,
    planes: torch.Tensor,
    cameras: Sequence[Camera] | Sequence[Sequence[Camera]],
    settings: RenderSettings | None = None,
    noise_keys: Sequence[int] | Sequence[Sequence[int]] | None = None,
    bg_ws: torch.Tensor | None = None,
    normals: bool = False,
    field: FastTriPlaneField | None = None,
) -> dict[str, torch.Tensor]:
    """Render each of B tri-planes [B, 3, C, R, R] from V cameras.

    cameras: V cameras shared by all samples, or B lists of V. noise_keys: one int per sample (all its
    views share draws) or [B][V]; required unless ``settings.deterministic``. Returns, on planes' device:
    image [B, V, 3, H, W] (raw: clamp to [-1, 1] for display), alpha [B, V, 1, H, W] (opacity),
    depth [B, V, 1, H, W] (expected distance from the camera centre along the ray, sum(w z) / alpha;
    0 where alpha < 1e-3), and with ``normals`` also normals [B, V, 3, H, W] (unit, camera frame:
    x right, y up, z towards the viewer; 0 where alpha < 1e-3). ``field``: a ``prepare_field(G, planes)``
    result to reuse across calls with the same planes (videos), saving its one-off preparation.
    ``settings.layer`` picks the image's colour layer (models with a background network: the
    composite, the foreground alone, or the background alone); the other outputs do not change.
    """
    settings = (settings or RenderSettings()).validate().check_model(G)
    cfg = G.config
    b = planes.shape[0]
    grid = _as_grid(cameras, b)
    v = len(grid[0])
    if is_eg3d(G):  # its own renderer and super-resolution (eg3d_model.py); bg_ws carries the SR's ws
        if not settings.deterministic and noise_keys is None:
            raise EpigrafError("noise_keys are needed for stochastic rendering (or set deterministic=True)")
        keys = None if settings.deterministic else _key_grid(noise_keys, b, v)
        return G.render_views(planes, grid, settings, keys, bg_ws, normals)
    res = settings.resolved_resolution(G)
    n_rays = res * res
    device, dtype = planes.device, planes.dtype

    flat = [cam for row in grid for cam in row]
    cams = cameras_to_tensors(flat, device=device, dtype=dtype)
    shift = cams.distance - cfg.radius  # [B*V]
    check_slab_distance(float(cams.distance.min()), cfg.radius, cfg.ray_start)
    origins, dirs, dirs_cam = generate_rays(cams.cam2world, cams.fov, res, res)  # [B*V, R, 3]
    # Start every ray (distance - radius) further along so linspace(ray_start, ray_end) covers the object.
    ray_origins = origins + dirs * shift.view(-1, 1, 1)

    keys = None
    if not settings.deterministic:
        if noise_keys is None:
            raise EpigrafError("noise_keys are needed for stochastic rendering (or set deterministic=True)")
        keys = _key_grid(noise_keys, b, v)
    draws = DrawSource(keys, n_rays, cfg.num_ray_steps, device, dtype)

    opts = cfg.render_options(0.0)
    field = field if field is not None else prepare_field(G, planes)
    background_fn = None
    if G.synthesis.bg_model is not None:
        if bg_ws is None:
            raise EpigrafError("this model has a background network: pass its ws (bg_ws)")

        def background_fn(o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
            return G.synthesis.bg_model(bg_ws, o, d, opts)

    chunk = settings.chunk_rays or default_chunk_rays(device)
    chunk = max(1, chunk // max(1, b))  # chunks span all B samples: keep points per chunk bounded
    out = render_chunks(
        field,
        ray_origins.reshape(b, v * n_rays, 3),
        dirs.reshape(b, v * n_rays, 3),
        opts,
        draws,
        n_rays,
        chunk,
        background_fn,
        workers=settings.workers,
    )
    alpha = out["alpha"].reshape(b * v, n_rays, 1)
    hit = alpha > ALPHA_EPS
    depth = torch.where(hit, out["depth"].reshape(b * v, n_rays, 1) / alpha.clamp_min(ALPHA_EPS), 0.0)
    depth = torch.where(hit, depth + shift.view(-1, 1, 1), 0.0)  # measured from the true camera centre

    def image(x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        return x.reshape(b, v, res, res, c).permute(0, 1, 4, 2, 3).contiguous()

    colour = out["rgb"] if background_fn is None or settings.layer == "all" else out[LAYER_KEYS[settings.layer]]
    result = {"image": image(colour.reshape(b * v, n_rays, -1)), "alpha": image(alpha), "depth": image(depth)}
    if normals:
        points = origins + dirs * depth
        world = surface_normals(G, planes, points.reshape(b, v * n_rays, 3), chunk).reshape(b * v, n_rays, 3)
        cam = torch.einsum("vji,vnj->vni", cams.cam2world[:, :3, :3], world)  # R^T n: world -> camera axes
        result["normals"] = image(torch.where(hit, cam, 0.0))
    return result


class DrawSource:
    """The uniforms of each (sample, view) sliced per chunk: one whole-image set per key, never copied per view.

    keys: [B][V] noise keys (None: deterministic rendering). Calling it with (view, start, stop)
    returns ``RayDraws`` [B, stop - start, S] on ``device``.
    """

    def __init__(
        self, keys: list[list[int]] | None, num_rays: int, num_steps: int, device: torch.device, dtype: torch.dtype
    ) -> None:
        self.keys, self.device, self.dtype = keys, device, dtype
        unique = sorted({k for row in keys for k in row}) if keys is not None else []
        self.cache = {k: ray_draws([k], num_rays, num_steps) for k in unique}

    def __call__(self, view: int, start: int, stop: int) -> RayDraws:
        if self.keys is None:
            return RayDraws(None, None)
        rows = [self.cache[row[view]] for row in self.keys]
        perturb = torch.cat([d.perturb[:, start:stop] for d in rows]).to(self.device, self.dtype)
        pdf = torch.cat([d.pdf[:, start:stop] for d in rows]).to(self.device, self.dtype)
        return RayDraws(perturb, pdf)


def render_chunks(
    field: FieldFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    opts: RenderOptions,
    draws: DrawSource,
    rays_per_view: int,
    chunk: int,
    background_fn: BackgroundFn | None = None,
    workers: int | None = None,
) -> dict[str, torch.Tensor]:
    """``render_rays`` over chunks of rays [B, V * R, 3] (V views of R rays); returns rgb, depth, alpha
    (and, with a background, its foreground and background layers).

    Chunks never straddle two views, so each takes its uniforms straight from its view's draws. On
    the CPU the chunks are spread over ``workers`` threads (default: torch's intra-op thread count)
    that each run their ops single-threaded: many small ops parallelised inside each op spend their
    time in thread barriers and stall whenever another process holds a core; whole chunks per
    thread do not. Each chunk's result is the same either way, so images are identical.
    """
    views = origins.shape[1] // rays_per_view
    spans = [(v, s, min(s + chunk, rays_per_view)) for v in range(views) for s in range(0, rays_per_view, chunk)]

    def one(span: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        view, start, stop = span
        sl = slice(view * rays_per_view + start, view * rays_per_view + stop)
        with torch.inference_mode():
            out = render_rays(field, origins[:, sl], dirs[:, sl], opts, draws(view, start, stop), None, background_fn)
        return {k: out[k] for k in ("rgb", "depth", "alpha", *LAYER_KEYS.values()) if k in out}

    threads = torch.get_num_threads() if workers is None else workers
    if origins.device.type != "cpu" or threads <= 1 or len(spans) == 1:
        parts = [one(span) for span in spans]
    else:
        previous = torch.get_num_threads()
        try:
            with ThreadPoolExecutor(min(threads, len(spans)), initializer=torch.set_num_threads, initargs=(1,)) as ex:
                parts = list(ex.map(one, spans))
        finally:
            torch.set_num_threads(previous)
    return {k: torch.cat([p[k] for p in parts], dim=1) for k in parts[0]}


def prepare_field(G: Generator, planes: torch.Tensor) -> FastTriPlaneField | None:
    """The inference field of tri-planes [B, 3, C, R, R] (a table copy made once; reuse it across views).

    On the CPU, when the fused kernel is already built, the field runs as one compiled function per
    chunk of points (``triplane_field``: taps, sum and MLP per point; 256^2 and 512^2 frames 1.5x
    faster on 2 threads, benchmarks/RESULTS.md); rendering never waits for a build (``export-volume``
    makes one). None for an EG3D model, which renders through its own decoder.
    """
    field = G.inference_field(planes)
    if isinstance(field, FastTriPlaneField):
        attach_field_kernels(field)
    return field


def _key_grid(noise_keys: Sequence[int] | Sequence[Sequence[int]], b: int, v: int) -> list[list[int]]:
    keys = list(noise_keys)
    if len(keys) != b:
        raise EpigrafError(f"need one noise key (or key list) per sample: {b} samples, {len(keys)} keys")
    return [[int(k)] * v if not isinstance(k, Sequence) else [int(x) for x in k] for k in keys]


def surface_normals(G: Generator, planes: torch.Tensor, points: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
    """Unit outward normals [B, N, 3] (world frame) at points [B, N, 3]: -grad(raw density) / |grad|.

    Density grows into the object, so its negated gradient points out of the surface. Uses autograd
    through the reference field (``G.synthesis.field``); where the gradient vanishes the normal is 0.
    """
    parts = []
    with torch.inference_mode(False), torch.enable_grad():
        planes = planes.detach().clone()  # a normal tensor even if the caller made it under inference_mode
        for start in range(0, points.shape[1], chunk):
            pts = points[:, start : start + chunk].detach().clone().requires_grad_(True)
            sigma = G.synthesis.field(planes, pts)[..., -1]
            (grad,) = torch.autograd.grad(sigma.sum(), pts)
            parts.append(-torch.nn.functional.normalize(grad.detach(), dim=-1))
    return torch.cat(parts, dim=1)
