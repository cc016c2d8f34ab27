"""Models on the Hugging Face Hub: ``org/name[@revision]`` -> a local folder in the standard cache.

A Hub model repo is simply a model folder (config.json + model.safetensors, plus README.md), so
we fetch exactly those files with ``huggingface_hub.snapshot_download`` into the standard cache
(``~/.cache/huggingface/hub`` or ``HF_HUB_CACHE`` / ``HF_HOME``), reuse it offline, and verify
SHA-256 checksums where they are known. huggingface_hub reads ``HF_ENDPOINT`` and
``HF_HUB_OFFLINE`` once, when it is imported; we read them at every call and pass them on, so
setting them later (in a notebook, in tests) still works. Tokens for private repos come from
``token=`` or huggingface_hub's usual sources (``HF_TOKEN``, ``hf auth login``).

Every failure becomes an :class:`~epigraf_tools.errors.EpigrafError` with one clear line.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import EpigrafError, ModelNotFoundError
from ..models import CONFIG_NAME, WEIGHTS_NAME
from .model_card import MODEL_CARD_NAME
from .transfer_progress import StallWatch, download_timeouts, env_seconds

MODEL_FILES = (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME)
_TRUE = {"1", "on", "yes", "true"}
_SPEC_RE = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+)(?:@(?P<rev>[\w.\-/]+))?$")


class ChecksumMismatchError(EpigrafError):
    """A downloaded file does not have the SHA-256 the registry expects (it is not used)."""


@dataclass(frozen=True)
class HubSpec:
    """A Hub model reference: ``repo_id`` and an optional revision (branch, tag or commit)."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return self.repo_id + (f"@{self.revision}" if self.revision else "")


_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
_REF_BAD_CHARS = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def validate_revision(revision: str | None) -> str | None:
    """A branch or tag name by git's ``check-ref-format`` rules, or a 40-hex commit; else EpigrafError.

    The revision becomes a file name in the cache (``refs/<revision>``), so ``..`` or an absolute
    path would write outside it; git's rules exclude exactly those, and the Hub's own names obey them.
    """
    if revision is None:
        return None
    rev = str(revision)
    if _COMMIT_RE.match(rev):
        return rev
    problems = (
        not rev or len(rev) > 255,
        _REF_BAD_CHARS.search(rev) is not None,
        ".." in rev or "@{" in rev or "//" in rev or rev == "@",
        rev.startswith("/") or rev.endswith(("/", ".")),
        any(part.startswith(".") or part.endswith(".lock") for part in rev.split("/")),
    )
    if any(problems):
        raise EpigrafError(
            f"revision {rev!r} is not a valid branch, tag or commit: use a git ref name (no '..', spaces, "
            "'~^:?*[\\', leading '/' or '.') or a 40-hex commit id"
        )
    return rev


def is_hub_spec(text: str) -> bool:
    """True for strings shaped like ``org/name`` or ``org/name@rev`` (no check that it exists)."""
    return bool(_SPEC_RE.match(str(text))) and ".." not in str(text)


def parse_hub_spec(text: str) -> HubSpec:
    """``'org/name@rev'`` -> HubSpec; a clear error for anything that is not a valid repo id."""
    match = _SPEC_RE.match(str(text).strip())
    if not match or ".." in text:
        raise EpigrafError(f"{text!r} is not a Hub model id; expected 'org/name' or 'org/name@revision'")
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(match["repo"])
    except HFValidationError as exc:
        raise EpigrafError(f"{text!r} is not a valid Hub repo id: {str(exc).splitlines()[0]}") from None
    return HubSpec(match["repo"], validate_revision(match["rev"]))


def hub_endpoint(endpoint: str | None = None) -> str | None:
    """The Hub URL to use: ``endpoint``, else ``HF_ENDPOINT`` as set now, else huggingface_hub's default."""
    return endpoint or os.environ.get("HF_ENDPOINT") or None


def hub_offline() -> bool:
    """``HF_HUB_OFFLINE`` as set now (or when huggingface_hub was imported)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE:
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def hub_cache_dir() -> Path:
    """The standard huggingface_hub cache folder, honouring the environment as set now."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.environ[var])).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.path.expandvars(os.environ["HF_HOME"])).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _library_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("epigraf-tools")
    except PackageNotFoundError:
        return "unknown"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _progress_bars(enabled: bool) -> Iterator[None]:
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from huggingface_hub.utils import logging as hf_logging

    was_disabled = are_progress_bars_disabled()
    verbosity = hf_logging.get_verbosity()
    if not enabled and not was_disabled:
        disable_progress_bars()
    if not enabled:  # retries log a warning each ("Retrying in 1s [Retry 1/5]"): not under --quiet
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        if not enabled and not was_disabled:
            enable_progress_bars()
        if not enabled:
            hf_logging.set_verbosity(verbosity)


@contextlib.contextmanager
def _hub_timeouts() -> Iterator[float]:
    """Apply connect/read timeouts to huggingface_hub for this call; yields the etag (metadata) timeout.

    huggingface_hub reads ``HF_HUB_DOWNLOAD_TIMEOUT`` / ``HF_HUB_ETAG_TIMEOUT`` once at import; we read
    them (or our defaults, see ``transfer_progress.download_timeouts``) at every call.
    """
    from huggingface_hub import constants

    read_s, _ = download_timeouts()
    download_s = env_seconds("HF_HUB_DOWNLOAD_TIMEOUT", read_s)
    etag_s = env_seconds("HF_HUB_ETAG_TIMEOUT", read_s)
    saved = constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT
    constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT = download_s, etag_s
    try:
        yield etag_s
    finally:
        constants.HF_HUB_DOWNLOAD_TIMEOUT, constants.HF_HUB_ETAG_TIMEOUT = saved


def _repo_cache(cache: Path, repo_id: str) -> Path:
    return cache / ("models--" + repo_id.replace("/", "--"))


def _cache_bytes(repo_dir: Path) -> int:
    """Bytes written so far into a repo's cache folder (blobs, partial downloads included)."""
    total = 0
    for path in (repo_dir / "blobs").glob("*") if (repo_dir / "blobs").is_dir() else ():
        with contextlib.suppress(OSError):
            total += path.stat().st_size
    return total


class _MuteAbandoned(logging.Filter):
    """Drops huggingface_hub's log records once the download that emits them has been given up."""

    def __init__(self, abandoned: threading.Event) -> None:
        super().__init__()
        self.abandoned = abandoned

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.abandoned.is_set()


def _watched(fn, repo_dir: Path, label: str):
    """Run ``fn()`` in a worker thread; abort with EpigrafError when the cache stops growing.

    huggingface_hub's timeouts bound each socket operation, not a server that drips a byte a second
    or one that fails and is retried with back-off; the stall watch bounds the whole call. On a stall
    the partial blobs (``*.incomplete``) are removed; the worker is a daemon and dies with the process.
    """
    result: dict[str, object] = {}
    abandoned = threading.Event()
    mute = _MuteAbandoned(abandoned)

    def work() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            result["error"] = exc
        finally:
            for handler in logging.getLogger("huggingface_hub").handlers:
                handler.removeFilter(mute)

    worker = threading.Thread(target=work, name="epigraf-hub-download", daemon=True)
    watch = StallWatch(label)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
            if worker.is_alive():
                watch.update(_cache_bytes(repo_dir))
    except EpigrafError:
        abandoned.set()  # its retries must not print after the error line (or into a closed stream)
        for handler in logging.getLogger("huggingface_hub").handlers:  # child loggers propagate to these
            handler.addFilter(mute)
        for part in (repo_dir / "blobs").glob("*.incomplete") if (repo_dir / "blobs").is_dir() else ():
            with contextlib.suppress(OSError):
                part.unlink()
        raise
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    return result["value"]


@contextlib.contextmanager
def hub_errors(
    spec: HubSpec | str, offline: bool = False, endpoint: str | None = None, cache: Path | None = None
) -> Iterator[None]:
    """Translate huggingface_hub / network exceptions into one-line EpigrafErrors."""
    from huggingface_hub import errors as hf

    where = endpoint or "the Hugging Face Hub"
    try:
        yield
    except hf.GatedRepoError:
        raise EpigrafError(
            f"{spec} is gated: accept its terms on the Hub, then log in (`hf auth login`) or set HF_TOKEN"
        ) from None
    except hf.RepositoryNotFoundError:
        raise ModelNotFoundError(
            f"Hub repo {spec} not found at {where} (if it is private, log in with `hf auth login` or set HF_TOKEN)"
        ) from None
    except hf.RevisionNotFoundError:
        rev = spec.revision if isinstance(spec, HubSpec) else spec
        raise ModelNotFoundError(f"revision {rev!r} not found in Hub repo {spec}") from None
    except (hf.LocalEntryNotFoundError, hf.OfflineModeIsEnabled, hf.IncompleteSnapshotError) as exc:
        if offline:
            raise EpigrafError(
                f"{spec} is not in the Hugging Face cache ({cache or hub_cache_dir()}) and HF_HUB_OFFLINE=1 forbids "
                "downloading; run `epigraf download` once while online"
            ) from None
        cause = exc.__cause__ or exc.__context__
        reason = f"{cause.__class__.__name__}: {str(cause).splitlines()[0]}" if cause else "no connection"
        raise EpigrafError(f"could not reach {where} to fetch {spec}, and it is not cached ({reason})") from None
    except (hf.EntryNotFoundError, hf.RemoteEntryNotFoundError) as exc:
        raise ModelNotFoundError(f"{spec}: a model file is missing on the Hub ({exc.__class__.__name__})") from None
    except hf.HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", "?")
        raise EpigrafError(f"the Hub answered HTTP {status} for {spec}: {str(exc).splitlines()[0]}") from None
    except hf.HFValidationError as exc:
        raise EpigrafError(f"invalid Hub reference {spec}: {str(exc).splitlines()[0]}") from None
    except OSError as exc:  # network layer (httpx errors are not OSError) and disk problems
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise EpigrafError(f"could not fetch {spec}: {exc.__class__.__name__}: {first}") from None
    except EpigrafError:
        raise
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # e.g. `{}` or HTML instead of the API's JSON
        raise EpigrafError(
            f"{where} gave an answer for {spec} that is not a Hub API response "
            f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:100] if str(exc) else ''})"
        ) from None
    except Exception as exc:
        if exc.__class__.__module__.startswith("httpx"):
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise EpigrafError(f"could not reach {where} to fetch {spec}: {exc.__class__.__name__}: {first}") from None
        raise


def download_model(
    spec: str | HubSpec,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    token: str | bool | None = None,
    offline: bool | None = None,
    sha256: Mapping[str, str] | None = None,
    all_files: bool = False,
    force: bool = False,
    progress: bool = True,
) -> Path:
    """Fetch a Hub model folder into the standard cache (or find it there) and return its path.

    ``spec`` is ``org/name[@revision]`` (``revision`` overrides the ``@`` part). Only the model
    files are fetched unless ``all_files``. ``offline`` defaults to ``HF_HUB_OFFLINE``; offline,
    only the cache is used. ``sha256`` maps file names to expected digests: on a mismatch
    ChecksumMismatchError is raised and nothing is used or deleted (``force`` downloads again).
    """
    from huggingface_hub import snapshot_download

    hub = parse_hub_spec(spec) if isinstance(spec, str) else spec
    if revision:
        hub = HubSpec(hub.repo_id, revision)
    validate_revision(hub.revision)
    offline = hub_offline() if offline is None else offline
    endpoint = hub_endpoint(endpoint)
    cache = Path(cache_dir).expanduser() if cache_dir else hub_cache_dir()
    with hub_errors(hub, offline, endpoint, cache), _progress_bars(progress), _hub_timeouts() as etag_timeout:

        def fetch() -> str:
            return snapshot_download(
                hub.repo_id,
                revision=hub.revision,
                cache_dir=str(cache),
                endpoint=endpoint,
                token=token,
                local_files_only=offline,
                allow_patterns=None if all_files else list(MODEL_FILES),
                force_download=force,
                etag_timeout=etag_timeout,
                library_name="epigraf-tools",
                library_version=_library_version(),
            )

        folder = fetch() if offline else _watched(fetch, _repo_cache(cache, hub.repo_id), f"download of {hub}")
    folder = Path(folder)
    if not folder.resolve().is_relative_to(cache.resolve()):
        raise EpigrafError(f"{hub}: the Hub cache gave a folder outside {cache}; refusing to use it")
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (folder / name).is_file()]
    if missing:
        raise ModelNotFoundError(
            f"Hub repo {hub} has no {' or '.join(missing)}: it is not an epigraf-tools model folder "
            "(official .pkl files are converted with `epigraf convert`)"
        )
    if sha256:
        verify_checksums(folder, sha256, label=str(hub))
    return folder


def verify_checksums(folder: Path, expected: Mapping[str, str], label: str = "") -> None:
    """Compare files in ``folder`` with expected SHA-256 digests; refuse on any difference.

    Nothing is deleted: a cached blob may be shared with other revisions, and an outdated digest
    must not cost a good file. ``download_model(..., force=True)`` (``epigraf download --force``)
    fetches the file again.
    """
    for name, want in expected.items():
        path = folder / name
        if not path.exists():
            raise ModelNotFoundError(f"{label or folder}: {name} is missing, cannot verify its checksum")
        got = file_sha256(path)
        if got.lower() != want.lower():
            raise ChecksumMismatchError(
                f"{label or folder}: {name} has SHA-256 {got[:16]}..., expected {want[:16]}...; refusing to use it "
                "(corrupt or tampered download; fetch it again with `epigraf download --force`)"
            )


def push_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Create ``repo_id`` if needed and upload a model folder to it; returns the commit URL."""
    from huggingface_hub import HfApi

    hub = parse_hub_spec(repo_id)
    if hub.revision:
        raise EpigrafError(f"push to a repo id without @revision (got {repo_id!r})")
    api = HfApi(endpoint=hub_endpoint(endpoint), token=token)
    with hub_errors(hub, False, hub_endpoint(endpoint)):
        api.create_repo(hub.repo_id, private=private, exist_ok=True)
        info = api.upload_folder(
            repo_id=hub.repo_id,
            folder_path=str(folder),
            commit_message=commit_message or "Upload EpiGRAF generator (epigraf-tools)",
        )
    return str(getattr(info, "commit_url", info))


def require_token(token: str | None = None) -> str:
    """The token an upload will use; a clear error (before any work) when there is none."""
    from huggingface_hub import get_token

    found = token or get_token()
    if not found:
        raise EpigrafError("pushing to the Hub needs a token: run `hf auth login` or set HF_TOKEN")
    return found
