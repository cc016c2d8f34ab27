"""The EG3D generator: mapping (z + 25-number camera) -> tri-plane StyleGAN2 backbone -> OSG decoder ->
volume render -> super-resolution.

Module and parameter names are the official ones (``backbone.mapping.*``, ``backbone.synthesis.b4 ..
b256``, ``decoder.net.0/2``, ``superresolution.*``, the ``dataset_label_std`` buffer), so an official
state dict loads with ``load_state_dict(strict=True)`` and no renaming. The backbone is our
StyleGAN2 synthesis (``models/backbone.py``: same structure and names as the official code), always
built at 256 x 256 with 3 x 32 channels: the tri-plane size does not follow the output size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from epigraf_tools.atomic import atomic_path, write_text_atomic

from ..backbone import TriPlaneBackbone
from ..config import ConfigError
from ..layers import FullyConnectedLayer
from ..mapping import MappingNetwork
from ..model_files import CONFIG_NAME, MODEL_FAMILY_KEY, WEIGHTS_NAME, build_with_weights, read_config_json
from .cameras import split_label
from .config import NUM_PLANES, TRIPLANE_CHANNELS, TRIPLANE_RESOLUTION, EG3DConfig
from .renderer import EG3DDraws, camera_rays, ray_limits, render_rays, sample_triplane
from .superresolution import Superresolution

DECODER_HIDDEN = 64
DECODER_OUTPUT = 32  # feature channels of the neural image (the first 3 are its RGB)
MODEL_FAMILY = "eg3d"  # the config.json marker that tells an EG3D folder from an EpiGRAF one
FORMAT_VERSION = 1


class EG3DBackbone(nn.Module):
    """The official ``backbone``: a StyleGAN2 generator whose 96-channel 'image' is the tri-plane."""

    def __init__(self, cfg: EG3DConfig) -> None:
        super().__init__()
        self.synthesis = TriPlaneBackbone(
            cfg.w_dim,
            TRIPLANE_RESOLUTION,
            NUM_PLANES * TRIPLANE_CHANNELS,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            conv_clamp=cfg.conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(cfg.z_dim, cfg.c_dim, cfg.w_dim, self.num_ws, num_layers=cfg.mapping_layers)


class OSGDecoder(nn.Module):
    """Mean of the three plane features -> FC 32-64 -> softplus -> FC 64-33 (density first, raw)."""

    def __init__(self, n_features: int = TRIPLANE_CHANNELS, lr_multiplier: float = 1.0) -> None:
        super().__init__()
        self.net = nn.Sequential(
            FullyConnectedLayer(n_features, DECODER_HIDDEN, lr_multiplier=lr_multiplier),
            nn.Softplus(),
            FullyConnectedLayer(DECODER_HIDDEN, 1 + DECODER_OUTPUT, lr_multiplier=lr_multiplier),
        )

    def forward(self, plane_features: torch.Tensor, directions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """[B, 3, M, C] -> {"rgb": [B, M, 32] in (-0.001, 1.001), "sigma": [B, M, 1] raw}; directions unused."""
        x = plane_features.mean(1)
        b, m, c = x.shape
        return decoder_outputs(self.net(x.reshape(b * m, c)).reshape(b, m, -1))


def decoder_outputs(x: torch.Tensor) -> dict[str, torch.Tensor]:
    """The decoder's last-layer output [B, M, 33] -> {"rgb": sigmoid features, slightly widened, "sigma": raw}."""
    return {"rgb": torch.sigmoid(x[..., 1:]) * (1 + 2 * 0.001) - 0.001, "sigma": x[..., 0:1]}


def build_superresolution(cfg: EG3DConfig) -> Superresolution:
    """The official ``superresolution_module`` (named in ``rendering_kwargs``) for this config."""
    class_name = str(cfg.rendering_kwargs.get("superresolution_module", "")).rsplit(".", 1)[-1]
    antialias = bool(cfg.rendering_kwargs.get("sr_antialias", True))
    return Superresolution(
        variant=class_name, channels=DECODER_OUTPUT, img_resolution=cfg.img_resolution, sr_antialias=antialias
    )


class EG3DGenerator(nn.Module):
    """z [B, 512] + camera label c [B, 25] -> images; see the module docstring for the names."""

    def __init__(self, cfg: EG3DConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or EG3DConfig()
        self.z_dim, self.c_dim, self.w_dim = self.cfg.z_dim, self.cfg.c_dim, self.cfg.w_dim
        self.img_resolution = self.cfg.img_resolution
        self.rendering_kwargs = dict(self.cfg.rendering_kwargs)
        self.backbone = EG3DBackbone(self.cfg)
        self.num_ws = self.backbone.num_ws
        self.superresolution = build_superresolution(self.cfg)
        self.decoder = OSGDecoder(TRIPLANE_CHANNELS, float(self.rendering_kwargs.get("decoder_lr_mul", 1.0)))
        # Registered by the official training loop on every generator it saves.
        self.register_buffer("dataset_label_std", torch.zeros(self.c_dim))
        self.neural_rendering_resolution = self.cfg.neural_rendering_resolution

    # -- latent side -------------------------------------------------------------------------------
    def mapping(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """z [B, z_dim], conditioning label c [B, 25] -> ws [B, num_ws, w_dim] (scaled by c_scale)."""
        if not isinstance(c, torch.Tensor) or c.ndim != 2 or c.shape[1] < self.c_dim or c.shape[0] != z.shape[0]:
            got = list(c.shape) if isinstance(c, torch.Tensor) else type(c).__name__
            raise ValueError(f"conditioning labels c must be [{z.shape[0]}, {self.c_dim}] (batch of z), got {got}")
        c = c[:, : self.c_dim]
        if self.rendering_kwargs.get("c_gen_conditioning_zero", False):
            c = torch.zeros_like(c)
        c = c * self.rendering_kwargs.get("c_scale", 0)
        return self.backbone.mapping(
            z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas
        )

    def planes(self, ws: torch.Tensor, noise_mode: str = "random") -> torch.Tensor:
        """ws -> tri-planes [B, 3, 32, 256, 256] (plane p = backbone channels 32p..32p+31)."""
        out = self.backbone.synthesis(ws, noise_mode=noise_mode)
        return out.view(len(out), NUM_PLANES, TRIPLANE_CHANNELS, out.shape[-2], out.shape[-1])

    # -- field side --------------------------------------------------------------------------------
    def sample_points(
        self, planes: torch.Tensor, coords: torch.Tensor, directions: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """World points [B, M, 3] -> {"rgb": features [B, M, 32], "sigma": raw density [B, M, 1]}."""
        feats = sample_triplane(planes, coords, float(self.rendering_kwargs["box_warp"]))
        return self.decoder(feats, directions)

    def inference_field(self, planes: torch.Tensor):
        """A prepared, gradient-free ``sample_points`` for these planes (``FastEG3DField``; same values to ~1e-6)."""
        from .fast_field import FastEG3DField

        return FastEG3DField(planes, self.decoder, float(self.rendering_kwargs["box_warp"]))

    def render(
        self,
        planes: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        draws: EG3DDraws | None = None,
        fast: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Tri-planes + render label c [B, 25] -> neural image, before super-resolution.

        Returns image_raw [B, 3, r, r], image_depth [B, 1, r, r], feature_image [B, 32, r, r]
        (values in the marcher's x2-1 units) and weights_sum [B, 1, r, r]. Without ``draws`` the
        rays are jittered with ``torch.rand`` as in the official code. ``fast=True`` samples through
        ``inference_field`` (no gradients; float32 rounding apart, the same images).
        """
        res = int(neural_rendering_resolution or self.neural_rendering_resolution)
        if planes.ndim != 5 or planes.shape[1:3] != (NUM_PLANES, TRIPLANE_CHANNELS):
            raise ValueError(f"planes must be [B, 3, 32, H, W], got {list(planes.shape)}")
        cam2world, intrinsics = split_label(c)
        if cam2world.shape[0] != planes.shape[0]:
            raise ValueError(f"camera labels c have batch {cam2world.shape[0]}, planes have {planes.shape[0]}")
        if draws is not None:
            draws.check(
                planes.shape[0],
                res * res,
                int(self.rendering_kwargs["depth_resolution"]),
                int(self.rendering_kwargs["depth_resolution_importance"]),
            )
        origins, dirs = camera_rays(cam2world, intrinsics, res)
        rk = self.rendering_kwargs
        point_fn = self.inference_field(planes) if fast else (lambda p, d: self.sample_points(planes, p, d))
        near, far = ray_limits(rk, origins, dirs)
        feats, depth, wsum = render_rays(
            point_fn,
            origins,
            dirs,
            near,
            far,
            int(rk["depth_resolution"]),
            int(rk["depth_resolution_importance"]),
            draws,
            bool(rk.get("white_back", False)),
        )
        b = origins.shape[0]
        feature_image = feats.permute(0, 2, 1).reshape(b, feats.shape[-1], res, res).contiguous()
        return {
            "image_raw": feature_image[:, :3],
            "image_depth": depth.permute(0, 2, 1).reshape(b, 1, res, res),
            "feature_image": feature_image,
            "weights_sum": wsum.permute(0, 2, 1).reshape(b, 1, res, res),
        }

    def synthesis(
        self,
        ws: torch.Tensor,
        c: torch.Tensor,
        neural_rendering_resolution: int | None = None,
        noise_mode: str = "random",
        draws: EG3DDraws | None = None,
    ) -> dict[str, torch.Tensor]:
        """ws + render label -> {"image" (super-resolved), "image_raw", "image_depth", "feature_image"}.

        Like the official call, an explicit resolution becomes the generator's new default.
        """
        if neural_rendering_resolution is not None:
            self.neural_rendering_resolution = int(neural_rendering_resolution)
        out = self.render(self.planes(ws, noise_mode), c, self.neural_rendering_resolution, draws)
        # The official code hands SR a view of the feature image and its SR adds into it in place when no
        # resize is needed, so its image_raw is then altered; here image_raw stays the neural image.
        out["image"] = self.superresolution(out["image_raw"], out["feature_image"], ws)  # noise is always off there
        return out

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        neural_rendering_resolution: int | None = None,
        noise_mode: str = "random",
        draws: EG3DDraws | None = None,
    ) -> dict[str, torch.Tensor]:
        """z + label c (used both to condition and to render, as the official forward)."""
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, c, neural_rendering_resolution, noise_mode, draws)

    # -- persistence -------------------------------------------------------------------------------
    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` (official kwarg names + the family marker) and ``model.safetensors``, atomically."""
        from safetensors.torch import save_file

        out = Path(save_directory)
        out.mkdir(parents=True, exist_ok=True)
        config = {MODEL_FAMILY_KEY: MODEL_FAMILY, "format_version": FORMAT_VERSION, **self.cfg.to_dict()}
        write_text_atomic(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", MODEL_FAMILY_KEY: MODEL_FAMILY})
        return out

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu"
    ) -> EG3DGenerator:
        """Load a folder written by ``save_pretrained``: config validated, weights header checked, finite, strict."""
        path = Path(directory)
        cfg_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for p in (cfg_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: a model folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        config = read_eg3d_config(cfg_path)
        model = build_with_weights(lambda: cls(config), weights_path)
        return model.eval().to(map_location)


def eg3d_config_from_json(data: Any, label: str = CONFIG_NAME) -> EG3DConfig:
    """An EG3D ``config.json`` dict -> EG3DConfig; ConfigError names ``label`` and the field."""
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must hold a JSON object, got {type(data).__name__}")
    if data.get(MODEL_FAMILY_KEY) != MODEL_FAMILY:
        got = data.get(MODEL_FAMILY_KEY)
        raise ConfigError(f"{label}: field {MODEL_FAMILY_KEY!r} must be {MODEL_FAMILY!r}, got {got!r}")
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ConfigError(f"{label}: format_version {version!r} is not supported; expected {FORMAT_VERSION}")
    fields = {k: v for k, v in data.items() if k not in (MODEL_FAMILY_KEY, "format_version")}
    try:
        return EG3DConfig.from_dict(fields)
    except (ConfigError, TypeError, ValueError) as exc:
        raise ConfigError(f"{label}: {exc}") from None


def read_eg3d_config(path: Path) -> EG3DConfig:
    """Parse (size-limited) and validate an EG3D ``config.json``."""
    return eg3d_config_from_json(read_config_json(path), path.name)
