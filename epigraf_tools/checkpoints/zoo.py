"""The model zoo: short names for known generators, like timm's pretrained registry.

- ``default``: the model embedded in the package (``epigraf_tools/assets/default/``: config.json,
  model.safetensors, README.md), used when no model is given. It is trained separately and may be
  absent from a checkout; then asking for it is a one-line error.
- ``ffhq512``, ``plants256``, ``food256``: the official EpiGRAF checkpoints (Skorokhodov et al.,
  NeurIPS 2022). Their authors publish them only as training pickles (767-875 MB) on Yandex Disk
  share pages, under NVIDIA's Source Code License-NC (non-commercial). There is no official
  Hugging Face copy, so the zoo does not pretend one: on first use the pickle is fetched from the
  share page, checked against the size and SHA-256 the share service reports, converted safely
  (:mod:`epigraf_tools.official_pickle`) and kept converted in the epigraf cache
  (``$EPIGRAF_CACHE``, else ``$XDG_CACHE_HOME/epigraf`` or ``~/.cache/epigraf``).
- ``eg3d-ffhq512-64``, ``eg3d-ffhq512-128``, ``eg3d-ffhqrebalanced512-64``/``-128``,
  ``eg3d-afhqcats512-128``, ``eg3d-shapenetcars128-64``: the official EG3D releases (Chan et al.,
  CVPR 2022), training pickles on NVIDIA's NGC catalog under the same non-commercial licence. They
  have direct file URLs (``url``), so they are downloaded straight from there, converted safely
  (:mod:`epigraf_tools.checkpoints.eg3d_pickle`) and kept converted in the same cache. NVIDIA
  publishes no sizes or checksums beside those links, so none are listed (``sha256`` empty): the
  conversion itself is the integrity check (nothing in the pickle runs; an unexpected layout is refused).
- Entries whose weights live in a Hub repo (``hub_repo``; pin ``revision`` and list ``sha256``
  digests where known) resolve through :mod:`epigraf_tools.hub` into the Hugging Face cache.
  ``register_entry`` adds such entries (e.g. a converted copy you pushed yourself).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import EpigrafError, ModelNotFoundError
from ..models import CONFIG_NAME, WEIGHTS_NAME

DEFAULT_MODEL = "default"
EPIGRAF_CODE = "https://github.com/universome/epigraf"
NVIDIA_NC = "NVIDIA's Source Code License-NC (non-commercial use only)"
EG3D_CODE = "https://github.com/NVlabs/eg3d"
EG3D_NGC_PAGE = "https://catalog.ngc.nvidia.com/orgs/nvidia/teams/research/models/eg3d"
EG3D_NGC_FILES = "https://api.ngc.nvidia.com/v2/models/nvidia/research/eg3d/versions/1/files/"
EG3D_LICENCE = "NVIDIA Source Code License (non-commercial)"
ProgressFn = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True)
class ZooEntry:
    """One named model: what it is, where it comes from, and under which licence."""

    name: str
    title: str
    kind: Literal["embedded", "official-pickle", "hub"]
    source: str  # the page the weights come from
    licence: str
    resolution: int | None = None
    num_classes: int | None = None
    hub_repo: str | None = None
    revision: str | None = None
    sha256: Mapping[str, str] = field(default_factory=dict)  # file name -> digest, where known
    fid: float | None = None
    download_mb: int | None = None
    notes: str = ""
    url: str | None = None  # a direct file URL (EG3D's NGC files); None: ``source`` is a share page to resolve


_OFFICIAL_NOTE = "Official release; converted on first use. Code: " + EPIGRAF_CODE
ZOO: dict[str, ZooEntry] = {}


def register_entry(entry: ZooEntry, replace: bool = False) -> None:
    """Add a named model (``replace`` to override an existing name)."""
    if entry.kind == "hub" and not entry.hub_repo:
        raise ValueError(f"zoo entry {entry.name!r} of kind 'hub' needs hub_repo")
    key = entry.name.lower()
    if key in ZOO and not replace:
        raise ValueError(f"zoo entry {entry.name!r} already exists")
    ZOO[key] = entry


for _entry in (
    ZooEntry(
        DEFAULT_MODEL,
        "Embedded default model of epigraf-tools",
        "embedded",
        source="package assets (epigraf_tools/assets/default)",
        licence="see its README.md",
    ),
    ZooEntry(
        "ffhq512",
        "EpiGRAF FFHQ 512x512 (official)",
        "official-pickle",
        source="https://disk.yandex.ru/d/XJ0k9-kQyHouwQ",
        licence=NVIDIA_NC,
        resolution=512,
        num_classes=0,
        fid=9.87,
        download_mb=767,
        notes=_OFFICIAL_NOTE,
    ),
    ZooEntry(
        "plants256",
        "EpiGRAF Megascans Plants 256x256 (official)",
        "official-pickle",
        source="https://disk.yandex.ru/d/IMhPcneOhmoq8Q",
        licence=NVIDIA_NC,
        resolution=256,
        num_classes=198,
        fid=18.64,
        download_mb=875,
        notes=_OFFICIAL_NOTE + "; class count from the official dataset config, the checkpoint's own config wins",
    ),
    ZooEntry(
        "food256",
        "EpiGRAF Megascans Food 256x256 (official)",
        "official-pickle",
        source="https://disk.yandex.ru/d/4kp_nOmMcM_OhQ",
        licence=NVIDIA_NC,
        resolution=256,
        num_classes=10,
        fid=19.95,
        download_mb=875,
        notes=_OFFICIAL_NOTE + "; class count from the official dataset config, the checkpoint's own config wins",
    ),
):
    register_entry(_entry)

_EG3D_NOTE = "Official EG3D release (NGC); converted on first use; iso level 10. Code: " + EG3D_CODE
for _file, _title, _res in (
    ("ffhq512-64", "FFHQ 512x512, neural rendering 64", 512),
    ("ffhq512-128", "FFHQ 512x512, neural rendering 128 (the EpiGRAF paper's comparison)", 512),
    ("ffhqrebalanced512-64", "FFHQ rebalanced poses 512x512, neural rendering 64", 512),
    ("ffhqrebalanced512-128", "FFHQ rebalanced poses 512x512, neural rendering 128", 512),
    ("afhqcats512-128", "AFHQ cats 512x512, neural rendering 128", 512),
    ("shapenetcars128-64", "ShapeNet cars 128x128, neural rendering 64", 128),
):
    register_entry(
        ZooEntry(
            f"eg3d-{_file}",
            f"EG3D {_title} (official)",
            "official-pickle",
            source=EG3D_NGC_PAGE,
            licence=EG3D_LICENCE,
            resolution=_res,
            num_classes=0,
            notes=_EG3D_NOTE,
            url=EG3D_NGC_FILES + f"{_file}.pkl",
        )
    )


def get_entry(name: str) -> ZooEntry | None:
    return ZOO.get(str(name).lower())


def zoo_entries() -> list[ZooEntry]:
    return list(ZOO.values())


# ----------------------------------------------------------------------------- locations
def embedded_model_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "assets" / "default"  # epigraf_tools/assets/default


def epigraf_cache_dir() -> Path:
    """Where converted official models live: $EPIGRAF_CACHE, $XDG_CACHE_HOME/epigraf or ~/.cache/epigraf."""
    if os.environ.get("EPIGRAF_CACHE"):
        return Path(os.environ["EPIGRAF_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "epigraf"


def _is_model_dir(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and (path / WEIGHTS_NAME).is_file()


def converted_dir(entry: ZooEntry) -> Path:
    return epigraf_cache_dir() / "converted" / entry.name


def local_path(entry: ZooEntry) -> Path | None:
    """The entry's model folder if it is already on this machine (no network)."""
    if entry.kind == "embedded":
        path = embedded_model_dir()
    elif entry.kind == "official-pickle":
        path = converted_dir(entry)
    else:
        from huggingface_hub import try_to_load_from_cache

        from .hub import hub_cache_dir

        found = try_to_load_from_cache(entry.hub_repo, WEIGHTS_NAME, str(hub_cache_dir()), entry.revision)
        if not isinstance(found, str):
            return None
        path = Path(found).parent
    return path if _is_model_dir(path) else None


def entry_info(entry: ZooEntry) -> dict[str, Any]:
    """A row for ``epigraf models``: resolution, classes, source, licence and local status."""
    path = local_path(entry)
    resolution, classes = entry.resolution, entry.num_classes
    if path is not None:
        try:
            config = json.loads((path / CONFIG_NAME).read_text())
            resolution, classes = config.get("img_resolution", resolution), config.get("c_dim", classes)
            if config.get("model_family") == "eg3d":
                classes = 0  # EG3D's 25 conditioning numbers are a camera, not classes
        except (OSError, ValueError):
            pass
    if entry.kind == "embedded":
        status = "installed" if path else "not installed"
    elif entry.kind == "official-pickle":
        size = f" ({entry.download_mb} MB)" if entry.download_mb else ""
        status = "converted" if path else f"fetched on first use{size}"
    else:
        status = "cached" if path else "downloads on first use"
    return dict(
        name=entry.name,
        title=entry.title,
        resolution=resolution,
        classes=classes,
        source=entry.hub_repo and f"hf.co/{entry.hub_repo}" or entry.source,
        licence=entry.licence,
        fid=entry.fid,
        status=status,
        path=str(path) if path else None,
    )


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """An advisory inter-process lock (POSIX flock; a no-op where unavailable)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        yield


# ----------------------------------------------------------------------------- resolution
def resolve_zoo_model(
    name: str,
    *,
    offline: bool | None = None,
    progress: ProgressFn | None = None,
    hub_progress: bool = True,
    keep_pickle: bool = False,
    force: bool = False,
) -> Path:
    """A local model folder for a zoo name, fetching and converting it when needed."""
    entry = get_entry(name)
    if entry is None:
        raise ModelNotFoundError(f"{name!r} is not in the model zoo; `epigraf models` lists the names")
    if entry.kind == "embedded":
        path = embedded_model_dir()
        if not _is_model_dir(path):
            raise ModelNotFoundError(
                f"the embedded default model is not installed ({path} has no {WEIGHTS_NAME}); "
                "pass spec=NAME|FOLDER|FILE.pkl|ORG/REPO (see `epigraf models`)"
            )
        return path
    if entry.kind == "hub":
        from .hub import download_model

        return download_model(
            entry.hub_repo,
            revision=entry.revision,
            sha256=entry.sha256 or None,
            offline=offline,
            force=force,
            progress=hub_progress,
        )
    return _resolve_official(entry, offline, progress, keep_pickle, force)


def _resolve_official(
    entry: ZooEntry, offline: bool | None, progress: ProgressFn | None, keep_pickle: bool, force: bool
) -> Path:
    from .hub import hub_offline

    out = converted_dir(entry)
    if _is_model_dir(out) and not force:
        return out
    if hub_offline() if offline is None else offline:
        raise EpigrafError(
            f"{entry.name} is not converted yet and offline mode is on; run `epigraf download {entry.name}` online, "
            f"or download the pickle from {entry.source} and pass spec=FILE.pkl"
        )
    downloads = epigraf_cache_dir() / "downloads" / entry.name
    with _exclusive(epigraf_cache_dir() / f".{entry.name}.lock"):  # one fetch per entry across processes
        if _is_model_dir(out) and not force:
            return out  # another process finished it while we waited
        return _fetch_and_convert(entry, out, downloads, progress, keep_pickle)


def _fetch_and_convert(
    entry: ZooEntry, out: Path, downloads: Path, progress: ProgressFn | None, keep_pickle: bool
) -> Path:
    from .official_pickle import convert_official
    from .share_download import download_file, resolve_yandex_public, safe_child

    try:
        shared = _direct_file(entry) if entry.url else resolve_yandex_public(entry.source)
        expected = entry.sha256.get(shared.name) or shared.sha256
        downloads.mkdir(parents=True, exist_ok=True)
        # shared.name is already reduced to a plain basename; safe_child also confines it to downloads/
        pkl = safe_child(downloads, shared.name)
        if not pkl.is_file():

            def report(done: int, total: int) -> None:
                if progress is not None:
                    progress(f"download {shared.name}", done, total)

            download_file(shared.href, pkl, size=shared.size, sha256=expected, progress=report)
    except EpigrafError as exc:
        where = f"{entry.url}" if entry.url else f"its share page {entry.source}"
        raise EpigrafError(
            f"could not fetch {entry.name} from {where}: {exc}. Download the .pkl from {entry.source} "
            "yourself and pass spec=FILE.pkl (or `epigraf convert FILE.pkl DIR`)"
        ) from None

    def report_read(done: int, total: int) -> None:
        if progress is not None:
            progress(f"convert {entry.name}", done, total)

    convert_official(pkl, out, overwrite=True, progress=report_read, source_page=entry.source)
    if not keep_pickle:
        shutil.rmtree(downloads, ignore_errors=True)
    return out


def _direct_file(entry: ZooEntry):
    """A ``SharedFile`` for an entry with a direct URL: its last path segment names it; size unknown."""
    from urllib.parse import unquote, urlsplit

    from .share_download import SharedFile, display_name

    name = display_name(unquote(urlsplit(entry.url).path.rsplit("/", 1)[-1]), f"{entry.name}.pkl")
    return SharedFile(name, None, None, entry.url)


def describe_model(
    spec: str | None = None,
    *,
    check: bool = False,
    device: str = "auto",
    progress: bool = True,
    out: str | os.PathLike[str] | None = None,
) -> list[dict[str, Any]] | dict[str, Any]:
    """The zoo table (``spec=None``), or what one model spec refers to; ``epigraf models`` prints this.

    A spec is described without downloading anything (its config.json is included when it is already
    local); ``check=True`` loads it on ``device`` (downloading if needed) and adds what the loaded
    generator reports, so a user can see a model works before a long job. ``out`` also writes the
    result to ``out/models.json`` (atomically).
    """
    from ..devices import resolve_device

    if check and spec is None:
        raise EpigrafError("check=True needs a model spec to load")
    dev = resolve_device(device)
    out_dir = None if out is None else Path(out)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise EpigrafError(f"out {out_dir} exists and is not a folder")
    data: list[dict[str, Any]] | dict[str, Any]
    if spec is None:
        data = [entry_info(e) for e in zoo_entries()]
    else:
        data = describe_spec(spec)
        if check:
            from ..eg3d_model import as_toolkit_model
            from .loading import load_generator

            G = as_toolkit_model(load_generator(spec, dev, progress=progress))
            data["check"] = {
                "device": str(dev),
                "parameters": sum(p.numel() for p in G.parameters()),
                "num_ws": G.num_ws,
                "img_resolution": G.config.img_resolution,
            }
    if out_dir is not None:
        from ..atomic import write_text_atomic

        out_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out_dir / "models.json", json.dumps(data, indent=2, default=str) + "\n")
    return data


def describe_spec(spec: str) -> dict[str, Any]:
    """What a model spec refers to, with its config when it is already local (no downloads)."""
    from .loading import classify_spec

    parsed = classify_spec(spec)
    info: dict[str, Any] = {"spec": spec, "kind": parsed.kind}
    folder = None
    if parsed.kind == "zoo":
        row = entry_info(get_entry(parsed.value))
        info.update(row)
        folder = Path(row["path"]) if row["path"] else None
    elif parsed.kind == "folder":
        folder = Path(parsed.value)
    elif parsed.kind == "hub":
        info.update(repo_id=parsed.value, revision=parsed.revision)
    else:
        info.update(path=parsed.value, note="an official snapshot: converted in memory when loaded")
    if folder is not None and (folder / CONFIG_NAME).is_file():
        info["config"] = json.loads((folder / CONFIG_NAME).read_text())
    return info
