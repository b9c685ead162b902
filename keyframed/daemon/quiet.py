"""Tell, cheaply, that nothing a pass reads has changed since the last pass.

A pass re-derives the whole plan, which costs time proportional to the project. When every
file it read (inputs, asset images, outputs, templates) and every scene folder and the root
(where markers are dropped) have the same (size, mtime_ns, inode), the store has not been written,
and no file is so recent that a same-size rewrite could hide in its timestamp, the last plan
still holds and the pass can be skipped. Statting the files costs a small fraction of a pass.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from keyframed.daemon.hashing import RACY_SECONDS
from keyframed.daemon.snapshot import Snapshot

Signature = tuple[object, ...]
INPUT_FILES = ("assets.json", "scene-breakdown.md", "style.json", "keyframed.toml",
               "assets.approved")


def _stat(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _names(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return ()


@dataclass(frozen=True)
class Watched:
    """What a snapshot's signature looks at, worked out once per snapshot (the signature is
    taken after its pass and again before each pass that follows)."""

    root: str
    names: tuple[str, ...]  # project-relative files: inputs, outputs, markers
    files: tuple[str, ...]  # the same, absolute
    folders: tuple[str, ...]  # the root and each scene folder, absolute


def watched(snap: Snapshot) -> Watched:
    """The files and folders a pass on ``snap`` depended on."""
    # Plain strings, not Path objects: at 1,000 scenes this is ~7,000 files, and pathlib's
    # joins cost more than the system calls.
    root = f"{snap.root}{os.sep}"
    names = tuple(sorted({*snap.hashes, *snap.picks, *INPUT_FILES}))
    scenes = sorted({p.split("/", 1)[0] for p in snap.hashes if p.startswith("scene-")})
    return Watched(root=root, names=names, files=tuple(root + rel for rel in names),
                   folders=(root, *(root + f for f in scenes)))


def signature(w: Watched, generation: int, now: float | None = None) -> Signature | None:
    """The state a pass depends on, or None when it cannot be trusted (a file is too new).

    A folder counts by its own stat (adding, removing or renaming an entry, such as a dropped
    marker, changes its mtime), or by its listing while that mtime is too new to trust.
    """
    horizon = ((time.time() if now is None else now) - RACY_SECONDS) * 1e9
    stats = [_stat(path) for path in w.files]
    if any(st is not None and st[1] >= horizon for st in stats):
        return None
    flows = f"{w.root}workflows{os.sep}"
    workflows = [(n, _stat(flows + n)) for n in _names(flows)]
    folders = [_folder(path, horizon) for path in w.folders]
    return (generation, w.names, tuple(stats), tuple(folders), tuple(workflows))


def _folder(path: str, horizon: float) -> object:
    """A folder's stat; its listing instead while its mtime is too new to trust (the daemon
    itself writes status files there, so this is common right after a pass)."""
    st = _stat(path)
    if st is None or st[1] < horizon:
        return st
    return (st[2], _names(path))
