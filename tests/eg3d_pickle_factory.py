"""Build pickles in the official EG3D snapshot format from the fixture weights (no official code involved).

The layout is the one shared/fixtures/eg3d_mini/reference.json records under ``snapshot``: a dict
(training_set_kwargs, G, D, G_ema, augment_pipe) whose networks are persistent objects reduced to
``torch_utils.persistence._reconstruct_persistent_obj(meta)``; the plain modules EG3D pickles by
reference (``training.triplane.OSGDecoder``, ``training.volumetric_rendering.*``, ``torch.nn``
Sequential/Softplus) pickle as ordinary objects. As in official_pickle_factory.py, stand-in modules
are registered in ``sys.modules`` only while pickling, so pickle names those globals.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
from collections import OrderedDict
from typing import Any

import numpy as np
import torch
from official_pickle_factory import Persistent as OfficialPersistent
from official_pickle_factory import _module_state, fake_modules, name_fakes


def _reconstruct_persistent_obj(meta):  # never called by a safe loader
    raise AssertionError("the official reconstruction hook was called: code from the pickle would run")


class EasyDict(dict):
    pass


class OSGDecoder:
    pass


class ImportanceRenderer:
    pass


class MipRayMarcher2:
    pass


class RaySampler:
    pass


_FAKE_MODULES: dict[str, dict[str, Any]] = {
    "torch_utils": {},
    "torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
    "dnnlib": {},
    "dnnlib.util": {"EasyDict": EasyDict},
    "training": {},
    "training.triplane": {"OSGDecoder": OSGDecoder},
    "training.volumetric_rendering": {},
    "training.volumetric_rendering.renderer": {"ImportanceRenderer": ImportanceRenderer},
    "training.volumetric_rendering.ray_marcher": {"MipRayMarcher2": MipRayMarcher2},
    "training.volumetric_rendering.ray_sampler": {"RaySampler": RaySampler},
}
name_fakes(_FAKE_MODULES)


def fake_eg3d_modules() -> contextlib.AbstractContextManager[None]:
    return fake_modules(_FAKE_MODULES)


class Persistent(OfficialPersistent):
    """Pickles exactly like an official EG3D persistent object (EG3D's hook lives in ``torch_utils``)."""

    hook_module = "torch_utils.persistence"


def _generator_class(path: str, sr_class: str) -> str:
    leaf = path.rpartition(".")[2]
    if path == "":
        return "TriPlaneGenerator"
    table = {"backbone": "Generator", "backbone.mapping": "MappingNetwork", "backbone.synthesis": "SynthesisNetwork"}
    if path in table:
        return table[path]
    if path == "superresolution":
        return sr_class
    if path == "decoder":
        return "inert:OSGDecoder"
    if path == "decoder.net":
        return "Sequential"
    if leaf in ("conv0", "conv1"):
        return "SynthesisLayer"
    if leaf == "torgb":
        return "ToRGBLayer"
    if re.fullmatch(r"b\d+", leaf) or leaf == "block1":
        return "SynthesisBlock"
    if leaf == "block0":
        return "SynthesisBlockNoUp" if sr_class == "SuperresolutionHybrid2X" else "SynthesisBlock"
    return "FullyConnectedLayer"  # affine, fc*, embed, decoder.net.0/2


def _discriminator_class(path: str) -> str:
    leaf = path.rpartition(".")[2]
    if path == "":
        return "DualDiscriminator"
    if path == "mapping":
        return "MappingNetwork"
    if path == "b4":
        return "DiscriminatorEpilogue"
    if path == "b4.mbstd":
        return "MinibatchStdLayer"
    if re.fullmatch(r"b\d+", leaf):
        return "DiscriminatorBlock"
    if leaf in ("fc", "out", "embed") or leaf.startswith("fc"):
        return "FullyConnectedLayer"
    return "Conv2dLayer"


def _state() -> dict:
    """An official module ``__dict__`` (hook dicts etc., as official_pickle_factory), with EG3D's EasyDict."""
    state = _module_state(False)
    state["_init_kwargs"] = EasyDict()
    return state


def _inert(cls: type, state: dict) -> Any:
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def module_tree(
    flat: dict[str, torch.Tensor],
    buffers: set[str],
    class_of,
    extra_paths: tuple[str, ...] = (),
    top_attrs: dict | None = None,
    class_overrides: dict[str, str] | None = None,
) -> Any:
    """Persistent objects / inert modules holding ``flat`` under the official names."""
    states: dict[str, dict] = {"": _state()}

    def node(path: str) -> dict:
        if path not in states:
            parent, _, leaf = path.rpartition(".")
            states[path] = _state()
            node(parent)["_modules"][leaf] = path
        return states[path]

    for path in extra_paths:
        node(path)
    for key, tensor in flat.items():
        path, _, leaf = key.rpartition(".")
        state = node(path)
        if key in buffers:
            state["_buffers"][leaf] = tensor
        else:
            state["_parameters"][leaf] = torch.nn.Parameter(tensor, requires_grad=False)
        if leaf == "weight" and class_of(path) == "FullyConnectedLayer":
            state["weight_gain"] = np.float64(1.0 / np.sqrt(tensor.shape[1]))
    built: dict[str, Any] = {}
    for path in sorted(states, key=lambda p: -p.count(".") if p else 1):
        state = states[path]
        state["_modules"] = OrderedDict(sorted((k, built[v]) for k, v in state["_modules"].items()))
        cls = (class_overrides or {}).get(path) or class_of(path)
        plain = {k: v for k, v in state.items() if not k.startswith("_init")}
        if cls == "Sequential":
            module = torch.nn.Sequential()
            module.__dict__.update(plain)
            built[path] = module
        elif cls == "Softplus":
            module = torch.nn.Softplus()
            module.__dict__.update(plain)
            built[path] = module
        elif cls.startswith("inert:"):
            built[path] = _inert(_FAKE_MODULES_BY_NAME[cls[6:]], plain)
        else:
            built[path] = Persistent(cls, state)
    if top_attrs:
        states[""].update(top_attrs)
    return built[""]


_FAKE_MODULES_BY_NAME = {
    "OSGDecoder": OSGDecoder,
    "ImportanceRenderer": ImportanceRenderer,
    "MipRayMarcher2": MipRayMarcher2,
    "RaySampler": RaySampler,
}


def eg3d_snapshot_bytes(
    g_kwargs: dict,
    g_ema_state: dict[str, torch.Tensor],
    g_buffers: set[str],
    neural_rendering_resolution: int,
    *,
    d_kwargs: dict | None = None,
    d_state: dict[str, torch.Tensor] | None = None,
    d_buffers: set[str] = frozenset(),
    class_overrides: dict[str, str] | None = None,
    d_class_overrides: dict[str, str] | None = None,
    extra: dict | None = None,
) -> bytes:
    """A complete EG3D-format snapshot pickle (training_set_kwargs, G, D, G_ema, augment_pipe)."""
    sr_class = str(g_kwargs["rendering_kwargs"]["superresolution_module"]).rsplit(".", 1)[-1]

    def g_class(path: str) -> str:
        overrides = {"decoder.net.1": "Softplus", "renderer": "inert:ImportanceRenderer"}
        overrides.update({"renderer.ray_marcher": "inert:MipRayMarcher2", "ray_sampler": "inert:RaySampler"})
        return overrides.get(path) or _generator_class(path, sr_class)

    with fake_eg3d_modules():
        kwargs = EasyDict({k: EasyDict(v) if isinstance(v, dict) else v for k, v in g_kwargs.items()})
        top = dict(
            _init_kwargs=kwargs,
            rendering_kwargs=dict(g_kwargs["rendering_kwargs"]),
            neural_rendering_resolution=neural_rendering_resolution,
            z_dim=g_kwargs["z_dim"],
            c_dim=g_kwargs["c_dim"],
        )
        extra_paths = ("decoder.net.1", "renderer.ray_marcher", "ray_sampler")
        g_ema = module_tree(g_ema_state, g_buffers, g_class, extra_paths, top, class_overrides)
        G = module_tree(g_ema_state, g_buffers, g_class, extra_paths, top)
        snapshot: dict[str, Any] = {
            "training_set_kwargs": EasyDict(
                class_name="training.dataset.ImageFolderDataset", path="/EG3D_DATASETS/mini_128.zip", use_labels=True
            ),
            "G": G,
            "D": None,
            "G_ema": g_ema,
            "augment_pipe": None,
        }
        if d_state is not None:
            d_top = dict(
                _init_kwargs=EasyDict({k: EasyDict(v) if isinstance(v, dict) else v for k, v in d_kwargs.items()})
            )
            snapshot["D"] = module_tree(
                d_state, d_buffers, _discriminator_class, top_attrs=d_top, class_overrides=d_class_overrides
            )
        snapshot.update(extra or {})
        buf = io.BytesIO()
        pickle.Pickler(buf, protocol=4).dump(snapshot)
        return buf.getvalue()


def fixture_snapshot_bytes(meta: dict, g_state: dict, d_state: dict | None = None, **kwargs: Any) -> bytes:
    """The fixture's weights in an EG3D snapshot, with the init kwargs reference.json records."""
    from eg3d_fixture import mini_config

    from epigraf_tools.models.eg3d import DualDiscriminator, EG3DGenerator

    attrs = meta["snapshot"]["attributes"]
    g_buffers = {n for n, _ in EG3DGenerator(mini_config(meta)).named_buffers()}
    d_kwargs = dict(meta["config"]["c"]["D_kwargs"])
    d_kwargs.pop("class_name", None)
    d_kwargs.update(c_dim=25, img_resolution=attrs["init_kwargs"]["img_resolution"], img_channels=3)
    d_buffers: set[str] = set()
    if d_state is not None:
        D = DualDiscriminator(128, c_dim=25, channel_base=1024, channel_max=32, num_fp16_res=4, conv_clamp=256)
        d_buffers = {n for n, _ in D.named_buffers()}
    return eg3d_snapshot_bytes(
        attrs["init_kwargs"],
        g_state,
        g_buffers,
        attrs["neural_rendering_resolution"],
        d_kwargs=d_kwargs,
        d_state=d_state,
        d_buffers=d_buffers,
        **kwargs,
    )
