"""Official EpiGRAF configuration -> our GeneratorConfig / DiscriminatorConfig settings.

The official networks are built from an omegaconf experiment config (``model.generator``,
``model.discriminator``, ``dataset``, ``training``) plus constructor arguments (``_init_kwargs``).
Both travel inside a snapshot; :mod:`epigraf_tools.official_pickle` reads them safely and this
module maps them onto our dataclasses, refusing features we do not implement with a clear message.
Constructor arguments win over the config where both exist, because they are what the network was
built with (``channel_base = int(cbase * fmaps)``, possibly doubled by the training script).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import torch

from ..errors import EpigrafError
from ..models import GeneratorConfig
from .omegaconf_state import config_root, to_plain
from .safe_pickle import PersistentObject

_REQUIRED = object()


def _get(tree: dict, dotted: str, default: Any = _REQUIRED, where: str = "generator config") -> Any:
    node: Any = tree
    for key in dotted.split("."):
        if not isinstance(node, dict) or node.get(key) is None:
            if default is _REQUIRED:
                raise EpigrafError(f"the snapshot's {where} has no {dotted}; cannot rebuild the model")
            return default
        node = node[key]
    return node


def generator_config_from_official(
    g_ema: PersistentObject, state: dict[str, torch.Tensor]
) -> tuple[dict[str, Any], dict[str, Any], GeneratorConfig]:
    """(experiment config, G init kwargs, our GeneratorConfig) for an official G_ema.

    Constructor arguments (``_init_kwargs``) win over the config where both exist, because they are
    what the network was built with (e.g. ``channel_base = int(cbase * fmaps)``);
    ``mean_camera_pose`` comes from the weights' buffer.
    """
    raw_kwargs = g_ema.state.get("_init_kwargs") or {}
    cfg_node = g_ema.state.get("cfg", raw_kwargs.get("cfg") if isinstance(raw_kwargs, dict) else None)
    experiment = config_root(cfg_node) or {}
    gcfg = to_plain(cfg_node)
    if not isinstance(gcfg, dict) or "tri_plane" not in gcfg:
        raise EpigrafError(
            "G_ema is not an EpiGRAF tri-plane generator (its config has no tri_plane section); "
            "StyleGAN-family and other pickles are not supported"
        )
    kwargs = {k: v for k, v in to_plain(dict(raw_kwargs)).items() if k != "cfg"}
    mapping_kwargs = kwargs.get("mapping_kwargs") or {}
    dataset = gcfg.get("dataset") if isinstance(gcfg.get("dataset"), dict) else experiment.get("dataset") or {}
    _refuse_unsupported(gcfg)

    mean_pose = state.get("mapping.mean_camera_pose", mapping_kwargs.get("mean_camera_pose"))
    values: dict[str, Any] = dict(
        z_dim=int(kwargs.get("z_dim", g_ema.state.get("z_dim", 512))),
        w_dim=int(kwargs.get("w_dim", _get(gcfg, "w_dim", 512))),
        c_dim=int(kwargs.get("c_dim", g_ema.state.get("c_dim", _get(dataset, "c_dim", 0, "dataset config")))),
        img_resolution=int(kwargs.get("img_resolution", _get(dataset, "resolution", where="dataset config"))),
        img_channels=int(kwargs.get("img_channels", 3)),
        map_depth=_count_mapping_layers(state) or int(mapping_kwargs.get("num_layers", _get(gcfg, "map_depth", 2))),
        camera_cond=bool(mapping_kwargs.get("camera_cond", _get(gcfg, "camera_cond", False))),
        camera_cond_drop_p=float(mapping_kwargs.get("camera_cond_drop_p", _get(gcfg, "camera_cond_drop_p", 0.0))),
        camera_cond_noise_std=float(
            mapping_kwargs.get("camera_cond_noise_std", _get(gcfg, "camera_cond_noise_std", 0.0))
        ),
        triplane_res=int(_get(gcfg, "tri_plane.res")),
        feat_dim=int(_get(gcfg, "tri_plane.feat_dim")),
        channel_base=int(kwargs.get("channel_base", int(_get(gcfg, "cbase", 32768) * _get(gcfg, "fmaps", 1.0)))),
        channel_max=int(kwargs.get("channel_max", _get(gcfg, "cmax", 512))),
        use_noise=bool(_get(gcfg, "use_noise", True)),
        conv_clamp=kwargs.get("conv_clamp", 256),
        mlp_hid_dim=int(_get(gcfg, "tri_plane.mlp.hid_dim")),
        mlp_n_layers=int(_get(gcfg, "tri_plane.mlp.n_layers")),
        num_ray_steps=int(_get(gcfg, "num_ray_steps")),
        clamp_mode=str(_get(gcfg, "clamp_mode", "softplus")),
        density_shift=float(_get(gcfg, "density_shift", 0.0)),  # absent in older code: no shift
        cube_scale=float(_get(dataset, "cube_scale", where="dataset config")),
        fov=float(_get(dataset, "camera.fov", where="dataset config")),
        ray_start=float(_get(dataset, "camera.ray_start", where="dataset config")),
        ray_end=float(_get(dataset, "camera.ray_end", where="dataset config")),
        radius=float(_get(dataset, "camera.radius", 1.0, "dataset config")),
        white_back=bool(_get(dataset, "white_back", False)),
        last_back=bool(_get(dataset, "last_back", False)),
        nerf_noise_std_init=float(_get(gcfg, "nerf_noise_std_init", 1.0)),
        nerf_noise_kimg_growth=float(_get(gcfg, "nerf_noise_kimg_growth", 5000.0)),
        name=str(_get(dataset, "name", "epigraf")),
    )
    if isinstance(mean_pose, torch.Tensor):
        if mean_pose.numel() != 3:
            raise EpigrafError(f"mean_camera_pose must hold 3 angles, the snapshot's has shape {list(mean_pose.shape)}")
        values["mean_camera_pose"] = [float(v) for v in mean_pose.flatten().tolist()]
    if values["conv_clamp"] is not None:
        values["conv_clamp"] = float(values["conv_clamp"])
    values.update(_background_fields(gcfg))
    try:
        config = GeneratorConfig(**values)
    except (TypeError, ValueError) as exc:
        raise EpigrafError(f"the snapshot's generator configuration is not supported: {exc}") from None
    return experiment, kwargs, config


def _count_mapping_layers(state: dict[str, torch.Tensor]) -> int:
    return sum(1 for k in state if re.fullmatch(r"mapping\.fc\d+\.weight", k))


def _refuse_unsupported(gcfg: dict) -> None:
    backbone = gcfg.get("backbone", "stylegan2")
    if backbone != "stylegan2":
        raise EpigrafError(f"tri-plane backbone {backbone!r} is not supported (only 'stylegan2', as all releases)")
    tri = gcfg.get("tri_plane") or {}
    if tri.get("has_view_cond") or (tri.get("view_hid_dim") or 0) > 0:
        raise EpigrafError("view-direction conditioning of the tri-plane MLP is not supported")
    if (tri.get("posenc_period_len") or 0) > 0:
        raise EpigrafError("positional encoding in the tri-plane MLP (tri_plane.posenc_period_len) is not supported")


def _background_fields(gcfg: dict) -> dict[str, Any]:
    bg = gcfg.get("bg_model") or {}
    kind = bg.get("type") if isinstance(bg, dict) else None
    if kind in (None, "none", "null"):
        return {}
    fields = {f.name for f in dataclasses.fields(GeneratorConfig)}
    if kind != "sphere" or "bg_num_steps" not in fields:
        raise EpigrafError(f"background model {kind!r} is not supported by this version of epigraf-tools")
    mapping = dict(
        bg_num_steps=("num_steps", int),
        bg_start=("start", float),
        bg_num_blocks=("num_blocks", int),
        bg_channel_base=("cbase", int),
        bg_channel_max=("cmax", int),
        bg_posenc_period=("posenc_period_len", float),
    )
    out: dict[str, Any] = {"bg_model": "sphere"}
    for ours, (theirs, cast) in mapping.items():
        if ours in fields and bg.get(theirs) is not None:
            out[ours] = cast(bg[theirs])
    return out


def discriminator_config_from_official(d: PersistentObject) -> dict[str, Any]:
    """The official D's constructor settings under :class:`DiscriminatorConfig` field names."""
    kw = to_plain(dict(d.state.get("_init_kwargs") or {}))
    dcfg = to_plain(d.state.get("cfg", kw.get("cfg")))
    dcfg = dcfg if isinstance(dcfg, dict) else {}
    epilogue = kw.get("epilogue_kwargs") or {}
    conv_clamp = kw.get("conv_clamp", 256)
    return dict(
        c_dim=int(kw.get("c_dim", d.state.get("c_dim", 0))),
        img_resolution=int(kw.get("img_resolution", _get(dcfg, "patch.resolution", 64, "discriminator config"))),
        img_channels=int(kw.get("img_channels", 3)),
        num_additional_start_blocks=int(_get(dcfg, "num_additional_start_blocks", 0)),
        channel_base=int(kw.get("channel_base", 32768)),
        channel_max=int(kw.get("channel_max", 512)),
        num_fp16_res=int(kw.get("num_fp16_res", 4)),
        conv_clamp=None if conv_clamp is None else float(conv_clamp),
        cmap_dim=kw.get("cmap_dim"),
        mbstd_group_size=int(epilogue.get("mbstd_group_size", _get(dcfg, "mbstd_group_size", 4))),
        mbstd_num_channels=int(epilogue.get("mbstd_num_channels", 1)),
        patch_params_cond=bool(_get(dcfg, "patch.patch_params_cond", False)),
        hyper_mod=bool(_get(dcfg, "hyper_mod", False)),
        camera_cond=bool(_get(dcfg, "camera_cond", False)),
        camera_cond_raw=bool(_get(dcfg, "camera_cond_raw", False)),
        camera_cond_drop_p=float(_get(dcfg, "camera_cond_drop_p", 0.0)),
        camera_cond_noise_std=float(_get(dcfg, "camera_cond_noise_std", 0.0)),
    )
