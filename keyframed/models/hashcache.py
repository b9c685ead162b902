"""Remembered sha256 digests of model files, so ``models check`` does not re-read 30 GB each time.

A digest is reused only while the file's (size, mtime_ns, inode) are unchanged. File times tick
coarsely on some file systems, so a file rewritten in the same tick as it was hashed would keep
its stamp; like git's "racily clean" rule, an entry is trusted only if it was recorded well after
the file's mtime. The cache lives in ``ComfyUI/models/.keyframed-verified.json``; losing it only
costs a re-hash.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from keyframed.fsio import atomic_write, sha256_file

CACHE_NAME = ".keyframed-verified.json"
_RACY_NS = 2_000_000_000


class HashCache:
    """sha256 digests of files under one ``models`` folder, keyed by ``<folder>/<name>``."""

    def __init__(self, models_dir: Path) -> None:
        """Load the cache of ``models_dir`` (empty when absent or unreadable)."""
        self._path = models_dir / CACHE_NAME
        self._dirty = False
        try:
            loaded = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = {}
        self._entries: dict[str, dict[str, int | str]] = loaded if isinstance(loaded, dict) else {}

    def sha256(self, path: Path, key: str, *, rehash: bool = False) -> str:
        """Return the file's sha256, from the cache when its stamp still matches.

        Args:
            path: The file.
            key: Its ``<folder>/<name>``.
            rehash: Read the file even when the cache has a digest.
        """
        st = path.stat()
        entry = self._entries.get(key, {})
        stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}
        trusted = all(entry.get(k) == v for k, v in stamp.items()) and (
            int(entry.get("hashed_at_ns", 0)) > st.st_mtime_ns + _RACY_NS
        )
        if trusted and not rehash:
            return str(entry["sha256"])
        digest = sha256_file(path)
        self.record(path, key, digest)
        return digest

    def record(self, path: Path, key: str, digest: str) -> None:
        """Remember that ``path`` (as it is now) has sha256 ``digest``."""
        st = path.stat()
        self._entries[key] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "ino": st.st_ino,
            "sha256": digest,
            "hashed_at_ns": time.time_ns(),
        }
        self._dirty = True

    def save(self) -> None:
        """Write the cache if anything changed; a write failure is ignored (it is only a cache)."""
        if not self._dirty or not self._path.parent.is_dir():
            return
        data = json.dumps(self._entries, indent=1, sort_keys=True).encode()
        try:
            atomic_write(self._path, data)
        except OSError:
            return
        self._dirty = False

