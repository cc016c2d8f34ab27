"""``GeneratorConfig``: the EpiGRAF generator's one configuration, field rules and size budgets.

Every field has a rule (type, range, choices) checked on construction, so a config from any source
(a model folder, the Hub, a converted pickle, a training run) is validated in one place, and its
parameter count is estimated by arithmetic before any module is built: a hostile or mistyped
``config.json`` fails in microseconds, never after gigabytes of allocation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from .renderer import RenderOptions

# Budgets that keep a hostile or mistyped config from exhausting memory before it fails. The largest
# released EpiGRAF generator (FFHQ-512) has about 31 M parameters and 3 x 32 x 512^2 = 25 M tri-plane values.
MAX_PARAMETERS = 2**28  # 268 M parameters = 1 GiB of float32: 8x the largest release, far below a GPU's memory
MAX_PLANE_ELEMENTS = 2**28  # tri-plane values per sample (1 GiB float32): 10x FFHQ-512
MAX_DIM = 16384  # any single width (z_dim, w_dim, channels, hidden sizes): 32x the released 512
MAX_DEPTH = 64  # layer / block counts (released: 2-8)
MAX_STEPS = 4096  # samples per ray (released: 48)


class ConfigError(ValueError):
    """A generator config field with the wrong type or value; the message names the field."""


def _json_kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r}"
    return names.get(type(value), type(value).__name__) + ("" if isinstance(value, (dict, list)) else f" {value!r}")


@dataclass(frozen=True)
class _Rule:
    """What one config field may hold: a kind and, for numbers, an inclusive range."""

    kind: str  # int | float | bool | str | pow2 | choice | floats3 | names
    lo: float | None = None
    hi: float | None = None
    choices: tuple[Any, ...] = ()
    optional: bool = False  # None allowed
    open_lo: bool = False  # lo itself excluded

    def check(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        where = f"field {name!r}"
        if self.kind == "bool":
            if type(value) is not bool:
                raise ConfigError(f"{where} must be true or false, got {_json_kind(value)}")
            return value
        if self.kind == "choice":
            if value not in self.choices or not isinstance(value, str):
                allowed = ", ".join("null" if c is None else repr(c) for c in self.choices + ((None,) * self.optional))
                raise ConfigError(f"{where} must be one of {allowed}, got {_json_kind(value)}")
            return value
        if self.kind == "str":
            if not isinstance(value, str) or len(value) > 1000:
                raise ConfigError(f"{where} must be a string of at most 1000 characters, got {_json_kind(value)}")
            return value
        if self.kind == "names":
            if (
                not isinstance(value, list)
                or len(value) > 100_000
                or not all(isinstance(v, str) and len(v) <= 1000 for v in value)
            ):
                raise ConfigError(f"{where} must be null or a list of class-name strings, got {_json_kind(value)}")
            return list(value)
        if self.kind == "floats3":
            if not isinstance(value, (list, tuple)) or len(value) != 3:
                raise ConfigError(f"{where} must be a list of 3 numbers (yaw, pitch, roll), got {_json_kind(value)}")
            return [_Rule("float").check(f"{name}[{i}]", v) for i, v in enumerate(value)]
        integer = self.kind in ("int", "pow2")
        if type(value) is bool or not isinstance(value, int if integer else (int, float)):
            want = "an integer" if integer else "a number"
            raise ConfigError(f"{where} must be {want}, got {_json_kind(value)}")
        if not integer:
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value}")
        below = self.lo is not None and (value <= self.lo if self.open_lo else value < self.lo)
        above = self.hi is not None and value > self.hi
        if self.kind == "pow2" and (value < 1 or value & (value - 1)):
            below = True
        if below or above:
            raise ConfigError(f"{where} must be {self.describe()}, got {value}")
        return value

    def describe(self) -> str:
        fmt = (lambda v: f"{int(v)}") if self.kind in ("int", "pow2") else (lambda v: f"{v:g}")
        lo = "" if self.lo is None else f"{'>' if self.open_lo else '>='} {fmt(self.lo)}"
        hi = "" if self.hi is None else f"<= {fmt(self.hi)}"
        span = " and ".join(p for p in (lo, hi) if p)
        head = "a power of two" if self.kind == "pow2" else ("an integer" if self.kind == "int" else "a number")
        return f"{head} {span}".strip()


_POS_INT = _Rule("int", 1, MAX_DIM)
_COUNT = _Rule("int", 1, MAX_DEPTH)
_POS_FLOAT = _Rule("float", 0.0, None, open_lo=True)
_NONNEG_FLOAT = _Rule("float", 0.0)
_UNIT = _Rule("float", 0.0, 1.0)
_FINITE = _Rule("float")
_BOOL = _Rule("bool")
_FIELD_RULES: dict[str, _Rule] = {
    "z_dim": _POS_INT,
    "w_dim": _POS_INT,
    "c_dim": _Rule("int", 0, 100_000),
    "img_resolution": _Rule("pow2", 4, 4096),
    "img_channels": _Rule("int", 1, 16),
    "map_depth": _COUNT,
    "camera_cond": _BOOL,
    "camera_cond_drop_p": _UNIT,
    "camera_cond_noise_std": _NONNEG_FLOAT,
    "mean_camera_pose": _Rule("floats3"),
    "w_avg_beta": _UNIT,
    "triplane_res": _Rule("pow2", 4, 2048),
    "feat_dim": _POS_INT,
    "channel_base": _Rule("int", 1, 2**24),
    "channel_max": _POS_INT,
    "use_noise": _BOOL,
    "conv_clamp": _Rule("float", 0.0, None, optional=True, open_lo=True),
    "mlp_hid_dim": _POS_INT,
    "mlp_n_layers": _COUNT,
    "num_ray_steps": _Rule("int", 1, MAX_STEPS),
    "clamp_mode": _Rule("choice", choices=("softplus", "relu")),
    "density_shift": _FINITE,
    "cube_scale": _POS_FLOAT,
    "fov": _Rule("float", 0.0, 179.999, open_lo=True),
    "ray_start": _NONNEG_FLOAT,
    "ray_end": _POS_FLOAT,
    "radius": _POS_FLOAT,
    "white_back": _BOOL,
    "last_back": _BOOL,
    "bg_model": _Rule("choice", choices=("sphere",), optional=True),
    "bg_num_steps": _Rule("int", 1, MAX_STEPS),
    "bg_start": _NONNEG_FLOAT,
    "bg_num_blocks": _COUNT,
    "bg_channel_base": _Rule("int", 1, 2**24),
    "bg_channel_max": _POS_INT,
    "bg_posenc_period": _POS_FLOAT,
    "nerf_noise_std_init": _NONNEG_FLOAT,
    "nerf_noise_kimg_growth": _NONNEG_FLOAT,
    "class_names": _Rule("names", optional=True),
    "name": _Rule("str"),
}
# May be absent from config.json (defaults apply): descriptive, training-only, or added after format version 1
# with a default that reproduces the older behaviour. Everything else decides weight shapes or the picture.
OPTIONAL_CONFIG_KEYS = frozenset(
    {"class_names", "name", "nerf_noise_std_init", "nerf_noise_kimg_growth", "camera_cond_drop_p"}
    | {"camera_cond_noise_std", "density_shift", "last_back", "w_avg_beta", "use_noise", "conv_clamp"}
    | {name for name in _FIELD_RULES if name.startswith("bg_")}
)


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
    # tri-plane MLP
    mlp_hid_dim: int = 64
    mlp_n_layers: int = 2
    # renderer and cameras
    # (the ray sampling defaults are RenderOptions', defined once in renderer.py)
    num_ray_steps: int = RenderOptions.num_steps
    clamp_mode: str = RenderOptions.clamp_mode
    density_shift: float = RenderOptions.density_shift
    cube_scale: float = 0.2
    fov: float = 12.0
    ray_start: float = RenderOptions.ray_start
    ray_end: float = RenderOptions.ray_end
    radius: float = 1.0
    white_back: bool = RenderOptions.white_back
    last_back: bool = RenderOptions.last_back
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
        self.validate()

    def validate(self) -> GeneratorConfig:
        """Check every field against its declared type and range; raise ConfigError naming the first bad one.

        Runs on every construction (folders, Hub, zoo, converted pickles, training snapshots all build a
        config), so a wrong value is refused before any module is built. Floats given as ints are
        normalised to float; bools are never accepted as numbers (``True`` is an int in Python).
        """
        for name, rule in _FIELD_RULES.items():
            setattr(self, name, rule.check(name, getattr(self, name)))
        if self.ray_end <= self.ray_start:
            raise ConfigError(f"ray_end ({self.ray_end}) must be larger than ray_start ({self.ray_start})")
        if self.class_names and len(self.class_names) != self.c_dim:
            raise ConfigError(
                f"class_names has {len(self.class_names)} names but c_dim is {self.c_dim}: give one name per class"
            )
        if self.channel_base < self.triplane_res:
            raise ConfigError(
                f"field 'channel_base' ({self.channel_base}) must be >= triplane_res ({self.triplane_res}): "
                "the last backbone block has channel_base // triplane_res channels"
            )
        if self.bg_model == "sphere" and self.bg_channel_base < 2 ** (self.bg_num_blocks + 1):
            raise ConfigError(
                f"field 'bg_channel_base' ({self.bg_channel_base}) must be >= 2^(bg_num_blocks + 1) = "
                f"{2 ** (self.bg_num_blocks + 1)}: every background block needs at least one channel"
            )
        if self.bg_model == "sphere" and self.radius > 1.0:
            raise ConfigError(
                f"field 'radius' ({self.radius}) must be <= 1 with bg_model 'sphere': the inverse-sphere "
                "background parametrises what lies outside the unit sphere, so cameras must be inside it"
            )
        planes = 3 * self.feat_dim * self.triplane_res**2
        if planes > MAX_PLANE_ELEMENTS:
            raise ConfigError(
                f"feat_dim={self.feat_dim} with triplane_res={self.triplane_res} gives {planes:,} tri-plane values per "
                f"sample, above the budget of {MAX_PLANE_ELEMENTS:,} (about {MAX_PLANE_ELEMENTS * 4 >> 30} GiB)"
            )
        check_parameter_budget(self)  # arithmetic only: every path that makes a config gets it
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> GeneratorConfig:
        """Build from a parsed ``config.json``: an object with every required key, no unknown ones.

        Unknown keys are refused (a typo such as ``num_ray_step`` would otherwise silently fall back to the
        default); keys in ``OPTIONAL_CONFIG_KEYS`` (added after format version 1 or purely descriptive) may be
        absent and take their documented defaults.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"the config must be a JSON object of field: value, got {_json_kind(data)}")
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise ConfigError(f"config keys must be strings, got {bad_keys[0]!r}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {"model_type", "format_version"})
        if unknown:
            raise ConfigError(f"unknown generator config keys: {', '.join(unknown)}")
        missing = [name for name in _FIELD_RULES if name not in data and name not in OPTIONAL_CONFIG_KEYS]
        if missing:
            raise ConfigError(f"field {missing[0]!r} is missing (required: {', '.join(missing)})")
        model_type = data.get("model_type", "epigraf-generator")
        if model_type != "epigraf-generator":
            raise ConfigError(f"field 'model_type' must be 'epigraf-generator', got {model_type!r}")
        version = data.get("format_version", 1)
        if type(version) is not int or version != 1:
            raise ConfigError(f"field 'format_version' must be 1 (the only version this code reads), got {version!r}")
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


assert set(_FIELD_RULES) == {f.name for f in dataclasses.fields(GeneratorConfig)}, "every config field needs a rule"


def estimate_parameters(config: GeneratorConfig) -> int:
    """The generator's parameter and buffer count from the config alone (arithmetic, no allocation).

    It follows the module definitions layer by layer (within a few per cent; ``test_config_validation``
    compares it with real models), so a config that would need terabytes is refused in microseconds.
    Building on PyTorch's meta device would be exact but costs seconds on first use (it imports dynamo).
    """
    w = config.w_dim
    mapping = config.c_dim * w + (config.z_dim + w) * w + config.map_depth * (w + 1) * w + 64 * w
    out = 3 * config.feat_dim
    backbone, prev = 0, 0
    res = 4
    while res <= config.triplane_res:
        ch = min(config.channel_base // res, config.channel_max)
        if prev == 0:
            backbone += ch * 16  # the learned constant input
        else:
            backbone += prev * ch * 9 + (w + 1) * prev + ch + 1 + res * res  # conv0 (up) + noise
        backbone += ch * ch * 9 + (w + 1) * ch + ch + 1 + res * res  # conv1 + noise
        backbone += ch * out + (w + 1) * ch + out + 16  # torgb + resample filter
        prev, res = ch, res * 2
    hid, n = config.mlp_hid_dim, config.mlp_n_layers
    mlp = (config.feat_dim + 1) * hid + (n - 1) * (hid + 1) * hid + (hid + 1) * (config.img_channels + 1)
    background = 0
    if config.bg_model == "sphere":
        prev = 0
        for i in range(config.bg_num_blocks):
            width = min(config.bg_channel_base // 2 ** (i + 2), config.bg_channel_max)
            background += 4 * (width * (width + prev + 64) + (w + 1) * (width + prev + 64))
            prev = width
    return mapping + backbone + mlp + background


def check_parameter_budget(config: GeneratorConfig) -> int:
    """Refuse (ConfigError) a config whose generator would exceed ``MAX_PARAMETERS``, before building it."""
    count = estimate_parameters(config)
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"this config needs {count:,} parameters ({count * 4 / 2**30:.1f} GiB as float32), above the budget of "
            f"{MAX_PARAMETERS:,}: check z_dim, w_dim, c_dim, channel_base/channel_max, feat_dim and mlp_hid_dim"
        )
    return count
