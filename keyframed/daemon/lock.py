"""One keyframed process acting on a project at a time.

``watch``, ``run`` and ``generate-keyframe`` take an exclusive ``flock`` on
``.keyframed/daemon.lock``; the kernel drops it when the process dies, even by kill -9, so a
crash never leaves a stale lock. ``plan``, ``status`` and ``validate`` only read and take none.
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
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise StoreError naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Never through a symlink: a planted link would have us truncate its target.
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open the lock file ({exc.strerror}); "
                             "it must be a plain file") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise StoreError(
                f"{self.path.parent.parent}: keyframed (pid {holder}) is already working on "
                "this project; stop it first (one daemon per project)"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
