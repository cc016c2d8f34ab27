"""Download files published on Yandex Disk public pages (where the official EpiGRAF checkpoints live).

The authors share each checkpoint as a public link (``https://disk.yandex.ru/d/...``). Yandex
Disk's public REST API turns such a link into file metadata (name, size, SHA-256) and a direct
download URL:

- ``GET {api}?public_key=<link>`` -> ``{"type": "file"|"dir", "name", "size", "sha256", "_embedded": {"items": [...]}}``
- ``GET {api}/download?public_key=<link>[&path=/file]`` -> ``{"href": <direct URL>}``

``api`` is ``https://cloud-api.yandex.net/v1/disk/public/resources`` unless ``EPIGRAF_YADISK_API``
says otherwise (mirrors, tests). Downloads stream to ``<name>.part`` (resumed with an HTTP Range
request when a partial file exists), are checked against the size and SHA-256 the API reports, and
only then renamed to their final name.

Nothing the server says is trusted as a path: callers choose the file name (the zoo uses its own
entry name), ``safe_child`` confines it to the download folder, and the server's name is only shown
after ``display_name`` has reduced it to a harmless basename. Every request has a socket timeout
and every body a stall watch (``transfer_progress.download_timeouts``); a failed download leaves no
file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import EpigrafError
from .transfer_progress import StallWatch, download_timeouts

DEFAULT_YANDEX_API = "https://cloud-api.yandex.net/v1/disk/public/resources"
ProgressFn = Callable[[int, int], None]
_CHUNK = 1 << 20
MAX_JSON_BYTES = 4 << 20  # API answers are a few KB; a larger "JSON" answer is refused unread
MAX_NAME_BYTES = 200


@dataclass(frozen=True)
class SharedFile:
    """A file behind a public link: where to fetch it and what to expect."""

    name: str
    size: int | None
    sha256: str | None
    href: str


def yandex_api() -> str:
    return os.environ.get("EPIGRAF_YADISK_API") or DEFAULT_YANDEX_API


def display_name(name: object, fallback: str = "download.bin") -> str:
    """A server-provided file name reduced to a harmless basename, for messages and progress only."""
    text = str(name or "").replace("\\", "/").split("/")[-1]
    text = "".join(c if c.isalnum() or c in "._- " else "_" for c in text).strip(" .")
    return text[:MAX_NAME_BYTES] or fallback


def safe_child(root: str | os.PathLike[str], name: str) -> Path:
    """``root / name`` for a plain file name, refusing anything that could land outside ``root``.

    Refused: empty, ``.``/``..``, hidden names, separators (``/`` or ``\\``), NUL and control
    characters, and names over MAX_NAME_BYTES; the resolved path is checked to lie inside ``root``.
    """
    bad = (
        not name
        or name in (".", "..")
        or name.startswith(".")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
        or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    )
    base = Path(root).resolve()
    path = (base / name).resolve() if not bad else base
    if bad or path.parent != base:
        raise EpigrafError(f"refusing to write {name!r}: a download name must be a plain file name inside {root}")
    return path


def _read_body(response, label: str, watch: StallWatch | None, limit: int | None = None):
    """Yield a response body in chunks as they arrive (``read1``), under the stall watch and a size cap."""
    done = 0
    while chunk := response.read1(_CHUNK):
        done += len(chunk)
        if limit is not None and done > limit:
            raise EpigrafError(f"{label} is larger than {limit >> 20} MiB; refusing it")
        if watch is not None:
            watch.update(done)
        yield chunk


def _get_json(url: str, timeout: float | None = None) -> dict:
    timeout = download_timeouts()[0] if timeout is None else timeout
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "epigraf-tools"})
    where = url.split("?")[0]
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            watch = StallWatch(f"the answer of {where}", stall_s=max(timeout, download_timeouts()[1]))
            body = b"".join(_read_body(response, f"the answer of {where}", watch, MAX_JSON_BYTES))
            data = json.loads(body.decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise EpigrafError(f"the share service answered HTTP {exc.code} for {where}") from None
    except (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc.__class__.__name__
        raise EpigrafError(f"could not reach the share service ({reason})") from None
    except (ValueError, RecursionError):
        raise EpigrafError(f"the share service answered {where} with something that is not JSON") from None
    if not isinstance(data, dict):
        raise EpigrafError(f"the share service answered {where} with JSON that is not an object")
    return data


def resolve_yandex_public(public_url: str, suffix: str = ".pkl", timeout: float | None = None) -> SharedFile:
    """Metadata and a direct download URL for the file behind a Yandex Disk public link.

    A link to a folder must hold exactly one file ending in ``suffix``. ``name`` is for display only
    (reduced by ``display_name``); never use it as a path.
    """
    api = yandex_api().rstrip("/")
    query = {"public_key": public_url, "limit": "200"}
    meta = _get_json(f"{api}?{urllib.parse.urlencode(query)}", timeout)
    path = None
    if meta.get("type") == "dir":
        embedded = meta.get("_embedded")
        listed = embedded.get("items") if isinstance(embedded, dict) else None
        if not isinstance(listed, list):
            raise EpigrafError(f"the share service listed no files behind {public_url}")
        items = [i for i in listed if isinstance(i, dict) and str(i.get("name", "")).endswith(suffix)]
        if len(items) != 1:
            names = ", ".join(display_name(i.get("name"), "?") for i in items[:5]) or "none"
            raise EpigrafError(f"expected one {suffix} file behind {public_url}, found {names}")
        meta, path = items[0], items[0].get("path")
    elif meta.get("type") != "file":
        raise EpigrafError(f"{public_url} does not point to a file or folder (type {meta.get('type')!r})")
    query = {"public_key": public_url, **({"path": path} if path else {})}
    href = _get_json(f"{api}/download?{urllib.parse.urlencode(query)}", timeout).get("href")
    if not isinstance(href, str) or not href.startswith(("https://", "http://")):
        raise EpigrafError(f"the share service gave no usable download link for {public_url}")
    size, sha256 = meta.get("size"), meta.get("sha256")
    if size is not None and (type(size) is not int or size < 0):
        raise EpigrafError(f"the share service reported an invalid size {size!r} for {public_url}")
    if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha256)):
        raise EpigrafError(f"the share service reported an invalid SHA-256 for {public_url}")
    return SharedFile(display_name(meta.get("name")), size or None, sha256, href)


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float | None = None,
) -> Path:
    """Stream ``url`` to ``dest`` (resuming ``dest.part``), verify size and SHA-256, then rename.

    ``timeout`` (default EPIGRAF_DOWNLOAD_TIMEOUT_S) bounds the connection and each read; the stall
    watch (EPIGRAF_DOWNLOAD_STALL_S) bounds a server that drips. On any failure the partial file is
    removed, so nothing half-written stays behind; a ``.part`` left by a killed process is resumed.
    """
    dest = Path(dest)
    timeout = download_timeouts()[0] if timeout is None else timeout
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    done = 0
    if part.exists() and size and part.stat().st_size < size:
        with open(part, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
        done = part.stat().st_size
    elif part.exists():
        part.unlink()
    headers = {"User-Agent": "epigraf-tools", **({"Range": f"bytes={done}-"} if done else {})}
    where = url.split("?")[0]
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            if done and response.status != 206:  # the server ignored the range: start over
                digest, done = hashlib.sha256(), 0
            total = size or (done + int(response.headers.get("Content-Length") or 0)) or 0
            watch = StallWatch(f"download of {dest.name}")
            start = done
            with open(part, "ab" if done else "wb") as out:
                for chunk in _read_body(response, f"download of {dest.name}", None):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if size is not None and done > size:
                        raise EpigrafError(f"{dest.name}: the server sent more than the {size} bytes it announced")
                    watch.update(done - start)
                    if progress is not None:
                        progress(done, total)
    except BaseException as exc:
        part.unlink(missing_ok=True)
        if isinstance(exc, EpigrafError):
            raise
        if isinstance(exc, urllib.error.HTTPError):
            raise EpigrafError(f"download failed: HTTP {exc.code} from {where}") from None
        if isinstance(exc, (urllib.error.URLError, TimeoutError, OSError, http.client.HTTPException)):
            reason = getattr(exc, "reason", None) or str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
            raise EpigrafError(
                f"download of {dest.name} failed ({exc.__class__.__name__}: {reason}); run the command again"
            ) from None
        raise
    announced = total - start if not size else None
    if size is None and announced and done - start != announced:  # Content-Length lied (connection cut)
        part.unlink(missing_ok=True)
        raise EpigrafError(f"download of {dest.name} is incomplete ({done - start} of {announced} bytes)")
    if size is not None and done != size:
        part.unlink(missing_ok=True)
        raise EpigrafError(f"download of {dest.name} is incomplete ({done} of {size} bytes); run the command again")
    got = digest.hexdigest()
    if sha256 and got.lower() != sha256.lower():
        part.unlink()
        raise EpigrafError(f"{dest.name} has SHA-256 {got[:16]}..., expected {sha256[:16]}...; the file was discarded")
    os.replace(part, dest)
    return dest
