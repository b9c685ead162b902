"""A local stand-in for the Hugging Face Hub's file protocol, on 127.0.0.1.

It answers ``HEAD`` and ``GET`` on ``/{repo_id}/resolve/{revision}/{path}`` the way the hub does
for a client that has Xet turned off (``HF_HUB_DISABLE_XET=1``; no ``X-Xet-*`` headers here):

- ``X-Repo-Commit``; for "LFS" files ``X-Linked-Etag`` (the sha256) and ``X-Linked-Size``, for
  plain git files an ``ETag`` that is the git blob sha1; ``Content-Length`` and
  ``Accept-Ranges: bytes`` always.
- ``GET`` honours ``Range: bytes=a-`` / ``bytes=a-b`` with ``206`` and ``Content-Range``, and
  ``416`` past the end.
- ``404`` with ``X-Error-Code: RepoNotFound`` / ``RevisionNotFound`` / ``EntryNotFound``.
- With ``redirect = True``, LFS files answer ``302`` to a "CDN" URL on another origin
  (``localhost`` instead of ``127.0.0.1``), carrying the ``X-Linked-*`` headers like the real hub;
  huggingface_hub then does not follow the HEAD, and an HTTP client drops ``Authorization``.

Fault switches: :meth:`FakeHub.cut_after` (close the connection after N body bytes, for the next
K responses), :meth:`FakeHub.fail_next` (answer an error status to the next K GETs), ``corrupt``
(flip bytes in every body served). Every request is recorded in :attr:`FakeHub.requests`.
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_CDN = re.compile(r"^/cdn/(?P<sha>[0-9a-f]{64})$")
_RANGE = re.compile(r"^bytes=(?P<start>\d+)-(?P<end>\d*)$")


@dataclass(frozen=True)
class HubFile:
    """One file in a fake repository."""

    data: bytes
    lfs: bool = True

    @property
    def sha256(self) -> str:
        """The content's sha256 (the hub's LFS ETag)."""
        return hashlib.sha256(self.data).hexdigest()

    @property
    def etag(self) -> str:
        """What the hub puts in ETag: the sha256 for LFS files, the git blob sha1 otherwise."""
        if self.lfs:
            return self.sha256
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass(frozen=True)
class Request:
    """One request the fake hub received."""

    method: str
    path: str
    range: str | None
    authorization: str | None
    status: int


@dataclass
class _Faults:
    cut_after: int = 0
    cut_times: int = 0
    fail_status: int = 0
    fail_times: int = 0
    corrupt: bool = False


@dataclass
class _State:
    files: dict[tuple[str, str], HubFile] = field(default_factory=dict)
    repos: set[str] = field(default_factory=set)
    requests: list[Request] = field(default_factory=list)
    faults: _Faults = field(default_factory=_Faults)
    redirect: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)


class FakeHub:
    """The fake hub: start it, register files, point ``HF_ENDPOINT`` at :attr:`url`."""

    def __init__(self) -> None:
        """Bind to a free port on 127.0.0.1 (not serving yet)."""
        self._state = _State()
        handler = type("_BoundHandler", (_Handler,), {"state": self._state})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeHub:
        """Serve in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def add_file(self, repo: str, path: str, data: bytes, *, lfs: bool = True) -> HubFile:
        """Register ``data`` as ``path`` in ``repo`` (creating the repo)."""
        hub_file = HubFile(data, lfs)
        with self._state.lock:
            self._state.repos.add(repo)
            self._state.files[(repo, path)] = hub_file
        return hub_file

    def add_repo(self, repo: str) -> None:
        """Register an empty repository (its files answer EntryNotFound)."""
        with self._state.lock:
            self._state.repos.add(repo)

    @property
    def requests(self) -> list[Request]:
        """A copy of every request received so far, in order."""
        with self._state.lock:
            return list(self._state.requests)

    def gets(self, path_suffix: str = "") -> list[Request]:
        """The GET requests whose path ends with ``path_suffix``."""
        return [r for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix)]

    def cut_after(self, n_bytes: int, *, times: int = 1) -> None:
        """Drop the connection after ``n_bytes`` of body, for the next ``times`` GETs."""
        with self._state.lock:
            self._state.faults.cut_after, self._state.faults.cut_times = n_bytes, times

    def fail_next(self, status: int, *, times: int = 1) -> None:
        """Answer ``status`` to the next ``times`` GETs."""
        with self._state.lock:
            self._state.faults.fail_status, self._state.faults.fail_times = status, times

    @property
    def corrupt(self) -> bool:
        """Whether bodies are served with flipped bytes."""
        return self._state.faults.corrupt

    @corrupt.setter
    def corrupt(self, value: bool) -> None:
        with self._state.lock:
            self._state.faults.corrupt = value

    @property
    def redirect(self) -> bool:
        """Whether LFS files are redirected to the cross-origin "CDN"."""
        return self._state.redirect

    @redirect.setter
    def redirect(self, value: bool) -> None:
        with self._state.lock:
            self._state.redirect = value


class _Handler(BaseHTTPRequestHandler):
    state: _State
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return  # keep test output clean

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, *, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        cdn = _CDN.match(path)
        if cdn:
            found = self._by_sha(cdn["sha"])
            if found is None:
                self._error(404, "EntryNotFound", "No such blob")
            else:
                self._content(found, body=body, linked=False)
            return
        match = _RESOLVE.match(path)
        if match is None:
            self._error(404, "RepoNotFound", "Not a resolve URL")
            return
        self._resolve(match["repo"], match["rev"], match["path"], body=body)

    def _resolve(self, repo: str, rev: str, path: str, *, body: bool) -> None:
        with self.state.lock:
            known_repo = repo in self.state.repos
            hub_file = self.state.files.get((repo, path))
            redirect = self.state.redirect
        if not known_repo:
            self._error(404, "RepoNotFound", "Repository not found")
        elif rev not in ("main", COMMIT):
            self._error(404, "RevisionNotFound", "Invalid rev id: " + rev)
        elif hub_file is None:
            self._error(404, "EntryNotFound", "Entry not found")
        elif redirect and hub_file.lfs:
            self._redirect(hub_file)
        else:
            self._content(hub_file, body=body, linked=hub_file.lfs)

    def _by_sha(self, sha: str) -> HubFile | None:
        with self.state.lock:
            return next((f for f in self.state.files.values() if f.sha256 == sha), None)

    def _record(self, status: int) -> None:
        with self.state.lock:
            self.state.requests.append(
                Request(self.command, unquote(urlsplit(self.path).path), self.headers.get("Range"),
                        self.headers.get("Authorization"), status)
            )

    def _error(self, status: int, code: str, message: str) -> None:
        self._record(status)
        payload = f'{{"error": "{message}"}}'.encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _redirect(self, hub_file: HubFile) -> None:
        self._record(302)
        self.send_response(302)
        port = self.server.server_address[1]  # type: ignore[index]  # an (host, port) tuple
        # Another origin than 127.0.0.1, like the hub's CDN: clients must drop Authorization.
        self.send_header("Location", f"http://localhost:{port}/cdn/{hub_file.sha256}")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
        self.send_header("X-Linked-Size", str(len(hub_file.data)))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _content(self, hub_file: HubFile, *, body: bool, linked: bool) -> None:
        failure = self._take_failure() if body else 0
        if failure:
            self._error(failure, "ServerError", "Injected failure")
            return
        span = self._span(len(hub_file.data))
        if span is None:
            self._unsatisfiable(len(hub_file.data))
            return
        start, end = span
        status = 206 if self.headers.get("Range") else 200
        self._record(status)
        self.send_response(status)
        self._file_headers(hub_file, linked=linked)
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(hub_file.data)}")
        self.end_headers()
        if body:
            self._write_body(hub_file.data[start:end])

    def _file_headers(self, hub_file: HubFile, *, linked: bool) -> None:
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hub_file.etag}"')
        if linked:
            self.send_header("X-Linked-Etag", f'"{hub_file.sha256}"')
            self.send_header("X-Linked-Size", str(len(hub_file.data)))

    def _span(self, size: int) -> tuple[int, int] | None:
        """The byte span asked for, end exclusive; None when it is unsatisfiable."""
        header = self.headers.get("Range")
        if not header:
            return 0, size
        match = _RANGE.match(header.strip())
        if match is None:
            return 0, size  # an unsupported Range is ignored, as HTTP allows
        start = int(match["start"])
        end = min(int(match["end"]) + 1, size) if match["end"] else size
        return (start, end) if start < size else None

    def _unsatisfiable(self, size: int) -> None:
        self._record(416)
        self.send_response(416)
        self.send_header("Content-Range", f"bytes */{size}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _take_failure(self) -> int:
        with self.state.lock:
            faults = self.state.faults
            if faults.fail_times <= 0:
                return 0
            faults.fail_times -= 1
            return faults.fail_status

    def _write_body(self, data: bytes) -> None:
        with self.state.lock:
            faults = self.state.faults
            cut = faults.cut_after if faults.cut_times > 0 else None
            if cut is not None:
                faults.cut_times -= 1
            corrupt = faults.corrupt
        if corrupt:
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        if cut is None:
            self.wfile.write(data)
            return
        self.wfile.write(data[:cut])
        self.wfile.flush()
        # The client was promised Content-Length bytes; closing early is a dropped connection.
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)
