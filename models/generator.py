"""The EpiGRAF generator: mapping -> tri-plane backbone -> tri-plane field -> volume renderer.

``Generator`` keeps the official module names (``mapping``, ``synthesis.tri_plane_decoder`` -- the
StyleGAN2 backbone of backbone.py, despite the official name --, ``synthesis.tri_plane_mlp``, the
tri-plane MLP of triplane.py) so an official state dict loads without renaming. Its configuration is
one dataclass (config.py) that round-trips through ``config.json``; weights live in ``model.safetensors``
beside it, the layout huggingface_hub's ModelHubMixin uses, so a Hub repo is just such a folder.

Writing those two files is the only file I/O in models/, and it goes through the base module
``epigraf_tools.atomic`` (one atomic-write implementation, with the temp-file sweep and signal
safety): that module imports nothing but ``epigraf_tools.errors``, and ``epigraf_tools/__init__``
is lazy, so this import pulls in no toolkit pipeline and makes no cycle.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from epigraf_tools.atomic import atomic_path, write_text_atomic

from .cameras import cam2world_from_angles, generate_rays
from .config import GeneratorConfig, check_parameter_budget
from .fast_field import FastTriPlaneField
from .mapping import MappingNetwork
from .model_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    build_with_weights,
    read_config_file,
)
from .renderer import RayDraws, density_activation, render_rays_chunked
from .triplane import FoldedMLP, TriPlaneSynthesis


def _mapping_network(config: GeneratorConfig, num_ws: int) -> MappingNetwork:
    return MappingNetwork(
        z_dim=config.z_dim,
        c_dim=config.c_dim,
        w_dim=config.w_dim,
        num_ws=num_ws,
        num_layers=config.map_depth,
        w_avg_beta=config.w_avg_beta,
        camera_cond=config.camera_cond,
        camera_raw_scalars=True,
        camera_cond_drop_p=config.camera_cond_drop_p,
        camera_cond_noise_std=config.camera_cond_noise_std,
        mean_camera_pose=torch.tensor(config.mean_camera_pose, dtype=torch.float32),
    )


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
        check_parameter_budget(config)  # again: fields may have been changed after validation
        self.config = config
        self.synthesis = TriPlaneSynthesis(config)
        self.mapping = _mapping_network(config, self.synthesis.num_ws)
        self.nerf_noise_std = 0.0
        # Which field ``_render_planes`` queries on the CPU: the prepared gather field of
        # fast_field.py (differentiable under autograd; 2-3x faster there than grid_sample,
        # forward and backward), or, when False, the grid_sample reference ``synthesis.field``,
        # whose summation order is the official code's. Other devices always use the reference.
        self.fast_cpu_field = True

    # ------------------------------------------------------------------ properties
    @property
    def num_ws(self) -> int:
        return self.synthesis.num_ws

    @property
    def z_dim(self) -> int:
        return self.config.z_dim

    @property
    def device(self) -> torch.device:
        """Where the weights live (``w_avg`` is a buffer every generator has, so this never fails)."""
        return self.mapping.w_avg.device

    def inference_field(self, planes: torch.Tensor) -> FastTriPlaneField:
        """The prepared, gradient-free field of tri-planes [B, 3, C, R, R] (fast_field.py), for
        renderers outside the module; reuse it across views of the same planes."""
        return FastTriPlaneField(planes, self.synthesis.tri_plane_mlp, self.config.cube_scale)

    def folded_mlp(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> FoldedMLP:
        """The tri-plane MLP's weights with its constant gains folded in (``TriPlaneMLP.folded``), for
        inference code outside the module (the toolkit's separable volumes)."""
        return self.synthesis.tri_plane_mlp.folded(dtype, device)

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

        field_fn = self._field_fn(planes)

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

    def _field_fn(self, planes: torch.Tensor):
        """The field ``_render_planes`` queries (see ``fast_cpu_field``): points [B, N, 3] -> raw [B, N, 4].

        The fast field gives no gradient to the points, so points that need one (a camera being
        optimised, as inversion does) go through the reference.
        """

        def reference(points: torch.Tensor) -> torch.Tensor:
            return self.synthesis.field(planes, points)

        if not (self.fast_cpu_field and planes.device.type == "cpu"):
            return reference
        fast = FastTriPlaneField(
            planes, self.synthesis.tri_plane_mlp, self.config.cube_scale, differentiable=torch.is_grad_enabled()
        )
        return lambda points: reference(points) if points.requires_grad else fast(points)

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
        write_text_atomic(out / CONFIG_NAME, json.dumps(config, indent=2) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        with atomic_path(out / WEIGHTS_NAME) as tmp:
            save_file(state, str(tmp), metadata={"format": "pt", "model_type": "epigraf-generator"})
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Generator:
        """Load a folder written by ``save_pretrained`` (for Hub ids use ``epigraf_tools.load_generator``)."""
        path = Path(directory)
        cfg_path, weights_path = path / CONFIG_NAME, path / WEIGHTS_NAME
        for p in (cfg_path, weights_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p} not found: a model folder needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        config = read_config_file(cfg_path)
        model = build_with_weights(lambda: cls(config), weights_path)  # within MAX_PARAMETERS, checked first
        return model.eval().to(map_location)
