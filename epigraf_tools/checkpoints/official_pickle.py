"""Read official EpiGRAF training snapshots (``network-snapshot-*.pkl``) without running their code.

A snapshot is a pickled dict (training_set_kwargs, G, D, G_ema, augment_pipe, G_opt, D_opt, vis,
stats) whose networks are persistent objects carrying their own source code. We read it with
:mod:`epigraf_tools.safe_pickle` (data only), walk each network's ``_parameters`` / ``_buffers`` /
``_modules`` into a state dict under the official names (which our modules share), and rebuild the
generator configuration from the embedded omegaconf experiment config and ``_init_kwargs``.

Python API::

    snap = read_official_snapshot("network-snapshot-005000.pkl")
    G = snap.generator()                 # our Generator, official G_ema weights, strict load
    snap.d_state, snap.d_config          # discriminator weights (official names) for resuming
    convert_official("network-snapshot-005000.pkl", "ffhq512/")  # config.json + model.safetensors
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import mmap
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import torch

from ..errors import EpigrafError
from ..models import CONFIG_NAME, WEIGHTS_NAME, Generator, GeneratorConfig
from ..models.initial_weights import weights_from_file
from .official_config import discriminator_config_from_official, generator_config_from_official
from .omegaconf_state import to_plain
from .safe_pickle import EG3D_MODULE_CLASSES, InertObject, PersistentObject, UnsafePickleError, plain_tensor, safe_loads

if TYPE_CHECKING:
    from .eg3d_pickle import EG3DSnapshot

ProgressFn = Callable[[int, int], None]  # (bytes read, total bytes)

# Persistent classes defined by the official code base (src/training/*.py, src/torch_utils).
KNOWN_PERSISTENT_CLASSES = frozenset(
    """Generator SynthesisNetwork SynthesisBlocksSequence TriPlaneMLP SynthesisBlock SynthesisLayer ToRGBLayer
    FullyConnectedLayer MappingNetwork Conv2dLayer ScalarEncoder1d FourierEncoder1d DiscriminatorBlock
    MinibatchStdLayer DiscriminatorEpilogue Discriminator INR SynthesisOutputLayer SynthesisInput AugmentPipe""".split()
)
DISCRIMINATOR_WEIGHTS_NAME = "discriminator.safetensors"
DISCRIMINATOR_CONFIG_NAME = "discriminator_config.json"
OFFICIAL_CONFIG_NAME = "official_config.json"
# Module trees: official networks nest 5 levels and hold a few hundred modules; these bounds keep a
# crafted tree (5000 levels deep, self-referencing, or a shared-child DAG of exponential size) cheap.
MAX_MODULE_DEPTH = 32
MAX_MODULES = 100_000
# Sections of the experiment config worth keeping beside converted weights (the rest is cluster setup).
KEPT_CONFIG_SECTIONS = ("model", "dataset", "training", "experiment_name", "desc", "git_hash")


@dataclass
class OptimizerState:
    """An official Adam state re-keyed by parameter name (the pickle keys it by Parameter object)."""

    hyperparams: dict[str, Any]
    state: dict[str, dict[str, torch.Tensor]]


@dataclass
class OfficialSnapshot:
    """Everything useful in an official snapshot, as plain data (no official classes involved).

    State dicts map official names to CPU tensors (``mapping.fc0.weight`` ...); ``config`` is the
    resolved experiment config (model, dataset, training, ...); ``generator_config`` is ours.
    """

    g_ema_state: dict[str, torch.Tensor]
    generator_config: GeneratorConfig
    config: dict[str, Any]
    g_kwargs: dict[str, Any]
    g_state: dict[str, torch.Tensor] | None = None
    d_state: dict[str, torch.Tensor] | None = None
    d_config: dict[str, Any] | None = None
    g_opt: OptimizerState | None = None
    d_opt: OptimizerState | None = None
    augment_state: dict[str, torch.Tensor] | None = None
    training_set_kwargs: dict[str, Any] | None = None
    stats: dict[str, Any] | None = None
    module_src_sha256: dict[str, str] = field(default_factory=dict)
    source_path: str | None = None
    source_sha256: str | None = None

    def generator(self, device: str | torch.device = "cpu") -> Generator:
        """Our Generator with the official G_ema weights (strict: every tensor must fit)."""
        return build_generator(self.generator_config, self.g_ema_state).to(device).eval()

    def discriminator(self, device: str | torch.device = "cpu") -> torch.nn.Module:
        """Our Discriminator with the official D weights, for resuming training."""
        from ..models.discriminator import Discriminator

        config = self.check_discriminator()
        D = Discriminator(config)
        D.load_state_dict(self.d_state, strict=True)
        return D.to(device)

    def check_discriminator(self) -> Any:
        """D's DiscriminatorConfig, after checking every D tensor's shape against it (on the meta device)."""
        if self.d_state is None or self.d_config is None:
            raise EpigrafError("this snapshot has no discriminator (D)")
        from ..models.discriminator import Discriminator, DiscriminatorConfig

        known = {f.name for f in dataclasses.fields(DiscriminatorConfig)}
        try:
            config = DiscriminatorConfig(**{k: v for k, v in self.d_config.items() if k in known})
        except (TypeError, ValueError) as exc:
            raise EpigrafError(f"the snapshot's discriminator configuration is not supported: {exc}") from None
        _check_state_fits(_on_meta(lambda: Discriminator(config)), self.d_state, "the official D")
        return config

    @property
    def kimg(self) -> float | None:
        """Training progress in thousands of images (from ``stats.cur_nimg``), if recorded."""
        nimg = (self.stats or {}).get("cur_nimg")
        return None if nimg is None else float(nimg) / 1000.0


class _CountingReader:
    """A read-only file wrapper that hashes what the unpickler reads and reports progress."""

    def __init__(self, raw: BinaryIO, total: int, progress: ProgressFn | None) -> None:
        self.raw, self.total, self.progress = raw, total, progress
        self.hash = hashlib.sha256()
        self.done = 0

    def _seen(self, data: bytes) -> bytes:
        self.hash.update(data)
        self.done += len(data)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return data

    def read(self, n: int = -1) -> bytes:
        return self._seen(self.raw.read(n))

    def readline(self, n: int = -1) -> bytes:
        return self._seen(self.raw.readline(n))

    def readinto(self, buf: Any) -> int:
        data = self.raw.read(len(buf))
        buf[: len(data)] = data
        self._seen(data)
        return len(data)

    def finish(self) -> str:
        while chunk := self.raw.read(1 << 20):
            self._seen(chunk)
        return self.hash.hexdigest()


def read_official_snapshot(
    path: str | os.PathLike[str], progress: ProgressFn | None = None
) -> OfficialSnapshot | EG3DSnapshot:
    """Read an official EpiGRAF or EG3D snapshot safely; ``progress(bytes_read, total)`` is called while reading.

    The family is decided from the pickle itself (G_ema's persistent class name), never from the file name.

    Raises EpigrafError (naming what was found) for anything unexpected: a global outside the
    allow-list, an unknown persistent class, a missing G_ema, a config we cannot map, or weights
    that do not fit the configuration.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise EpigrafError(f"official snapshot {path} not found")
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        reader = _CountingReader(fh, size, progress)
        try:
            if size == 0:
                data = safe_loads(b"")
            else:  # the budget scan reads the mapped file; the load then reads (and hashes) it once
                with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                    data = safe_loads(mapped, file=reader)  # type: ignore[arg-type]
        except EpigrafError as exc:
            raise type(exc)(f"{path.name}: {exc}") from None
        digest = reader.finish()
    snap = snapshot_from_object(data)
    snap.source_path, snap.source_sha256 = str(path), digest
    return snap


def snapshot_from_object(data: Any) -> OfficialSnapshot | EG3DSnapshot:
    """Build an :class:`OfficialSnapshot` (or an EG3DSnapshot) from an already (safely) unpickled snapshot dict."""
    if isinstance(data, PersistentObject):  # a bare pickled G_ema
        data = {"G_ema": data}
    if not isinstance(data, dict):
        raise EpigrafError(f"expected a snapshot dict with G_ema, found {type(data).__name__}")
    g_ema = data.get("G_ema")
    if not isinstance(g_ema, PersistentObject):
        found = ", ".join(map(str, data.keys())) or "nothing"
        raise EpigrafError(f"the snapshot has no G_ema network (found keys: {found})")
    from .eg3d_pickle import eg3d_snapshot_from_object, is_eg3d_snapshot

    if is_eg3d_snapshot(data):
        return eg3d_snapshot_from_object(data)
    if g_ema.class_name != "Generator":
        raise EpigrafError(f"G_ema is a {g_ema.class_name}, expected an EpiGRAF Generator or EG3D TriPlaneGenerator")
    extras = {key: to_plain(data.get(key)) for key in ("training_set_kwargs", "stats")}  # bounded resolution
    names: dict[int, str] = {}
    g_ema_state = module_state_dict(g_ema, "G_ema")
    try:
        config, g_kwargs, gen_config = generator_config_from_official(g_ema, g_ema_state)
    except (TypeError, ValueError, OverflowError, AttributeError) as exc:
        raise EpigrafError(f"the snapshot's generator configuration is malformed: {exc}") from None
    snap = OfficialSnapshot(g_ema_state=g_ema_state, generator_config=gen_config, config=config, g_kwargs=g_kwargs)
    snap.module_src_sha256["Generator"] = g_ema.module_src_sha256
    if isinstance(data.get("G"), PersistentObject):
        snap.g_state = module_state_dict(data["G"], "G", names)
    d = data.get("D")
    if isinstance(d, PersistentObject):
        if d.class_name != "Discriminator":
            raise EpigrafError(f"D is a {d.class_name}, expected the EpiGRAF Discriminator")
        d_names: dict[int, str] = {}
        snap.d_state = module_state_dict(d, "D", d_names)
        try:
            snap.d_config = discriminator_config_from_official(d)
        except (TypeError, ValueError, OverflowError, AttributeError) as exc:
            raise EpigrafError(f"the snapshot's discriminator configuration is malformed: {exc}") from None
        snap.module_src_sha256["Discriminator"] = d.module_src_sha256
        snap.d_opt = _optimizer_state(data.get("D_opt"), d_names)
    snap.g_opt = _optimizer_state(data.get("G_opt"), names)
    if isinstance(data.get("augment_pipe"), PersistentObject):
        snap.augment_state = module_state_dict(data["augment_pipe"], "augment_pipe")
    for key, value in extras.items():
        setattr(snap, key, value if isinstance(value, dict) else None)
    return snap


def module_state_dict(
    root: Any,
    what: str,
    param_names: dict[int, str] | None = None,
    known_classes: frozenset[str] = KNOWN_PERSISTENT_CLASSES,
) -> dict[str, torch.Tensor]:
    """Flatten a pickled module tree into ``{dotted name: tensor}`` in ``state_dict`` order.

    ``param_names`` (optional) receives ``id(Parameter) -> name`` so optimizer states, which the
    pickle keys by the same Parameter objects, can be re-keyed by name. ``known_classes`` are the
    persistent class names of the model family (EpiGRAF's by default); inert holders of
    ``torch.nn`` modules and of the family's plain modules (safe_pickle.EG3D_MODULE_CLASSES) are walked too.
    """
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()

    def visit(node: Any, prefix: str, depth: int) -> None:
        where = f"{what}.{prefix[:-1]}" if prefix else what
        if depth > MAX_MODULE_DEPTH:
            raise UnsafePickleError(f"{what} nests modules deeper than {MAX_MODULE_DEPTH} levels (at {where[:120]}...)")
        if id(node) in seen:
            raise UnsafePickleError(f"{where} is a module that appears twice in {what} (a cycle or shared child)")
        seen.add(id(node))
        if len(seen) > MAX_MODULES:
            raise UnsafePickleError(f"{what} has more than {MAX_MODULES:,} modules")
        if isinstance(node, PersistentObject):
            if node.class_name not in known_classes:
                raise UnsafePickleError(f"unknown network class {node.class_name!r} at {where}")
            state = node.state
        elif isinstance(node, InertObject) and (
            node.qualname.startswith("torch.nn.modules.") or node.qualname in EG3D_MODULE_CLASSES
        ):
            state = node.state_dict()
        else:
            raise EpigrafError(f"unexpected {type(node).__name__} instead of a network module at {where}")
        params, buffers, children = (state.get(k) or {} for k in ("_parameters", "_buffers", "_modules"))
        skip = state.get("_non_persistent_buffers_set") or set()
        for kind, group in (("parameters", params), ("buffers", buffers), ("modules", children)):
            if not isinstance(group, dict):
                raise EpigrafError(f"{where} has malformed _{kind} ({type(group).__name__})")
        if not isinstance(skip, (set, frozenset)):
            raise EpigrafError(f"{where} has a malformed _non_persistent_buffers_set")
        for kind, group in (("parameter", params), ("buffer", buffers)):
            for name, tensor in group.items():
                if not isinstance(name, str):
                    raise EpigrafError(f"{where} has a {kind} named by a {type(name).__name__}")
                if tensor is None or (kind == "buffer" and name in skip):
                    continue
                if not isinstance(tensor, torch.Tensor):
                    raise EpigrafError(f"{kind} {where}.{name} is a {type(tensor).__name__}, not a tensor")
                if param_names is not None:
                    param_names[id(tensor)] = prefix + name
                out[prefix + name] = plain_tensor(tensor)
        for name, child in children.items():
            if not isinstance(name, str):
                raise EpigrafError(f"{where} has a child module named by a {type(name).__name__}")
            if child is not None:
                visit(child, f"{prefix}{name}.", depth + 1)

    visit(root, "", 0)
    return out


def _optimizer_state(opt: Any, names: dict[int, str]) -> OptimizerState | None:
    if not (isinstance(opt, InertObject) and opt.qualname.startswith("torch.optim.")) or not names:
        return None
    state = opt.state_dict()
    groups = state.get("param_groups") or []
    hyper = {k: to_plain(v) for k, v in (groups[0] if groups else {}).items() if k != "params"}
    per_param: dict[str, dict[str, torch.Tensor]] = {}
    for param, values in (state.get("state") or {}).items():
        name = names.get(id(param))
        if name is not None and isinstance(values, dict):
            per_param[name] = {k: plain_tensor(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()}
    return OptimizerState(hyperparams=hyper, state=per_param)


# ----------------------------------------------------------------------------- building and converting
def _check_state_fits(model: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    ours = model.state_dict()
    missing = [k for k in ours if k not in state]
    unexpected = [k for k in state if k not in ours]
    wrong = [k for k in ours if k in state and tuple(ours[k].shape) != tuple(state[k].shape)]
    problems = []
    if wrong:
        k = wrong[0]
        problems.append(
            f"{len(wrong)} shape mismatch(es), e.g. {k}: file {list(state[k].shape)} vs config {list(ours[k].shape)}"
        )
    if missing:
        problems.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[0]}")
    if problems:
        raise EpigrafError(f"{what} does not match the configuration read from the snapshot: {'; '.join(problems)}")


def _on_meta(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module on the meta device: its state-dict shapes, without allocating its weights.

    For architectures without a parameter budget (discriminators, EG3D): a hostile config costs
    nothing here. (The first meta operation of a process imports ``torch._dynamo``, ~1.5 s.)
    """
    try:
        with torch.device("meta"):
            return build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise EpigrafError(f"the snapshot's configuration cannot be built: {str(exc).splitlines()[0]}") from None


def _for_load(build: Callable[[], torch.nn.Module]) -> torch.nn.Module:
    """Build a module whose weights a strict load will replace, without drawing them (``weights_from_file``).

    Only for architectures whose size is bounded before any tensor exists (the EpiGRAF generator
    checks ``MAX_PARAMETERS`` first): its uninitialised tensors are reserved, not written.
    """
    try:
        with weights_from_file():
            return build()
    except (TypeError, ValueError, RuntimeError, OverflowError) as exc:
        raise EpigrafError(f"the snapshot's configuration cannot be built: {str(exc).splitlines()[0]}") from None


def build_generator(config: GeneratorConfig, state: dict[str, torch.Tensor]) -> Generator:
    """Generator(config) with ``state`` loaded strictly (clear error on any mismatch).

    The generator refuses a config above its parameter budget before it builds anything; it is
    built without drawing initial weights, and every tensor's shape is checked against it before
    the load (a meta-device build cost 1.5 s per process for the same check).
    """
    G = _for_load(lambda: Generator(config))
    _check_state_fits(G, state, "the official G_ema")
    G.load_state_dict(state, strict=True)
    return G.eval()


def official_config_summary(snap: OfficialSnapshot) -> dict[str, Any]:
    """What we keep of the official config beside converted weights (no cluster paths)."""
    kept = {k: snap.config[k] for k in KEPT_CONFIG_SECTIONS if k in snap.config}
    return {
        "source_file": Path(snap.source_path).name if snap.source_path else None,
        "source_sha256": snap.source_sha256,
        "kimg": snap.kimg,
        "module_src_sha256": snap.module_src_sha256,
        "generator_init_kwargs": _jsonable(snap.g_kwargs),
        "experiment_config": _jsonable(kept),
    }


MAX_LISTED_ELEMENTS = 4096  # tensors written into official_config.json in full; larger ones are summarised


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor) and obj.numel() > MAX_LISTED_ELEMENTS:
        return f"<tensor {list(obj.shape)} {str(obj.dtype).removeprefix('torch.')}>"
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if hasattr(obj, "item") and callable(obj.item):
        try:
            return obj.item()
        except (TypeError, ValueError):
            pass
    return repr(obj)


def convert_official(
    pkl: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    include_discriminator: bool = False,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    source_page: str | None = None,
) -> Path:
    """Convert an official EpiGRAF or EG3D snapshot into our folder format; returns ``out_dir``.

    Writes config.json + model.safetensors (G_ema), README.md (model card), official_config.json
    (provenance and the official model/dataset/training config) and, with
    ``include_discriminator``, discriminator.safetensors + discriminator_config.json (official
    names) for resuming training. Files appear atomically; an existing model folder is only
    replaced with ``overwrite``. ``source_page`` (where the pickle was published) goes into the card.
    """
    from ..atomic import atomic_dir
    from .model_card import EG3D_LICENCE, OFFICIAL_LICENCE, write_model_card

    out = Path(out_dir).expanduser()
    check_output_folder(out, overwrite)
    snap = read_official_snapshot(pkl, progress=progress)
    if include_discriminator:
        if snap.d_state is None:
            raise EpigrafError(f"{Path(pkl).name} has no discriminator to include")
        snap.check_discriminator()
    G = snap.generator()
    stale = [DISCRIMINATOR_WEIGHTS_NAME, DISCRIMINATOR_CONFIG_NAME] if not include_discriminator else []
    # Without overwrite the model files are claimed exclusively as they move into place, so of two
    # concurrent converts into one folder exactly one succeeds (the check above alone lets both pass).
    claim = () if overwrite else (CONFIG_NAME, WEIGHTS_NAME)
    taken = f"{out} already holds a model; pass overwrite=True to replace it"
    with atomic_dir(out, remove=stale, exclusive=claim, exists_message=taken) as tmp:
        G.save_pretrained(tmp)
        (tmp / OFFICIAL_CONFIG_NAME).write_text(json.dumps(official_config_summary(snap), indent=2) + "\n")
        eg3d = getattr(snap, "family", "epigraf") == "eg3d"
        source = {
            "kind": f"official {'EG3D' if eg3d else 'EpiGRAF'} training snapshot "
            f"({'NVlabs/eg3d' if eg3d else 'universome/epigraf'})",
            "page": source_page,
            "file": Path(pkl).name,
            "sha256": snap.source_sha256,
            "kimg": snap.kimg,
        }
        config, licence = (G.cfg, EG3D_LICENCE) if eg3d else (G.config, OFFICIAL_LICENCE)
        write_model_card(tmp, config, source=source, licence=licence, num_params=_num_params(G))
        if include_discriminator:
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in snap.d_state.items()}, str(tmp / DISCRIMINATOR_WEIGHTS_NAME))
            (tmp / DISCRIMINATOR_CONFIG_NAME).write_text(json.dumps(_jsonable(snap.d_config), indent=2) + "\n")
    return out


@dataclass(frozen=True)
class ConvertResult:
    """What ``convert_snapshot`` wrote: the folder, its files, G's parameter count, the Hub commit (if pushed)."""

    folder: Path
    files: list[str]
    num_params: int
    url: str | None = None


def convert_snapshot(
    pkl: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    include_discriminator: bool = False,
    overwrite: bool = False,
    device: str = "auto",
    push_to_hub: str | None = None,
    private: bool = False,
    progress: bool = True,
    on_written: Callable[[ConvertResult], None] | None = None,
) -> ConvertResult:
    """``epigraf convert``: check everything, convert, reload the folder as a check, optionally push.

    Every check that needs no reading (the snapshot exists, the folder may be written, the device, the
    Hub repo id and a token) runs first, so a bad argument costs nothing. The written folder is then
    loaded back on ``device`` (the proof it works) before anything is uploaded; ``on_written`` sees the
    result at that point, so a caller can report the folder even when the upload later fails.
    """
    from ..devices import resolve_device
    from .transfer_progress import transfer_progress

    pkl, out = Path(pkl), Path(out_dir).expanduser()
    if not pkl.is_file():
        raise EpigrafError(f"snapshot {pkl} not found" if not pkl.exists() else f"{pkl} is not a file")
    check_output_folder(out, overwrite)
    dev = resolve_device(device)
    if push_to_hub is not None:
        from .hub import parse_hub_spec, require_token

        if parse_hub_spec(push_to_hub).revision:
            raise EpigrafError("push_to_hub takes a repo id without @revision")
        require_token()

    with transfer_progress(progress) as report:
        folder = convert_official(
            pkl,
            out,
            include_discriminator=include_discriminator,
            overwrite=overwrite,
            progress=lambda done, total: report(f"read {pkl.name}", done, total),
        )
    from .loading import load_model_folder

    G = load_model_folder(folder, dev)  # either family, by the folder's config.json
    result = ConvertResult(folder, sorted(p.name for p in folder.iterdir()), _num_params(G))
    if on_written is not None:
        on_written(result)
    if push_to_hub is None:
        return result
    from .hub import push_folder

    url = push_folder(folder, push_to_hub, private=private or None)
    return dataclasses.replace(result, url=url)


def check_output_folder(out: Path, overwrite: bool) -> None:
    """Refuse a file in the way, or an existing model folder unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise EpigrafError(f"{out} exists and is not a folder")
    if not overwrite and any((out / name).exists() for name in (CONFIG_NAME, WEIGHTS_NAME)):
        raise EpigrafError(f"{out} already holds a model; pass overwrite=True to replace it")


def _num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
