"""A small Hugging Face Hub emulator for tests, served on 127.0.0.1 in a thread.

It answers what huggingface_hub's ``snapshot_download`` / ``hf_hub_download`` ask for
(LAB-NOTES.md, "Hugging Face Hub offline"):

- ``GET /api/models/{org}/{name}/revision/{rev}`` -> ``{"id", "sha", "siblings"}``
- ``GET /api/models/{org}/{name}/tree/{commit}?recursive=...`` -> ``[{"type": "file", "path", "size", "oid"}]``
- ``HEAD|GET /{org}/{name}/resolve/{rev}/{path}`` with ``X-Repo-Commit`` and ``ETag`` headers
- 404s with ``X-Error-Code`` ``RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``

Repos can be private (then a bearer token is required, as on the Hub: 401 otherwise), files can be
served corrupted (bytes differ from what was registered, headers stay consistent) and every request
is logged, so tests can prove when no network was used.

``fault(mode, prefix)`` makes every request whose path starts with ``prefix`` misbehave (see
``FAULTS``): hang after accepting, drip a byte a second, HTTP 500, redirect to itself, answer HTML,
answer ``{}``, or announce a Content-Length and close early. Hanging and dripping handlers stop when
the emulator stops, so tests stay bounded.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)
    refs: dict[str, str] = field(default_factory=dict)
    token: str | None = None  # private repo: this bearer token is required


class HubEmulator:
    """``with HubEmulator() as hub: hub.add_commit("org/m", {...}); os.environ["HF_ENDPOINT"] = hub.url``."""

    def __init__(self) -> None:
        self.repos: dict[str, Repo] = {}
        self.requests: list[tuple[str, str]] = []
        self.corrupt: set[tuple[str, str]] = set()  # (repo_id, path) served with altered bytes
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.faults: list[tuple[str, str]] = []  # (path prefix, mode)
        self._stopping = threading.Event()

    FAULTS = ("hang", "drip", "http500", "redirect-loop", "not-json", "empty-json", "short-body")

    def fault(self, mode: str, prefix: str = "/") -> None:
        """Make requests whose path starts with ``prefix`` misbehave in one of the ``FAULTS`` ways."""
        assert mode in self.FAULTS, mode
        self.faults.append((prefix, mode))

    def _faulty(self, h: BaseHTTPRequestHandler, head: bool) -> bool:
        path = urlsplit(h.path).path
        mode = next((m for prefix, m in self.faults if path.startswith(prefix)), None)
        if mode is None:
            return False
        self.requests.append((h.command, path))
        if mode == "hang":  # accepted, never answered (until the emulator stops)
            self._stopping.wait(60)
        elif mode == "drip":
            h.send_response(200)
            h.send_header("Content-Length", str(10**6))
            h.send_header("Content-Type", "application/json")
            h.end_headers()
            for _ in range(60):
                if self._stopping.wait(1.0):
                    break
                try:
                    h.wfile.write(b" ")
                    h.wfile.flush()
                except OSError:
                    break
        elif mode == "http500":
            self._send(h, 500, b"internal error", {"Content-Type": "text/plain"}, head)
        elif mode == "redirect-loop":
            self._send(h, 302, b"", {"Location": h.path}, head)
        elif mode == "not-json":
            self._send(h, 200, b"<html>maintenance</html>", {"Content-Type": "application/json"}, head)
        elif mode == "empty-json":
            self._send(h, 200, b"{}", {"Content-Type": "application/json"}, head)
        elif mode == "short-body":
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            if not head:
                h.wfile.write(b"x" * 10)
            h.close_connection = True
        time.sleep(0)
        return True

    # ------------------------------------------------------------------ content
    def add_commit(self, repo_id: str, files: dict[str, bytes], ref: str = "main", private_token: str | None = None):
        """Add a commit with ``files`` and point ``ref`` at it; returns the 40-hex commit id."""
        repo = self.repos.setdefault(repo_id, Repo())
        if private_token is not None:
            repo.token = private_token
        listing = b"".join(name.encode() + git_blob_sha1(data).encode() for name, data in sorted(files.items()))
        sha = hashlib.sha1(repo_id.encode() + listing + str(len(repo.commits)).encode()).hexdigest()
        repo.commits[sha] = dict(files)
        repo.refs[ref] = sha
        return sha

    # ------------------------------------------------------------------ server
    @property
    def url(self) -> str:
        assert self._server is not None, "start() the emulator first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubEmulator:
        emulator = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                if not emulator._faulty(self, head=True):
                    emulator._handle(self, head=True)

            def do_GET(self) -> None:
                if not emulator._faulty(self, head=False):
                    emulator._handle(self, head=False)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> HubEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ request handling
    def _send(
        self, h: BaseHTTPRequestHandler, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False
    ) -> None:
        h.send_response(status)
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    def _error(self, h, status: int, code: str, head: bool) -> None:
        body = json.dumps({"error": code}).encode()
        self._send(h, status, body, {"X-Error-Code": code, "Content-Type": "application/json"}, head)

    def _resolve_rev(self, repo: Repo, rev: str) -> str | None:
        if rev in repo.commits:
            return rev
        return repo.refs.get(rev)

    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        parts = urlsplit(h.path)
        self.requests.append((h.command, parts.path))
        segments = [unquote(s) for s in parts.path.strip("/").split("/")]
        api = segments[:2] == ["api", "models"]
        if api:
            segments = segments[2:]
        if len(segments) < 3:
            return self._error(h, 404, "RepoNotFound", head)
        repo_id = "/".join(segments[:2])
        repo = self.repos.get(repo_id)
        if repo is None:
            return self._error(h, 401, "RepoNotFound", head)  # the Hub says 401 for unknown or private repos
        if repo.token is not None and h.headers.get("Authorization") != f"Bearer {repo.token}":
            return self._error(h, 401, "RepoNotFound", head)
        action, rest = segments[2], segments[3:]
        if api and action == "revision" and rest:
            sha = self._resolve_rev(repo, "/".join(rest))
            if sha is None:
                return self._error(h, 404, "RevisionNotFound", head)
            siblings = [{"rfilename": name} for name in sorted(repo.commits[sha])]
            body = json.dumps({"id": repo_id, "modelId": repo_id, "sha": sha, "siblings": siblings, "private": False})
            return self._send(h, 200, body.encode(), {"Content-Type": "application/json"}, head)
        if api and action == "tree" and rest:
            sha = self._resolve_rev(repo, rest[0])
            if sha is None:
                return self._error(h, 404, "RevisionNotFound", head)
            files = repo.commits[sha]
            listing = [
                {"type": "file", "path": name, "size": len(data), "oid": git_blob_sha1(data)}
                for name, data in sorted(files.items())
            ]
            return self._send(h, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, head)
        if not api and action == "resolve" and len(rest) >= 2:
            sha = self._resolve_rev(repo, rest[0])
            if sha is None:
                return self._error(h, 404, "RevisionNotFound", head)
            name = "/".join(rest[1:])
            data = repo.commits[sha].get(name)
            if data is None:
                return self._error(h, 404, "EntryNotFound", head)
            etag = git_blob_sha1(data)
            if (repo_id, name) in self.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]  # same size and ETag, different bytes
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
            return self._send(h, 200, data, headers, head)
        return self._error(h, 404, "EntryNotFound", head)


def isolate_hub_env(monkeypatch, cache_dir) -> None:
    """Point huggingface_hub at a private cache with no endpoint, token, offline flag or progress bars."""
    monkeypatch.setenv("HF_HUB_CACHE", str(cache_dir))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    # huggingface_hub reads that variable once, when first imported: a test that imported it earlier
    # (gradio imports it with itself) would otherwise leave the bars on for the rest of the session.
    import importlib

    for module in ("huggingface_hub.constants", "huggingface_hub.utils.tqdm"):
        monkeypatch.setattr(importlib.import_module(module), "HF_HUB_DISABLE_PROGRESS_BARS", True)
    for var in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)


def model_files(folder) -> dict[str, bytes]:
    """The files of a model folder as {name: bytes}, ready for ``HubEmulator.add_commit``."""
    from pathlib import Path

    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


class YandexDiskEmulator(HubEmulator):
    """The two Yandex Disk public-resource endpoints plus file downloads (Range supported).

    ``publish(public_url, name, data)`` shares one file; ``publish_folder(public_url, {name: data})``
    shares a folder. ``reported_sha256`` overrides the digest the API reports (to fake corruption).
    ``api`` is the value for ``EPIGRAF_YADISK_API``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.shares: dict[str, dict[str, bytes]] = {}
        self.folders: set[str] = set()
        self.reported_sha256: dict[str, str] = {}

    @property
    def api(self) -> str:
        return self.url + "/v1/disk/public/resources"

    def publish(self, public_url: str, name: str, data: bytes) -> None:
        self.shares[public_url] = {name: data}

    def publish_folder(self, public_url: str, files: dict[str, bytes]) -> None:
        self.shares[public_url] = dict(files)
        self.folders.add(public_url)

    def _meta(self, name: str, data: bytes) -> dict:
        digest = self.reported_sha256.get(name, hashlib.sha256(data).hexdigest())
        return {"type": "file", "name": name, "path": f"/{name}", "size": len(data), "sha256": digest}

    def _handle(self, h, head: bool) -> None:
        from urllib.parse import parse_qs

        parts = urlsplit(h.path)
        self.requests.append((h.command, parts.path))
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        share = self.shares.get(query.get("public_key", ""))
        if parts.path.startswith("/v1/disk/public/resources"):
            if share is None:
                return self._error(h, 404, "DiskNotFoundError", head)
            if parts.path.endswith("/download"):
                name = query.get("path", "/" + next(iter(share))).lstrip("/")
                if name not in share:
                    return self._error(h, 404, "DiskNotFoundError", head)
                key = urllib_quote(query["public_key"])
                href = f"{self.url}/files/{key}/{urllib_quote(name)}"
                body = json.dumps({"href": href, "method": "GET", "templated": False})
                return self._send(h, 200, body.encode(), {"Content-Type": "application/json"}, head)
            public = query["public_key"]
            if public in self.folders:
                items = [self._meta(n, d) for n, d in share.items()]
                body = {"type": "dir", "name": "folder", "path": "/", "_embedded": {"items": items}}
            else:
                body = self._meta(*next(iter(share.items())))
            return self._send(h, 200, json.dumps(body).encode(), {"Content-Type": "application/json"}, head)
        if parts.path.startswith("/files/"):
            _, _, key, name = parts.path.split("/", 3)  # both quoted: a name may hold '/' or '..'
            data = (self.shares.get(unquote(key)) or {}).get(unquote(name))
            if data is None:
                return self._error(h, 404, "NotFound", head)
            start = 0
            if h.headers.get("Range", "").startswith("bytes="):
                start = int(h.headers["Range"][6:].split("-")[0])
                return self._send(
                    h, 206, data[start:], {"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}, head
                )
            return self._send(h, 200, data, {"Content-Type": "application/octet-stream"}, head)
        return self._error(h, 404, "NotFound", head)


def urllib_quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
