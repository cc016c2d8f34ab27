"""The generator surface the toolkit's pipelines use, whatever the model family.

``sampling``, ``video``, ``interpolation``, ``volume``, ``mesh`` and ``geometry_export`` only touch
the members below. The EpiGRAF ``Generator`` has them natively; ``eg3d_model.EG3DModel`` gives an
EG3D generator the same surface (``as_toolkit_model`` wraps one). Where the families genuinely
differ (their renderer, their density path) the pipelines hand the work to the model once, at the
top of ``rendering.render_views`` and ``volume.extract_density``, rather than testing the family
throughout.

``config`` must offer, in EpiGRAF's names and units: ``name``, ``num_ws``, ``c_dim`` and
``class_names`` (classes; 0 / None without), ``img_resolution``, ``radius`` and ``fov`` (the
default ``Camera``), ``ray_start``/``ray_end`` (near/far at ``radius``), ``cube_scale`` (half the
default export box), ``white_back``, ``clamp_mode`` and ``density_shift`` (sigma from raw density),
and optionally ``default_level(value)`` (a family's own iso level; ``isolevel.default_level``).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class ToolkitGenerator(Protocol):
    """What a pipeline may use of ``G`` (shapes: ws [B, num_ws, w_dim], planes [B, 3, C, R, R], points [B, M, 3])."""

    config: Any
    z_dim: int
    c_dim: int
    num_ws: int
    mapping: Any  # (z [B, z_dim], c [B, c_dim] | None, truncation_psi, truncation_cutoff) -> ws; has w_avg

    @property
    def device(self) -> torch.device: ...

    def planes(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor: ...

    def query(self, planes: torch.Tensor, points: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def parameters(self) -> Any: ...
