"""Read official EG3D training snapshots (NVlabs/eg3d ``network-snapshot-*.pkl``) without running their code.

The file is read by the same restricted unpickler and budgets as an EpiGRAF snapshot
(:func:`epigraf_tools.checkpoints.official_pickle.read_official_snapshot` reads the bytes and
dispatches here when ``G_ema`` is a ``TriPlaneGenerator``). EG3D's networks are persistent objects
like EpiGRAF's; the plain modules it pickles by reference (``training.triplane.OSGDecoder``, the
``training.volumetric_rendering`` renderer, marcher and sampler, ``torch.nn`` containers) become
inert holders (safe_pickle.EG3D_MODULE_CLASSES). ``G_ema._init_kwargs`` (plus the
``neural_rendering_resolution`` attribute) becomes an :class:`EG3DConfig`; its weights load strictly
into our :class:`EG3DGenerator`, whose parameter names are the official ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..errors import EpigrafError
from ..models.config import ConfigError
from ..models.eg3d import DualDiscriminator, EG3DConfig, EG3DGenerator
from ..models.initial_weights import weights_from_file
from .official_pickle import _check_state_fits, _on_meta, module_state_dict
from .omegaconf_state import to_plain
from .safe_pickle import PersistentObject, UnsafePickleError

GENERATOR_CLASS = "TriPlaneGenerator"
DISCRIMINATOR_CLASS = "DualDiscriminator"
# Persistent classes of the official EG3D code base (training/*.py networks, StyleGAN2 layers, SR modules).
EG3D_PERSISTENT_CLASSES = frozenset(
    """TriPlaneGenerator Generator SynthesisNetwork SynthesisBlock SynthesisBlockNoUp SynthesisLayer ToRGBLayer
    FullyConnectedLayer MappingNetwork Conv2dLayer SuperresolutionHybrid2X SuperresolutionHybrid4X
    SuperresolutionHybrid8X SuperresolutionHybrid8XDC DualDiscriminator DiscriminatorBlock DiscriminatorEpilogue
    MinibatchStdLayer AugmentPipe""".split()
)
# DualDiscriminator init kwargs -> ours (the nested dicts are flattened below).
_D_FIELDS = ("img_resolution", "c_dim", "img_channels", "channel_base", "channel_max", "num_fp16_res", "conv_clamp")
_D_OPTIONAL = ("cmap_dim", "disc_c_noise")


@dataclass
class EG3DSnapshot:
    """The useful contents of an official EG3D snapshot as plain data; ``generator()`` builds ours."""

    g_ema_state: dict[str, torch.Tensor]
    generator_config: EG3DConfig
    g_kwargs: dict[str, Any]
    d_state: dict[str, torch.Tensor] | None = None
    d_config: dict[str, Any] | None = None
    training_set_kwargs: dict[str, Any] | None = None
    module_src_sha256: dict[str, str] = field(default_factory=dict)
    source_path: str | None = None
    source_sha256: str | None = None
    family: str = "eg3d"

    @property
    def config(self) -> dict[str, Any]:
        """What provenance keeps of the run: the dataset (EG3D snapshots carry no experiment config)."""
        return {"dataset": self.training_set_kwargs} if self.training_set_kwargs else {}

    @property
    def kimg(self) -> float | None:
        return None  # EG3D snapshots record progress only in their file name

    def generator(self, device: str | torch.device = "cpu") -> EG3DGenerator:
        """Our EG3DGenerator with the official G_ema weights; every shape is checked before allocating."""
        meta = _on_meta(lambda: EG3DGenerator(self.generator_config))
        _check_state_fits(meta, self.g_ema_state, "the official G_ema")
        with weights_from_file():  # the strict load below replaces every initial weight: none is drawn
            G = EG3DGenerator(self.generator_config)
        G.load_state_dict(self.g_ema_state, strict=True)
        return G.eval().requires_grad_(False).to(device)

    def check_discriminator(self) -> dict[str, Any]:
        """DualDiscriminator kwargs, after checking every D tensor's shape against them (meta device)."""
        if self.d_state is None or self.d_config is None:
            raise EpigrafError("this snapshot has no discriminator (D)")
        _check_state_fits(_on_meta(lambda: DualDiscriminator(**self.d_config)), self.d_state, "the official D")
        return self.d_config

    def discriminator(self, device: str | torch.device = "cpu") -> DualDiscriminator:
        """Our DualDiscriminator with the official D weights (strict)."""
        D = DualDiscriminator(**self.check_discriminator())
        D.load_state_dict(self.d_state, strict=True)
        return D.to(device)


def is_eg3d_snapshot(data: Any) -> bool:
    """True when the unpickled snapshot's G_ema is EG3D's persistent TriPlaneGenerator."""
    g_ema = data.get("G_ema") if isinstance(data, dict) else data
    return isinstance(g_ema, PersistentObject) and g_ema.class_name == GENERATOR_CLASS


def _init_kwargs(node: PersistentObject, what: str) -> dict[str, Any]:
    kwargs = to_plain(node.state.get("_init_kwargs"))
    if not isinstance(kwargs, dict):
        raise UnsafePickleError(f"{what} has no init kwargs dict (found {type(kwargs).__name__})")
    return kwargs


def eg3d_config_from_official(g_ema: PersistentObject) -> tuple[dict[str, Any], EG3DConfig]:
    """``G_ema._init_kwargs`` + its ``neural_rendering_resolution`` / ``rendering_kwargs`` attributes -> EG3DConfig."""
    kwargs = _init_kwargs(g_ema, "G_ema")
    fields = dict(kwargs)
    rendering = to_plain(g_ema.state.get("rendering_kwargs"))
    if isinstance(rendering, dict):  # what the module rendered with (a training script may override it)
        fields["rendering_kwargs"] = rendering
    nrr = g_ema.state.get("neural_rendering_resolution")
    if nrr is not None:
        fields["neural_rendering_resolution"] = nrr
    try:
        return kwargs, EG3DConfig.from_dict(fields)
    except (ConfigError, TypeError, ValueError, OverflowError) as exc:
        raise EpigrafError(f"the snapshot's EG3D generator configuration is not supported: {exc}") from None


def discriminator_kwargs_from_official(d: PersistentObject) -> dict[str, Any]:
    """``D._init_kwargs`` of the official DualDiscriminator -> our DualDiscriminator's keyword arguments."""
    kwargs = _init_kwargs(d, "D")
    out = {k: kwargs[k] for k in _D_FIELDS if k in kwargs}
    out.update({k: kwargs[k] for k in _D_OPTIONAL if kwargs.get(k) is not None})
    epilogue = kwargs.get("epilogue_kwargs") or {}
    mapping = kwargs.get("mapping_kwargs") or {}
    if not isinstance(epilogue, dict) or not isinstance(mapping, dict):
        raise EpigrafError("the snapshot's D has malformed epilogue_kwargs / mapping_kwargs")
    if "mbstd_group_size" in epilogue:
        out["mbstd_group_size"] = epilogue["mbstd_group_size"]
    if "mbstd_num_channels" in epilogue:
        out["mbstd_num_channels"] = epilogue["mbstd_num_channels"]
    if "num_layers" in mapping:
        out["mapping_layers"] = mapping["num_layers"]
    if "img_resolution" not in out:
        raise EpigrafError("the snapshot's D does not record img_resolution")
    return out


def eg3d_snapshot_from_object(data: Any) -> EG3DSnapshot:
    """Build an :class:`EG3DSnapshot` from an already (safely) unpickled EG3D snapshot dict."""
    if isinstance(data, PersistentObject):  # a bare pickled G_ema
        data = {"G_ema": data}
    g_ema = data["G_ema"]
    g_ema_state = module_state_dict(g_ema, "G_ema", known_classes=EG3D_PERSISTENT_CLASSES)
    g_kwargs, config = eg3d_config_from_official(g_ema)
    snap = EG3DSnapshot(g_ema_state=g_ema_state, generator_config=config, g_kwargs=g_kwargs)
    snap.module_src_sha256[GENERATOR_CLASS] = g_ema.module_src_sha256
    d = data.get("D")
    if isinstance(d, PersistentObject):
        if d.class_name != DISCRIMINATOR_CLASS:
            raise UnsafePickleError(f"D is a {d.class_name}, expected EG3D's {DISCRIMINATOR_CLASS}")
        snap.d_state = module_state_dict(d, "D", known_classes=EG3D_PERSISTENT_CLASSES)
        snap.d_config = discriminator_kwargs_from_official(d)
        snap.module_src_sha256[DISCRIMINATOR_CLASS] = d.module_src_sha256
    tsk = to_plain(data.get("training_set_kwargs"))
    snap.training_set_kwargs = tsk if isinstance(tsk, dict) else None
    return snap
