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
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import EpigrafError

DEFAULT_YANDEX_API = "https://cloud-api.yandex.net/v1/disk/public/resources"
ProgressFn = Callable[[int, int], None]
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SharedFile:
    """A file behind a public link: where to fetch it and what to expect."""

    name: str
    size: int | None
    sha256: str | None
    href: str


def yandex_api() -> str:
    return os.environ.get("EPIGRAF_YADISK_API") or DEFAULT_YANDEX_API


def _get_json(url: str, timeout: float) -> dict:
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "epigraf-tools"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        raise EpigrafError(f"the share service answered HTTP {exc.code} for {url.split('?')[0]}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EpigrafError(f"could not reach the share service ({reason})") from None
    except ValueError:
        raise EpigrafError("the share service answered with something that is not JSON") from None


def resolve_yandex_public(public_url: str, suffix: str = ".pkl", timeout: float = 30.0) -> SharedFile:
    """Metadata and a direct download URL for the file behind a Yandex Disk public link.

    A link to a folder must hold exactly one file ending in ``suffix``.
    """
    api = yandex_api().rstrip("/")
    query = {"public_key": public_url, "limit": "200"}
    meta = _get_json(f"{api}?{urllib.parse.urlencode(query)}", timeout)
    path = None
    if meta.get("type") == "dir":
        items = [i for i in (meta.get("_embedded") or {}).get("items", []) if str(i.get("name", "")).endswith(suffix)]
        if len(items) != 1:
            names = ", ".join(i.get("name", "?") for i in items) or "none"
            raise EpigrafError(f"expected one {suffix} file behind {public_url}, found {names}")
        meta, path = items[0], items[0].get("path")
    elif meta.get("type") != "file":
        raise EpigrafError(f"{public_url} does not point to a file or folder (type {meta.get('type')!r})")
    query = {"public_key": public_url, **({"path": path} if path else {})}
    href = _get_json(f"{api}/download?{urllib.parse.urlencode(query)}", timeout).get("href")
    if not href:
        raise EpigrafError(f"the share service gave no download link for {public_url}")
    size = meta.get("size")
    return SharedFile(str(meta.get("name") or "download.bin"), int(size) if size else None, meta.get("sha256"), href)


def download_file(
    url: str,
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    sha256: str | None = None,
    progress: ProgressFn | None = None,
    timeout: float = 60.0,
) -> Path:
    """Stream ``url`` to ``dest`` (resuming ``dest.part``), verify size and SHA-256, then rename."""
    dest = Path(dest)
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
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as response:
            if done and response.status != 206:  # the server ignored the range: start over
                digest, done = hashlib.sha256(), 0
            total = size or (done + int(response.headers.get("Content-Length") or 0)) or 0
            with open(part, "ab" if done else "wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
    except urllib.error.HTTPError as exc:
        raise EpigrafError(f"download failed: HTTP {exc.code} from {url.split('?')[0]}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise EpigrafError(
            f"download of {dest.name} interrupted ({getattr(exc, 'reason', exc)}); run the command again to resume"
        ) from None
    if size is not None and done != size:
        raise EpigrafError(f"download of {dest.name} is incomplete ({done} of {size} bytes); run again to resume")
    got = digest.hexdigest()
    if sha256 and got.lower() != sha256.lower():
        part.unlink()
        raise EpigrafError(f"{dest.name} has SHA-256 {got[:16]}..., expected {sha256[:16]}...; the file was discarded")
    os.replace(part, dest)
    return dest
