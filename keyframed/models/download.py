"""Check and download a set's model files into a ComfyUI folder: resumable and verified.

Each file ends up at ``<comfyui>/models/<folder>/<name>``. While it downloads its bytes are in
``<comfyui>/models/<folder>/.keyframed-download/<name>.part``, with ``<name>.part.json`` beside it
naming the remote version the bytes belong to (URL, ETag, size). An interrupted run leaves both
behind; the next run continues with ``Range: bytes=<part size>-`` when the hub still serves the
same version, and starts over when it does not. With all bytes in, the size and the sha256
(hashed while streaming, the resumed prefix included) are compared with the manifest, or with the
hub's LFS ETag where the manifest has no hash, and the file is moved into place with
``os.replace`` on the same file system, so ComfyUI never lists a half-written model.

:mod:`keyframed.models.hub` explains why this does not call ``hf_hub_download``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import httpx
from huggingface_hub.errors import HfHubHTTPError

# huggingface_hub.utils exports lazily (module __getattr__), which mypy cannot follow; its tqdm
# (which also honours HF_HUB_DISABLE_PROGRESS_BARS) is untyped, hence Any.
from huggingface_hub.utils import tqdm as _hf_tqdm  # type: ignore[attr-defined]

from keyframed.errors import ConfigError, DownloadError
from keyframed.fsio import atomic_write, fsync_dir
from keyframed.models.hashcache import HashCache
from keyframed.models.hub import (
    RemoteFile,
    download_timeout,
    explain_status,
    offline,
    remote_file,
    request_headers,
)
from keyframed.models.manifest import DEFAULT_SET, Manifest, ModelFile, files_for, human_size

_TQDM: Any = _hf_tqdm
STAGING_DIR = ".keyframed-download"
_CHUNK = 1 << 20
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class FileState(StrEnum):
    """What ``check`` found for one file."""

    OK = "ok"
    MISSING = "missing"
    WRONG_SIZE = "wrong size"
    WRONG_HASH = "wrong sha256"
    UNVERIFIED = "unverified"


_FETCH_STATES = frozenset({FileState.MISSING, FileState.WRONG_SIZE, FileState.WRONG_HASH})


@dataclass(frozen=True)
class FileReport:
    """One file of a set as found on disk.

    Attributes:
        file: The manifest entry.
        path: Where ComfyUI expects it.
        state: What was found.
        size: Expected size (manifest, else the hub), ``None`` if unknown.
        sha256: Expected sha256 (manifest, else the hub's LFS ETag), ``None`` if unknown.
        local_size: Size of the file on disk, when there is one.
        note: Why something could not be verified, or what the hub said.
    """

    file: ModelFile
    path: Path
    state: FileState
    size: int | None
    sha256: str | None
    local_size: int | None = None
    note: str = ""

    @property
    def needs_download(self) -> bool:
        """True when the file is missing or not the right bytes."""
        return self.state in _FETCH_STATES

    @property
    def size_text(self) -> str:
        """The expected size for people: exact, or ``~`` and the rounded one."""
        if self.size is not None:
            return human_size(self.size)
        return human_size(self.file.approx_size, approx=True)


@dataclass(frozen=True)
class CheckReport:
    """Every file of a set as found on disk.

    Attributes:
        set_name: The set checked.
        models_dir: ``<comfyui>/models``.
        files: One report per file, in manifest order.
        hub_note: Why the hub was not asked, or stopped being asked (offline, unreachable);
            empty when every question it was asked got an answer.
    """

    set_name: str
    models_dir: Path
    files: tuple[FileReport, ...]
    hub_note: str = ""

    @property
    def to_fetch(self) -> tuple[FileReport, ...]:
        """The files a download would fetch."""
        return tuple(r for r in self.files if r.needs_download)

    @property
    def bytes_to_fetch(self) -> int:
        """Bytes still to download (rounded sizes where the exact one is unknown)."""
        return sum(r.size if r.size is not None else r.file.approx_size or 0 for r in self.to_fetch)

    @property
    def all_present(self) -> bool:
        """True when nothing needs downloading."""
        return not self.to_fetch


@dataclass(frozen=True)
class DownloadSummary:
    """What a successful :func:`download` did."""

    fetched: tuple[ModelFile, ...]
    present: tuple[ModelFile, ...]
    bytes_fetched: int


@dataclass(frozen=True)
class _Expected:
    size: int | None
    sha256: str | None
    conflict: str = ""


@dataclass(frozen=True)
class _Options:
    progress: bool
    attempts: int
    backoff_s: float
    rehash: bool
    log: Callable[[str], None]


def models_dir(comfyui_dir: Path) -> Path:
    """Return ``<comfyui_dir>/models``.

    Raises:
        ConfigError: ``comfyui_dir`` is not an existing folder (nothing is created, so a typo
            does not start a 30 GB download into the wrong place).
    """
    if not comfyui_dir.is_dir():
        raise ConfigError(
            f"ComfyUI folder not found: {comfyui_dir} "
            "(pass --comfyui-dir DIR or set COMFYUI_DIR)"
        )
    return comfyui_dir / "models"


def check(
    comfyui_dir: Path,
    set_name: str = DEFAULT_SET,
    *,
    manifest: Manifest | None = None,
    remote: bool = True,
    rehash: bool = False,
) -> CheckReport:
    """Report, for each file of a set, whether it is present with the right size and sha256.

    Args:
        comfyui_dir: The ComfyUI installation (the folder holding ``models/``).
        set_name: Which set: ``qwen-2511``, ``qwen-2509`` or ``wan-2.2``.
        manifest: Files to check instead of the built-in manifest (tests).
        remote: Ask the hub (one HEAD each) for sizes and hashes the manifest lacks; never
            done when ``HF_HUB_OFFLINE`` is set.
        rehash: Re-read every file instead of trusting remembered digests.

    Raises:
        ConfigError: ``comfyui_dir`` does not exist.
    """
    root = models_dir(comfyui_dir)
    cache = HashCache(root)
    hub = _HubQuestions(remote and not offline())
    reports = tuple(_check_file(f, root, cache, hub, rehash) for f in files_for(set_name, manifest))
    cache.save()
    note = "HF_HUB_OFFLINE is set: the hub was not asked" if remote and offline() else hub.error
    return CheckReport(set_name, root, reports, note)


class _HubQuestions:
    """Asks the hub for what the manifest lacks; after one failure to reach it, asks no more.

    Without this a machine with no network would wait out one timeout per file.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.error = ""

    def ask(self, file: ModelFile) -> tuple[RemoteFile | None, str]:
        """Return the hub's answer (or None) and a note about this file."""
        if not self.enabled or (file.size is not None and file.sha256 is not None):
            return None, ""
        try:
            return remote_file(file), ""
        except DownloadError as exc:
            if isinstance(exc.__cause__, HfHubHTTPError):
                return None, str(exc)  # the hub answered, about this file (404, gated, ...)
            self.enabled = False
            self.error = str(exc)
            return None, ""


def _check_file(
    file: ModelFile, root: Path, cache: HashCache, hub: _HubQuestions, rehash: bool
) -> FileReport:
    info, note = hub.ask(file)
    expected = _expected(file, info)
    return _local_state(file, root, expected, cache, rehash, note or expected.conflict)


def _expected(file: ModelFile, info: RemoteFile | None) -> _Expected:
    """Manifest values first (pinned, known good); the hub's fill the gaps."""
    if info is None:
        return _Expected(file.size, file.sha256)
    conflict = ""
    if file.sha256 and info.sha256 and file.sha256 != info.sha256:
        conflict = f"the hub now serves other bytes (sha256 {info.sha256}, expected {file.sha256})"
    elif file.size is not None and info.size is not None and file.size != info.size:
        conflict = f"the hub now serves other bytes ({info.size} bytes, expected {file.size})"
    size = file.size if file.size is not None else info.size
    return _Expected(size, file.sha256 or info.sha256, conflict)


def _local_state(
    file: ModelFile, root: Path, exp: _Expected, cache: HashCache, rehash: bool, note: str
) -> FileReport:
    path = root / file.folder / file.name

    def report(state: FileState, local: int | None = None, why: str = note) -> FileReport:
        return FileReport(file, path, state, exp.size, exp.sha256, local, why)

    if not path.is_file():
        return report(FileState.MISSING)
    local = path.stat().st_size
    if exp.size is not None and local != exp.size:
        return report(FileState.WRONG_SIZE, local)
    if exp.sha256 is None:
        return report(FileState.UNVERIFIED, local, note or "no sha256 known to compare with")
    digest = cache.sha256(path, file.rel_path, rehash=rehash)
    return report(FileState.OK if digest == exp.sha256 else FileState.WRONG_HASH, local)


def download(
    comfyui_dir: Path,
    set_name: str = DEFAULT_SET,
    *,
    manifest: Manifest | None = None,
    progress: bool = True,
    attempts: int = 8,
    backoff_s: float = 2.0,
    rehash: bool = False,
    log: Callable[[str], None] | None = None,
) -> DownloadSummary:
    """Fetch every file of a set that is missing or wrong, verify it, and move it into place.

    Files that fail do not stop the others; the error at the end names each of them.

    Args:
        comfyui_dir: The ComfyUI installation (the folder holding ``models/``).
        set_name: Which set: ``qwen-2511``, ``qwen-2509`` or ``wan-2.2``.
        manifest: Files to fetch instead of the built-in manifest (tests).
        progress: Show a progress bar (only when stderr is a terminal).
        attempts: HTTP requests per file in this run before giving up (the ``.part`` stays
            for the next run). Waits of ``backoff_s`` doubling follow only attempts that got
            no bytes at all; a dropped connection that delivered data is resumed at once.
        backoff_s: First wait after an attempt that got nothing.
        rehash: Re-read present files to verify them instead of trusting remembered digests.
        log: Called with one line per file fetched (``print`` in the CLI).

    Raises:
        ConfigError: ``comfyui_dir`` does not exist.
        DownloadError: One or more files could not be fetched or did not verify.
    """
    root = models_dir(comfyui_dir)
    cache = HashCache(root)
    opts = _Options(
        progress and sys.stderr.isatty(), max(1, attempts), backoff_s, rehash, log or _quiet
    )
    files = files_for(set_name, manifest)
    fetched: list[ModelFile] = []
    failures: list[str] = []
    try:
        for file in files:
            try:
                if _ensure(file, root, cache, opts):
                    fetched.append(file)
            except DownloadError as exc:
                failures.append(f"{file.rel_path}: {exc}")
    finally:
        cache.save()
    if failures:
        head = f"{len(failures)} of {len(files)} model files failed:\n"
        raise DownloadError(head + "\n".join(f"  {line}" for line in failures))
    present = tuple(f for f in files if f not in fetched)
    return DownloadSummary(tuple(fetched), present, sum(_stat_size(root, f) for f in fetched))


def _quiet(_line: str) -> None:
    return None


def _stat_size(root: Path, file: ModelFile) -> int:
    return (root / file.folder / file.name).stat().st_size


def _ensure(file: ModelFile, root: Path, cache: HashCache, opts: _Options) -> bool:
    """Make one file present and verified; return True if it had to be downloaded."""
    local = _local_state(file, root, _expected(file, None), cache, opts.rehash, "")
    if local.state is FileState.OK:
        return False
    info = remote_file(file)
    exp = _expected(file, info)
    if exp.conflict:
        raise DownloadError(
            f"{file.repo} → {file.path}: {exp.conflict}. Not downloading bytes keyframed cannot "
            f"verify; update keyframed, or put the file in models/{file.rel_path} by hand."
        )
    if local.state is FileState.UNVERIFIED:
        # The hub's sha256 can confirm what the manifest could not. Without one (not an LFS
        # file) a matching size is all there is to check, and fetching again would not help.
        again = _local_state(file, root, exp, cache, False, "").state
        if again in (FileState.OK, FileState.UNVERIFIED):
            return False
    opts.log(f"downloading {file.rel_path} ({human_size(exp.size)}) from {file.repo}")
    _fetch(file, info, exp, root / file.folder / file.name, cache, opts)
    opts.log(f"verified {file.rel_path}")
    return True


def staging_paths(dest: Path) -> tuple[Path, Path]:
    """The ``.part`` file and its ``.part.json`` description for a destination path."""
    stage = dest.parent / STAGING_DIR
    return stage / f"{dest.name}.part", stage / f"{dest.name}.part.json"


class _Part:
    """The ``.part`` file open for appending, with the sha256 of all bytes written so far."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = path.open("a+b")
        self._hash = hashlib.sha256()
        self._fh.seek(0)
        while chunk := self._fh.read(_CHUNK):
            self._hash.update(chunk)
        self.offset = self._fh.tell()

    def append(self, chunk: bytes) -> None:
        self._fh.write(chunk)
        self._hash.update(chunk)
        self.offset += len(chunk)

    def restart(self) -> None:
        self._fh.seek(0)
        self._fh.truncate()
        self._hash = hashlib.sha256()
        self.offset = 0

    def finish(self) -> str:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        return self._hash.hexdigest()

    def close(self) -> None:
        self._fh.close()


def _open_part(part_path: Path, meta_path: Path, ident: bytes, size: int | None) -> _Part:
    """Open the ``.part``, keeping its bytes only if they are of the same remote version."""
    part_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        same = meta_path.read_bytes() == ident
    except OSError:
        same = False
    too_long = size is not None and part_path.exists() and part_path.stat().st_size > size
    if not same or too_long:
        part_path.unlink(missing_ok=True)
        atomic_write(meta_path, ident)
    return _Part(part_path)


def _fetch(
    file: ModelFile, info: RemoteFile, exp: _Expected, dest: Path, cache: HashCache, opts: _Options
) -> None:
    part_path, meta_path = staging_paths(dest)
    version = {"url": info.url, "etag": info.etag, "size": exp.size}
    ident = json.dumps(version, sort_keys=True).encode()
    with _exclusive(file, part_path):
        part = _open_part(part_path, meta_path, ident, exp.size)
        _check_space(file, part, exp.size)
        digest = _fill(file, info, part, exp.size, opts)
        _verify(file, part_path, meta_path, part.offset, digest, exp)
        os.replace(part_path, dest)
        fsync_dir(dest.parent)
        meta_path.unlink(missing_ok=True)
    _remove_if_empty(part_path.parent)
    cache.record(dest, file.rel_path, digest)


@contextlib.contextmanager
def _exclusive(file: ModelFile, part_path: Path) -> Iterator[None]:
    """Hold a lock so two runs never append to the same ``.part`` at once."""
    lock_path = part_path.with_name(part_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{file.rel_path}: another keyframed is downloading this file right now "
                f"(lock {lock_path}); wait for it to finish."
            ) from None
        try:
            yield
        finally:
            lock_path.unlink(missing_ok=True)  # still locked here, so no one else holds it


def _check_space(file: ModelFile, part: _Part, size: int | None) -> None:
    if size is None:
        return
    need = size - part.offset
    free = shutil.disk_usage(part.path.parent).free
    if free < need:
        part.close()
        raise DownloadError(
            f"{file.rel_path}: needs {human_size(need)} more but only {human_size(free)} is "
            f"free in {part.path.parent}; make room and run again (the download resumes)."
        )


def _fill(file: ModelFile, info: RemoteFile, part: _Part, size: int | None, opts: _Options) -> str:
    """Download into the ``.part`` until complete; return the sha256 of its content."""
    try:
        with _progress_bar(file, size, part.offset, opts.progress) as bar, httpx.Client(
            follow_redirects=True, timeout=download_timeout()
        ) as client:
            _transfer(client, file, info.url, part, size, bar, opts)
        return part.finish()
    except BaseException:
        part.close()  # the bytes so far stay for the next run
        raise


def _progress_bar(file: ModelFile, size: int | None, initial: int, enabled: bool) -> Any:
    # huggingface_hub's tqdm also honours HF_HUB_DISABLE_PROGRESS_BARS.
    return _TQDM(
        total=size, initial=initial, unit="B", unit_scale=True, desc=file.name[-40:],
        disable=not enabled, leave=True,
    )


class _Retryable(Exception):
    """A failure worth another request: the connection dropped, HTTP 5xx or 429."""


def _transfer(
    client: httpx.Client, file: ModelFile, url: str, part: _Part, size: int | None,
    bar: Any, opts: _Options,
) -> None:
    """Fill the ``.part`` up to ``size``, resuming with Range after every interruption."""
    stalls = 0
    last = ""
    for attempt in range(1, opts.attempts + 1):
        if size is not None and part.offset >= size:
            return
        before = part.offset
        try:
            _get(client, file, url, part, bar)
            if size is None:
                return
            last = "the server ended the response early"
        except (httpx.TransportError, _Retryable) as exc:
            last = str(exc) or type(exc).__name__
        if part.offset > before:
            stalls = 0  # bytes came: resume right away
        elif attempt < opts.attempts:
            stalls += 1
            time.sleep(min(opts.backoff_s * 2 ** (stalls - 1), 60.0))
    if size is not None and part.offset >= size:
        return
    raise DownloadError(
        f"{file.repo} → {file.path}: download interrupted ({last}); "
        f"{human_size(part.offset)} of {human_size(size)} kept in {part.path}. "
        "Run the command again to resume."
    )


def _get(client: httpx.Client, file: ModelFile, url: str, part: _Part, bar: Any) -> None:
    """One GET from ``part.offset`` on, appending what arrives."""
    headers = request_headers()
    start = part.offset
    if start:
        headers["Range"] = f"bytes={start}-"
    with client.stream("GET", url, headers=headers) as resp:
        if resp.status_code == 416:
            part.restart()
            bar.reset()
            raise _Retryable("the server cannot resume from here; starting over")
        _check_status(file, resp)
        if start and not _resumes_at(resp, start):
            part.restart()  # the server sent the whole file (200) or another range
            bar.reset()
            if resp.status_code != 200:
                raise _Retryable("the server answered another range; starting over")
        # No chunk_size: httpx would hold back up to a chunk and lose it if the connection drops.
        for chunk in resp.iter_bytes():
            part.append(chunk)
            bar.update(len(chunk))


def _check_status(file: ModelFile, resp: httpx.Response) -> None:
    if resp.status_code in _RETRY_STATUS:
        raise _Retryable(f"HTTP {resp.status_code}")
    if resp.status_code >= 300:
        code = resp.headers.get("X-Error-Code")
        raise DownloadError(explain_status(file, resp.status_code, code))


def _resumes_at(resp: httpx.Response, start: int) -> bool:
    content_range = resp.headers.get("Content-Range", "")
    return resp.status_code == 206 and content_range.startswith(f"bytes {start}-")


def _verify(
    file: ModelFile, part_path: Path, meta_path: Path, got: int, digest: str, exp: _Expected
) -> None:
    """Compare size and sha256; wrong bytes are deleted so the next run starts clean."""
    problem = ""
    if exp.size is not None and got != exp.size:
        problem = f"{got} bytes instead of {exp.size}"
    elif exp.sha256 is not None and digest != exp.sha256:
        problem = f"sha256 {digest} instead of {exp.sha256}"
    if not problem:
        return
    part_path.unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    raise DownloadError(
        f"{file.repo} → {file.path}: the downloaded bytes are wrong ({problem}) and were "
        "discarded. Run the command again; if it keeps happening, the copy on the hub or a "
        "proxy on the way is damaged."
    )


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # other downloads are still staged there
        folder.rmdir()
