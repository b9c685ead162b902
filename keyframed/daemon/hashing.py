"""Content hashes of project files, cached by (size, mtime_ns, inode) in the store.

A file is hashed only when its stat changed since it was last hashed. Like git's index, an
entry whose mtime is too recent is not cached: a second write within the filesystem's
timestamp granularity could keep size and mtime and change the bytes.

A path that leads outside the project through a symlink is never read: it hashes as missing
(:mod:`keyframed.inputs.contain`).
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from keyframed.daemon.store import Store
from keyframed.fsio import sha256_file
from keyframed.inputs.contain import Containment

RACY_SECONDS = 2.0
STEP_FILES = 200  # files hashed between two calls of hash_many's step


class HashCache:
    """Hash files under a project root, remembering results in the store."""

    def __init__(self, root: Path, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.store = store
        self.clock = clock
        self.hashed = 0  # files actually read, for tests and benchmarks
        # Mirror of the store's table, so a pass over thousands of files costs no queries.
        self._known = store.all_hashes()

    def hash_many(self, paths: Iterable[str],
                  step: Callable[[], None] | None = None) -> dict[str, str | None]:
        """Hash each project-relative path; None for a missing or unreadable file.

        ``step`` is called every :data:`STEP_FILES` files read; when it raises (a stop
        request), the hashes made so far are still remembered.
        """
        out: dict[str, str | None] = {}
        fresh: list[tuple[str, int, int, int, str]] = []
        horizon = (self.clock() - RACY_SECONDS) * 1e9
        contain = Containment(self.root)
        read = self.hashed
        try:
            for rel in paths:
                if rel in out:
                    continue
                out[rel] = self._hash_one(rel, fresh, horizon, contain)
                if step is not None and self.hashed - read >= STEP_FILES:
                    read = self.hashed
                    step()
        finally:
            self.store.remember_hashes(fresh)
        return out

    def _stat(self, rel: str, path: str, contain: Containment) -> os.stat_result | None:
        """The file's stat, or None: missing, not a regular file, or leading outside.

        One ``lstat`` for the usual case (a plain file, or nothing); symlinks are resolved
        only when met, and each folder is checked once per pass.
        """
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                if contain.escapes(rel):
                    return None
                st = os.stat(path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode) or contain.folder_escapes(posixpath.dirname(rel)):
            return None
        return st

    def _hash_one(
        self, rel: str, fresh: list[tuple[str, int, int, int, str]], horizon: float,
        contain: Containment,
    ) -> str | None:
        path = os.path.join(self.root, rel)
        st = self._stat(rel, path, contain)
        if st is None:
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        known = self._known.get(rel)
        if known is not None and known[0] == key:
            return known[1]
        try:
            digest = sha256_file(Path(path))
        except OSError:
            return None
        self.hashed += 1
        if st.st_mtime_ns < horizon:
            fresh.append((rel, *key, digest))
            self._known[rel] = (key, digest)
        return digest
