"""Writing an artifact's output: announce, write atomically, record.

The intent is stored before the rename and confirmed after it, so a crash between the two is
healed on the next start (:func:`heal_pending`) instead of leaving a file that looks like a
user override.

An output path blocked by something that is not a regular file (a folder, a symlink, a file
where a folder should be) is never written through or replaced: the job fails with a
message that starts with :data:`BLOCKED` and says what is in the way (:func:`output_obstacle`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
from contextlib import suppress
from pathlib import Path

from keyframed.daemon.store import CacheEntry, Store
from keyframed.errors import OutputError, SpaceError
from keyframed.fsio import TEMP_PREFIX, UnsafePathError, sha256_file, write_inside
from keyframed.handlers.recipe import TAKES_DIR, take_path
from keyframed.handlers.verdict import PlanItem, Record

CACHE_DIR = ".keyframed/cache"


def blob_path(digest: str) -> str:
    """Where the output cache keeps the bytes with this sha256 (content-addressed)."""
    return f"{CACHE_DIR}/{digest[:2]}/{digest}"


def is_take_path(path: str) -> bool:
    """True for a file under a ``takes/`` folder (a kept take, never an artifact of its own)."""
    return f"/{TAKES_DIR}/" in f"/{path}"


def keep_blob(root: Path, data: bytes, digest: str) -> None:
    """Write the bytes into the cache (atomic, fsynced) unless an intact copy is there."""
    rel = blob_path(digest)
    try:
        if sha256_file(root / rel) == digest:
            return
    except OSError:
        pass
    write_inside(root, rel, data)


def read_blob(root: Path, entry: CacheEntry) -> bytes | None:
    """The bytes of a kept build, or None when they are missing or no longer match their hash
    (a damaged entry: the caller drops it and builds the artifact normally)."""
    try:
        data = (root / blob_path(entry.output_hash)).read_bytes()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == entry.output_hash else None


def write_take(root: Path, store: Store, item: PlanItem, data: bytes) -> None:
    """Keep a visible copy of this take at its ``takes/`` path.

    The file there is replaced only when it holds bytes keyframed kept (a cached build) or is
    absent: a file a person put there is left alone, like any other user file.
    """
    rel = take_path(item.path, item.artifact.recipe.take)
    if output_obstacle(root, rel) is not None:
        return
    try:
        on_disk: str | None = sha256_file(root / rel)
    except OSError:
        on_disk = None
    if on_disk is not None and on_disk not in store.cache_hashes_in_use():
        return
    try:
        write_inside(root, rel, data)
    except (OSError, UnsafePathError):
        return  # a view for people; the build itself is recorded and kept in the cache


def restore_take_views(root: Path, store: Store) -> int:
    """Write again the ``takes/`` copies a full disk kept :func:`write_take` from making (their
    bytes are in the output cache); return how many were written. Called once there is room
    again; a copy whose bytes are no longer kept stays missing."""
    written = 0
    for entry in store.cache_entries().values():
        if entry.backend is None:
            continue  # a copy step (backend None) has no takes of its own
        rel = entry.path if is_take_path(entry.path) else take_path(entry.path, entry.take)
        if (root / rel).exists() or output_obstacle(root, rel) is not None:
            continue
        data = read_blob(root, entry)
        if data is None:
            continue
        try:
            write_inside(root, rel, data)
        except (OSError, UnsafePathError):
            continue  # still no room, or something in the way: the next time there is room
        written += 1
    return written


def prune_cache(root: Path, store: Store, max_bytes: int) -> list[CacheEntry]:
    """Evict the least recently used kept builds until the cache fits ``max_bytes``.

    The builds that are live now (an artifact's current file) are never evicted; a blob is
    removed once no entry names it. Returns the evicted entries.
    """
    entries = sorted(store.cache_entries().values(), key=lambda e: e.used_at)
    live = {r.output_hash for r in store.records().values()}
    sizes = {e.output_hash: e.size for e in entries}
    total = sum(sizes.values())
    gone: list[CacheEntry] = []
    for entry in entries:
        if total <= max_bytes:
            break
        if entry.output_hash in live:
            continue
        gone.append(entry)
        if all(e.output_hash != entry.output_hash for e in entries if e not in gone):
            total -= sizes[entry.output_hash]
    if gone:
        store.cache_drop([e.fingerprint for e in gone])
        kept = store.cache_hashes_in_use()
        for digest in {e.output_hash for e in gone} - kept:
            (root / blob_path(digest)).unlink(missing_ok=True)
    return gone


def cache_size(store: Store) -> tuple[int, int]:
    """(entries, bytes on disk) of the output cache; a blob shared by entries counts once."""
    entries = store.cache_entries().values()
    return len(entries), sum({e.output_hash: e.size for e in entries}.values())


def record_for(item: PlanItem, output_hash: str) -> Record:
    """The build record of a plan item whose output has this hash."""
    status = item.status
    assert status.fingerprint is not None and status.components is not None, "item is buildable"
    return Record(path=item.path, fingerprint=status.fingerprint, output_hash=output_hash,
                  components=status.components, take=item.artifact.recipe.take)


BLOCKED = "output blocked: "


class UserFileError(Exception):
    """The output path holds a file keyframed did not write; it is never overwritten."""


def output_obstacle(root: Path, rel: str) -> str | None:
    """Why ``rel`` cannot be written as a regular file inside ``root``, or None when it can.

    Looks at each component with ``lstat`` (never following a symlink): every folder on the way
    must be a real folder or absent, and the file itself absent or a regular file.
    """
    parts = rel.split("/")
    path = root
    for n, part in enumerate(parts):
        path = path / part
        shown = "/".join(parts[: n + 1])
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return None
        except OSError as exc:
            return f"{BLOCKED}{shown} cannot be checked: {exc.strerror}"
        last = n == len(parts) - 1
        if stat.S_ISLNK(mode):
            return (f"{BLOCKED}{shown} is a symlink; keyframed never writes through or replaces "
                    "a symlink (remove it to have the output made here)")
        if not last and not stat.S_ISDIR(mode):
            return f"{BLOCKED}{shown} is not a folder; keyframed needs a folder there for {rel}"
        if last and stat.S_ISDIR(mode):
            return f"{BLOCKED}{rel} is a folder where keyframed writes its output; move it away"
        if last and not stat.S_ISREG(mode):
            return f"{BLOCKED}{rel} is not a regular file; move it away"
    return None


def is_ours(root: Path, store: Store, path: str) -> bool:
    """True when the file at ``path`` is absent or holds the bytes keyframed last wrote."""
    try:
        on_disk = sha256_file(root / path)
    except FileNotFoundError:
        return True
    record = store.record(path)
    return record is not None and record.output_hash == on_disk


def commit_output(
    root: Path, store: Store, item: PlanItem, data: bytes, *,
    backend: str | None, job_id: int | None = None, restored: bool = False,
) -> str:
    """Write one artifact's bytes into place and record it; return the content hash.

    Every build is kept: its bytes go into the output cache before the intent is recorded
    (so a crash leaves at most an unnamed blob, never a cache row without its bytes), the
    cache row is added in the transaction that confirms the write, and the take is copied to
    its ``takes/`` path. A ``restored`` write came from the cache and is recorded as such.

    Raises:
        UserFileError: the path holds a file the user put there (or replaced) meanwhile.
        OutputError: the path is blocked (see :func:`output_obstacle`) or cannot be written.
    """
    problem = output_obstacle(root, item.path)
    if problem is not None:
        raise OutputError(problem)
    if not is_ours(root, store, item.path):
        raise UserFileError(f"{item.path} was replaced by the user; keeping their file")
    digest = hashlib.sha256(data).hexdigest()
    record = record_for(item, digest)
    try:
        keep_blob(root, data, digest)
    except OSError as exc:
        if exc.errno in NO_SPACE:  # a wait like any full disk, not a failure of the job
            raise SpaceError(f"{root}: the disk is full ({exc.strerror}) keeping {item.path} "
                             f"in {CACHE_DIR}; free some space there: keyframed writes it "
                             "once it can") from exc
        raise OutputError(f"cannot keep {item.path} in {CACHE_DIR}: {exc}") from exc
    except UnsafePathError as exc:
        raise OutputError(f"cannot keep {item.path} in {CACHE_DIR}: {exc}") from exc
    store.intend_write(record, backend)
    try:
        write_inside(root, item.path, data)
    except UnsafePathError as exc:  # something was put in the way since the check above
        store.drop_write(item.path)
        raise OutputError(f"{BLOCKED}{exc}") from exc
    except OSError as exc:
        with suppress(SpaceError):  # the intent is dropped at the next start if not now
            store.drop_write(item.path)
        if exc.errno in NO_SPACE:
            raise SpaceError(f"{root}: the disk is full ({exc.strerror}) writing {item.path}; "
                             "free some space there: keyframed writes it once it can") from exc
        raise OutputError(f"cannot write {item.path}: {exc.strerror or exc}") from exc
    store.finish_write(record, backend, job_id, size=len(data), restored=restored)
    if item.artifact.recipe.step != "copy" and not is_take_path(item.path):
        write_take(root, store, item, data)
    return digest


# errno values that mean "the disk is full" (space, inodes or quota): wait, do not fail.
NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def sweep_temp(root: Path) -> int:
    """Remove temp files a killed process left behind (never anything else)."""
    removed = 0
    for path in root.rglob(f"{TEMP_PREFIX}*"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed += 1
    state = root / ".keyframed"
    for folder in state.glob("kf-dl-*") if state.is_dir() else []:
        shutil.rmtree(folder, ignore_errors=True)
        removed += 1
    return removed


def heal_pending(root: Path, store: Store) -> int:
    """Finish or drop writes a crash interrupted; return how many were finished."""
    healed = 0
    for record, backend in store.pending_writes():
        path = root / record.path
        try:
            on_disk = sha256_file(path)
        except OSError:
            on_disk = None
        if on_disk == record.output_hash:
            # The blob was kept before the intent was recorded: name it in the cache too.
            store.finish_write(record, backend, None, size=path.stat().st_size)
            healed += 1
        else:
            store.drop_write(record.path)
    return healed
