"""Atomic file writes and content hashing.

Every file keyframed writes goes through :func:`atomic_write`: a temp file in the same folder,
fsync, ``os.replace``, then fsync of the folder, so no reader or watcher sees a half-written file.
Temp files start with ``.kf-tmp-`` so the watcher can ignore them.

Files inside a project go through :func:`write_inside`, which never leaves the project folder:
every folder on the way is opened without following symlinks (``O_NOFOLLOW`` relative to the
folder above), so a folder swapped for a symlink between a check and the write cannot redirect
the write, and a missing project folder is never re-created.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import posixpath
import secrets
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".kf-tmp-"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


class UnsafePathError(OSError):
    """A project-relative path cannot be written without leaving the project or replacing
    something that is not a regular file (a symlink, a folder)."""

    def __str__(self) -> str:
        return str(self.strerror)


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
    # Not mkstemp: it makes the file 0600 whatever the umask, so others sharing a studio
    # folder could not open the outputs. 0666 under the umask, like any other program.
    tmp = str(dest.parent / f"{TEMP_PREFIX}{secrets.token_hex(8)}{dest.suffix}")
    fd = os.open(tmp, _NEW_FILE, 0o666)
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


def open_project_folder(root: Path, rel_folder: str, *, create: bool) -> int:
    """Open ``root/rel_folder`` without following any symlink below ``root``; return its fd.

    ``root`` itself is opened as given (the user named it) but never created. Missing folders
    below it are created when ``create`` is set.

    Raises:
        UnsafePathError: a folder on the way is a symlink or not a folder.
        FileNotFoundError: ``root`` (or, without ``create``, a folder) does not exist.
    """
    fd = os.open(root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    done: list[str] = []
    for part in [p for p in rel_folder.split("/") if p not in ("", ".")]:
        done.append(part)
        fd = _step(fd, part, "/".join(done), create)  # always closes the fd it is given
    return fd


def _is_link(fd: int, name: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=fd).st_mode)
    except OSError:
        return False


def _step(fd: int, part: str, shown: str, create: bool) -> int:
    """Open one folder below ``fd`` (closing ``fd``), creating it when asked."""
    try:
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
        except FileNotFoundError:
            if not create:
                raise
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o777, dir_fd=fd)
            child = os.open(part, _DIR_FLAGS, dir_fd=fd)
    except OSError as exc:
        # O_NOFOLLOW | O_DIRECTORY on a symlink gives ENOTDIR on Linux: say which it is.
        if exc.errno == errno.ENOTDIR and _is_link(fd, part):
            exc.errno = errno.ELOOP
        if exc.errno in (errno.ELOOP, errno.EMLINK):
            raise UnsafePathError(exc.errno, f"{shown} is a symlink; keyframed writes only "
                                  "into real folders inside the project") from exc
        if exc.errno == errno.ENOTDIR:
            raise UnsafePathError(exc.errno, f"{shown} is not a folder") from exc
        raise
    finally:
        os.close(fd)
    return child


def write_inside(root: Path, rel: str, data: bytes) -> str:
    """Atomically write ``data`` at the project-relative POSIX path ``rel``; return its sha256.

    Like :func:`atomic_write` (temp file, fsync, rename, fsync of the folder), but the write
    cannot leave ``root``: see :func:`open_project_folder`. What is at ``rel`` must be absent or
    a regular file; a symlink there is never replaced and never followed.

    Raises:
        UnsafePathError: the path is blocked by a symlink, a folder or another non-file.
        OSError: the write itself failed (no space, read-only file system, ...).
    """
    folder, name = posixpath.split(rel)
    fd = open_project_folder(root, folder, create=True)
    try:
        _check_target(fd, name, rel)
        tmp = f"{TEMP_PREFIX}{secrets.token_hex(8)}{posixpath.splitext(name)[1]}"
        out = os.open(tmp, _NEW_FILE, 0o666, dir_fd=fd)  # the umask decides, as elsewhere
        try:
            with os.fdopen(out, "wb") as handle:
                handle.write(data)
                handle.flush()
                _fsync(handle.fileno())
            os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=fd)
            raise
        with contextlib.suppress(OSError):
            _fsync(fd)
    finally:
        os.close(fd)
    return hashlib.sha256(data).hexdigest()


def overwrite_inside(root: Path, rel: str, data: bytes) -> bool:
    """Rewrite the regular file at ``rel`` in place, where a new file cannot be made.

    The last resort of a full disk (no block or no inode for a temporary file): only when the
    file exists and ``data`` fits in the bytes it already holds, so no new block is needed.
    Not atomic, so only for files a reader can do without for a moment (the root status).
    False when the file is absent or too small; never through a symlink.

    Raises:
        OSError: the write itself failed.
    """
    folder, name = posixpath.split(rel)
    fd = open_project_folder(root, folder, create=False)
    try:
        out = os.open(name, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=fd)
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
    try:
        st = os.fstat(out)
        if not stat.S_ISREG(st.st_mode) or st.st_size < len(data):
            return False
        os.pwrite(out, data, 0)
        os.ftruncate(out, len(data))
        _fsync(out)
    finally:
        os.close(out)
    return True


def remove_inside(root: Path, rel: str) -> bool:
    """Remove the regular file at the project-relative path ``rel``; False if it is absent.

    Never through a symlinked folder, and never a symlink or a folder at ``rel`` itself.

    Raises:
        UnsafePathError: the path is blocked by a symlink, a folder or another non-file.
    """
    folder, name = posixpath.split(rel)
    try:
        fd = open_project_folder(root, folder, create=False)
    except FileNotFoundError:
        return False
    try:
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePathError(errno.EEXIST, f"{rel} is not a regular file; left as it is")
        os.unlink(name, dir_fd=fd)
        with contextlib.suppress(OSError):
            _fsync(fd)
    finally:
        os.close(fd)
    return True


def _check_target(fd: int, name: str, rel: str) -> None:
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePathError(errno.ELOOP, f"{rel} is a symlink; keyframed never replaces or "
                              "writes through a symlink")
    if stat.S_ISDIR(st.st_mode):
        raise UnsafePathError(errno.EISDIR, f"{rel} is a folder where keyframed writes a file")
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePathError(errno.EINVAL, f"{rel} is not a regular file")
