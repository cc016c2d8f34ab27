"""The official EpiGRAF networks, built at run time from a source tree the user passes (``--official-src``).

The benchmarks compare our code with the official implementation (universome/epigraf, commit bda8d47)
in one process. Nothing of the official code is in this repository (NVIDIA's non-commercial licence):
:func:`import_official` adds the user's tree to ``sys.path`` and imports its modules; the helpers here
only write an official-style config for the architecture we benchmark, construct the official
classes from it, and copy our weights into them. Our parameter and buffer names are the official
ones (that is how ``epigraf_tools.checkpoints`` loads official snapshots: a strict
``load_state_dict``), so the same strict load moves weights the other way and both sides run the
same weights.

What the official side needs besides torch, numpy and scipy: ``omegaconf`` (the official environment
pins hydra-core 1.0.7, which brings omegaconf 2.0.x; ``pip install omegaconf==2.0.6`` into your
venv; it is not a dependency of epigraf-tools). Hydra itself, torchvision and the CUDA plugins are
not needed: the networks and the loss run on the CPU through the official ops' reference paths.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.models.discriminator import Discriminator

OFFICIAL_MODULES = ("networks_epigraf", "networks_discriminator", "loss", "training_utils")


@dataclass
class Official:
    """The official modules imported from one source tree (``src.training.*``)."""

    root: Path
    networks_epigraf: ModuleType
    networks_discriminator: ModuleType
    loss: ModuleType
    training_utils: ModuleType
    omegaconf: ModuleType


def import_official(root: str | Path) -> Official:
    """Import the official networks and loss from ``root`` (a checkout of universome/epigraf).

    Raises SystemExit with a one-line message when the tree or its dependencies are missing, so a
    benchmark fails before any work.
    """
    root = Path(root).resolve()
    if not (root / "src" / "training" / "networks_epigraf.py").is_file():
        raise SystemExit(f"--official-src {root}: not an EpiGRAF source tree (no src/training/networks_epigraf.py)")
    try:
        omegaconf = importlib.import_module("omegaconf")
    except ImportError:
        raise SystemExit("the official code needs omegaconf: pip install omegaconf==2.0.6") from None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        mods = {name: importlib.import_module(f"src.training.{name}") for name in OFFICIAL_MODULES}
    except ImportError as exc:
        raise SystemExit(f"cannot import the official code from {root}: {exc}") from None
    return Official(root=root, omegaconf=omegaconf, **mods)


def _patch_section(patch_res: int | None, image_res: int, group_size: int) -> dict[str, Any]:
    """The official ``training.patch`` section (the FFHQ defaults of configs/training/base.yaml)."""
    return dict(
        enabled=patch_res is not None,
        patch_params_cond=True,
        min_scale_trg=(patch_res or image_res) / image_res,
        max_scale=1.0,
        anneal_kimg=10000,
        resolution=patch_res or image_res,
        mbstd_group_size=group_size,
        distribution="beta",
        alpha=1.0,
        beta_val_start=0.001,
        beta_val_end=0.8,
    )


def generator_cfg(off: Official, cfg: GeneratorConfig, patch_res: int | None = None, group_size: int = 4):
    """An official ``model.generator`` DictConfig for the architecture of our ``cfg``."""
    if cfg.bg_model is not None:
        raise SystemExit("the official-side benchmarks cover models without a background network")
    tree = dict(
        backbone="stylegan2",
        num_ray_steps=cfg.num_ray_steps,
        clamp_mode=cfg.clamp_mode,
        nerf_noise_std_init=cfg.nerf_noise_std_init,
        nerf_noise_kimg_growth=cfg.nerf_noise_kimg_growth,
        density_shift=cfg.density_shift,
        use_noise=cfg.use_noise,
        w_dim=cfg.w_dim,
        map_depth=cfg.map_depth,
        camera_cond=cfg.camera_cond,
        camera_cond_drop_p=cfg.camera_cond_drop_p,
        camera_cond_noise_std=cfg.camera_cond_noise_std,
        camera_cond_spoof_p=0.5,
        tri_plane=dict(
            res=cfg.triplane_res,
            feat_dim=cfg.feat_dim,
            fp32=True,
            has_view_cond=False,
            posenc_period_len=0,
            mlp=dict(n_layers=cfg.mlp_n_layers, hid_dim=cfg.mlp_hid_dim),
        ),
        bg_model=dict(type=None),
        patch=_patch_section(patch_res, cfg.img_resolution, group_size),
        dataset=dict(
            c_dim=cfg.c_dim,
            resolution=cfg.img_resolution,
            cube_scale=cfg.cube_scale,
            white_back=cfg.white_back,
            last_back=cfg.last_back,
            camera=dict(fov=cfg.fov, ray_start=cfg.ray_start, ray_end=cfg.ray_end, radius=cfg.radius, dist="custom"),
        ),
    )
    return off.omegaconf.OmegaConf.create(tree)


def build_generator(off: Official, G: Generator, patch_res: int | None = None) -> torch.nn.Module:
    """The official Generator with the architecture and the weights of our ``G`` (strict copy)."""
    cfg = G.config
    G_off = off.networks_epigraf.Generator(
        cfg=generator_cfg(off, cfg, patch_res),
        z_dim=cfg.z_dim,
        c_dim=cfg.c_dim,
        w_dim=cfg.w_dim,
        img_resolution=cfg.img_resolution,
        img_channels=cfg.img_channels,
        mapping_kwargs=dict(
            num_layers=cfg.map_depth,
            camera_cond=cfg.camera_cond,
            camera_cond_drop_p=cfg.camera_cond_drop_p,
            camera_cond_noise_std=cfg.camera_cond_noise_std,
            mean_camera_pose=torch.tensor(cfg.mean_camera_pose),
        ),
        channel_base=cfg.channel_base,
        channel_max=cfg.channel_max,
        conv_clamp=cfg.conv_clamp,
        fused_modconv_default="inference_only",  # what the official train.py sets for EpiGRAF
    )
    G_off.load_state_dict(G.state_dict(), strict=True)
    return G_off.train(G.training)


def build_discriminator(off: Official, D: Discriminator, image_res: int) -> torch.nn.Module:
    """The official Discriminator with the architecture and the weights of our ``D`` (strict copy)."""
    c = D.config
    cond = c.patch_params_cond
    dcfg = off.omegaconf.OmegaConf.create(
        dict(
            num_additional_start_blocks=c.num_additional_start_blocks,
            mbstd_group_size=c.mbstd_group_size,
            hyper_mod=c.hyper_mod,
            camera_cond=c.camera_cond,
            camera_cond_raw=c.camera_cond_raw,
            camera_cond_drop_p=c.camera_cond_drop_p,
            camera_cond_noise_std=c.camera_cond_noise_std,
            patch={**_patch_section(c.img_resolution, image_res, c.mbstd_group_size), "patch_params_cond": cond},
        )
    )
    D_off = off.networks_discriminator.Discriminator(
        cfg=dcfg,
        c_dim=c.c_dim,
        img_resolution=c.img_resolution,
        img_channels=c.img_channels,
        channel_base=c.channel_base,
        channel_max=c.channel_max,
        num_fp16_res=c.num_fp16_res,
        conv_clamp=c.conv_clamp,
        cmap_dim=c.cmap_dim,
        block_kwargs=dict(freeze_layers=0),
        epilogue_kwargs=dict(mbstd_group_size=c.mbstd_group_size, mbstd_num_channels=c.mbstd_num_channels),
    )
    D_off.load_state_dict(D.state_dict(), strict=True)
    return D_off.train(D.training)


def build_loss(
    off: Official,
    G_off: torch.nn.Module,
    D_off: torch.nn.Module,
    r1_gamma: float,
    blur_init_sigma: float,
    blur_fade_kimg: float,
):
    """The official StyleGAN2Loss (its EpiGRAF phases) over the official networks, on the CPU."""
    gcfg = G_off.cfg
    cfg = off.omegaconf.OmegaConf.create(
        dict(
            model=dict(
                generator=dict(camera_cond_spoof_p=gcfg.camera_cond_spoof_p),
                loss_kwargs=dict(blur_init_sigma=blur_init_sigma, blur_fade_kimg=blur_fade_kimg, pl_weight=0.0),
            ),
            training=dict(patch=off.omegaconf.OmegaConf.to_container(gcfg.patch)),
        )
    )
    return off.loss.StyleGAN2Loss(cfg=cfg, device=torch.device("cpu"), G=G_off, D=D_off, r1_gamma=r1_gamma)


@contextlib.contextmanager
def deterministic_rays(off: Official) -> Iterator[None]:
    """Within the block the official renderer draws nothing: no stratified jitter, midpoint importance samples.

    The official ``SynthesisNetwork.forward`` calls ``transform_points`` and ``sample_pdf`` with their
    random defaults; this substitutes ``perturb=False`` / ``det=True`` for the duration (as our
    ``deterministic=True``), which is how the parity fixture's deterministic renders were made.
    """
    ne = off.networks_epigraf
    saved = ne.transform_points, ne.sample_pdf
    ne.transform_points = functools.partial(saved[0], perturb=False)
    ne.sample_pdf = lambda *a, **k: saved[1](*a, **{**k, "det": True})
    try:
        yield
    finally:
        ne.transform_points, ne.sample_pdf = saved


def forced_kwargs(fn: Callable[..., Any], **fixed: Any) -> Callable[..., Any]:
    """``fn`` with some keyword arguments forced to a value, whatever the caller passes."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **{**kwargs, **fixed})

    return call
