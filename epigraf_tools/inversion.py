"""Project an image into a generator: latent optimisation in W or W+, then optional pivotal tuning.

1. Latent optimisation. The latent starts at the truncation centre (``w_avg``; a class's mean w on
   class-conditional models), or at several starts of which the best after a short trial run is
   kept, and follows Adam on the reconstruction loss of ``inversion_losses``. In W one w [w_dim] is
   shared by every layer (the generator's own prior); in W+ each of the num_ws layers has its own w
   (closer fits; W+ runs the first half of its steps in W, see ``_optimise_latent``).
   The camera is given, or optimised jointly (yaw and pitch, from the given or the model's frontal
   camera) with ``optimize_camera``.
2. Pivotal tuning (PTI, Roich et al. 2022), ``pti_steps > 0``: the found latent becomes a pivot and a
   copy of the generator's image path (everything after the mapping network) is fine-tuned so the
   pivot reproduces the image. A locality regulariser keeps the rest of the latent space where it
   was: each step, a random w is interpolated towards the pivot and the tuned copy's render of it,
   from a random nearby view, is pulled towards the original generator's.

Everything is deterministic for a given ``seed``: tri-plane noise is ``noise_mode='const'``, rays
have no jitter (``deterministic=True``), and random starts, locality latents and views come from
``torch.Generator().manual_seed(seed)``.

The generator interface used: ``mapping`` (with ``w_avg``), ``num_ws``, ``config`` (img_resolution,
radius, fov, w_dim, c_dim), an autograd rendering path and the parameters PTI tunes. EpiGRAF's are
``_render(ws, camera_angles, ...)`` and its synthesis network (tri-plane generator and decoder);
an EG3D model (``eg3d_model.EG3DModel``) offers ``render_image`` (the super-resolved image) and
``tunable_parameters`` (backbone synthesis, decoder, super-resolution). On EG3D the latent is a
point of W as the official mapping produces it: the conditioning label (by default the frontal one
seed renders use) enters only where the mapping runs, i.e. random starts and PTI's locality
latents; ``w_avg`` is the training average, shared by every label.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from .camera import Camera, CameraError
from .eg3d_model import as_toolkit_model, is_eg3d
from .errors import EpigrafError
from .inversion_losses import LossWeights, build_loss, psnr
from .latents import one_hot, truncation_centres
from .models import Generator
from .models.cameras import PITCH_EPS, camera_origins, look_at_cam2world

Progress = Callable[[int, int], None]  # (done, total) over all optimisation steps
SPACES = ("w", "w+")
MAX_STEPS = 100_000
MAX_STARTS = 16


@dataclass(frozen=True)
class InversionOptions:
    """How to invert (defaults fit the small default model; see docs/inversion.md for larger ones)."""

    space: str = "w"  # "w": one w shared by all layers; "w+": one w per layer
    steps: int = 300  # latent optimisation steps
    lr: float = 0.02  # Adam learning rate of the latent
    pti_steps: int = 0  # pivotal tuning steps (0: no tuning)
    pti_lr: float = 1e-3  # Adam learning rate of the tuned synthesis network
    optimize_camera: bool = False  # optimise yaw and pitch jointly, from the given (or frontal) camera
    camera_lr: float = 0.01  # Adam learning rate of yaw and pitch (radians)
    starts: int = 1  # >1: also try truncated random latents for a short run and keep the best
    seed: int = 0  # random starts, locality latents and views
    losses: LossWeights = field(default_factory=LossWeights)
    locality_weight: float = 1.0  # weight of the PTI locality term (0: off)
    locality_alpha: float = 0.5  # random w's are moved this fraction of the way towards the pivot

    def validate(self) -> InversionOptions:
        if self.space not in SPACES:
            raise EpigrafError(f"space must be 'w' or 'w+', got {self.space!r}")
        _check_int("steps", self.steps, 1, MAX_STEPS)
        _check_int("pti_steps", self.pti_steps, 0, MAX_STEPS)
        _check_int("starts", self.starts, 1, MAX_STARTS)
        _check_int("seed", self.seed, 0, 2**32 - 1)
        for name in ("lr", "pti_lr", "camera_lr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 10:
                raise EpigrafError(f"{name} must be a learning rate in (0, 10), got {value!r}")
        if not 0 <= self.locality_weight < math.inf:
            raise EpigrafError(f"locality_weight must be a finite number >= 0, got {self.locality_weight!r}")
        if not 0 <= self.locality_alpha <= 1:
            raise EpigrafError(f"locality_alpha must lie in [0, 1], got {self.locality_alpha!r}")
        self.losses.validate()
        return self


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise EpigrafError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


@dataclass
class InversionResult:
    """What an inversion found.

    ws: [1, num_ws, w_dim] (in W every row is the same w); camera: the given or optimised camera;
    loss_curve / pti_curve: the loss after each step of each phase; generator: the tuned copy (None
    without PTI); reconstruction: [1, 3, H, W] in [-1, 1], rendered by the (tuned) generator;
    psnr: of the reconstruction against the target, dB; timings: seconds per phase.
    """

    ws: torch.Tensor
    space: str
    camera: Camera
    loss_curve: list[float]
    pti_curve: list[float]
    generator: Generator | None
    reconstruction: torch.Tensor
    psnr: float
    lpips_used: bool
    lpips_note: str
    timings: dict[str, float]
    options: InversionOptions


def check_inversion_camera(G: Generator, camera: Camera) -> Camera:
    """Inversion renders through the model's own pose path: cameras on its orbit, looking at the origin."""
    cfg = G.config
    if any(abs(v) > 1e-6 for v in camera.look_at):
        raise CameraError(f"inversion needs a camera looking at the origin, got look_at {camera.look_at}")
    if abs(camera.radius - cfg.radius) > 1e-3 * cfg.radius:
        raise CameraError(
            f"inversion needs a camera at the model's radius {cfg.radius:g}, got {camera.radius:g} "
            "(the object's slab is fixed relative to that orbit)"
        )
    return camera


def render_differentiable(G: Generator, ws: torch.Tensor, angles: torch.Tensor, fov: float) -> torch.Tensor:
    """ws [B, num_ws, w_dim], angles [B, 3] -> image [B, 3, H, W] with autograd, no ray jitter, const noise.

    The pose is built here out of place (the model's ``clamp_pitch`` writes into a copy, which
    autograd cannot differentiate through), with the same formulas, so camera angles get gradients.
    An EG3D model renders its super-resolved image at ``img_resolution`` (``EG3DModel.render_image``).
    """
    pitch = angles[:, 1].clamp(PITCH_EPS, math.pi - PITCH_EPS)
    clamped = torch.stack([angles[:, 0], pitch, angles[:, 2]], dim=1)
    if is_eg3d(G):
        return G.render_image(ws, clamped, fov)
    cam2world = look_at_cam2world(camera_origins(clamped, G.config.radius))
    return G._render(ws, clamped, noise_mode="const", deterministic=True, fov=fov, cam2world=cam2world)["image"]


def tunable_parameters(G: Generator) -> list[torch.nn.Parameter]:
    """What PTI fine-tunes: everything between ws and the image, never the mapping network."""
    if is_eg3d(G):
        return G.tunable_parameters()
    return list(G.synthesis.parameters())


def invert(
    G: Generator,
    image: torch.Tensor,
    camera: Camera | None = None,
    options: InversionOptions | None = None,
    class_index: int | None = None,
    progress: Progress | None = None,
) -> InversionResult:
    """Invert one target image [1, 3, R, R] (or [3, R, R]) in [-1, 1] at the model's resolution.

    ``camera`` (default: the model's frontal camera) is the view the image was taken from, or the
    start of the camera search with ``options.optimize_camera``. ``G`` itself is never changed: PTI
    tunes a copy, returned as ``result.generator``. ``G``: an EpiGRAF ``Generator``, an
    ``EG3DGenerator`` or an ``EG3DModel`` (``as_toolkit_model``; the tuned copy is then an ``EG3DModel``).
    """
    options = (options or InversionOptions()).validate()
    G = as_toolkit_model(G)
    cfg = G.config
    target = _check_target(G, image)
    camera = check_inversion_camera(G, camera or Camera.default(cfg))
    if cfg.c_dim > 0 and class_index is None:
        raise EpigrafError("this model is class-conditional: give the class of the image")
    device = G.device
    target = target.to(device)
    losses = build_loss(options.losses, device)
    gen = torch.Generator().manual_seed(options.seed)
    total = _total_steps(options)
    done = [0]

    def tick() -> None:
        done[0] += 1
        if progress is not None:
            progress(done[0], total)

    frozen = _frozen(G)
    try:
        t0 = time.perf_counter()
        ws, angles, curve = _optimise_latent(G, target, camera, options, losses.fn, class_index, gen, tick)
        t1 = time.perf_counter()
        tuned, pti_curve = None, []
        if options.pti_steps > 0:
            tuned, pti_curve = _pivotal_tuning(
                G, ws, angles, target, camera.fov, options, losses.fn, class_index, gen, tick
            )
        t2 = time.perf_counter()
    finally:
        _restore(G, frozen)
    renderer = tuned if tuned is not None else G
    with torch.no_grad():
        recon = render_differentiable(renderer, ws, angles, camera.fov)
    yaw, pitch = (float(v) for v in angles[0, :2])
    found = camera.replace(yaw=float(np.clip(yaw, -2 * math.pi, 2 * math.pi)), pitch=float(np.clip(pitch, 0, math.pi)))
    return InversionResult(
        ws=ws.detach(),
        space=options.space,
        camera=found,
        loss_curve=curve,
        pti_curve=pti_curve,
        generator=tuned,
        reconstruction=recon.detach(),
        psnr=psnr(recon, target),
        lpips_used=losses.lpips_used,
        lpips_note=losses.lpips_note,
        timings={"latent_s": t1 - t0, "pti_s": t2 - t1},
        options=options,
    )


def _check_target(G: Generator, image: torch.Tensor) -> torch.Tensor:
    if not isinstance(image, torch.Tensor):
        raise EpigrafError(f"image must be a torch tensor [1, 3, R, R] in [-1, 1], got {type(image).__name__}")
    x = image.unsqueeze(0) if image.ndim == 3 else image
    res = G.config.img_resolution
    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3 or x.shape[2:] != (res, res):
        raise EpigrafError(
            f"image must be [1, 3, {res}, {res}] (this model's resolution; see prepare_image), got {list(image.shape)}"
        )
    x = x.float()
    if not torch.isfinite(x).all():
        raise EpigrafError("image contains NaN or infinite values")
    return x.clamp(-1, 1)


def _total_steps(options: InversionOptions) -> int:
    trial = _trial_steps(options) * options.starts if options.starts > 1 else 0
    return trial + options.steps + options.pti_steps


def _trial_steps(options: InversionOptions) -> int:
    return max(1, min(50, options.steps // 5))


def _frozen(G: Generator) -> dict[str, bool]:
    """Remember which parameters wanted gradients, then freeze them all (only latents are optimised)."""
    state = {name: p.requires_grad for name, p in G.named_parameters()}
    G.requires_grad_(False)
    return state


def _restore(G: Generator, state: dict[str, bool]) -> None:
    for name, p in G.named_parameters():
        p.requires_grad_(state[name])


def _centre(G: Generator, class_index: int | None) -> torch.Tensor:
    """[1, w_dim] the truncation centre the search starts from."""
    if G.config.c_dim == 0:
        return G.mapping.w_avg.detach().reshape(1, -1).clone()
    return truncation_centres(G, [class_index]).detach().clone()


def _random_ws(G: Generator, n: int, class_index: int | None, gen: torch.Generator) -> torch.Tensor:
    """[n, w_dim] ws of random z (drawn from ``gen``) through the original mapping network."""
    z = torch.randn(n, G.z_dim, generator=gen).to(G.device)
    c = one_hot([class_index] * n, G.config.c_dim, G.device)
    with torch.no_grad():
        return G.mapping(z, c)[:, 0]


def _start_latents(G: Generator, options: InversionOptions, class_index: int | None, gen: torch.Generator):
    """The centre, then (for starts > 1) random ws halfway to it: [starts, w_dim]."""
    centre = _centre(G, class_index)
    if options.starts == 1:
        return centre
    others = centre + 0.5 * (_random_ws(G, options.starts - 1, class_index, gen) - centre)
    return torch.cat([centre, others])


def _optimise_latent(G, target, camera, options, loss_fn, class_index, gen, tick):
    """Trials of each start (in W), then W steps; in W+ the second half of the steps frees each layer's w.

    Starting W+ from a W solution keeps it near the generator's prior: free per-layer ws from the
    first step reach lower losses on the target view only with shapes that break in other views.
    """
    w0 = _start_latents(G, options, class_index, gen)
    angles = torch.tensor([camera.angles], dtype=torch.float32, device=G.device)
    curve: list[float] = []
    fov = camera.fov
    if options.starts > 1:
        trials = [_run_latent(G, target, w[None], angles, fov, "w", options, loss_fn, _trial_steps(options), tick)
                  for w in w0]  # fmt: skip
        w0, angles, curve = min(trials, key=lambda trial: trial[2][-1])  # the lowest final loss; its curve is kept
    w_steps = options.steps if options.space == "w" else options.steps // 2
    ws, angles, more = _run_latent(G, target, w0, angles, fov, "w", options, loss_fn, w_steps, tick)
    curve += more
    if options.space == "w+":
        ws, angles, more = _run_latent(
            G, target, ws, angles, fov, "w+", options, loss_fn, options.steps - w_steps, tick
        )
        curve += more
    return ws, angles, curve


def _run_latent(G, target, w0, angles0, fov, space, options, loss_fn, steps, tick):
    """Adam on the latent (and the camera) for ``steps`` steps -> (ws [1, num_ws, w_dim], angles [1, 3], curve).

    w0: the start, [1, w_dim] or [1, num_ws, w_dim] (in W its first row is used).
    """
    num_ws = G.num_ws
    w0 = w0.reshape(1, -1, w0.shape[-1])
    latent = w0[:, :1] if space == "w" else w0.expand(1, num_ws, -1)
    latent = latent.clone().requires_grad_(True)
    yaw_pitch = angles0[:, :2].clone().requires_grad_(options.optimize_camera)
    groups = [{"params": [latent], "lr": options.lr}]
    if options.optimize_camera:
        groups.append({"params": [yaw_pitch], "lr": options.camera_lr})
    opt = torch.optim.Adam(groups, betas=(0.9, 0.999))
    curve: list[float] = []
    for _ in range(steps):
        ws = latent.expand(1, num_ws, -1)
        angles = torch.cat([yaw_pitch, angles0[:, 2:]], dim=1)
        loss = loss_fn(render_differentiable(G, ws, angles, fov), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
        tick()
    with torch.no_grad():
        ws = latent.detach().expand(1, num_ws, -1).clone()
        angles = torch.cat([yaw_pitch.detach(), angles0[:, 2:]], dim=1)
    return ws, angles, curve


def _pivotal_tuning(G, pivot, angles, target, fov, options, loss_fn, class_index, gen, tick):
    """Fine-tune a copy of G's image path (``tunable_parameters``) so the pivot renders the target."""
    tuned = copy.deepcopy(G).eval()
    tuned.requires_grad_(False)
    params = tunable_parameters(tuned)
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(params, lr=options.pti_lr)
    curve: list[float] = []
    for _ in range(options.pti_steps):
        loss = loss_fn(render_differentiable(tuned, pivot, angles, fov), target)
        if options.locality_weight > 0:
            locality = _locality_loss(G, tuned, pivot, angles, fov, class_index, options, gen)
            loss = loss + options.locality_weight * locality
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(float(loss.detach()))
        tick()
    tuned.requires_grad_(False)
    return tuned.eval(), curve


def _locality_loss(G, tuned, pivot, angles, fov, class_index, options, gen) -> torch.Tensor:
    """MSE between the tuned and original renders of a random w moved towards the pivot, from a nearby view."""
    w_rand = _random_ws(G, 1, class_index, gen).reshape(1, 1, -1)
    w = w_rand + options.locality_alpha * (pivot - w_rand)
    view = angles.clone()
    view[:, 0] += (torch.rand(1, generator=gen).item() - 0.5) * (math.pi / 2)  # yaw within +-45 degrees
    with torch.no_grad():
        reference = render_differentiable(G, w, view, fov)
    return torch.nn.functional.mse_loss(render_differentiable(tuned, w, view, fov), reference)
