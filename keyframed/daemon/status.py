"""Status files (DESIGN §7): ``scene-XX/status.json`` and ``status.json`` at the root.

Written atomically, and only when their content changed (the root file's clock aside), so a
quiet daemon does not churn the disk. Written only inside the project (never through a
symlinked scene folder, never re-creating a project folder that went away); a status file that
cannot be written is skipped with a warning, the daemon goes on. The JSON Schema is
``keyframed/schemas/status.schema.json``.
"""

from __future__ import annotations

import errno
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import structlog

from keyframed import __version__
from keyframed.daemon.held import held_entry
from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import CACHE_BACKEND, LIVE_STATES, Job
from keyframed.errors import Diagnostic
from keyframed.fsio import overwrite_inside, remove_inside, write_inside
from keyframed.handlers.approvals import ASSETS_MARKER, keyframes_marker
from keyframed.handlers.verdict import PlanItem


class _Jobs(Protocol):
    def latest(self) -> dict[str, Job]: ...

    def durations(self) -> dict[tuple[str, str], float]: ...


class _Health(Protocol):
    def health(self) -> dict[str, Any]: ...


class StatusSource(Protocol):
    """What the status files are drawn from besides the snapshot: the reconcile loop's jobs,
    its backends and, per ready job no backend can take, why. A protocol, so that this module
    does not import the loop that owns it."""

    @property
    def jobs(self) -> _Jobs: ...

    @property
    def backends(self) -> Mapping[str, _Health]: ...

    @property
    def notes(self) -> Mapping[str, str]: ...

    @property
    def no_backend(self) -> Mapping[str, str]: ...

    @property
    def film_entry(self) -> Mapping[str, Any] | None: ...

log = structlog.get_logger(__name__)
FORMAT = 1
ROOT_STATUS = "status.json"
JOB_STATE = {"ready": "queued", "submitted": "queued", "running": "running", "failed": "failed"}
# The one vocabulary of artifact states (DESIGN §7), used by run, plan, status, both status
# files and the logs; the schema's enum is this tuple (tests/daemon/test_never_silent.py).
STATES = ("fresh", "done", "stale", "blocked", "input_error", "awaiting_approval", "queued",
          "running", "failed", "user_override")
# Reason codes added to the plan's own (missing_output, never_built, ...) by the jobs.
FAILED_REASON = "failed"
NO_BACKEND_REASON = "no_backend"


def _current(item: PlanItem, job: Job | None) -> Job | None:
    """The job when it is for the artifact's current recipe, else None."""
    return job if job is not None and job.fingerprint == item.status.fingerprint else None


def artifact_state(item: PlanItem, job: Job | None,
                   no_backend: Mapping[str, str] | None = None) -> str:
    """The state shown for an artifact: the plan's verdict refined by its job.

    A ready job that no backend can take is ``blocked`` (with a ``no_backend`` reason), not
    ``queued``: it is in no server's queue and will not be until a backend can run it.
    """
    job = _current(item, job)
    if item.state == "fresh":
        return "done" if job is not None and job.state == "done" else "fresh"
    if item.state == "stale" and job is not None:
        if job.state == "ready" and no_backend and item.path in no_backend:
            return "blocked"
        return JOB_STATE.get(job.state, "stale")
    return item.state


def artifact_reasons(item: PlanItem, job: Job | None,
                     no_backend: Mapping[str, str] | None = None) -> list[str]:
    """The plan's reasons, led by what the job adds: ``no_backend: gpu1 lacks
    loras/x.safetensors``; for a failed artifact only ``failed: <ComfyUI's message>``."""
    reasons = [str(r) for r in item.reasons]
    job = _current(item, job)
    if item.state != "stale" or job is None:
        return reasons
    if job.state == "failed" and job.error:
        # Only the failure: why it was built (never_built, ...) no longer matters to a person.
        return [f"{FAILED_REASON}: {job.error}"]
    if job.state == "ready" and no_backend and item.path in no_backend:
        return [f"{NO_BACKEND_REASON}: {no_backend[item.path]}", *reasons]
    return reasons


def state_counts(items: list[PlanItem], jobs: Mapping[str, Job],
                 no_backend: Mapping[str, str] | None = None) -> dict[str, int]:
    """How many artifacts are in each state (the same counts for run, plan and status)."""
    counts = Counter(artifact_state(i, jobs.get(i.path), no_backend) for i in items)
    return dict(sorted(counts.items()))


def held_scenes(snap: Snapshot) -> dict[int, tuple[list[dict[str, Any]], list[Diagnostic]]]:
    """Per scene that input errors hold back: its outputs' ``input_error`` entries and the
    errors. A blocked scene keyframed never built for has no entries, only its errors."""
    out: dict[int, tuple[list[dict[str, Any]], list[Diagnostic]]] = {}
    for number, errors in snap.blocked.items():
        out[number] = ([], errors)
    for held in snap.held:
        if held.scene is not None:
            errors = snap.held_by(held)
            out.setdefault(held.scene, ([], errors))[0].append(held_entry(held, errors))
    return out


def all_counts(snap: Snapshot, jobs: Mapping[str, Job],
               no_backend: Mapping[str, str] | None = None) -> dict[str, int]:
    """The counts of run, plan and status: the plan's artifacts, and the held ones as
    ``input_error``."""
    counts = Counter(state_counts(snap.items, jobs, no_backend))
    if snap.held:
        counts["input_error"] += len(snap.held)
    return dict(sorted(counts.items()))


def artifact_entry(item: PlanItem, job: Job | None,
                   no_backend: Mapping[str, str] | None = None,
                   note: str | None = None) -> dict[str, Any]:
    """One artifact's entry in its scene's status file (or the root's list of assets);
    ``note``: something the pictures could not show, such as a video that does not decode."""
    recipe = item.artifact.recipe
    current = job is not None and job.fingerprint == item.status.fingerprint
    return {
        "path": item.path,
        "kind": item.artifact.kind,
        "step": recipe.step,
        "state": artifact_state(item, job, no_backend),
        "reasons": artifact_reasons(item, job, no_backend),
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
        **({"note": note} if note else {}),
    }


class StatusWriter:
    """Writes the status files of one project."""

    def __init__(self, root: Path, owner: StatusSource | None = None,
                 step: Callable[[], None] | None = None) -> None:
        self.root = root
        self.owner = owner
        # Called before each scene's file: the daemon pings its watchdog there and stops a
        # pass over thousands of scenes within a second of SIGTERM (StopRequested).
        self._step = step
        self._last: dict[str, str] = {}
        # Per scene, the plan items and jobs its file was last written from: an unchanged
        # scene's entries are not built and serialised again (1,000 scenes: ~0.1 s a pass).
        self._drawn: dict[int, tuple[tuple[tuple[PlanItem, Job | None], ...],
                                     tuple[tuple[str, str], ...],
                                     tuple[tuple[str, str], ...]]] = {}
        self._failed: dict[str, str] = {}
        # A configuration the daemon refused to reload (SIGHUP); shown among the errors.
        self.config_error: Diagnostic | None = None
        # Why passes stop (a full disk), while they do; shown among the errors, ok false.
        self.fault: Diagnostic | None = None
        self._root_written = 0.0
        self.state = "running"

    def _write(self, rel: str, doc: dict[str, Any], volatile: tuple[str, ...] = ()) -> bool:
        stable = {k: v for k, v in doc.items() if k not in volatile}
        key = json.dumps(stable, sort_keys=True)
        if self._last.get(rel) == key and (not volatile or time.time() - self._root_written < 30):
            return False
        data = (json.dumps(doc, indent=2) + "\n").encode()
        if not volatile and rel not in self._last and _holds(self.root / rel, data):
            # Written so by an earlier run (a restart): reading costs less than an atomic
            # write, and 5,000 unchanged files rewritten at each start were ~10 s of churn.
            self._last[rel] = key
            return False
        try:
            write_inside(self.root, rel, data)
        except OSError as exc:
            if self._failed.get(rel) != str(exc):
                log.warning("status_not_written", file=rel, error=str(exc))
            self._failed[rel] = str(exc)
            if rel == ROOT_STATUS and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self._overwrite_root(doc)
            return False
        self._failed.pop(rel, None)
        self._last[rel] = key
        if volatile:
            self._root_written = time.time()
        return True

    def _overwrite_root(self, doc: dict[str, Any]) -> None:
        """On a full disk, at least the daemon's state and the fault reach the root file.

        Written in place over the bytes the last good file holds: the whole document where it
        fits, else that last file with only ``daemon``, ``ok`` and the fault changed, so no
        dead daemon is shown as running (issue 14).
        """
        old = _read(self.root / ROOT_STATUS)
        attempts = [doc]
        if old is not None:
            fault = [self.fault.as_dict()] if self.fault else []
            attempts.append(old | {"daemon": doc["daemon"], "ok": False,
                                   "errors": fault or old.get("errors", [])})
            attempts.append(old | {"daemon": doc["daemon"], "ok": False})
        for attempt in attempts:
            data = (json.dumps(attempt, indent=2) + "\n").encode()
            try:
                if overwrite_inside(self.root, ROOT_STATUS, data):
                    log.info("status_overwritten_in_place", file=ROOT_STATUS)
                    return
            except OSError:
                return

    def write(self, snap: Snapshot, last_good: Snapshot | None = None) -> None:
        """Write every status file for a snapshot.

        Outputs that input errors hold back (a blocked scene's, or every one when nothing can
        be planned) are shown as ``input_error`` with the messages, never as they were last
        built; ``last_good`` is no longer drawn from (kept for the callers' sake).
        """
        shown = snap if snap.planned else None
        jobs = self.owner.jobs.latest() if self.owner is not None else {}
        notes = dict(self.owner.notes) if self.owner is not None else {}
        lacking = dict(self.owner.no_backend) if self.owner is not None else {}
        clock = self.owner.jobs.durations() if self.owner is not None else {}
        scenes: dict[int, list[tuple[PlanItem, Job | None]]] = {}
        for item in shown.items if shown is not None else []:
            if item.artifact.scene is not None:
                scenes.setdefault(item.artifact.scene, []).append((item, jobs.get(item.path)))
        for number, pairs in scenes.items():
            if self._step is not None:
                self._step()
            rel = f"scene-{number:02d}/status.json"
            drawn = (tuple(pairs),
                     tuple(sorted((p, lacking[p]) for i, _ in pairs if (p := i.path) in lacking)),
                     tuple(sorted((p, notes[p]) for i, _ in pairs if (p := i.path) in notes)))
            running = any(j is not None and j.state == "running" for _, j in pairs)
            if self._drawn.get(number) == drawn and rel not in self._failed and not running:
                continue
            entries = [artifact_entry(i, j, lacking, notes.get(i.path))
                       | progress_fields(i, j, clock) for i, j in pairs]
            self._write(rel, {"format": FORMAT, "scene": number, "artifacts": entries})
            if rel not in self._failed:
                self._drawn[number] = drawn
        self._write_held(snap, set(scenes))
        self._drop_removed(snap)
        self._write(ROOT_STATUS, self.root_document(snap, shown, jobs),
                    volatile=("updated_at", "eta_s"))

    def write_root(self, snap: Snapshot) -> None:
        """Write the root file alone (the daemon's state on stop: no pass over every scene,
        which takes seconds on thousands of them)."""
        jobs = self.owner.jobs.latest() if self.owner is not None else {}
        self._write(ROOT_STATUS, self.root_document(snap, snap if snap.planned else None, jobs),
                    volatile=("updated_at", "eta_s"))

    def _write_held(self, snap: Snapshot, planned: set[int]) -> None:
        """The status files of the scenes input errors hold back: each output ``input_error``
        (the files themselves untouched), and the errors themselves."""
        for number, (entries, errors) in sorted(held_scenes(snap).items()):
            if number in planned:
                continue
            self._drawn.pop(number, None)  # drawn anew once the scene can be planned again
            self._write(f"scene-{number:02d}/status.json",
                        {"format": FORMAT, "scene": number, "artifacts": entries,
                         "input_errors": [d.as_dict() for d in errors]})

    def _drop_removed(self, snap: Snapshot) -> None:
        """Remove the status file of a scene no longer in the breakdown (its outputs stay on
        disk, listed as ``orphaned`` in the root status)."""
        if snap.scene_numbers is None:
            return  # unreadable: which scenes exist is not known
        for path in sorted(self.root.glob("scene-*/status.json")):
            number = path.parent.name.removeprefix("scene-")
            if not number.isdigit() or int(number) in snap.scene_numbers:
                continue
            rel = f"{path.parent.name}/status.json"
            try:
                remove_inside(self.root, rel)
            except OSError as exc:
                log.warning("status_not_removed", file=rel, error=str(exc))
                continue
            self._last.pop(rel, None)
            self._drawn.pop(int(number), None)
            log.info("scene_removed", scene=int(number), status=rel)

    def root_document(self, snap: Snapshot, shown: Snapshot | None,
                      jobs: dict[str, Job]) -> dict[str, Any]:
        """The root status.json."""
        items = shown.items if shown is not None else []
        lacking = dict(self.owner.no_backend) if self.owner is not None else {}
        clock = self.owner.jobs.durations() if self.owner is not None else {}
        counts = all_counts(snap, jobs, lacking)
        waiting = waiting_markers(items)
        backends = [b.health() for b in self.owner.backends.values()] if self.owner else []
        errors = [*snap.diagnostics, *([self.config_error] if self.config_error else [])]
        # Phase 2.5 assets have no scene status file: they are listed here.
        assets = [artifact_entry(i, jobs.get(i.path), lacking)
                  | progress_fields(i, jobs.get(i.path), clock)
                  for i in items if i.artifact.scene is None]
        assets += [held_entry(h, snap.held_by(h)) for h in snap.held if h.scene is None]
        attention = attention_list(self.root, snap, items, jobs, lacking, backends,
                                   self.config_error)
        eta, untimed = queue_eta(items, jobs, clock, max(1, len(backends)))
        return {
            "format": FORMAT,
            "version": __version__,
            "daemon": {"state": self.state, "pid": os.getpid()},
            # ok: nothing needs a person (no input error, failure, backend problem, full
            # disk, ...).
            "ok": snap.ok and self.fault is None
            and not any(a["kind"] != WAITING for a in attention),
            "errors": [d.as_dict() for d in errors]
            + ([self.fault.as_dict()] if self.fault else []),
            "counts": counts,
            "backends": backends,
            "waiting_for_approval": {k: sorted(set(v)) for k, v in sorted(waiting.items())},
            "assets": assets,
            "attention": attention,
            "eta_s": eta,
            # Jobs waiting or running whose template was never timed: not in eta_s.
            "eta_untimed": untimed,
            # Files built for scenes no longer in the breakdown: kept on disk, listed once.
            "orphaned": list(snap.orphaned),
            # The film of the scene videos (film.mp4, film-preview.mp4 on preview): its
            # length and which scenes hold a still because their video is not made yet.
            "film": self._film(),
            "updated_at": snap.taken_at,
        }


    def _film(self) -> dict[str, Any] | None:
        entry = self.owner.film_entry if self.owner is not None else None
        return dict(entry) if entry is not None else None


def progress_fields(item: PlanItem, job: Job | None,
                    durations: Mapping[tuple[str, str], float]) -> dict[str, Any]:
    """started_at, elapsed, queue position and ETA of an artifact's current job.

    The ETA is the mean duration keyframed measured for the artifact's template on the
    job's backend (``.keyframed/state.db``, table ``durations``) less the time already spent;
    None until one job of that template has finished there.
    """
    job = _current(item, job)
    live = job is not None and job.state in LIVE_STATES
    started = job.started_at if live and job is not None else None
    elapsed = max(0.0, time.time() - started) if started is not None else None
    eta = None
    if live and job is not None:
        mean = durations.get((item.artifact.recipe.template, job.backend or "")) \
            or _any_backend(durations, item.artifact.recipe.template)
        if mean is not None:
            eta = round(max(0.0, mean - (elapsed or 0.0)), 1)
    return {
        "started_at": started,
        "elapsed_s": None if elapsed is None else round(elapsed, 1),
        "queue_position": job.queue_position if live and job is not None else None,
        "eta_s": eta,
    }


def _any_backend(durations: Mapping[tuple[str, str], float], template: str) -> float | None:
    """The mean duration of a template on whichever backend measured it (a job not yet sent)."""
    seen = [v for (t, _), v in durations.items() if t == template]
    return sum(seen) / len(seen) if seen else None


def queue_eta(items: list[PlanItem], jobs: Mapping[str, Job],
              durations: Mapping[tuple[str, str], float], lanes: int) -> tuple[float | None, int]:
    """Seconds until everything queued or running is done, from measured durations, spread
    over the backends (None while nothing waits or no duration is known yet); and how many of
    those jobs have no measured duration yet, which the seconds leave out (a first run's
    templates are timed by their first job)."""
    etas = [progress_fields(i, job, durations)["eta_s"] for i in items
            if (job := _current(i, jobs.get(i.path))) is not None and job.state in LIVE_STATES]
    timed = [float(e) for e in etas if e is not None]
    return (round(sum(timed) / lanes, 1) if timed else None), len(etas) - len(timed)


def attention_list(root: Path, snap: Snapshot, items: list[PlanItem], jobs: Mapping[str, Job],
                   lacking: Mapping[str, str], backends: list[dict[str, Any]],
                   config_error: Diagnostic | None) -> list[dict[str, str]]:
    """Everything a person has to act on, each with the next step (a command or a file)."""
    out: list[dict[str, str]] = []
    for d in snap.diagnostics:
        out.append(_note("input_error", f"{d.file}:{d.line}", d.message, edit_step(d)))
    if config_error is not None:
        out.append(_note("config_reload", f"{config_error.file}:{config_error.line}",
                         config_error.message, f"fix {config_error.file}, then reload again "
                         f"(`kill -HUP {os.getpid()}`); the old configuration stays in use"))
    for b in backends:
        if not b.get("up", True):
            where = b.get("url") or b["name"]
            out.append(_note("backend_down", b["name"], f"{where}: {b.get('error') or 'no answer'}",
                             f"start the ComfyUI server at {where} or fix its url in "
                             "keyframed.toml; `keyframed doctor` checks it"))
    for item in items:
        job = _current(item, jobs.get(item.path))
        if item.state != "stale" or job is None:
            continue
        if job.state == "failed":
            out.append(_note("failed", item.path, job.error or "failed",
                             retry_command(root, item)))
        elif job.state == "ready" and item.path in lacking:
            out.append(_note("no_backend", item.path, lacking[item.path],
                             "`keyframed doctor` names what to install, or add a backend that "
                             "has it to keyframed.toml"))
    out += [_note("unused_marker", rel, "no artifact of this scene is retried by this marker",
                  f"delete {rel}; `keyframed retry --help` lists the targets")
            for rel in unused_markers(root, snap)]
    for marker, paths in sorted(waiting_markers(items).items()):
        out.append(_note(WAITING, marker, f"{len(paths)} artifact(s) wait for this approval: "
                         + ", ".join(sorted(paths)), approval_step(root, marker)))
    return out


# The attention kind of a wait for an approval marker: a person's next step, not a problem
# (root ``ok`` stays true while only approvals are awaited).
WAITING = "awaiting_approval"


def waiting_markers(items: list[PlanItem]) -> dict[str, set[str]]:
    """Approval marker -> the artifacts that wait for it (missing, or approving old files)."""
    waiting: dict[str, set[str]] = {}
    for item in items:
        if item.state != "awaiting_approval":
            continue
        for reason in item.reasons:
            if reason.code in ("approval_missing", "approval_stale"):
                marker = reason.detail if reason.code == "approval_missing" else (
                    ASSETS_MARKER if item.artifact.gate == "assets"
                    else keyframes_marker(item.artifact.scene or 0))
                waiting.setdefault(marker, set()).add(item.path)
    return waiting


def approval_step(root: Path, marker: str) -> str:
    """What ends a wait for ``marker``: the file to drop, or the command that drops it."""
    if marker == ASSETS_MARKER:
        command = f"keyframed approve {root} assets"
    else:
        number = marker.removeprefix("scene-").split("/", 1)[0]
        command = f"keyframed approve {root} scene {int(number) if number.isdigit() else number}"
    return f"`touch {root / marker}` or `{command}`"


def edit_step(d: Diagnostic) -> str:
    """The next step of an input error: the line to edit, and how."""
    return f"edit {d.file} line {d.line}" + (f": {d.suggestion}" if d.suggestion else "")


def _note(kind: str, subject: str, message: str, next_step: str) -> dict[str, str]:
    return {"kind": kind, "subject": subject, "message": message, "next": next_step}


def retry_command(root: Path, item: PlanItem) -> str:
    """The command that makes a new take of a failed artifact, once its cause is fixed."""
    art = item.artifact
    if art.scene is None:
        return f"keyframed retry {root} asset {art.name}"
    target = art.name.removeprefix("keyframe-")
    return f"keyframed retry {root} scene {art.scene} {target}"


def unused_markers(root: Path, snap: Snapshot) -> list[str]:
    """``scene-XX/*.retry`` files that name no artifact of their scene: nothing consumes them."""
    if not snap.ok:
        return []
    names: dict[str, set[str]] = {}
    for art in snap.artifacts:
        if art.scene is not None:
            known = names.setdefault(f"scene-{art.scene:02d}", set())
            known.add(f"{art.name}.retry")
            if art.kind == "video":
                known.add("video.retry")
    unused = []
    for folder, known in sorted(names.items()):
        try:
            found = [e.name for e in os.scandir(root / folder) if e.name.endswith(".retry")]
        except OSError:
            continue
        unused += [f"{folder}/{n}" for n in sorted(found) if n not in known]
    return unused


def _holds(path: Path, data: bytes) -> bool:
    """True when the file at ``path`` (not through a symlink) holds exactly ``data``."""
    try:
        if path.is_symlink() or path.parent.is_symlink() or path.stat().st_size != len(data):
            return False
        return path.read_bytes() == data
    except OSError:
        return False


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_status(root: Path) -> dict[str, Any]:
    """The root status and every scene status, as one document (``status --json``)."""
    scenes = [doc for path in sorted(root.glob("scene-*/status.json"))
              if (doc := _read(path)) is not None]
    return {"project": _read(root / ROOT_STATUS), "scenes": scenes}
