"""Status files (DESIGN §7): ``scene-XX/status.json`` and ``status.json`` at the root.

Written atomically, and only when their content changed (the root file's clock aside), so a
quiet daemon does not churn the disk. Written only inside the project (never through a
symlinked scene folder, never re-creating a project folder that went away); a status file that
cannot be written is skipped with a warning, the daemon goes on. The JSON Schema is
``keyframed/schemas/status.schema.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from keyframed import __version__
from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import CACHE_BACKEND, Job
from keyframed.errors import Diagnostic
from keyframed.fsio import write_inside
from keyframed.handlers.verdict import PlanItem


class _Jobs(Protocol):
    def latest(self) -> dict[str, Job]: ...


class _Health(Protocol):
    def health(self) -> dict[str, Any]: ...


class StatusSource(Protocol):
    """What the status files are drawn from besides the snapshot: the reconcile loop's jobs
    and backends. A protocol, so that this module does not import the loop that owns it."""

    @property
    def jobs(self) -> _Jobs: ...

    @property
    def backends(self) -> Mapping[str, _Health]: ...

log = structlog.get_logger(__name__)
FORMAT = 1
ROOT_STATUS = "status.json"
JOB_STATE = {"ready": "queued", "submitted": "queued", "running": "running", "failed": "failed"}


def artifact_state(item: PlanItem, job: Job | None) -> str:
    """The state shown for an artifact: the plan's verdict refined by its job."""
    if item.state == "fresh":
        fresh_job = job is not None and job.fingerprint == item.status.fingerprint
        return "done" if fresh_job and job is not None and job.state == "done" else "fresh"
    if item.state == "stale" and job is not None and job.fingerprint == item.status.fingerprint:
        return JOB_STATE.get(job.state, "stale")
    return item.state


def artifact_entry(item: PlanItem, job: Job | None) -> dict[str, Any]:
    """One artifact's entry in its scene's status file."""
    recipe = item.artifact.recipe
    current = job is not None and job.fingerprint == item.status.fingerprint
    return {
        "path": item.path,
        "kind": item.artifact.kind,
        "step": recipe.step,
        "state": artifact_state(item, job),
        "reasons": [str(r) for r in item.reasons],
        "progress": (job.progress if current and job else (1.0 if item.state == "fresh" else 0.0)),
        "backend": job.backend if current and job else None,
        "prompt_id": job.prompt_id if current and job else None,
        "take": recipe.take,
        "seed": recipe.seed,
        "fingerprint": item.status.fingerprint,
        "created_at": job.created_at if current and job else None,
        "updated_at": job.updated_at if current and job else None,
        "attempts": job.attempts if current and job else 0,
        "error": job.error if current and job and job.state == "failed" else None,
        # Written from the output cache (no job ran): undo, flip-flop or pick.
        "restored": bool(current and job and job.backend == CACHE_BACKEND),
    }


class StatusWriter:
    """Writes the status files of one project."""

    def __init__(self, root: Path, owner: StatusSource | None = None) -> None:
        self.root = root
        self.owner = owner
        self._last: dict[str, str] = {}
        # Per scene, the plan items and jobs its file was last written from: an unchanged
        # scene's entries are not built and serialised again (1,000 scenes: ~0.1 s a pass).
        self._drawn: dict[int, tuple[tuple[PlanItem, Job | None], ...]] = {}
        self._failed: dict[str, str] = {}
        # A configuration the daemon refused to reload (SIGHUP); shown among the errors.
        self.config_error: Diagnostic | None = None
        self._root_written = 0.0
        self.state = "running"

    def _write(self, rel: str, doc: dict[str, Any], volatile: tuple[str, ...] = ()) -> bool:
        stable = {k: v for k, v in doc.items() if k not in volatile}
        key = json.dumps(stable, sort_keys=True)
        if self._last.get(rel) == key and (not volatile or time.time() - self._root_written < 30):
            return False
        try:
            write_inside(self.root, rel, (json.dumps(doc, indent=2) + "\n").encode())
        except OSError as exc:
            if self._failed.get(rel) != str(exc):
                log.warning("status_not_written", file=rel, error=str(exc))
            self._failed[rel] = str(exc)
            return False
        self._failed.pop(rel, None)
        self._last[rel] = key
        if volatile:
            self._root_written = time.time()
        return True

    def write(self, snap: Snapshot, last_good: Snapshot | None) -> None:
        """Write every status file for a snapshot (or the last good one, with errors)."""
        shown = snap if snap.ok else last_good
        jobs = self.owner.jobs.latest() if self.owner is not None else {}
        scenes: dict[int, list[tuple[PlanItem, Job | None]]] = {}
        for item in shown.items if shown is not None else []:
            if item.artifact.scene is not None:
                scenes.setdefault(item.artifact.scene, []).append((item, jobs.get(item.path)))
        for number, pairs in scenes.items():
            rel = f"scene-{number:02d}/status.json"
            drawn = tuple(pairs)
            if self._drawn.get(number) == drawn and rel not in self._failed:
                continue
            self._write(rel, {"format": FORMAT, "scene": number,
                              "artifacts": [artifact_entry(i, j) for i, j in pairs]})
            if rel not in self._failed:
                self._drawn[number] = drawn
        self._write(ROOT_STATUS, self.root_document(snap, shown, jobs), volatile=("updated_at",))

    def root_document(self, snap: Snapshot, shown: Snapshot | None,
                      jobs: dict[str, Job]) -> dict[str, Any]:
        """The root status.json."""
        items = shown.items if shown is not None else []
        counts = Counter(artifact_state(i, jobs.get(i.path)) for i in items)
        waiting: dict[str, list[str]] = {}
        for item in items:
            for reason in item.reasons:
                gated = item.state == "awaiting_approval"
                if gated and reason.code in ("approval_missing", "approval_stale"):
                    marker = reason.detail if reason.code == "approval_missing" else (
                        "assets.approved" if item.artifact.gate == "assets"
                        else f"scene-{item.artifact.scene:02d}/keyframes.approved")
                    waiting.setdefault(marker, []).append(item.path)
        backends = [b.health() for b in self.owner.backends.values()] if self.owner else []
        return {
            "format": FORMAT,
            "version": __version__,
            "daemon": {"state": self.state, "pid": os.getpid()},
            "ok": snap.ok,
            "errors": [d.as_dict() for d in snap.diagnostics]
            + ([self.config_error.as_dict()] if self.config_error else []),
            "counts": dict(sorted(counts.items())),
            "backends": backends,
            "waiting_for_approval": {k: sorted(set(v)) for k, v in sorted(waiting.items())},
            "updated_at": snap.taken_at,
        }
