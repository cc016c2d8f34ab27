"""Build pickles in the official EpiGRAF snapshot format, for tests (no official code involved).

The real format (shared/fixtures/official_mini/README.md, SPEC-DETAILS.md section 6): a pickled
dict of persistent networks, each reduced to
``src.torch_utils.persistence._reconstruct_persistent_obj(meta)`` with
``meta = {type: 'class', version: 6, module_src, class_name, state}``, where ``state`` is the
module ``__dict__`` (``_parameters``, ``_buffers``, ``_modules``, hook dicts, ``_init_kwargs``,
``cfg``...). Configs are omegaconf DictConfig trees (pickled state ``_metadata``, ``_parent``,
``_content``; value nodes ``_val``) whose parent links reach the whole experiment config.
Tensors pickle through torch's own reduction (storages as ``torch.storage._load_from_bytes``).

To make pickle name those globals without the official code or omegaconf installed, stand-in
modules are registered in ``sys.modules`` only while pickling.
"""

from __future__ import annotations

import contextlib
import io
import pickle
import re
import sys
import types
import typing
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

DUMMY_MODULE_SRC = "# official module source would be here; the safe loader must never run it\n"
BUFFER_NAMES = {"resample_filter", "w_avg", "mean_camera_pose", "noise_const", "fourier_coefs", "p", "Hz_geom"}
HOOK_DICTS = (
    "_backward_pre_hooks _backward_hooks _forward_hooks _forward_hooks_with_kwargs _forward_hooks_always_called "
    "_forward_pre_hooks _forward_pre_hooks_with_kwargs _state_dict_hooks _state_dict_pre_hooks "
    "_load_state_dict_pre_hooks _load_state_dict_post_hooks"
).split()


def _reconstruct_persistent_obj(meta):  # the stand-in is never called by a safe loader
    raise AssertionError("the official reconstruction hook was called: code from the pickle would run")


class EasyDict(dict):
    pass


class Metadata:
    pass


class ContainerMetadata(Metadata):
    pass


class DictConfig:
    pass


class ListConfig:
    pass


class AnyNode:
    pass


_FAKE_MODULES: dict[str, dict[str, Any]] = {
    "src": {},
    "src.torch_utils": {},
    "src.torch_utils.persistence": {"_reconstruct_persistent_obj": _reconstruct_persistent_obj},
    "src.dnnlib": {},
    "src.dnnlib.util": {"EasyDict": EasyDict},
    "omegaconf": {},
    "omegaconf.base": {"Metadata": Metadata, "ContainerMetadata": ContainerMetadata},
    "omegaconf.dictconfig": {"DictConfig": DictConfig},
    "omegaconf.listconfig": {"ListConfig": ListConfig},
    "omegaconf.nodes": {"AnyNode": AnyNode},
}


def name_fakes(table: dict[str, dict[str, Any]]) -> None:
    """Give each stand-in the module and class name it pickles under (``table``: module -> name -> object)."""
    for mod, names in table.items():
        for name, obj in names.items():
            obj.__module__ = mod
            obj.__qualname__ = name


name_fakes(_FAKE_MODULES)


@contextlib.contextmanager
def fake_modules(table: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Make the names in ``table`` resolvable by pickle while building a file; restore sys.modules after."""
    saved = {name: sys.modules.get(name) for name in table}
    try:
        for name, attrs in table.items():
            module = types.ModuleType(name)
            module.__dict__.update(attrs)
            sys.modules[name] = module
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def fake_official_modules() -> contextlib.AbstractContextManager[None]:
    """Make ``src.*`` and ``omegaconf.*`` names resolvable by pickle while building a file."""
    return fake_modules(_FAKE_MODULES)


class Persistent:
    """Pickles exactly like an official persistent object (the hook's module is per code base)."""

    hook_module = "src.torch_utils.persistence"

    def __init__(self, class_name: str, state: dict, module_src: str = DUMMY_MODULE_SRC) -> None:
        self.class_name, self.state, self.module_src = class_name, state, module_src

    def __reduce__(self):
        meta = dict(type="class", version=6, module_src=self.module_src, class_name=self.class_name, state=self.state)
        return (sys.modules[self.hook_module]._reconstruct_persistent_obj, (meta,), None)


# ----------------------------------------------------------------------------- omegaconf trees
def _metadata(cls: type, key: Any, **extra: Any) -> Metadata:
    meta = cls.__new__(cls)
    meta.__dict__.update(
        ref_type=typing.Any,
        object_type=dict if cls is ContainerMetadata else None,
        optional=True,
        key=key,
        flags={},
        resolver_cache={},
        **extra,
    )
    return meta


def make_config_node(value: Any, parent: Any = None, key: Any = None) -> Any:
    """A DictConfig / ListConfig / AnyNode tree for ``value`` (interpolation strings kept)."""
    if isinstance(value, dict):
        node = DictConfig.__new__(DictConfig)
        node.__dict__.update(
            _metadata=_metadata(ContainerMetadata, key, key_type=typing.Any, element_type=typing.Any),
            _parent=parent,
            _content={},
        )
        for k, v in value.items():
            node._content[k] = make_config_node(v, node, k)
        return node
    if isinstance(value, list):
        node = ListConfig.__new__(ListConfig)
        node.__dict__.update(
            _metadata=_metadata(ContainerMetadata, key, key_type=int, element_type=typing.Any),
            _parent=parent,
            _content=[],
        )
        node._content.extend(make_config_node(v, node, i) for i, v in enumerate(value))
        return node
    leaf = AnyNode.__new__(AnyNode)
    leaf.__dict__.update(_metadata=_metadata(Metadata, key), _parent=parent, _val=value)
    return leaf


def config_child(root: DictConfig, dotted: str) -> Any:
    node = root
    for key in dotted.split("."):
        node = node._content[key]
    return node


# ----------------------------------------------------------------------------- module trees
def _generator_class(path: str, leaf: str) -> str:
    table = {
        "": "Generator",
        "mapping": "MappingNetwork",
        "synthesis": "SynthesisNetwork",
        "tri_plane_decoder": "SynthesisBlocksSequence",
        "tri_plane_mlp": "TriPlaneMLP",
        "model": "Sequential",
        "camera_scalar_enc": "ScalarEncoder1d",
        "conv0": "SynthesisLayer",
        "conv1": "SynthesisLayer",
        "torgb": "ToRGBLayer",
    }
    if leaf in table:
        return table[leaf]
    return "SynthesisBlock" if re.fullmatch(r"b\d+", leaf) else "FullyConnectedLayer"


def _discriminator_class(path: str, leaf: str) -> str:
    table = {
        "": "Discriminator",
        "scalar_enc": "ScalarEncoder1d",
        "fourier_encoder": "FourierEncoder1d",
        "const_embed": "Embedding",
        "hyper_mod_mapping": "MappingNetwork",
        "head_mapping": "MappingNetwork",
        "mbstd": "MinibatchStdLayer",
        "b4": "DiscriminatorEpilogue",
    }
    if leaf in table:
        return table[leaf]
    if re.fullmatch(r"b\d+", leaf):
        return "DiscriminatorBlock"
    return "Conv2dLayer" if leaf in ("conv", "conv0", "conv1", "fromrgb", "skip") else "FullyConnectedLayer"


def _module_state(training: bool) -> dict:
    state: dict[str, Any] = {
        "training": training,
        "_parameters": OrderedDict(),
        "_buffers": OrderedDict(),
        "_non_persistent_buffers_set": set(),
    }
    for name in HOOK_DICTS:
        state[name] = OrderedDict()
    state["_is_full_backward_hook"] = None
    state["_modules"] = OrderedDict()
    state["_init_args"] = ()
    state["_init_kwargs"] = EasyDict()
    return state


def module_tree(
    flat: dict[str, torch.Tensor],
    class_of: Callable[[str, str], str],
    training: bool = False,
    top_attrs: dict | None = None,
    class_overrides: dict[str, str] | None = None,
) -> tuple[Persistent, dict[str, torch.nn.Parameter]]:
    """A persistent-object tree holding ``flat`` (official names) and the Parameter objects used."""
    states: dict[str, dict] = {"": _module_state(training)}
    params: dict[str, torch.nn.Parameter] = {}

    def node(path: str) -> dict:
        if path not in states:
            parent, _, leaf = path.rpartition(".")
            states[path] = _module_state(training)
            node(parent)["_modules"][leaf] = path  # placeholder, replaced below
        return states[path]

    for key, tensor in flat.items():
        path, _, leaf = key.rpartition(".")
        state = node(path)
        if leaf in BUFFER_NAMES:
            state["_buffers"][leaf] = tensor
        else:
            param = torch.nn.Parameter(tensor, requires_grad=False)
            state["_parameters"][leaf] = param
            params[key] = param
        if leaf == "weight" and class_of(path, path.rpartition(".")[2]) == "FullyConnectedLayer":
            state["weight_gain"] = np.float64(1.0 / np.sqrt(tensor.shape[1]))  # a numpy scalar, as official
    built: dict[str, Any] = {}
    for path in sorted(states, key=lambda p: -p.count(".") if p else 1):  # children before parents
        state = states[path]
        for leaf, child in list(state["_modules"].items()):
            state["_modules"][leaf] = built[child]
        leaf = path.rpartition(".")[2]
        cls = (class_overrides or {}).get(path) or class_of(path, leaf)
        if cls in ("Sequential", "Embedding"):
            module = torch.nn.Sequential() if cls == "Sequential" else torch.nn.Embedding(1, 1)
            module.__dict__.update({k: v for k, v in state.items() if not k.startswith("_init")})
            built[path] = module
        else:
            built[path] = Persistent(cls, state)
    if top_attrs:
        states[""].update(top_attrs)
    return built[""], params


# ----------------------------------------------------------------------------- whole snapshots
def load_experiment_config(fixture_dir: Path) -> dict:
    import yaml

    return yaml.safe_load((fixture_dir / "official_experiment_config.yaml").read_text())


def _cuda_tagged_storage_bytes(storage: torch.storage.TypedStorage) -> bytes:
    buf = io.BytesIO()
    torch.save(storage, buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    tagged = data.replace(b"X\x03\x00\x00\x00cpuq", b"X\x06\x00\x00\x00cuda:0q")
    assert tagged != data, "could not find the storage location tag to rewrite"
    return tagged


class _SnapshotPickler(pickle.Pickler):
    def __init__(self, file, cuda_tagged: bool) -> None:
        super().__init__(file, protocol=4)
        self.cuda_tagged = cuda_tagged

    def reducer_override(self, obj):
        if self.cuda_tagged and isinstance(obj, torch.storage.TypedStorage):
            return (torch.storage._load_from_bytes, (_cuda_tagged_storage_bytes(obj),))
        return NotImplemented


def official_snapshot_bytes(
    g_ema_state: dict[str, torch.Tensor],
    experiment: dict,
    *,
    d_state: dict[str, torch.Tensor] | None = None,
    g_init_kwargs: dict | None = None,
    d_init_kwargs: dict | None = None,
    g_state: dict[str, torch.Tensor] | None = None,
    with_optimizers: bool = True,
    cuda_tagged: bool = False,
    g_module_src: str = DUMMY_MODULE_SRC,
    class_overrides: dict[str, str] | None = None,
    extra: dict | None = None,
) -> bytes:
    """A complete official-format snapshot (training_set_kwargs, G, D, G_ema, ..., stats)."""
    with fake_official_modules():
        root = make_config_node(experiment)
        g_cfg = config_child(root, "model.generator")
        g_kwargs = EasyDict(cfg=g_cfg, **(g_init_kwargs or {}))
        if "mapping_kwargs" in g_kwargs:
            g_kwargs["mapping_kwargs"] = EasyDict(g_kwargs["mapping_kwargs"])
        top = dict(cfg=g_cfg, _init_kwargs=g_kwargs, z_dim=g_kwargs.get("z_dim"), c_dim=g_kwargs.get("c_dim"))
        g_ema, _ = module_tree(g_ema_state, _generator_class, False, top, class_overrides)
        g_ema.module_src = g_module_src
        g_train = (
            g_state
            if g_state is not None
            else {k: v + 0.5 if v.is_floating_point() else v for k, v in g_ema_state.items()}
        )
        G, g_params = module_tree(g_train, _generator_class, True, top)
        snapshot: dict[str, Any] = {
            "training_set_kwargs": dict(
                class_name="src.training.dataset.ImageFolderDataset",
                path="data/dataset.zip",
                use_labels=False,
                max_size=70000,
                xflip=True,
                resolution=experiment["dataset"]["resolution"],
                random_seed=0,
            ),
            "G": G,
            "D": None,
            "G_ema": g_ema,
            "augment_pipe": None,
            "G_opt": None,
            "D_opt": None,
            "vis": dict(
                grid_size=(2, 2),
                grid_z=torch.randn(4, 8),
                grid_c=np.zeros((4, 0), np.float32),
                grid_camera_angles=np.zeros((4, 3), np.float32),
            ),
            "stats": dict(
                cur_nimg=64,
                cur_tick=0,
                batch_idx=1,
                best_metric_value=float("inf"),
                best_metric_tick=0,
                best_metric_nimg=0,
            ),
        }
        if d_state is not None:
            d_cfg = config_child(root, "model.discriminator")
            d_kwargs = EasyDict(cfg=d_cfg, **(d_init_kwargs or {}))
            D, d_params = module_tree(d_state, _discriminator_class, True, dict(cfg=d_cfg, _init_kwargs=d_kwargs))
            snapshot["D"] = D
            if with_optimizers:
                snapshot["D_opt"] = _adam(d_params.values(), lr=0.002)
        if with_optimizers:
            snapshot["G_opt"] = _adam(g_params.values(), lr=0.0025)
        snapshot["augment_pipe"] = module_tree({"p": torch.tensor(0.2)}, lambda p, leaf: "AugmentPipe")[0]
        snapshot.update(extra or {})
        buf = io.BytesIO()
        _SnapshotPickler(buf, cuda_tagged).dump(snapshot)
        return buf.getvalue()


def _adam(params, lr: float) -> torch.optim.Adam:
    """A real Adam over ``params`` with a filled state (as after some steps), built without stepping."""
    params = list(params)
    opt = torch.optim.Adam(params, lr=lr, betas=(0.0, 0.99))
    for i, p in enumerate(params):
        opt.state[p] = {
            "step": torch.tensor(float(i + 1)),
            "exp_avg": torch.zeros_like(p),
            "exp_avg_sq": torch.zeros_like(p),
        }
    return opt


def mini_init_kwargs(experiment: dict, mean_camera_pose: torch.Tensor) -> tuple[dict, dict]:
    """G and D constructor kwargs as official train.py builds them for the mini fixture."""
    g = experiment["model"]["generator"]
    d = experiment["model"]["discriminator"]
    g_kwargs = dict(
        z_dim=512,
        w_dim=g["w_dim"],
        c_dim=0,
        img_resolution=experiment["dataset"]["resolution"],
        img_channels=3,
        channel_base=int(g["cbase"] * g["fmaps"]),
        channel_max=g["cmax"],
        fused_modconv_default="inference_only",
        mapping_kwargs=dict(
            num_layers=g["map_depth"],
            camera_cond=g["camera_cond"],
            camera_cond_drop_p=0.0,
            camera_cond_noise_std=0.0,
            mean_camera_pose=mean_camera_pose,
        ),
    )
    d_kwargs = dict(
        c_dim=0,
        img_resolution=experiment["training"]["patch"]["resolution"],
        img_channels=3,
        channel_base=int(d["cbase"] * d["fmaps"]),
        channel_max=d["cmax"],
        block_kwargs=EasyDict(freeze_layers=0),
        mapping_kwargs=EasyDict(),
        epilogue_kwargs=EasyDict(mbstd_group_size=4),
    )
    return g_kwargs, d_kwargs


def pickle_with_fake_modules(obj: Any) -> bytes:
    """Pickle any object graph that may contain stand-ins (Persistent, config nodes, EasyDict)."""
    with fake_official_modules():
        return pickle.dumps(obj, protocol=4)


def experiment_for(config, *, density_shift: bool = True, patch_res: int = 16) -> dict:
    """An official-style experiment config (with interpolations) describing one of our configs.

    ``density_shift=False`` drops the key, as in code older than the option (it then means 0).
    """
    c = config
    generator = {
        "fmaps": 0.5,
        "cmax": c.channel_max,
        "cbase": c.channel_base * 2,
        "patch": "${training.patch}",
        "dataset": "${dataset}",
        "w_dim": c.w_dim,
        "camera_cond": c.camera_cond,
        "camera_cond_drop_p": 0.0,
        "camera_cond_noise_std": 0.0,
        "map_depth": c.map_depth,
        "backbone": "stylegan2",
        "num_ray_steps": c.num_ray_steps,
        "clamp_mode": c.clamp_mode,
        "nerf_noise_std_init": 1.0,
        "nerf_noise_kimg_growth": 5000,
        "use_noise": c.use_noise,
        "tri_plane": {
            "res": c.triplane_res,
            "feat_dim": c.feat_dim,
            "fp32": True,
            "has_view_cond": False,
            "posenc_period_len": 0,
            "mlp": {"n_layers": c.mlp_n_layers, "hid_dim": c.mlp_hid_dim},
        },
        "bg_model": {"type": None, "num_steps": 8, "start": 1.0},
    }
    if density_shift:
        generator["density_shift"] = c.density_shift
    return {
        "model": {
            "generator": generator,
            "discriminator": {
                "fmaps": 0.5,
                "cmax": 32,
                "cbase": 256,
                "patch": "${training.patch}",
                "num_additional_start_blocks": 1,
                "mbstd_group_size": 4,
                "camera_cond": False,
                "camera_cond_drop_p": 0.0,
                "camera_cond_noise_std": 0.0,
                "camera_cond_raw": False,
                "hyper_mod": True,
            },
            "name": "epigraf",
        },
        "dataset": {
            "path": "data/${dataset.name}.zip",
            "c_dim": c.c_dim,
            "resolution": c.img_resolution,
            "camera": {
                "fov": c.fov,
                "ray_start": c.ray_start,
                "ray_end": c.ray_end,
                "radius": c.radius,
                "dist": "custom",
            },
            "name": "tiny_${dataset.resolution}",
            "cube_scale": c.cube_scale,
            "white_back": c.white_back,
            "last_back": c.last_back,
            "home": "${env:HOME}",
        },
        "training": {"patch": {"enabled": True, "patch_params_cond": True, "resolution": patch_res}},
        "env": {"project_path": "/secret/cluster/path"},
        "experiment_name": "${dataset.name}_${model.name}",
    }


def init_kwargs_for(config, *, with_channel_base: bool = True) -> dict:
    """G constructor kwargs as official train.py passes them (channel_base = int(cbase * fmaps))."""
    c = config
    kwargs = dict(
        z_dim=c.z_dim,
        w_dim=c.w_dim,
        c_dim=c.c_dim,
        img_resolution=c.img_resolution,
        img_channels=3,
        channel_max=c.channel_max,
        fused_modconv_default="inference_only",
        mapping_kwargs=dict(
            num_layers=c.map_depth,
            camera_cond=c.camera_cond,
            camera_cond_drop_p=0.0,
            camera_cond_noise_std=0.0,
            mean_camera_pose=torch.tensor(c.mean_camera_pose),
        ),
    )
    if with_channel_base:
        kwargs["channel_base"] = c.channel_base
    return kwargs


def generator_snapshot_bytes(G, **kwargs) -> bytes:
    """An official-format snapshot (G, G_ema, no D) holding one of our generators."""
    experiment = kwargs.pop("experiment", None) or experiment_for(G.config)
    g_init_kwargs = kwargs.pop("g_init_kwargs", None) or init_kwargs_for(G.config)
    state = {k: v.detach().clone() for k, v in G.state_dict().items()}
    return official_snapshot_bytes(state, experiment, g_init_kwargs=g_init_kwargs, **kwargs)


# ----------------------------------------------------------------------------- hostile pickles
# Small files that each attack the reader in one way (crash, memory, CPU, patching library objects).
# ``hostile_pickles()`` maps a name to (bytes, regex the refusal must match); the tests load each
# through the reader (in a subprocess where the unfixed reader would crash or hang) and via the CLI.
class Reduce:
    """Pickles as ``fn(*args)`` (then BUILD ``state`` if given), with ``fn`` any importable callable."""

    def __init__(self, fn: Any, args: tuple, state: Any = None) -> None:
        self.fn, self.args, self.state = fn, args, state

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def legacy_storage_payload(tensor: torch.Tensor) -> bytes:
    """What pickling a tensor stores for its storage: a legacy ``torch.save`` of it."""
    import warnings

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TypedStorage is deprecated, but it is what tensor pickling saves
        torch.save(tensor.storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def storage_of(payload: bytes) -> Reduce:
    return Reduce(torch.storage._load_from_bytes, (payload,))


def tensor_from(payload: bytes, size: tuple, stride: tuple, offset: int = 0, state: Any = None) -> Reduce:
    args = (storage_of(payload), offset, size, stride, False, OrderedDict())
    return Reduce(torch._utils._rebuild_tensor_v2, args, state)


def _proto2(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _short_unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + len(data).to_bytes(4, "little") + data


_FIELDS_STATE = pickle.dumps((3, "<", None, ("f0",), {"f0": (None, 0)}, 8, 1, 0), protocol=2)[2:-1]
_VOID_STATE = pickle.dumps((3, "|", None, ("f0",), {"f0": (np.dtype("O"), 0)}, 8, 1, 0), protocol=2)[2:-1]


def patched_void_dtype() -> bytes:
    """Opcodes leaving on the stack a V8 dtype given an object field by BUILD (flags say no objects)."""
    return b"cnumpy\ndtype\n" + _short_unicode("V8") + b"\x89\x88\x87R" + _VOID_STATE + b"b"


def _numpy_scalar_of_patched_dtype() -> bytes:
    """numpy.core.multiarray.scalar(<patched dtype>, 8 raw bytes): dereferences the bytes as a pointer."""
    return b"cnumpy.core.multiarray\nscalar\n" + patched_void_dtype() + b"C\x08AAAAAAAA\x86R"


def _official_size_payload(numel_claimed: int, real: int = 3) -> bytes:
    payload = legacy_storage_payload(torch.zeros(real))
    old = real.to_bytes(8, "little")
    head, _, data = payload.rpartition(old)
    # the persistent id says 'real' elements (K\x03); claim more there and in the size field
    head = head.replace(b"K" + bytes([real]) + b"Nt", b"\x8a\x08" + numel_claimed.to_bytes(8, "little") + b"Nt")
    return head + numel_claimed.to_bytes(8, "little") + data


def _zip_storage_payload() -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(None))
        zf.writestr("archive/data/0", b"\0" * (16 << 20))  # 16 MiB that deflate to ~16 KiB
    return buf.getvalue()


def _doubling_config(levels: int = 40, prefix: str = "") -> Any:
    """An omegaconf tree whose values double at each level: v0: x, v1: ${v0}${v0}, ..."""
    tree = {"v0": "x"}
    for i in range(1, levels):
        tree[f"v{i}"] = f"${{{prefix}v{i - 1}}}${{{prefix}v{i - 1}}}"
    return tree


def _sharing_dag(levels: int = 60) -> list:
    node: list = [0]
    for _ in range(levels):
        node = [node, node]  # 2^levels leaves when walked as a tree
    return node


def _snapshot_around(obj: Any, key: str = "stats") -> bytes:
    """A minimal snapshot whose ``key`` holds ``obj`` (G_ema is a bare Generator)."""
    g = Persistent("Generator", {"_parameters": {}, "_buffers": {}, "_modules": {}})
    return pickle_with_fake_modules({"G_ema": g, key: obj})


def _self_referencing_module() -> bytes:
    seq = torch.nn.Sequential()
    seq.__dict__["_modules"]["again"] = seq
    g = Persistent("Generator", {"_parameters": {}, "_buffers": {}, "_modules": {"model": seq}})
    return pickle_with_fake_modules({"G_ema": g})


def hostile_pickles() -> dict[str, tuple[bytes, str]]:
    """name -> (pickle bytes, regex of the expected refusal)."""
    good = legacy_storage_payload(torch.arange(4.0))
    huge = 1 << 40
    cases: dict[str, tuple[bytes, str]] = {
        # library objects patched by BUILD
        "numpy scalar of a void dtype given an object field (segfault)": (
            _proto2(b"}" + _numpy_scalar_of_patched_dtype() + b"K\x01s"),  # used as a dict key: hashed
            "'V8' is not allowed",
        ),
        "numpy float64 dtype given fields by BUILD": (
            _proto2(b"cnumpy\ndtype\n" + _short_unicode("f8") + b"\x89\x88\x87R" + _FIELDS_STATE + b"b"),
            "non-plain state",
        ),
        "numpy array of a void dtype given an object field (segfault)": (
            _proto2(
                b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R(K\x01K\x01\x85"
                + patched_void_dtype()
                + b"\x89C\x08AAAAAAAAtb"
            ),
            "'V8' is not allowed",
        ),
        "numpy object dtype": (_proto2(b"cnumpy\ndtype\n" + _short_unicode("O8") + b"\x89\x88\x87R"), "not allowed"),
        "numpy void dtype": (_proto2(b"cnumpy\ndtype\n" + _short_unicode("V8") + b"\x89\x88\x87R"), "not allowed"),
        "numpy array whose data is shorter than its shape": (
            pickle.dumps(np.zeros(4), protocol=2).replace(b"K\x04\x85", b"J\x00\xca\x9a;J\x00\xca\x9a;\x86"),
            "not exactly its size",
        ),
        "tensor patched by BUILD (Tensor.__setstate__ -> set_)": (
            pickle.dumps(
                {"t": tensor_from(good, (4,), (1,), state=(storage_of(good), 0, (10**9, 10**9), (0, 0)))}, protocol=4
            ),
            "modify a tensor",
        ),
        "parameter patched by BUILD": (
            pickle.dumps(
                Reduce(
                    torch._utils._rebuild_parameter,
                    (tensor_from(good, (4,), (1,)), False, OrderedDict()),
                    (True, None, {1: 2}),
                ),
                protocol=4,
            ),
            "modify a parameter",
        ),
        # memory: lying lengths and counts
        "memo index 2^31 (9 bytes)": (b"\x80\x02Nr" + (1 << 31).to_bytes(4, "little") + b".", "memo index"),
        "BINBYTES8 claiming 1 TiB": (b"\x80\x04\x8e" + huge.to_bytes(8, "little") + b".", "claims"),
        "BYTEARRAY8 claiming 4 GiB": (b"\x80\x05\x96" + (1 << 32).to_bytes(8, "little") + b".", "claims"),
        "BINUNICODE8 claiming 1 TiB": (b"\x80\x04\x8d" + huge.to_bytes(8, "little") + b".", "claims"),
        "bytearray(2**32) via REDUCE": (
            b"\x80\x02cbuiltins\nbytearray\n\x8a\x05\x00\x00\x00\x00\x01\x85R.",
            "only from bytes",
        ),
        "bytes(2**32) via REDUCE": (b"\x80\x02cbuiltins\nbytes\n\x8a\x05\x00\x00\x00\x00\x01\x85R.", "only from bytes"),
        "storage claiming 2^40 elements": (
            pickle.dumps(storage_of(_official_size_payload(huge)), protocol=4),
            "declares",
        ),
        "zip-format storage with a deflated record (zip bomb)": (
            pickle.dumps(storage_of(_zip_storage_payload()), protocol=4),
            "zip archive",
        ),
        "stride-0 tensor of shape [1e9, 1e9]": (
            pickle.dumps({"t": tensor_from(good, (10**9, 10**9), (0, 0))}, protocol=4),
            "needs more than its storage",
        ),
        "tensor reaching past its storage": (
            pickle.dumps({"t": tensor_from(good, (3,), (2,), offset=1)}, protocol=4),
            "needs more than its storage",
        ),
        "tensor with a negative stride": (
            pickle.dumps({"t": tensor_from(good, (2,), (-1,), offset=3)}, protocol=4),
            "non-negative",
        ),
        # CPU and recursion
        "5000-deep nested tuples": (b"\x80\x02N" + b"\x85" * 5000 + b".", "deeper than"),
        "5000-deep nested lists": (b"\x80\x02" + b"]" * 5000 + b"a" * 4999 + b".", "deeper than"),
        "self-referencing module tree": (_self_referencing_module(), "appears twice"),
        "self-referencing list in stats": (_snapshot_around(_self_ref_list()), "too deeply"),
        "2^60-leaf shared DAG in stats": (_snapshot_around(_sharing_dag()), "steps to resolve"),
        "self-doubling ${...} interpolations": (_snapshot_around(_config_tree(_doubling_config())), "characters|steps"),
        "GET of a never-stored memo index": (b"\x80\x02h\x07.", "never stored"),
        "extension-registry opcode": (b"\x80\x02\x82\x01.", "extension-registry"),
    }
    cases.update(_embedded_cases())
    return cases


def _self_ref_list() -> list:
    loop: list = []
    loop.append(loop)
    return loop


def _config_tree(tree: dict) -> Any:
    with fake_official_modules():
        return make_config_node(tree)


def _unframed(data: bytes) -> bytes:
    """The same pickle without protocol-4 FRAME opcodes (optional), so opcodes can be spliced in."""
    import pickletools

    cuts = [pos for op, _, pos in pickletools.genops(data) if op.name == "FRAME"]
    out, last = [], 0
    for pos in cuts:
        out.append(data[last:pos])
        last = pos + 9
    out.append(data[last:])
    return b"".join(out)


def splice(data: bytes, marker: str, opcodes: bytes) -> bytes:
    """Replace the string ``marker`` in a pickle by ``opcodes`` (which must push exactly one object)."""
    raw = marker.encode()
    plain = _unframed(data)
    needle = b"\x8c" + bytes([len(raw)]) + raw
    assert plain.count(needle) == 1, "marker not found exactly once"
    return plain.replace(needle, opcodes)


def tiny_snapshot(**kwargs: Any) -> bytes:
    """A complete official-format snapshot of a tiny random generator (G, G_ema; no D)."""
    from support import make_tiny_generator

    return generator_snapshot_bytes(make_tiny_generator(5), with_optimizers=False, **kwargs)


def _embedded_cases() -> dict[str, tuple[bytes, str]]:
    """Attacks placed where a real snapshot's values are used (stats, constructor kwargs, config)."""
    from support import make_tiny_generator

    G = make_tiny_generator(5)
    good = legacy_storage_payload(torch.arange(4.0))
    kwargs = init_kwargs_for(G.config)
    kwargs["mapping_kwargs"]["mean_camera_pose"] = tensor_from(good, (10**9, 10**9), (0, 0))
    experiment = experiment_for(G.config)
    experiment["notes"] = _doubling_config(prefix="notes.")
    shared = storage_of(legacy_storage_payload(torch.zeros(1 << 20)))  # 4 MiB, stored once (memoized)
    many_views = init_kwargs_for(G.config)
    many_views["views"] = [
        Reduce(torch._utils._rebuild_tensor_v2, (shared, 0, (1 << 20,), (1,), False, OrderedDict()))
        for _ in range(1100)
    ]
    return {
        "1100 full views of one 4 MiB storage in G's kwargs (listed on convert)": (
            generator_snapshot_bytes(G, with_optimizers=False, g_init_kwargs=many_views),
            "materialised",
        ),
        "void scalar as stats.cur_nimg (segfault on convert)": (
            splice(
                tiny_snapshot(extra={"stats": {"cur_nimg": "SPLICE_HERE"}}),
                "SPLICE_HERE",
                _numpy_scalar_of_patched_dtype(),
            ),
            "'V8' is not allowed",
        ),
        "stride-0 [1e9, 1e9] tensor in G's kwargs (listed on convert)": (
            generator_snapshot_bytes(G, with_optimizers=False, g_init_kwargs=kwargs),
            "needs more than its storage",
        ),
        "self-doubling ${...} chain in the experiment config (hang)": (
            generator_snapshot_bytes(G, with_optimizers=False, experiment=experiment),
            "characters|steps",
        ),
    }
