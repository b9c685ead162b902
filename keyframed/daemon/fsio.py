"""Atomic file writes and content hashing.

Every file keyframed writes goes through :func:`atomic_write`: a temp file in the same folder,
fsync, ``os.replace``, then fsync of the folder, so no reader or watcher sees a half-written file.
Temp files start with ``.kf-tmp-`` so the watcher can ignore them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".kf-tmp-"
_CHUNK = 1 << 20


def _fsync(fd: int) -> None:
    # Plain fsync does not flush the drive cache on macOS; F_FULLFSYNC does.
    if sys.platform == "darwin":
        import fcntl

        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, fcntl.F_FULLFSYNC)
            return
    os.fsync(fd)


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        _fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_writer(dest: Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``dest`` atomically when the block exits cleanly.

    On any exception the temp file is removed and ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=dest.suffix, dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            _fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(dest.parent)


def atomic_write(dest: Path, data: bytes) -> str:
    """Write ``data`` to ``dest`` atomically and return its sha256 hex digest."""
    with atomic_writer(dest) as handle:
        handle.write(data)
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Return the sha256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def is_temp_name(name: str) -> bool:
    """True for keyframed's own temp files."""
    return name.startswith(TEMP_PREFIX)
