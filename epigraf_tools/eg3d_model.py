"""EG3D models in the toolkit: one adapter that gives an ``EG3DGenerator`` the toolkit's generator surface.

The toolkit's pipelines (sampling, video, interpolation, volumes, meshes) were written against the
EpiGRAF ``Generator``: ``config`` (radius, fov, near/far, cube, iso level...), ``mapping`` with
``w_avg``, ``planes``, ``query``, and a renderer fed by ``Camera`` objects. ``EG3DModel`` offers the
same members for an EG3D generator, translating conventions in this one place:

* Worlds. The toolkit works in the model world (frontal camera on +x, y up; ``camera.py``); EG3D's
  world has its frontal camera on +z. A model-world point p is the EG3D point (-p_z, p_y, p_x), the
  rotation ``camera._EG3D_TO_MODEL`` describes, so volumes, meshes and normals come out in the same
  frame, handedness and axis order as EpiGRAF's.
* Cameras. ``Camera`` keeps its meaning (orbit of ``radius`` around ``look_at``, yaw 0 / pitch pi/2
  frontal). The default camera is EG3D's frontal pose exactly: radius ``avg_camera_radius`` (2.7)
  around the world origin; its optical axis passes through the pivot, so it also "looks at" the
  pivot as the official scripts' camera does. Its fov is that of the normalised focal length 4.2647
  of EG3D's dataset labels (what the models were trained with, and what gen_videos.py renders with)
  at the neural rendering resolution, so ``Camera.to_eg3d(neural_resolution, world='eg3d')`` gives
  that label back. (gen_samples.py renders at "fov 18", f = 4.4652: its option is an int.)
* Conditioning. EG3D's mapping takes a camera label too; it is gen_samples.py's: the frontal camera
  looking at ``avg_camera_pivot`` from ``avg_camera_radius`` with the fov-18 intrinsics, whatever
  camera renders, so a seed's ws equal that script's (``conditioning=`` another ``Camera`` to change it).
* Truncation. Around ``w_avg`` on the first ``cutoff`` ws; the official scripts' cutoff 14 equals
  "all ws" (None) because the tri-plane backbone always has 14.
* Images. ``image`` is the super-resolved picture (``img_resolution``); ``settings.raw`` gives the
  neural render instead. Depth, alpha and normals always come from the neural render (at the
  image size by nearest-neighbour lookup when the image is super-resolved). Near/far follow the
  camera: ``ray_start``/``ray_end`` shifted by (camera distance from the origin - 2.7), as for EpiGRAF.
* Inversion. ``render_image`` is the differentiable render ``inversion`` optimises through: the
  super-resolved image from ws and yaw/pitch tensors, jitter-free, const noise, EG3D's own
  ``render`` and ``superresolution`` (the same calls ``synthesis`` makes). ``tunable_parameters`` is
  what pivotal tuning fine-tunes (backbone synthesis, decoder, super-resolution; never the mapping).
* Levels. EG3D meshes its raw density at 10 (the EG3D repository's recommendation); the renderer's
  density is softplus(raw - 1).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .camera import _EG3D_TO_MODEL, _GL_TO_CV, Camera, check_slab_distance
from .checkpoints.model_card import EG3D_ISO_LEVEL
from .errors import EpigrafError
from .kernels import attach_field_kernels
from .models.cameras import camera_origins, look_at_cam2world
from .models.eg3d import EG3DDraws, EG3DGenerator, pose_label, split_label
from .models.eg3d.cameras import DEFAULT_FOV_DEG, make_label
from .models.eg3d.renderer import auto_ray_limits, camera_rays, render_rays
from .models.renderer import density_activation

FAMILY = "eg3d"
EG3D_RAW_LEVEL = EG3D_ISO_LEVEL  # the EG3D repository's marching-cubes level on the raw density (the card's)
DATASET_FOCAL = 4.2647  # normalised focal length of EG3D's FFHQ/AFHQ labels (gen_videos.py's intrinsics)
ALPHA_EPS = 1e-3  # as rendering.ALPHA_EPS: no surface (depth, normals 0) below this opacity
# Model world -> EG3D world (the inverse, i.e. transpose, of camera._EG3D_TO_MODEL).
_MODEL_TO_EG3D = torch.tensor(_EG3D_TO_MODEL.T, dtype=torch.float32)


def to_eg3d_points(points: torch.Tensor) -> torch.Tensor:
    """Model-world points [..., 3] -> EG3D-world points [..., 3]: (x, y, z) -> (-z, y, x)."""
    return torch.stack([-points[..., 2], points[..., 1], points[..., 0]], dim=-1)


def camera_fov(focal: float, resolution: int) -> float:
    """The ``Camera.fov`` (degrees, between outermost pixel centres) of normalised focal ``focal`` at ``resolution``."""
    return math.degrees(2 * math.atan((resolution - 1) / (2 * resolution * focal)))


@dataclass(frozen=True)
class EG3DToolkitConfig:
    """What the toolkit reads from ``G.config``, in the toolkit's (EpiGRAF's) names and units."""

    name: str
    num_ws: int
    w_dim: int
    img_resolution: int  # the super-resolved image
    raw_resolution: int  # the neural render (rays per side) by default
    radius: float  # avg_camera_radius: the camera distance near/far were set for
    fov: float  # degrees, Camera convention (see camera_fov)
    pivot: tuple[float, float, float]  # avg_camera_pivot in the model world
    ray_start: float  # with auto_ray_limits: the box's range as seen from `radius` (depth maps, slabs)
    ray_end: float
    box_warp: float
    white_back: bool
    auto_ray_limits: bool = False  # rendering_kwargs ray_start = ray_end = 'auto': per-ray box limits
    c_dim: int = 0  # no classes: EG3D's 25 conditioning numbers are a camera (see EG3DModel.conditioning)
    class_names: list[str] | None = None
    clamp_mode: str = "softplus"
    density_shift: float = -1.0  # the renderer's sigma = softplus(raw - 1)
    family: str = FAMILY

    @property
    def cube_scale(self) -> float:
        """Half the side of the box the tri-planes cover (default export box: [-box_warp/2, box_warp/2]^3)."""
        return self.box_warp / 2

    @property
    def label_resolution(self) -> int:
        """The resolution cameras are turned into EG3D labels at (the model's neural rendering resolution)."""
        return self.raw_resolution

    def default_level(self, value: str = "raw") -> float:
        """EG3D's recommended iso level: raw density 10, i.e. sigma = softplus(10 - 1)."""
        if value == "raw":
            return EG3D_RAW_LEVEL
        if value == "sigma":
            return float(F.softplus(torch.tensor(EG3D_RAW_LEVEL - 1.0, dtype=torch.float64)))
        raise ValueError(f"unknown value type {value!r}")


def toolkit_config(G: EG3DGenerator, name: str = FAMILY) -> EG3DToolkitConfig:
    """The toolkit view of an EG3D generator's config."""
    rk = G.rendering_kwargs
    res = int(G.cfg.neural_rendering_resolution)
    px, py, pz = (float(v) for v in rk.get("avg_camera_pivot", (0.0, 0.0, 0.2)))
    pivot = tuple(float(v) for v in _EG3D_TO_MODEL @ np.array([px, py, pz]))
    radius, box = float(rk.get("avg_camera_radius", 2.7)), float(rk["box_warp"])
    auto = rk["ray_start"] == "auto"  # EG3DConfig checked that ray_end is 'auto' too
    if auto:  # the cube's nearest and farthest points from a camera at `radius`
        start, end = max(radius - math.sqrt(3) * box / 2, 0.0), radius + math.sqrt(3) * box / 2
    else:
        start, end = float(rk["ray_start"]), float(rk["ray_end"])
    return EG3DToolkitConfig(
        name=name,
        num_ws=int(G.num_ws),
        w_dim=int(G.w_dim),
        img_resolution=int(G.img_resolution),
        raw_resolution=res,
        radius=radius,
        fov=camera_fov(DATASET_FOCAL, res),
        pivot=pivot,  # type: ignore[arg-type]
        ray_start=start,
        ray_end=end,
        box_warp=box,
        white_back=bool(rk.get("white_back", False)),
        auto_ray_limits=auto,
    )


class ConditionedMapping:
    """``G.mapping`` as the toolkit calls it, (z, c=None, psi, cutoff) -> ws, with EG3D's camera label fixed."""

    def __init__(self, G: EG3DGenerator, label: torch.Tensor) -> None:
        self.G, self.label = G, label
        # The sizes code wrapping a mapping reads (latent_files.PinnedMapping); no classes (c_dim 0).
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = G.z_dim, 0, G.w_dim, G.num_ws

    @property
    def w_avg(self) -> torch.Tensor:
        return self.G.backbone.mapping.w_avg

    def __call__(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
    ) -> torch.Tensor:
        """z [B, z_dim] -> ws [B, num_ws, w_dim]; ``c`` must be None (EG3D models have no classes)."""
        if c is not None:
            raise EpigrafError("EG3D models have no classes: their conditioning is a camera")
        cond = self.label.to(z.device).expand(z.shape[0], -1)
        return self.G.mapping(z.float(), cond, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)


class EG3DModel:
    """An ``EG3DGenerator`` with the toolkit's generator surface (see the module docstring)."""

    family = FAMILY

    def __init__(self, G: EG3DGenerator, name: str = FAMILY, conditioning: Camera | None = None) -> None:
        self.eg3d = G
        self.config = toolkit_config(G, name)
        self.z_dim, self.c_dim, self.num_ws = G.z_dim, 0, G.num_ws
        # Kept apart from ``mapping``, which a stored latent may replace (latent_files.pin_latent).
        self.conditioned_mapping = ConditionedMapping(G, self.conditioning_label(conditioning))
        self.mapping: Any = self.conditioned_mapping

    # -- latent side -------------------------------------------------------------------------------
    def conditioning_label(self, camera: Camera | None = None) -> torch.Tensor:
        """[1, 25] label the mapping network sees: ``camera``'s, or gen_samples.py's frontal pose."""
        if camera is not None:
            return self.label(camera)
        rk = self.eg3d.rendering_kwargs
        pivot = [float(v) for v in rk.get("avg_camera_pivot", (0.0, 0.0, 0.2))]
        radius = float(rk.get("avg_camera_radius", 2.7))
        return pose_label(math.pi / 2, math.pi / 2, DEFAULT_FOV_DEG, pivot, radius)

    def label(self, camera: Camera) -> torch.Tensor:
        """A ``Camera`` -> its EG3D label [1, 25] (EG3D world, intrinsics at the neural resolution)."""
        vec = camera.to_eg3d(self.config.label_resolution, world="eg3d")
        return torch.from_numpy(vec).float().unsqueeze(0)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> tri-planes [B, 3, 32, 256, 256]."""
        return self.eg3d.planes(ws, noise_mode=noise_mode)

    def renderer_ws(self, ws: torch.Tensor) -> torch.Tensor:
        """The ws the renderer needs beyond the planes: the super-resolution module's."""
        return ws

    def inference_field(self, planes: torch.Tensor) -> None:
        """Nothing to prepare: EG3D renders through its own decoder."""
        return None

    def render_provenance(self, settings: Any) -> dict[str, Any]:
        """What an output's sidecar adds for an EG3D model: the family, the image kind, the conditioning label."""
        return {
            "model_family": FAMILY,
            "image": "neural render (--raw)" if settings.raw else "super-resolved",
            **self.conditioning_provenance(),
        }

    def conditioning_provenance(self) -> dict[str, Any]:
        """The family and the 25 numbers the mapping network is conditioned on (rounded for JSON)."""
        label = self.conditioned_mapping.label[0].double().cpu().numpy().round(8) + 0.0
        return {"model_family": FAMILY, "eg3d_conditioning_label": label.tolist()}

    # -- field side (model-world points) -----------------------------------------------------------
    def query(self, planes: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Model-world points [B, M, 3] -> rgb [B, M, 3] (image range), sigma_raw [B, M], sigma [B, M].

        As ``Generator.query``: the renderer's colour (EG3D's features 0-2, x2-1) and its density
        sigma = softplus(raw - 1).
        """
        out = self.eg3d.sample_points(planes, to_eg3d_points(points))
        raw = out["sigma"][..., 0]
        sigma = density_activation(raw, self.config.density_shift, self.config.clamp_mode)
        return {"rgb": out["rgb"][..., :3] * 2 - 1, "sigma_raw": raw, "sigma": sigma}

    def density(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Raw density [B, M] at model-world points [B, M, 3] (what EG3D's shape extraction writes)."""
        return self.eg3d.sample_points(planes, to_eg3d_points(points))["sigma"][..., 0]

    # -- rendering ---------------------------------------------------------------------------------
    def render_views(
        self,
        planes: torch.Tensor,
        grid: list[list[Camera]],
        settings: Any,
        keys: list[list[int]] | None,
        ws: torch.Tensor | None,
        normals: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Render B tri-planes from [B][V] cameras; same outputs as ``rendering.render_views``.

        ``settings``: a validated ``RenderSettings`` (``raw``: the neural image; ``resolution``: output
        size); ``keys`` [B][V] noise keys (None: deterministic); ``ws`` [B, num_ws, w_dim] for the
        super-resolution (needed unless ``settings.raw``).
        """
        cfg = self.config
        raw_res = settings.resolution if settings.raw and settings.resolution else cfg.raw_resolution
        out_res = settings.resolved_resolution(self)
        if not settings.raw and ws is None:
            raise EpigrafError("an EG3D render needs the sample's ws for its super-resolution (pass bg_ws=ws)")
        results: dict[str, list[torch.Tensor]] = {"image": [], "alpha": [], "depth": [], "normals": []}
        for b, row in enumerate(grid):
            # the prepared field (values within ~1e-6 of sample_points), compiled when the kernel is built;
            # one table copy per sample, shared by all its views
            field = self.eg3d.inference_field(planes[b : b + 1])
            attach_field_kernels(field)
            for v, cam in enumerate(row):
                key = None if keys is None else keys[b][v]
                view = self._render_one(planes[b : b + 1], field, cam, raw_res, key, settings.chunk_rays, normals)
                if not settings.raw:
                    with torch.inference_mode():
                        image = self.eg3d.superresolution(view["image"], view["features"], ws[b : b + 1])
                    if image.shape[-1] != out_res:
                        image = F.interpolate(image, size=(out_res, out_res), mode="bilinear", antialias=True)
                    view["image"] = image
                for name in ("alpha", "depth", "normals"):
                    if name in view and view[name].shape[-1] != out_res:
                        view[name] = F.interpolate(view[name], size=(out_res, out_res), mode="nearest")
                for name in results:
                    if name in view:
                        results[name].append(view[name][0])
        bsz, nv = len(grid), len(grid[0])
        return {k: torch.stack(t).reshape(bsz, nv, *t[0].shape) for k, t in results.items() if t}

    def labels_from_angles(self, angles: torch.Tensor, fov: float) -> torch.Tensor:
        """[B, 3] (yaw, pitch, roll) of cameras on the orbit looking at the origin -> EG3D labels [B, 25].

        ``label(camera)`` (``Camera.to_eg3d``) in torch, so the angles get gradients: the model's look-at
        pose (pitch already clamped), OpenGL -> OpenCV axes, rotated into EG3D's world, and the
        normalised intrinsics of ``fov`` at the label resolution.
        """
        c2w = look_at_cam2world(camera_origins(angles, self.config.radius))
        gl_to_cv = torch.tensor(_GL_TO_CV, dtype=c2w.dtype, device=c2w.device)
        to_eg3d = torch.eye(4, dtype=c2w.dtype, device=c2w.device)
        to_eg3d[:3, :3] = _MODEL_TO_EG3D.to(c2w)
        c2w = to_eg3d @ c2w @ gl_to_cv
        res = self.config.label_resolution
        fx = (res - 1) / (2 * res * math.tan(math.radians(fov) / 2))
        intrinsics = torch.tensor([[fx, 0.0, 0.5], [0.0, fx, 0.5], [0.0, 0.0, 1.0]], device=c2w.device)
        return make_label(c2w, intrinsics)

    def render_image(self, ws: torch.Tensor, angles: torch.Tensor, fov: float) -> torch.Tensor:
        """ws [B, num_ws, w_dim] + [B, 3] angles (pitch clamped) -> super-resolved images [B, 3, R, R], with autograd.

        Jitter-free rays and const noise, through EG3D's ``render`` and ``superresolution`` in one
        batch (what ``synthesis`` calls; ``render_views`` runs the same in chunks without gradients).
        The near/far slab is EG3D's own, so the cameras must sit at ``config.radius`` from the
        origin, which ``inversion.check_inversion_camera`` ensures.
        """
        res = self.config.raw_resolution
        steps = int(self.eg3d.rendering_kwargs["depth_resolution"])
        draws = EG3DDraws.deterministic(ws.shape[0], res * res, steps)
        out = self.eg3d.render(self.planes(ws, "const"), self.labels_from_angles(angles, fov), res, draws)
        return self.eg3d.superresolution(out["image_raw"], out["feature_image"], ws)

    def tunable_parameters(self) -> list[torch.nn.Parameter]:
        """What pivotal tuning fine-tunes: everything between ws and the image (backbone synthesis,
        decoder, super-resolution); the mapping stays, so other seeds keep their ws."""
        G = self.eg3d
        return [*G.backbone.synthesis.parameters(), *G.decoder.parameters(), *G.superresolution.parameters()]

    def check_cameras(self, cameras: Sequence[Camera]) -> None:
        """``rendering.check_cameras`` for this model: its slab must start in front of every camera."""
        if self.config.auto_ray_limits:
            return
        for cam in cameras:
            distance = float(split_label(self.label(cam))[0][0, :3, 3].norm())
            check_slab_distance(distance, self.config.radius, self.config.ray_start)

    def _render_one(
        self,
        planes: torch.Tensor,
        field: Any,
        camera: Camera,
        res: int,
        key: int | None,
        chunk: int | None,
        normals: bool,
    ) -> dict[str, torch.Tensor]:
        """One view at ``res`` rays per side: image [1, 3, r, r] (x2-1 units), features, alpha, depth (+ normals).

        ``field``: the planes' prepared ``FastEG3DField`` (``inference_field``)."""
        cfg, rk = self.config, self.eg3d.rendering_kwargs
        device = planes.device
        cam2world, intrinsics = split_label(self.label(camera).to(device))
        steps, fine = int(rk["depth_resolution"]), int(rk["depth_resolution_importance"])
        n = res * res
        origins, dirs = camera_rays(cam2world, intrinsics, res)
        if cfg.auto_ray_limits:  # per ray, from all the view's rays at once, as the official renders a view
            near, far = auto_ray_limits(origins, dirs, cfg.box_warp)
        else:
            distance = float(cam2world[0, :3, 3].norm())
            check_slab_distance(distance, cfg.radius, cfg.ray_start)
            near, far = cfg.ray_start + distance - cfg.radius, cfg.ray_end + distance - cfg.radius
        u_strat, u_pdf = ray_uniforms(key, n, steps, fine)

        def point_fn(pts: torch.Tensor, d: torch.Tensor) -> dict[str, torch.Tensor]:
            return field(pts, d)

        chunk = chunk or (2048 if device.type == "cpu" else 32768)
        parts = []
        with torch.inference_mode():
            for s in range(0, n, chunk):
                e = min(n, s + chunk)
                if key is None:
                    draws = EG3DDraws.deterministic(1, e - s, steps)
                else:
                    draws = EG3DDraws(u_strat[:, s:e].to(device), u_pdf[s:e].to(device))
                lo, hi = (x[:, s:e] if isinstance(x, torch.Tensor) else x for x in (near, far))
                rgb, depth, wsum = render_rays(
                    point_fn, origins[:, s:e], dirs[:, s:e], lo, hi, steps, fine, draws, cfg.white_back
                )
                parts.append((rgb, depth, wsum))
        feats = torch.cat([p[0] for p in parts], 1)  # [1, n, 32]
        depth = torch.cat([p[1] for p in parts], 1)
        alpha = torch.cat([p[2] for p in parts], 1)
        hit = alpha > ALPHA_EPS
        depth = torch.where(hit, depth, 0.0)

        def image(x: torch.Tensor) -> torch.Tensor:
            return x.permute(0, 2, 1).reshape(1, x.shape[-1], res, res).contiguous()

        features = image(feats)
        view = {"image": features[:, :3], "features": features, "alpha": image(alpha), "depth": image(depth)}
        if normals:
            world = self.surface_normals(planes, origins + dirs * depth)  # EG3D world [1, n, 3]
            model = world @ _MODEL_TO_EG3D.to(world)  # row vectors: n_model = M n_eg3d
            rot = torch.from_numpy(camera.cam2world("opengl")[:3, :3]).to(model)
            view["normals"] = image(torch.where(hit, model @ rot, 0.0))  # R^T n: world -> camera axes
        return view

    def surface_normals(self, planes: torch.Tensor, points: torch.Tensor, chunk: int = 65536) -> torch.Tensor:
        """Unit outward normals [1, N, 3] (EG3D world) at EG3D-world points [1, N, 3]: -grad(raw density)."""
        parts = []
        with torch.inference_mode(False), torch.enable_grad():
            planes = planes.detach().clone()
            for s in range(0, points.shape[1], chunk):
                pts = points[:, s : s + chunk].detach().clone().requires_grad_(True)
                sigma = self.eg3d.sample_points(planes, pts)["sigma"]
                (grad,) = torch.autograd.grad(sigma.sum(), pts)
                parts.append(-F.normalize(grad.detach(), dim=-1))
        return torch.cat(parts, dim=1)

    def parameters(self):
        """The wrapped generator's parameters (for counts and device checks)."""
        return self.eg3d.parameters()

    def named_parameters(self):
        return self.eg3d.named_parameters()

    def requires_grad_(self, requires_grad: bool = True) -> EG3DModel:
        self.eg3d.requires_grad_(requires_grad)
        return self

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """An EG3D model folder (``EG3DGenerator.save_pretrained``) that every command loads."""
        return self.eg3d.save_pretrained(save_directory)

    def eval(self) -> EG3DModel:
        self.eg3d.eval()
        return self

    def to(self, device: torch.device | str) -> EG3DModel:
        self.eg3d.to(device)
        self.conditioned_mapping.label = self.conditioned_mapping.label.to(device)
        return self


def ray_uniforms(key: int | None, num_rays: int, steps: int, fine: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's two uniform tensors from ``torch.Generator().manual_seed(key)`` (CPU), in EG3D's draw order.

    u_stratified [1, R, S, 1] then u_pdf [R, S_fine], so a seed renders the same pixels whatever the
    batch or device; None (deterministic rendering) gives empty tensors.
    """
    if key is None:
        return torch.empty(0), torch.empty(0)
    gen = torch.Generator().manual_seed(int(key))
    u_strat = torch.rand(1, num_rays, steps, 1, generator=gen)
    u_pdf = torch.rand(num_rays, fine, generator=gen)
    return u_strat, u_pdf


def as_toolkit_model(G: Any, name: str | None = None) -> Any:
    """The object the toolkit's pipelines take: an EpiGRAF ``Generator`` as it is, an ``EG3DGenerator`` wrapped."""
    if isinstance(G, EG3DGenerator):
        return EG3DModel(G, name or FAMILY)
    return G


def is_eg3d(G: Any) -> bool:
    return isinstance(G, EG3DModel)


def conditioned_on(G: Any, camera: Camera) -> EG3DModel:
    """The same EG3D model with its mapping conditioned on ``camera`` instead of the frontal pose.

    gen_videos.py calls this entanglement 'both' (the view also steers the latent); an EpiGRAF
    model has no camera conditioning, so it is refused. A pinned latent stays pinned: its ws were
    stored, so no label changes them.
    """
    G = as_toolkit_model(G)
    if not is_eg3d(G):
        raise EpigrafError("only EG3D models condition their mapping on a camera; this is an EpiGRAF model")
    model = EG3DModel(G.eg3d, G.config.name, conditioning=camera)
    if G.mapping is not G.conditioned_mapping:  # a stored latent (pin_latent): it renders as stored, unconditioned
        model.mapping = G.mapping
    return model


__all__: Sequence[str] = [
    "EG3DModel",
    "EG3DToolkitConfig",
    "as_toolkit_model",
    "conditioned_on",
    "is_eg3d",
    "to_eg3d_points",
]
