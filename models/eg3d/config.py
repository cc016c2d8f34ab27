"""EG3DConfig: the official TriPlaneGenerator init kwargs, as one validated dataclass.

Field names are the official keyword names so a config read from an official snapshot or train.py
dump maps one to one (``from_dict`` / ``to_dict``); ``rendering_kwargs`` stays a dict with the
official keys because the renderer and the super-resolution module read it by those names.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

from ..config import ConfigError

# The official FFHQ rendering options (train.py --cfg=ffhq).
FFHQ_RENDERING_KWARGS: dict[str, Any] = {
    "image_resolution": 512,
    "disparity_space_sampling": False,
    "clamp_mode": "softplus",
    "superresolution_module": "training.superresolution.SuperresolutionHybrid8XDC",
    "c_gen_conditioning_zero": False,
    "gpc_reg_prob": 0.5,
    "c_scale": 1.0,
    "superresolution_noise_mode": "none",
    "density_reg": 0.25,
    "density_reg_p_dist": 0.004,
    "reg_type": "l1",
    "decoder_lr_mul": 1.0,
    "sr_antialias": True,
    "depth_resolution": 48,
    "depth_resolution_importance": 48,
    "ray_start": 2.25,
    "ray_end": 3.3,
    "box_warp": 1,
    "avg_camera_radius": 2.7,
    "avg_camera_pivot": [0, 0, 0.2],
}

# Tri-plane backbone geometry: fixed in the official generator whatever the output size.
TRIPLANE_RESOLUTION = 256
TRIPLANE_CHANNELS = 32
NUM_PLANES = 3

# Bounds a config must keep before anything is built or rendered: the releases use 128-512 px images,
# 64-128 px neural renders and 48 + 48 samples per ray; the bounds leave room for far more, but refuse
# what would only end in an out-of-memory error or an hours-long render (a hostile or mistyped config).
MAX_IMAGE_RESOLUTION = 4096
MAX_DEPTH_SAMPLES = 1024


def _check_int(where: str, value: Any, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not lo <= value <= hi:
        raise ConfigError(f"{where} must be an integer in [{lo}, {hi}], got {value!r}")


def _check_real(where: str, value: Any, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise ConfigError(f"{where} must be positive, got {value!r}")
    return float(value)


@dataclass
class EG3DConfig:
    """Init kwargs of the official generator (``G_kwargs`` plus c_dim / img_resolution / img_channels)."""

    z_dim: int = 512
    w_dim: int = 512
    c_dim: int = 25
    img_resolution: int = 512
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    num_fp16_res: int = 0
    conv_clamp: float | None = None
    fused_modconv_default: str = "inference_only"
    sr_num_fp16_res: int = 4
    mapping_kwargs: dict[str, Any] = field(default_factory=lambda: {"num_layers": 2})
    sr_kwargs: dict[str, Any] = field(default_factory=dict)
    rendering_kwargs: dict[str, Any] = field(default_factory=lambda: dict(FFHQ_RENDERING_KWARGS))
    neural_rendering_resolution: int = 64

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the first field that cannot build a generator."""
        for name in ("z_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1 << 20:
                raise ConfigError(f"EG3DConfig.{name} must be a positive integer, got {value!r}")
        if self.c_dim != 25:
            raise ConfigError(f"EG3DConfig.c_dim must be 25 (cam2world 16 + intrinsics 9), got {self.c_dim!r}")
        res = self.img_resolution
        if res & (res - 1) or res > MAX_IMAGE_RESOLUTION:
            raise ConfigError(f"EG3DConfig.img_resolution must be a power of two <= {MAX_IMAGE_RESOLUTION}, got {res}")
        _check_int("EG3DConfig.neural_rendering_resolution", self.neural_rendering_resolution, 2, self.img_resolution)
        rk = self.rendering_kwargs
        if not isinstance(rk, dict):
            raise ConfigError(f"EG3DConfig.rendering_kwargs must be a dict, got {type(rk).__name__}")
        missing = [
            k
            for k in ("depth_resolution", "depth_resolution_importance", "ray_start", "ray_end", "box_warp")
            if k not in rk
        ]
        if missing:
            raise ConfigError(f"EG3DConfig.rendering_kwargs lacks {', '.join(missing)}")
        if rk.get("clamp_mode", "softplus") != "softplus":
            raise ConfigError(f"rendering_kwargs.clamp_mode must be 'softplus', got {rk['clamp_mode']!r}")
        if rk.get("disparity_space_sampling", False):
            raise ConfigError("rendering_kwargs.disparity_space_sampling=True is not supported; expected false")
        auto = [rk[k] == "auto" for k in ("ray_start", "ray_end")]
        if any(auto) and not all(auto):  # the official renderer reads 'auto' only for both
            raise ConfigError(
                f"rendering_kwargs ray_start and ray_end must both be 'auto' or both numbers, "
                f"got {rk['ray_start']!r} and {rk['ray_end']!r}"
            )
        if not all(auto):
            start = _check_real("rendering_kwargs.ray_start", rk["ray_start"])
            end = _check_real("rendering_kwargs.ray_end", rk["ray_end"])
            if start < 0:
                raise ConfigError(f"rendering_kwargs.ray_start must be >= 0, got {start}")
            if not end > start:
                raise ConfigError(f"rendering_kwargs.ray_end ({end}) must exceed ray_start ({start})")
        _check_int("rendering_kwargs.depth_resolution", rk["depth_resolution"], 2, MAX_DEPTH_SAMPLES)
        importance = rk["depth_resolution_importance"]
        _check_int("rendering_kwargs.depth_resolution_importance", importance, 0, MAX_DEPTH_SAMPLES)
        _check_real("rendering_kwargs.box_warp", rk["box_warp"], positive=True)
        if "avg_camera_radius" in rk:
            _check_real("rendering_kwargs.avg_camera_radius", rk["avg_camera_radius"], positive=True)
        if "c_scale" in rk:
            _check_real("rendering_kwargs.c_scale", rk["c_scale"])
        pivot = rk.get("avg_camera_pivot", [0, 0, 0])
        if not isinstance(pivot, (list, tuple)) or len(pivot) != 3:
            raise ConfigError(f"rendering_kwargs.avg_camera_pivot must be three numbers, got {pivot!r}")
        for v in pivot:
            _check_real("rendering_kwargs.avg_camera_pivot", v)

    @property
    def mapping_layers(self) -> int:
        return int(self.mapping_kwargs.get("num_layers", 2))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict with the official keyword names."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EG3DConfig:
        """Build from official-style kwargs; unknown keys are errors naming them (``class_name`` is ignored)."""
        if not isinstance(data, dict):
            raise ConfigError(f"EG3D config must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in data.items() if k != "class_name"}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown EG3D config keys {unknown}; expected some of {sorted(names)}")
        return cls(**data)
