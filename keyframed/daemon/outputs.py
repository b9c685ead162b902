"""Writing an artifact's output: announce, write atomically, record.

The intent is stored before the rename and confirmed after it, so a crash between the two is
healed on the next start (:func:`heal_pending`) instead of leaving a file that looks like a
user override.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from keyframed.daemon.fsio import TEMP_PREFIX, atomic_write, sha256_file
from keyframed.daemon.store import Store
from keyframed.handlers.plan import PlanItem
from keyframed.handlers.staleness import Record


def record_for(item: PlanItem, output_hash: str) -> Record:
    """The build record of a plan item whose output has this hash."""
    status = item.status
    assert status.fingerprint is not None and status.components is not None, "item is buildable"
    return Record(path=item.path, fingerprint=status.fingerprint, output_hash=output_hash,
                  components=status.components, take=item.artifact.recipe.take)


class UserFileError(Exception):
    """The output path holds a file keyframed did not write; it is never overwritten."""


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
    backend: str | None, job_id: int | None = None,
) -> str:
    """Write one artifact's bytes into place and record it; return the content hash.

    Raises:
        UserFileError: the path holds a file the user put there (or replaced) meanwhile.
    """
    if not is_ours(root, store, item.path):
        raise UserFileError(f"{item.path} was replaced by the user; keeping their file")
    digest = hashlib.sha256(data).hexdigest()
    record = record_for(item, digest)
    store.intend_write(record, backend)
    atomic_write(root / item.path, data)
    store.finish_write(record, backend, job_id)
    return digest


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
            store.finish_write(record, backend, None)
            healed += 1
        else:
            store.drop_write(record.path)
    return healed
