"""``TrainConfig``: every training option in one dataclass (defaults: the official FFHQ recipe).

It round-trips through JSON (saved as RUN_DIR/config.json) and loads from YAML or JSON files; the
CLI maps its options onto these fields. Derived values (ema_kimg, gamma 'auto', the D's additional
start blocks, the generator/discriminator configs) are computed here, in one place.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from epigraf_tools.errors import EpigrafError
from epigraf_tools.models import GeneratorConfig
from epigraf_tools.models.discriminator import DiscriminatorConfig, num_additional_start_blocks

from .auto_config import AUTO_OPTIONS, auto_value
from .dataset_cameras import CAMERA_OPTIONS
from .patches import PatchSampler
from .poses import CameraDistribution


class ConfigError(EpigrafError):
    """A training option that cannot work (the message names it)."""


AUGMENT_MODES = ("ada", "fixed", "noaug")

# A run's options, saved in RUN_DIR (not to be confused with models' CONFIG_NAME, the generator's
# config.json inside each snapshot folder: same file name, different file).
RUN_CONFIG_NAME = "config.json"

# Options added after runs had been written whose defaults change how a run trains, with the value
# that reproduces how those older runs trained. A stored config.json without the key predates the
# option, so resuming it must use this value rather than today's default.
LEGACY_DEFAULTS: dict[str, Any] = {
    "augment": "noaug",  # runs written before ADA existed trained without augmentation
}


def upgrade_stored_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run's stored config (config.json, or the copy in training_state.pt) with the options it
    predates filled in as the run actually trained (LEGACY_DEFAULTS)."""
    return {**LEGACY_DEFAULTS, **data}


# The training options that configure the generator: option name -> GeneratorConfig field. The
# names are those of the flat option surface (--set, YAML, stored run configs), so they stay as they
# were; the generator's twin of a discriminator option carries a g_ prefix. The dataset decides the
# remaining fields (c_dim, img_resolution, mean_camera_pose, class_names); img_channels is always 3.
GENERATOR_OPTIONS: dict[str, str] = {
    "z_dim": "z_dim",
    "w_dim": "w_dim",
    "map_depth": "map_depth",
    "w_avg_beta": "w_avg_beta",
    "g_camera_cond": "camera_cond",
    "g_camera_cond_drop_p": "camera_cond_drop_p",
    "g_camera_cond_noise_std": "camera_cond_noise_std",
    "triplane_res": "triplane_res",
    "feat_dim": "feat_dim",
    "g_channel_base": "channel_base",
    "g_channel_max": "channel_max",
    "use_noise": "use_noise",
    "conv_clamp": "conv_clamp",
    "mlp_hid_dim": "mlp_hid_dim",
    "mlp_n_layers": "mlp_n_layers",
    "num_ray_steps": "num_ray_steps",
    "clamp_mode": "clamp_mode",
    "density_shift": "density_shift",
    "cube_scale": "cube_scale",
    "fov": "fov",
    "ray_start": "ray_start",
    "ray_end": "ray_end",
    "radius": "radius",
    "white_back": "white_back",
    "last_back": "last_back",
    "bg_model": "bg_model",
    "bg_num_steps": "bg_num_steps",
    "bg_start": "bg_start",
    "bg_num_blocks": "bg_num_blocks",
    "bg_channel_base": "bg_channel_base",
    "bg_channel_max": "bg_channel_max",
    "bg_posenc_period": "bg_posenc_period",
    "nerf_noise_std_init": "nerf_noise_std_init",
    "nerf_noise_kimg": "nerf_noise_kimg_growth",
}
DATASET_GENERATOR_FIELDS = ("c_dim", "img_resolution", "mean_camera_pose", "class_names", "img_channels", "name")
assert set(GENERATOR_OPTIONS.values()) | set(DATASET_GENERATOR_FIELDS) == {
    f.name for f in dataclasses.fields(GeneratorConfig)
}, "every GeneratorConfig field is a training option or comes from the dataset"


def _generator_default(name: str) -> Any:
    """GeneratorConfig's default for one of its fields: training declares no generator default itself."""
    return GeneratorConfig.__dataclass_fields__[name].default


@dataclass
class TrainConfig:
    """Options of one training run (see docs/training.md for each)."""

    # data and output
    data: str = ""
    init_model: str | None = None  # informational: the model G was initialised from (fine-tuning)
    out: str = "runs/epigraf"
    resolution: int | None = None  # None: the dataset's image size
    mirror: bool = True  # x-flip augmentation (mirrors yaw too)
    use_labels: bool = True
    # batch and schedule
    batch: int = 64
    batch_gpu: int | None = None  # per-rank chunk (gradient accumulation); None: batch / world size
    batch_gpu_auto: bool = False  # set by the run when it chose batch_gpu: it may halve it on out of memory
    kimg: float = 50000.0
    tick_kimg: float = 4.0
    snapshot_kimg: float = 1000.0
    image_kimg: float = 400.0
    keep_snapshots: int = 0  # 0 keeps all
    seed: int = 0
    device: str = "auto"
    num_threads: int | None = None  # CPU threads for torch (None: torch's default); 1 is best on a busy machine
    mixed_precision: bool = True  # fp16 in the D's highest-resolution blocks, CUDA only (official)
    # patches
    patch_res: int | None = None  # None ('auto'): 64 from 128^2 data up, else half the resolution (auto_config.py)
    patch_dist: str = "beta"
    patch_alpha: float = 1.0
    beta_val_start: float = 0.001
    beta_val_end: float = 0.8
    anneal_kimg: float = 10000.0
    min_scale: float | None = None  # None: patch_res / resolution
    max_scale: float = 1.0
    # losses
    gamma: float | str = 0.1  # R1 weight, or 'auto' = 0.0002 * resolution^2 / batch
    d_reg_interval: int = 16
    blur_init_sigma: float = 10.0
    blur_fade_kimg: float = 200.0
    # discriminator augmentation (training/augment.py), applied to real and fake patches after the blur
    augment: str = "ada"  # 'ada' (adaptive p, the official default), 'fixed' (p = augment_p), 'noaug'
    augment_p: float = 0.0  # the constant p of 'fixed'; the starting p of 'ada'
    ada_target: float = 0.6  # 'ada' raises p while the mean sign of D(real) is above this
    ada_interval: int = 4  # steps between adjustments of p
    ada_kimg: float = 500.0  # speed: p can go from 0 to 1 in this many thousand images
    # optimisers and EMA
    g_lr: float = 0.0025
    d_lr: float = 0.002
    betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    ema_kimg: float | None = None  # None: batch * ema_multiplier (official: 64 * 0.3125 = 20)
    ema_multiplier: float = 0.3125
    ema_rampup: float | None = 0.05
    # generator: every GeneratorConfig option except what the dataset decides (see GENERATOR_OPTIONS);
    # the defaults are GeneratorConfig's own
    z_dim: int = _generator_default("z_dim")
    w_dim: int = _generator_default("w_dim")
    map_depth: int = _generator_default("map_depth")
    w_avg_beta: float = _generator_default("w_avg_beta")
    # None ('auto'): follows the training resolution (training/auto_config.py AUTO_OPTIONS); the
    # official values from 256^2 up
    triplane_res: int | None = None
    feat_dim: int = _generator_default("feat_dim")
    g_channel_base: int | None = None
    g_channel_max: int | None = None
    use_noise: bool = _generator_default("use_noise")
    conv_clamp: float | None = _generator_default("conv_clamp")
    mlp_hid_dim: int = _generator_default("mlp_hid_dim")
    mlp_n_layers: int = _generator_default("mlp_n_layers")
    num_ray_steps: int = _generator_default("num_ray_steps")
    clamp_mode: str = _generator_default("clamp_mode")
    density_shift: float = _generator_default("density_shift")
    # cameras (dataset_cameras.CAMERA_OPTIONS); None: the dataset's ``camera`` object, else the
    # initial model's (fine-tuning), else GeneratorConfig's (FFHQ)
    cube_scale: float | None = None
    fov: float | None = None
    ray_start: float | None = None
    ray_end: float | None = None
    radius: float | None = None
    white_back: bool | None = None
    allow_camera_mismatch: bool = False  # explicit camera options may differ from the dataset's (warning)
    last_back: bool = _generator_default("last_back")
    bg_model: str | None = _generator_default("bg_model")
    bg_num_steps: int = _generator_default("bg_num_steps")
    bg_start: float = _generator_default("bg_start")
    bg_num_blocks: int = _generator_default("bg_num_blocks")
    bg_channel_base: int = _generator_default("bg_channel_base")
    bg_channel_max: int = _generator_default("bg_channel_max")
    bg_posenc_period: float = _generator_default("bg_posenc_period")
    nerf_noise_std_init: float = _generator_default("nerf_noise_std_init")
    nerf_noise_kimg: float = _generator_default("nerf_noise_kimg_growth")
    # discriminator
    d_channel_base: int | None = None  # 'auto'; from 256^2 up the official int(cbase * fmaps) = 32768 * 0.5
    d_channel_max: int | None = None  # 'auto'; 512 from 256^2 up
    mbstd_group_size: int = 4
    hyper_mod: bool = True
    # camera conditioning
    d_camera_cond: bool = False
    d_camera_cond_raw: bool = False
    d_camera_cond_drop_p: float = 0.0
    g_camera_cond: bool = _generator_default("camera_cond")  # generator pose conditioning (GPC)
    g_camera_cond_drop_p: float = _generator_default("camera_cond_drop_p")
    g_camera_cond_noise_std: float = _generator_default("camera_cond_noise_std")
    gpc_spoof_p: float = 0.5  # final spoofing probability (1.0 -> this over 1000 kimg)
    # fake camera poses
    camera_dist: str = "custom"
    camera_horizontal_mean: float = 0.0
    camera_horizontal_stddev: float = math.pi
    camera_vertical_mean: float = math.pi / 2
    camera_vertical_stddev: float = math.pi / 2
    # preview grid
    grid_size: int = 16
    grid_seed: int = 0
    # metrics during training (rank 0, with G_ema): 'fid2k_full' and/or 'fid50k_full'
    metrics: list[str] = field(default_factory=list)
    metrics_kimg: float = 400.0
    inception: str | None = None  # inception-2015-12-05.pt; None: $EPIGRAF_INCEPTION or ~/.cache/epigraf

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ConfigError for options that cannot work, before anything is loaded."""

        def bad(msg: str) -> None:
            raise ConfigError(msg)

        if not self.data:
            bad("no training data given (data=PATH: a zip or folder of images with dataset.json)")
        if self.batch <= 0:
            bad(f"batch must be positive, got {self.batch}")
        if self.batch_gpu is not None and (self.batch_gpu <= 0 or self.batch % self.batch_gpu):
            bad(f"batch_gpu ({self.batch_gpu}) must divide the batch ({self.batch})")
        if self.kimg <= 0:
            bad(f"kimg must be positive, got {self.kimg}")
        for name in ("patch_res", "triplane_res"):
            v = getattr(self, name)
            if v is not None and (v < 4 or v & (v - 1)):
                bad(f"{name} must be a power of two >= 4, got {v}")
        for name in ("g_channel_base", "g_channel_max", "d_channel_base", "d_channel_max"):
            v = getattr(self, name)
            if v is not None and v < 1:
                bad(f"{name} must be positive, got {v}")
        if self.resolution is not None:
            if self.resolution < 4 or self.resolution & (self.resolution - 1):
                bad(f"resolution must be a power of two >= 4, got {self.resolution}")
            if self.patch_res is not None and self.patch_res > self.resolution:
                bad(f"patch_res {self.patch_res} is larger than the resolution {self.resolution}")
        if isinstance(self.gamma, str) and self.gamma != "auto":
            bad(f"gamma must be a number or 'auto', got {self.gamma!r}")
        if not isinstance(self.gamma, str) and self.gamma < 0:
            bad(f"gamma must be >= 0, got {self.gamma}")
        if len(self.betas) != 2:
            bad(f"betas must be two numbers, got {self.betas}")
        if self.d_reg_interval < 1:
            bad(f"d_reg_interval must be >= 1, got {self.d_reg_interval}")
        for name in ("tick_kimg", "snapshot_kimg", "image_kimg"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0")
        if self.d_camera_cond and self.camera_dist != "custom":
            bad("D camera conditioning needs the dataset's poses (camera_dist 'custom'), as in the official code")
        try:
            CameraDistribution(self.camera_dist)
        except ValueError as exc:
            bad(str(exc))
        from .metrics import METRICS

        for m in self.metrics:
            if m not in METRICS:
                bad(f"unknown metric {m!r}; choose from {', '.join(METRICS)}")
        if self.patch_dist not in ("beta", "uniform"):
            bad(f"patch_dist must be 'beta' or 'uniform', got {self.patch_dist!r}")
        if self.augment not in AUGMENT_MODES:
            bad(f"augment must be one of {', '.join(AUGMENT_MODES)}, got {self.augment!r}")
        if not 0 <= self.augment_p <= 1:
            bad(f"augment_p must be in [0, 1], got {self.augment_p}")
        if not -1 <= self.ada_target <= 1:
            bad(f"ada_target must be in [-1, 1] (a mean of signs), got {self.ada_target}")
        if self.ada_interval < 1:
            bad(f"ada_interval must be >= 1, got {self.ada_interval}")
        if self.ada_kimg <= 0:
            bad(f"ada_kimg must be positive, got {self.ada_kimg}")
        if self.bg_model not in (None, "none", "null", "sphere"):
            bad(f"bg_model must be 'sphere' (the NeRF++ inverse-sphere background) or none, got {self.bg_model!r}")

    # ------------------------------------------------------------------ derived values
    def r1_gamma(self, resolution: int) -> float:
        if self.gamma == "auto":
            return 0.0002 * resolution**2 / self.batch
        return float(self.gamma)

    def resolved_ema_kimg(self) -> float:
        return self.ema_kimg if self.ema_kimg is not None else self.batch * self.ema_multiplier

    def camera_distribution(self) -> CameraDistribution:
        return CameraDistribution(
            self.camera_dist,
            self.camera_horizontal_mean,
            self.camera_horizontal_stddev,
            self.camera_vertical_mean,
            self.camera_vertical_stddev,
        )

    def value(self, name: str, resolution: int) -> Any:
        """Option ``name`` for training at ``resolution``: its value, or what None stands for (the
        'auto' width of AUTO_OPTIONS, or GeneratorConfig's default for a camera option)."""
        v = getattr(self, name)
        if v is not None:
            return v
        if name in AUTO_OPTIONS:
            return auto_value(name, resolution)
        if name in CAMERA_OPTIONS:
            return _generator_default(name)
        return v

    def concrete(self, resolution: int, camera: dict[str, Any] | None = None) -> TrainConfig:
        """These options with every 'auto' width filled in for ``resolution`` and the camera options
        from ``camera`` (dataset_cameras.resolve_camera_options) where given: what the run saves."""
        filled = {name: self.value(name, resolution) for name in (*AUTO_OPTIONS, *CAMERA_OPTIONS)}
        filled.update(camera or {})
        return self.replace(resolution=resolution, **filled)

    def generator_config(
        self, resolution: int, c_dim: int, mean_camera_pose: list[float], class_names: list[str] | None = None
    ) -> GeneratorConfig:
        """The generator these options describe, for a dataset of ``resolution`` images and ``c_dim`` classes."""
        options = {field: self.value(option, resolution) for option, field in GENERATOR_OPTIONS.items()}
        return GeneratorConfig(
            **options,
            class_names=class_names,
            c_dim=c_dim,
            img_resolution=resolution,
            mean_camera_pose=[float(v) for v in mean_camera_pose],
        )

    def discriminator_config(self, resolution: int, c_dim: int) -> DiscriminatorConfig:
        return DiscriminatorConfig(
            c_dim=c_dim,
            img_resolution=self.value("patch_res", resolution),
            num_additional_start_blocks=num_additional_start_blocks(resolution, self.value("patch_res", resolution)),
            channel_base=self.value("d_channel_base", resolution),
            channel_max=self.value("d_channel_max", resolution),
            num_fp16_res=4 if self.mixed_precision else 0,
            mbstd_group_size=self.mbstd_group_size,
            hyper_mod=self.hyper_mod,
            patch_params_cond=True,
            camera_cond=self.d_camera_cond,
            camera_cond_raw=self.d_camera_cond_raw,
            camera_cond_drop_p=self.d_camera_cond_drop_p,
        )

    def patch_sampler(self, resolution: int) -> PatchSampler:
        return PatchSampler(
            resolution=self.value("patch_res", resolution),
            image_resolution=resolution,
            min_scale=self.min_scale,
            max_scale=self.max_scale,
            distribution=self.patch_dist,
            alpha=self.patch_alpha,
            beta_val_start=self.beta_val_start,
            beta_val_end=self.beta_val_end,
            anneal_kimg=self.anneal_kimg,
            group_size=self.mbstd_group_size,
        )

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def save(self, path: str | Path) -> None:
        from epigraf_tools.atomic import write_text_atomic

        write_text_atomic(Path(path), json.dumps(self.to_dict(), indent=2) + "\n")


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Options from a YAML or JSON file (a flat mapping of TrainConfig fields; '-' may replace '_')."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    text = p.read_text()
    try:
        if p.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's file
        raise ConfigError(f"cannot parse {p}: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p} must hold a mapping of training options")
    out = {str(k).replace("-", "_"): v for k, v in data.items()}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(out) - known)
    if unknown:
        raise ConfigError(f"{p}: unknown training option(s): {', '.join(unknown)}")
    return out


# Named starting points; a config file and explicit options override them.
PRESETS: dict[str, dict[str, Any]] = {
    # The official FFHQ-512 recipe (the TrainConfig defaults; gamma 0.1 per the README).
    "ffhq512": {},
    # The official recipe for 256^2 datasets (Cats, Megascans use their own camera settings).
    "res256": {"resolution": 256, "triplane_res": 256},
    # A small model that trains at a useful speed on a few CPU cores: 64^2 images, 32^2 patches,
    # 32^2 tri-planes with 16 features, 128-d latents, 24 ray steps, narrow networks.
    "small": {
        "resolution": 64,
        "patch_res": 32,
        "batch": 16,
        "z_dim": 128,
        "w_dim": 128,
        "triplane_res": 32,
        "feat_dim": 16,
        "g_channel_base": 4096,
        "g_channel_max": 64,
        "mlp_hid_dim": 32,
        "num_ray_steps": 24,
        "d_channel_base": 2048,
        "d_channel_max": 64,
        "tick_kimg": 0.4,
        "snapshot_kimg": 20.0,
        "image_kimg": 4.0,
        "blur_fade_kimg": 40.0,
        "anneal_kimg": 2000.0,
        "nerf_noise_kimg": 1000.0,
        "grid_size": 16,
    },
}


def preset(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return dict(PRESETS[name])


def parse_sets(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["key=value", ...]`` -> options; values are JSON where they parse (4, 0.5, true, null), else text."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"sets expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in fields:
            raise ConfigError(f"sets: unknown training option {key!r} (see epigraf train --help for the list)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def resolve_train_config(
    explicit: dict[str, Any] | None = None,
    preset_name: str | None = None,
    config_file: str | Path | None = None,
    sets: list[str] | tuple[str, ...] = (),
    resume: str | None = None,
) -> TrainConfig:
    """Merge the option sources into one validated TrainConfig; no data is read here.

    Later sources win: the preset, the resumed run's own config.json (upgraded, so an old run resumes
    as it trained), the config file, the explicit options that are not None, then the ``KEY=VALUE``
    ``sets``. Resuming 'latest' needs ``explicit['out']``, the run folder to continue.
    """
    from .snapshots import LATEST_NAME

    explicit = explicit or {}
    merged: dict[str, Any] = {}
    if preset_name:
        merged.update(preset(preset_name))
    if resume is not None:
        run_dir = Path(explicit.get("out") or "") if resume == "latest" else Path(resume)
        if resume == "latest" and not explicit.get("out"):
            raise ConfigError("resume=latest needs out=RUN_DIR (the run to continue)")
        if run_dir.name.startswith("snapshot-"):
            run_dir = run_dir.parent
        cfg_path = run_dir / "config.json"
        if not cfg_path.is_file():
            has_latest = (run_dir / LATEST_NAME).is_file()
            raise ConfigError(
                f"cannot resume: {cfg_path} not found"
                + ("" if has_latest else f" ({run_dir} does not look like a training run folder)")
            )
        merged.update(upgrade_stored_config(json.loads(cfg_path.read_text())))
        merged.setdefault("out", str(run_dir))
        if not explicit.get("out"):
            merged["out"] = str(run_dir)
    given: dict[str, Any] = {}  # what the user gives now (not the resumed run's record)
    if config_file is not None:
        given.update(load_config_file(config_file))
    given.update({k: v for k, v in explicit.items() if v is not None})
    given.update(parse_sets(list(sets)))
    if "batch_gpu" in given and "batch_gpu_auto" not in given:
        given["batch_gpu_auto"] = False  # a batch_gpu the user gives is kept, never halved on out of memory
    merged.update(given)
    try:
        cfg = TrainConfig.from_dict(merged)
    except TypeError as exc:
        raise ConfigError(f"bad training options: {exc}") from None
    cfg.validate()
    return cfg
