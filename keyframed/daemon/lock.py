"""One keyframed process acting on a project at a time.

``watch``, ``run`` and ``generate-keyframe`` take an exclusive ``flock`` on the state folder
``.keyframed/`` itself, and write their pid into ``.keyframed/daemon.lock`` for the message a
second process prints. The kernel drops the lock when the process dies, even by kill -9, so a
crash never leaves a stale lock; and since the lock is on the folder, not on the pid file,
deleting ``daemon.lock`` does not let a second daemon in (it did when the file was the lock).
A folder that is removed and made again is a new folder: the daemon that held the old one
notices at its next pass and takes the lock on the new one (see ``Store.vanished``).
``plan``, ``status`` and ``validate`` only read and take none.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from keyframed.errors import StoreError

LOCK_NAME = "daemon.lock"


class ProjectLock:
    """An exclusive lock on a project's state folder."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._dir_fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreError naming the process that holds it."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            dir_fd = os.open(self.state_dir, os.O_RDONLY | os.O_DIRECTORY
                             | getattr(os, "O_NOFOLLOW", 0))
        except OSError as exc:
            raise StoreError(f"{self.state_dir}: cannot open keyframed's state folder "
                             f"({exc.strerror}); it must be a plain, writable folder") from exc
        try:
            fcntl.flock(dir_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(dir_fd)
            raise StoreError(
                f"{self.state_dir.parent}: keyframed (pid {self.holder()}) is already working "
                "on this project; stop it first (one daemon per project)") from None
        try:
            self._write_pid()
        except StoreError:
            os.close(dir_fd)
            raise
        self._dir_fd = dir_fd

    def _write_pid(self) -> None:
        # Never through a symlink: a planted link would have us truncate its target.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                         | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the lock file ({exc.strerror}); "
                             "it must be a plain file") from exc
        try:
            os.write(fd, str(os.getpid()).encode())
        finally:
            os.close(fd)

    def holder(self) -> str:
        """The pid the lock file names, or ``another process``."""
        try:
            with self.path.open("rb") as handle:
                return handle.read(32).decode(errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
