"""Resolve a model spec to a ready Generator; every command loads its model through here.

Spec forms, tried in this order:

1. ``None``: the zoo's ``default`` (the embedded model);
2. a zoo name (``epigraf models`` lists them: ``ffhq512``, ``plants256``, ``food256``, ``default``);
3. a local folder with config.json + model.safetensors (what ``save_pretrained`` and
   ``epigraf convert`` write);
4. a local official ``.pkl`` snapshot, converted in memory without running its code;
5. a Hugging Face Hub repo id with an optional revision: ``org/name`` or ``org/name@v1.0``.

A local folder named like a Hub id (``org/name``) wins over the Hub, as the order says.
``classify_spec`` checks the form without touching the network, so commands can validate
``--model`` before doing any work.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch

from ..errors import EpigrafError, ModelNotFoundError
from ..models import CONFIG_NAME, WEIGHTS_NAME, Generator
from ..models.eg3d import MODEL_FAMILY as EG3D_FAMILY
from ..models.eg3d import EG3DGenerator
from .zoo import DEFAULT_MODEL, get_entry

SpecKind = Literal["zoo", "folder", "pickle", "hub"]


@dataclass(frozen=True)
class ModelSpec:
    """A classified model spec: ``kind`` and the normalised ``value`` (name, path or repo id)."""

    kind: SpecKind
    value: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.value + (f"@{self.revision}" if self.revision else "")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or text.endswith((".pkl", ".json", ".safetensors")) or os.sep in text


def classify_spec(spec: str | os.PathLike[str] | None) -> ModelSpec:
    """Decide what ``spec`` refers to (no network, no loading); a clear error if nothing fits."""
    from .hub import is_hub_spec, parse_hub_spec

    if spec is None or str(spec).strip() == "":
        return ModelSpec("zoo", DEFAULT_MODEL)
    text = str(spec).strip()
    entry = get_entry(text)
    if entry is not None:
        return ModelSpec("zoo", entry.name)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / CONFIG_NAME).is_file() or not (path / WEIGHTS_NAME).is_file():
            raise ModelNotFoundError(f"{path} is not a model folder: it needs {CONFIG_NAME} and {WEIGHTS_NAME}")
        return ModelSpec("folder", str(path))
    if path.is_file():
        if path.name in (CONFIG_NAME, WEIGHTS_NAME):
            raise ModelNotFoundError(f"pass the folder that holds {path.name}, not the file: {path.parent}")
        return ModelSpec("pickle", str(path))
    if is_hub_spec(text) and not text.startswith((".", "/", "~")):
        hub = parse_hub_spec(text)
        return ModelSpec("hub", hub.repo_id, hub.revision)
    if _looks_like_path(text):
        raise ModelNotFoundError(f"no such model file or folder: {text}")
    raise ModelNotFoundError(
        f"model {text!r} not found: expected a zoo name (see `epigraf models`), a model folder, "
        "an official .pkl or a Hub repo id such as org/name[@revision]"
    )


def resolve_model_dir(
    spec: str | os.PathLike[str] | ModelSpec | None,
    *,
    offline: bool | None = None,
    progress: bool = True,
    revision: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    keep_pickle: bool = False,
) -> Path:
    """A local folder (config.json + model.safetensors) for a zoo name, folder or Hub id.

    Downloads (Hub, share pages) land in their caches; an official ``.pkl`` has no folder of its
    own: use :func:`load_generator` (in-memory conversion) or ``convert_official``. ``revision``
    (overriding ``@rev``) and ``sha256`` (of model.safetensors) apply to Hub models; ``force``
    downloads again; ``keep_pickle`` keeps a zoo entry's downloaded official pickle.
    """
    parsed = spec if isinstance(spec, ModelSpec) else classify_spec(spec)
    if parsed.kind == "folder":
        return Path(parsed.value)
    if parsed.kind == "pickle":
        raise EpigrafError(
            f"{parsed.value} is an official pickle: load it with load_generator() or convert it with "
            "`epigraf convert PKL OUT_DIR`"
        )
    from .transfer_progress import transfer_progress

    if parsed.kind == "zoo":
        from .zoo import resolve_zoo_model

        with transfer_progress(progress) as report:
            return resolve_zoo_model(
                parsed.value,
                offline=offline,
                progress=report,
                hub_progress=progress,
                keep_pickle=keep_pickle,
                force=force,
            )
    from .hub import download_model

    return download_model(
        parsed.value,
        revision=revision or parsed.revision,
        offline=offline,
        sha256={WEIGHTS_NAME: sha256} if sha256 else None,
        force=force,
        progress=progress,
    )


COPIED_FILES = (CONFIG_NAME, WEIGHTS_NAME, "README.md", "official_config.json")


@dataclass
class FetchedModel:
    """Where ``fetch_model`` left a model: its cache folder, and what the check and copy found."""

    folder: Path
    parameters: int | None = None  # counted when the model was built to verify it
    device: torch.device | None = None
    copied_to: Path | None = None


def fetch_model(
    spec: str,
    *,
    revision: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    keep_pickle: bool = False,
    verify: bool = True,
    device: str | torch.device = "cpu",
    out: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> FetchedModel:
    """Prefetch a zoo or Hub model into its cache (so it loads offline later): ``epigraf download``.

    Every argument is checked before any request. ``verify`` builds the model once on ``device``;
    ``out`` also receives a copy of the model files (atomically; ``overwrite`` replaces a model there).
    """
    import re
    import shutil

    from ..devices import resolve_device
    from .official_pickle import check_output_folder

    if not spec or not str(spec).strip():
        raise EpigrafError("missing model spec: a zoo name (see `epigraf models`) or a Hub repo id[@revision]")
    parsed = classify_spec(spec)
    if parsed.kind in ("folder", "pickle"):
        hint = " (convert it with convert_official or `epigraf convert`)" if parsed.kind == "pickle" else ""
        raise EpigrafError(f"{spec} is already a local {parsed.kind}; nothing to download{hint}")
    if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise EpigrafError("sha256 must be 64 hexadecimal digits")
    if sha256 is not None and parsed.kind != "hub":
        raise EpigrafError("sha256 applies to Hub models; zoo entries carry their own checksums")
    if revision is not None and parsed.kind != "hub":
        raise EpigrafError("revision applies to Hub models")
    if revision is not None:
        from .hub import validate_revision

        validate_revision(revision)  # it becomes a file name in the cache: check before any request
    dev = resolve_device(device) if verify else None
    if out is not None:
        out = Path(out)
        check_output_folder(out, overwrite)

    fetched = FetchedModel(
        resolve_model_dir(
            parsed, revision=revision, sha256=sha256, force=force, keep_pickle=keep_pickle, progress=progress
        )
    )
    if dev is not None:
        G = load_model_folder(fetched.folder, dev)
        fetched.parameters, fetched.device = sum(p.numel() for p in G.parameters()), dev
    if out is not None:
        from ..atomic import atomic_dir

        with atomic_dir(out) as tmp:
            for name in COPIED_FILES:
                if (fetched.folder / name).is_file():
                    shutil.copyfile(fetched.folder / name, tmp / name)  # follows cache links to the blobs
        fetched.copied_to = out
    return fetched


def load_generator(
    spec: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    offline: bool | None = None,
    progress: bool = True,
) -> Generator | EG3DGenerator:
    """Load a generator in eval mode on ``device`` from any supported spec (None: the default model).

    An EG3D folder or snapshot gives an :class:`EG3DGenerator` (``eg3d_model.as_toolkit_model`` wraps it).

    ``progress`` shows download/conversion progress on stderr; ``offline`` (default:
    ``HF_HUB_OFFLINE``) forbids network access, using caches only.
    """
    parsed = classify_spec(spec)
    if parsed.kind == "pickle":
        from .official_pickle import read_official_snapshot
        from .transfer_progress import transfer_progress

        name = Path(parsed.value).name
        with transfer_progress(progress) as report:
            snapshot = read_official_snapshot(parsed.value, progress=lambda done, total: report(name, done, total))
        return snapshot.generator(device)
    folder = resolve_model_dir(
        str(parsed) if parsed.kind == "hub" else parsed.value, offline=offline, progress=progress
    )
    return load_model_folder(folder, device)


def load_model_folder(folder: str | os.PathLike[str], device: str | torch.device = "cpu") -> Generator | EG3DGenerator:
    """``from_pretrained`` of the folder's family with every problem of the folder as one EpigrafError line.

    config.json's ``model_family`` picks the class: absent for EpiGRAF (``Generator``), ``"eg3d"`` for
    :class:`EG3DGenerator`; any other family is refused by name.

    ``from_pretrained`` validates config.json field by field (types, ranges, the parameter budget),
    then the safetensors header (keys, shapes, dtypes) before reading any data, then that every
    weight is finite; its ConfigError / ModelFileError name the file and the field or tensor.
    """
    try:
        family = folder_model_family(Path(folder))
        cls = EG3DGenerator if family == EG3D_FAMILY else Generator
        return cls.from_pretrained(folder, map_location=device)
    except Exception as exc:
        known = (ValueError, RuntimeError, OSError, KeyError, TypeError, RecursionError, MemoryError)
        if not isinstance(exc, known) and not type(exc).__module__.startswith("safetensors"):
            raise
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EpigrafError(f"could not load the model in {folder}: {first}") from exc


def folder_model_family(folder: Path) -> str:
    """``"epigraf"`` or ``"eg3d"`` from config.json's ``model_family`` (read within the config size limit)."""
    from ..models.model_files import MODEL_FAMILY_KEY, read_config_json

    path = folder / CONFIG_NAME
    if not path.is_file():
        return "epigraf"  # from_pretrained names the missing file
    data = read_config_json(path)
    family = data.get(MODEL_FAMILY_KEY, "epigraf") if isinstance(data, dict) else "epigraf"
    if family not in ("epigraf", EG3D_FAMILY):
        raise EpigrafError(f"{path}: unknown {MODEL_FAMILY_KEY} {str(family)[:40]!r}; expected 'eg3d' or none")
    return family


def require_epigraf_generator(model: object, command: str) -> None:
    """Refuse an EG3D model in a command that still needs the EpiGRAF Generator API (fid, train): one clear line.

    ``model`` is a loaded generator or a local model folder (checked from config.json alone, before
    any weights are read).
    """
    if isinstance(model, (str, os.PathLike)):
        folder = Path(model).expanduser()
        try:
            is_eg3d = folder.is_dir() and folder_model_family(folder) == EG3D_FAMILY
        except (ValueError, OSError, EpigrafError):  # an unreadable config: the loader reports it in full
            is_eg3d = False
    else:
        is_eg3d = isinstance(model, EG3DGenerator)
    if is_eg3d:
        raise EpigrafError(
            f"EG3D models are not supported by `{command}` yet; sample, video, interpolate, export-volume, "
            "export-mesh and convert take them"
        )
