"""The EpiGRAF generator: mapping -> tri-plane backbone -> tri-plane field -> volume renderer.

``Generator`` keeps the official module names (``mapping``, ``synthesis.tri_plane_decoder``,
``synthesis.tri_plane_mlp``) so an official state dict loads without renaming. Its configuration is
one dataclass that round-trips through ``config.json``; weights live in ``model.safetensors``
beside it, the layout huggingface_hub's ModelHubMixin uses, so a Hub repo is just such a folder.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .background import SphereBackground
from .cameras import cam2world_from_angles, generate_rays
from .mapping import MappingNetwork
from .renderer import RayDraws, RenderOptions, render_rays_chunked
from .synthesis import TriPlaneBackbone
from .triplane import TriPlaneMLP, density_activation, query_field

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


@dataclass
class GeneratorConfig:
    """Everything needed to rebuild a generator; one place for every default (FFHQ-512 values)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 0
    img_resolution: int = 512
    img_channels: int = 3
    # mapping
    map_depth: int = 2
    camera_cond: bool = False
    camera_cond_drop_p: float = 0.0
    camera_cond_noise_std: float = 0.0
    mean_camera_pose: list[float] = field(default_factory=lambda: [0.0, math.pi / 2, 0.0])
    w_avg_beta: float = 0.998
    # tri-plane backbone
    triplane_res: int = 512
    feat_dim: int = 32
    channel_base: int = 32768
    channel_max: int = 512
    use_noise: bool = True
    conv_clamp: float | None = 256
    # tri-plane decoder
    mlp_hid_dim: int = 64
    mlp_n_layers: int = 2
    # renderer and cameras
    num_ray_steps: int = 48
    clamp_mode: str = "softplus"
    density_shift: float = 0.0
    cube_scale: float = 0.2
    fov: float = 12.0
    ray_start: float = 0.88
    ray_end: float = 1.12
    radius: float = 1.0
    white_back: bool = False
    last_back: bool = False
    # optional NeRF++ inverse-sphere background network ('sphere'; None = no background network)
    bg_model: str | None = None
    bg_num_steps: int = 8
    bg_start: float = 1.0
    bg_num_blocks: int = 2
    bg_channel_base: int = 32768
    bg_channel_max: int = 128
    bg_posenc_period: float = 64.0
    # training-time NeRF density noise (1.0 -> 0 over nerf_noise_kimg_growth)
    nerf_noise_std_init: float = 1.0
    nerf_noise_kimg_growth: float = 5000.0
    # descriptive metadata
    class_names: list[str] | None = None
    name: str = "epigraf"

    def __post_init__(self) -> None:
        if self.bg_model in ("none", "null"):
            self.bg_model = None
        if self.bg_model not in (None, "sphere"):
            raise ValueError(f"bg_model must be null or 'sphere', got {self.bg_model!r}")
        for name in ("triplane_res", "img_resolution"):
            value = getattr(self, name)
            if value < 4 or value & (value - 1):
                raise ValueError(f"{name} must be a power of two >= 4, got {value}")
        if self.ray_end <= self.ray_start:
            raise ValueError(f"ray_end ({self.ray_end}) must be larger than ray_start ({self.ray_start})")
        if not 0 < self.fov < 180:
            raise ValueError(f"fov is in degrees and must lie in (0, 180), got {self.fov}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GeneratorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"model_type", "format_version"})
        if unknown:
            raise ValueError(f"unknown generator config keys: {', '.join(unknown)}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def num_ws(self) -> int:
        """Tri-plane ws (2 log2 R - 2) plus the background network's (2 per block) when present."""
        bg = 2 * self.bg_num_blocks if self.bg_model == "sphere" else 0
        return 2 * int(math.log2(self.triplane_res)) - 2 + bg

    def render_options(self, nerf_noise_std: float = 0.0) -> RenderOptions:
        return RenderOptions(
            num_steps=self.num_ray_steps,
            ray_start=self.ray_start,
            ray_end=self.ray_end,
            density_shift=self.density_shift,
            clamp_mode=self.clamp_mode,
            white_back=self.white_back,
            last_back=self.last_back,
            use_inf_depth=self.bg_model is None,
            nerf_noise_std=nerf_noise_std,
        )


class TriPlaneSynthesis(nn.Module):
    """ws -> tri-plane [B, 3, C, R, R] and the MLP that decodes it (official name: SynthesisNetwork)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tri_plane_decoder = TriPlaneBackbone(
            w_dim=cfg.w_dim,
            out_resolution=cfg.triplane_res,
            out_channels=3 * cfg.feat_dim,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            use_noise=cfg.use_noise,
            conv_clamp=cfg.conv_clamp,
        )
        self.tri_plane_mlp = TriPlaneMLP(cfg.feat_dim, cfg.mlp_hid_dim, cfg.mlp_n_layers, cfg.img_channels + 1)
        self.num_ws = self.tri_plane_decoder.num_ws
        self.bg_model: SphereBackground | None = None
        if cfg.bg_model == "sphere":
            self.bg_model = SphereBackground(
                cfg.w_dim,
                out_channels=cfg.img_channels + 1,
                num_blocks=cfg.bg_num_blocks,
                channel_base=cfg.bg_channel_base,
                channel_max=cfg.bg_channel_max,
                posenc_period=cfg.bg_posenc_period,
                num_steps=cfg.bg_num_steps,
                start=cfg.bg_start,
            )
            self.num_ws += self.bg_model.num_ws

    def background_ws(self, ws: torch.Tensor) -> torch.Tensor | None:
        """The ws that drive the background network (None without one)."""
        if self.bg_model is None:
            return None
        start = self.tri_plane_decoder.num_ws
        return ws[:, start : start + self.bg_model.num_ws]

    def planes(
        self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> tri-plane [B, 3, C, R, R]."""
        raw = self.tri_plane_decoder(ws[:, : self.num_ws], noise_mode=noise_mode, generator=generator)
        b, _, h, w = raw.shape
        return raw.reshape(b, 3, self.cfg.feat_dim, h, w)

    def field(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Raw (rgb, density) [B, N, 4] at world points [B, N, 3]."""
        return query_field(planes, self.tri_plane_mlp, points, self.cfg.cube_scale)


class Generator(nn.Module):
    """EpiGRAF generator. Typical use::

    G = Generator(GeneratorConfig(...))
    ws = G.mapping(z, c, truncation_psi=0.7)
    out = G.render(ws, camera_angles)   # out["image"]: [B, 3, H, W] in [-1, 1]
    """

    def __init__(self, config: GeneratorConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = GeneratorConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = config
        self.synthesis = TriPlaneSynthesis(config)
        self.mapping = MappingNetwork(
            z_dim=config.z_dim,
            c_dim=config.c_dim,
            w_dim=config.w_dim,
            num_ws=self.synthesis.num_ws,
            num_layers=config.map_depth,
            w_avg_beta=config.w_avg_beta,
            camera_cond=config.camera_cond,
            camera_raw_scalars=True,
            camera_cond_drop_p=config.camera_cond_drop_p,
            camera_cond_noise_std=config.camera_cond_noise_std,
            mean_camera_pose=torch.tensor(config.mean_camera_pose, dtype=torch.float32),
        )
        self.nerf_noise_std = 0.0

    # ------------------------------------------------------------------ properties
    @property
    def num_ws(self) -> int:
        return self.synthesis.num_ws

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def c_dim(self) -> int:
        return self.config.c_dim

    # ------------------------------------------------------------------ forward pieces
    def progressive_update(self, cur_kimg: float) -> None:
        """Anneal the training-time density noise linearly to 0 over nerf_noise_kimg_growth."""
        cfg = self.config
        frac = min(max(cur_kimg, 0.0) / max(cfg.nerf_noise_kimg_growth, 1e-8), 1.0)
        self.nerf_noise_std = cfg.nerf_noise_std_init * (1.0 - frac)

    # The public inference methods (planes, query, render_planes, render) run under torch.no_grad():
    # their outputs are plain tensors (``.numpy()`` works, no graph is kept in memory). Training
    # differentiates through ``forward``, which uses the private ``_render``; for gradients
    # through the field use ``synthesis.field`` (as surface normals do).
    @torch.no_grad()
    def planes(self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None):
        """ws [B, num_ws, w_dim] -> tri-plane [B, 3, C, R, R] (no autograd; see the note above)."""
        return self.synthesis.planes(ws, noise_mode=noise_mode, generator=generator)

    @torch.no_grad()
    def query(self, planes: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Field values at world points [B, N, 3]: rgb (raw, image range), sigma_raw, sigma (no autograd)."""
        out = self.synthesis.field(planes, points)
        raw = out[..., -1]
        return {
            "rgb": out[..., :-1],
            "sigma_raw": raw,
            "sigma": density_activation(raw, self.config.density_shift, self.config.clamp_mode),
        }

    @torch.no_grad()
    def render_planes(self, planes: torch.Tensor, camera_angles: torch.Tensor, *args: Any, **kwargs: Any):
        """Volume-render tri-planes [B, 3, C, R, R] without autograd; options as ``_render_planes``."""
        return self._render_planes(planes, camera_angles, *args, **kwargs)

    def _render_planes(
        self,
        planes: torch.Tensor,
        camera_angles: torch.Tensor,
        resolution: int | None = None,
        fov: float | torch.Tensor | None = None,
        radius: float | torch.Tensor | None = None,
        cam2world: torch.Tensor | None = None,
        patch_params: dict[str, torch.Tensor] | None = None,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
        draws: RayDraws | None = None,
        chunk_rays: int | None = 16384,
        bg_ws: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Volume-render tri-planes [B, 3, C, R, R].

        camera_angles: [B, 3] (yaw, pitch, roll) radians, or pass ``cam2world`` [B, 4, 4] directly.
        Returns image [B, C, H, W] (raw, clamp to [-1, 1] for display), depth [B, 1, H, W]
        (sum of w z, unnormalised) and alpha [B, 1, H, W]. ``patch_params`` ({scales, offsets},
        [B, 2] each) renders a patch instead of the full image. Models with a background network
        need its ws (``bg_ws`` [B, 4, w_dim]; ``render`` passes them).
        """
        cfg = self.config
        b = planes.shape[0]
        res = resolution or cfg.img_resolution
        if cam2world is None:
            cam2world = cam2world_from_angles(camera_angles.to(planes.dtype), cfg.radius if radius is None else radius)
        fov = cfg.fov if fov is None else fov
        scales = patch_params["scales"] if patch_params is not None else None
        offsets = patch_params["offsets"] if patch_params is not None else None
        origins, dirs, _ = generate_rays(cam2world, fov, res, res, scales, offsets)
        opts = cfg.render_options(self.nerf_noise_std if self.training else 0.0)
        if draws is None:
            draws = RayDraws.draw(b, res * res, opts.num_steps, planes.device, generator, deterministic)

        def field_fn(points: torch.Tensor) -> torch.Tensor:
            return self.synthesis.field(planes, points)

        background_fn = None
        if self.synthesis.bg_model is not None:
            if bg_ws is None:
                raise ValueError("this model has a background network: pass bg_ws (or use render(ws, ...))")

            def background_fn(o: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
                return self.synthesis.bg_model(bg_ws, o, d, opts, generator)

        out = render_rays_chunked(field_fn, origins, dirs, opts, draws, chunk_rays, generator, background_fn)

        def to_image(x: torch.Tensor) -> torch.Tensor:
            return x.reshape(b, res, res, -1).permute(0, 3, 1, 2).contiguous()

        return {"image": to_image(out["rgb"]), "depth": to_image(out["depth"]), "alpha": to_image(out["alpha"])}

    @torch.no_grad()
    def render(
        self,
        ws: torch.Tensor,
        camera_angles: torch.Tensor,
        noise_mode: str = "const",
        generator: torch.Generator | None = None,
        **render_kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """ws [B, num_ws, w_dim] + cameras -> images, without autograd; see ``_render_planes`` for the options."""
        return self._render(ws, camera_angles, noise_mode, generator, **render_kwargs)

    def _render(
        self,
        ws: torch.Tensor,
        camera_angles: torch.Tensor,
        noise_mode: str = "const",
        generator: torch.Generator | None = None,
        **render_kwargs: Any,
    ) -> dict[str, torch.Tensor]:
        """``render`` with autograd (the training path)."""
        planes = self.synthesis.planes(ws, noise_mode=noise_mode, generator=generator)
        bg_ws = self.synthesis.background_ws(ws)
        return self._render_planes(planes, camera_angles, generator=generator, bg_ws=bg_ws, **render_kwargs)

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None,
        camera_angles: torch.Tensor,
        camera_angles_cond: torch.Tensor | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
        noise_mode: str = "random",
        **render_kwargs: Any,
    ) -> torch.Tensor:
        """z [B, z_dim] -> image [B, 3, H, W] (the training entry point)."""
        ws = self.mapping(
            z,
            c,
            camera_angles=camera_angles_cond,
            truncation_psi=truncation_psi,
            truncation_cutoff=truncation_cutoff,
            update_emas=update_emas,
        )
        return self._render(ws, camera_angles, noise_mode=noise_mode, **render_kwargs)["image"]

    # ------------------------------------------------------------------ persistence
    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (each atomically) into a folder."""
        from safetensors.torch import save_file

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        config = {"model_type": "epigraf-generator", "format_version": 1, **self.config.to_dict()}
        _atomic_write_bytes(out / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        fd, tmp = tempfile.mkstemp(prefix=".model-", suffix=".tmp", dir=out)
        os.close(fd)
        try:
            save_file(state, tmp, metadata={"format": "pt", "model_type": "epigraf-generator"})
            os.replace(tmp, out / WEIGHTS_NAME)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Generator:
        """Load a folder written by ``save_pretrained`` (for Hub ids use ``epigraf_tools.load_generator``)."""
        from safetensors.torch import load_file

        path = Path(directory)
        cfg_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for p in (cfg_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: a model folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        config = GeneratorConfig.from_dict(json.loads(cfg_path.read_text()))
        model = cls(config)
        state = load_file(str(weights_path), device=str(map_location))
        model.load_state_dict(state, strict=True)
        return model.eval().to(map_location)


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
