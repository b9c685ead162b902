"""The level-triggered reconcile loop.

Events only wake it. Each pass re-derives the desired artifacts from the files
(:func:`~keyframed.daemon.snapshot.take_snapshot`), compares them with the jobs in the store,
and acts on the difference: new jobs for stale artifacts, superseded jobs for recipes that
changed, finished work written into place. A pass also runs at start and on a timer, so a
missed filesystem event heals itself.

Threads: the caller's thread runs passes; each backend has a small pool of worker threads
that run jobs and only report back through futures (they never write project files).

The project folder may vanish (deleted, renamed) while the daemon runs: passes then do nothing
but say so once in the log, and nothing is written (the folder is never re-created). When a
folder is back at the path, work goes on; if it is another folder (restored from a copy), the
state store is opened afresh from it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from keyframed.backends.base import Backend
from keyframed.backends.registry import make_backends
from keyframed.backends.requirements import lacking
from keyframed.daemon.hashing import HashCache
from keyframed.daemon.lock import ProjectLock
from keyframed.daemon.outputs import (
    BLOCKED,
    NO_SPACE,
    UserFileError,
    commit_output,
    heal_pending,
    output_obstacle,
    prune_cache,
    read_blob,
    restore_take_views,
    sweep_temp,
)
from keyframed.daemon.quiet import Signature, Watched, signature, watched
from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.status import StatusWriter, artifact_state
from keyframed.daemon.store import CACHE_BACKEND, Job, JobStore, Store
from keyframed.errors import (
    ComfyExecutionError,
    ComfyPermanentError,
    Diagnostic,
    KeyframedError,
    OutputError,
    ProjectError,
    SpaceError,
    StopRequested,
    TemplateError,
)
from keyframed.handlers.graph import closure
from keyframed.handlers.memo import PlanMemo
from keyframed.handlers.schedule import Slot, Want, assign, stack_key
from keyframed.handlers.verdict import PlanItem
from keyframed.inputs.contain import Containment
from keyframed.redact import redact
from keyframed.render.film_file import FilmWriter
from keyframed.render.sheets import SheetWriter
from keyframed.settings import Settings

log = structlog.get_logger(__name__)
# Progress reported by running jobs wakes the loop (a pass, to refresh status.json) at most
# this often.
PROGRESS_WAKE_S = 1.0
PERMANENT = (ComfyPermanentError, TemplateError, OutputError)


@dataclass
class InFlight:
    """A job handed to a backend's worker thread."""

    job: Job
    item: PlanItem
    backend: str
    future: Future[bytes]


# How soon a pass stopped by a full disk is tried again.
STALLED_RETRY_S = 5.0
# Jobs created between two calls of Reconciler.step (5,000 scenes: ~30,000 jobs).
STEP_EVERY = 100


def _no_step() -> None:
    """The default between-steps hook: go on (``keyframed run`` and tests)."""


def _no_snapshot_hook(snap: Snapshot) -> None:
    """The default snapshot hook: nothing to tell anyone."""


@dataclass
class PassResult:
    """What one reconcile pass did."""

    ok: bool = True
    stalled: bool = False  # the disk is full: the pass stopped and is retried soon
    stopped: bool = False  # a stop was requested: the pass ended between two steps
    created: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        """True when the pass changed any state."""
        return bool(self.created or self.superseded or self.dispatched or self.written
                    or self.failed)


class Reconciler:
    """Owns the store, the backends and the jobs of one project."""

    def __init__(
        self, root: Path, settings: Settings, *, store: Store | None = None,
        backends: list[Backend] | None = None, clock: Callable[[], float] = time.time,
        wake: threading.Event | None = None, targets: frozenset[str] | None = None,
    ) -> None:
        self.root = root
        self.settings = settings
        self.store = store or Store.for_project(root)
        self.lock = ProjectLock(root / ".keyframed")
        self.jobs = JobStore(self.store)
        self.clock = clock
        self.wake = wake or threading.Event()
        # When set, only these artifacts and what they are made from are built (one-shot use).
        self.targets = targets
        self._backends = backends
        self.backends: dict[str, Backend] = {}
        self.pools: dict[str, ThreadPoolExecutor] = {}
        self.inflight: dict[int, InFlight] = {}
        self.snapshot: Snapshot | None = None
        self.last_good: Snapshot | None = None
        self.own_writes: dict[str, tuple[int, int]] = {}
        # Called between the steps of a pass (scenes, files); the daemon sets it to ping the
        # watchdog and to raise StopRequested once a stop is asked for. on_snapshot is
        # called with each pass's snapshot before it is acted on (the daemon's READY=1).
        self.step: Callable[[], None] = _no_step
        self.on_snapshot: Callable[[Snapshot], None] = _no_snapshot_hook
        self.status = StatusWriter(root, self, step=self._step)
        self.sheets = SheetWriter(root, settings.run.max_image_pixels, step=self._step)
        self.film_file = FilmWriter(root, settings.run.max_image_pixels)
        self.passes = 0
        # What the last quiet pass read, and its signature (see _unchanged).
        self._quiet: tuple[Watched, Signature] | None = None
        # Kept across passes so a pass redoes only what changed (handlers/memo.py).
        self._memo = PlanMemo()
        self._hasher = HashCache(root, self.store)
        self._support_cache: dict[tuple[str, str], bool] = {}
        # Per ready job that no backend can take, why ("gpu1 lacks loras/x.safetensors"):
        # shown on the artifact, in root status and by ``run``, which stops on it.
        self.no_backend: dict[str, str] = {}
        self._lack_cache: dict[tuple[str, str], str] = {}
        self._progress_woken = 0.0  # monotonic time of the last wake for progress
        self._last_stack: dict[str, str] = {}  # backend -> model/LoRA stack of its last job
        self._identity: tuple[int, int] | None = None
        self._gone = False
        self.stalled: str | None = None  # why passes cannot write (a full disk), while so

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Heal interrupted writes and put jobs a crash left in flight back in line."""
        (self.root / ".keyframed").mkdir(exist_ok=True)
        self.lock.acquire()
        st = os.stat(self.root)
        self._identity = (st.st_dev, st.st_ino)
        healed = heal_pending(self.root, self.store)
        sweep_temp(self.root)
        for job in self.jobs.live():
            if job.state != "ready":
                # Re-dispatching reuses the prompt_id: the backend looks it up before any
                # resubmission, so work already done or queued is not run twice.
                self.jobs.set_state(job.id, "ready")
        log.info("daemon_started", project=str(self.root), healed=healed)

    def close(self, wait: bool = False) -> None:
        """Stop worker pools and close connections; jobs in flight stay recorded."""
        for pool in self.pools.values():
            pool.shutdown(wait=wait, cancel_futures=True)
        for backend in self.backends.values():
            backend.close()
        self.store.close()
        self.lock.release()

    def _root_ok(self) -> bool:
        """False while the project folder is missing; reopen the store if it was replaced."""
        try:
            st = os.stat(self.root)
            if not os.path.isdir(self.root):
                raise NotADirectoryError(self.root)
        except OSError as exc:
            if not self._gone:
                log.error("project_folder_missing", project=str(self.root),
                          error=exc.strerror or type(exc).__name__)
            self._gone = True
            return False
        if self._gone:
            log.info("project_folder_back", project=str(self.root))
            self._gone = False
        identity = (st.st_dev, st.st_ino)
        if self._identity is not None and identity != self._identity:
            self._reopen()
        elif self._identity is not None and self.store.vanished():
            self._restore_state()
        self._identity = identity
        return True

    def _restore_state(self) -> None:
        """``.keyframed/`` was removed under a running daemon: put the state back from the
        open (deleted) database and take the lock on the new folder, so nothing built is
        forgotten and no second daemon can start there (DESIGN §6; README "Reliability")."""
        log.error("state_folder_vanished", folder=str(self.root / ".keyframed"),
                  fix="keyframed restored it from its open database; to start over, stop the "
                      "daemon first, then remove .keyframed/")
        self.lock.release()
        self.lock = ProjectLock(self.root / ".keyframed")
        self.lock.acquire()  # StoreError when another process took the new folder first
        self.store.restore()
        self._quiet = None

    def _reopen(self) -> None:
        """The folder at the path is another one now: start over from its own state store.

        Jobs in flight belong to the old store; their results are dropped (a ComfyUI backend
        finds a finished prompt again by its id, so nothing runs twice).
        """
        log.warning("project_folder_replaced", project=str(self.root))
        old_status = self.status
        self.reload(self.settings)
        self.inflight.clear()
        self.store.close()
        self.lock.release()
        self.store = Store.for_project(self.root)
        self.lock = ProjectLock(self.root / ".keyframed")
        self.jobs = JobStore(self.store)
        self._memo = PlanMemo()
        self._hasher = HashCache(self.root, self.store)
        self.own_writes.clear()
        self.snapshot = self.last_good = None
        self.status = StatusWriter(self.root, self, step=self._step)
        self.status.state = old_status.state
        self.status.config_error = old_status.config_error
        self.sheets = SheetWriter(self.root, self.settings.run.max_image_pixels,
                                  step=self._step)
        self.film_file = FilmWriter(self.root, self.settings.run.max_image_pixels)
        self.start()

    def _ensure_backends(self, snap: Snapshot) -> None:
        if self.backends:
            return
        assert snap.project is not None
        made = self._backends or make_backends(self.settings, self.root, self.store,
                                               snap.project.style)
        for backend in made:
            self.backends[backend.name] = backend
            self.pools[backend.name] = ThreadPoolExecutor(
                max_workers=backend.max_in_flight, thread_name_prefix=f"kf-{backend.name}"
            )

    # -- one pass -----------------------------------------------------------------------------

    @property
    def notes(self) -> dict[str, str]:
        """Per artifact, what the contact sheets could not show (a video that does not decode)."""
        return self.sheets.notes

    @property
    def film_entry(self) -> dict[str, Any] | None:
        """The film's entry in root status.json (None before it was drawn or found)."""
        return self.film_file.entry

    def _state_of(self) -> Callable[[PlanItem], str]:
        latest = self.jobs.latest()
        return lambda item: artifact_state(item, latest.get(item.path), self.no_backend)

    def finish_film(self) -> None:
        """Draw the film now if it is out of date, whatever is still queued or running: the
        end of ``keyframed run``, so a run always leaves the film of what it made."""
        snap = self.snapshot
        if snap is None or not snap.planned or self.targets is not None or self._gone:
            return
        self.film_file.write(snap, self._state_of(), force=True)

    def _step(self) -> None:
        """Between two steps of a pass (see :attr:`step`, which may be replaced)."""
        self.step()

    def reconcile_once(self) -> PassResult:
        """One level-triggered pass: read, compare, act, write status.

        A full disk stops the pass, not the daemon: the pass reports it (``stalled``) and the
        next one, a few seconds later, goes on where this one stopped; finished jobs whose
        output could not be written keep their bytes until it can. A stop request
        (:class:`StopRequested` from :attr:`step`) ends the pass between two steps
        (``stopped``): each step is whole on disk and in the store, and the next pass or
        start does the rest.
        """
        try:
            return self._guarded_pass()
        except StopRequested:
            self._quiet = None
            log.info("pass_stopped", passes=self.passes,
                     reason="stop requested; the next start carries on")
            return PassResult(stopped=True)

    def _guarded_pass(self) -> PassResult:
        try:
            result = self._reconcile()
        except (SpaceError, OSError) as exc:
            if isinstance(exc, OSError) and exc.errno not in NO_SPACE:
                raise
            return self._stalled(str(exc) if isinstance(exc, SpaceError) else
                                 f"{self.root}: the disk is full ({exc.strerror}); free some "
                                 "space there: keyframed goes on by itself")
        if self.stalled is not None:
            log.info("disk_space_back", project=str(self.root),
                     takes_restored=restore_take_views(self.root, self.store))
            self.stalled = None
            self.status.fault = None
            if self.snapshot is not None:
                self.status.write(self.snapshot, self.last_good)
        return result

    def _stalled(self, message: str) -> PassResult:
        if self.stalled != message:
            log.error("disk_full", project=str(self.root), error=message)
        self.stalled = message
        self.status.fault = Diagnostic(".keyframed/state.db", 1, 1, message,
                                       "free space on that disk; keyframed resumes by itself")
        self._quiet = None
        if self.snapshot is not None:
            self.status.write(self.snapshot, self.last_good)  # if there is room for it
        return PassResult(ok=False, stalled=True)

    def _reconcile(self) -> PassResult:
        self.passes += 1
        result = PassResult()
        if not self._root_ok():
            result.ok = False
            return result
        if self.stalled is not None:
            # A full disk can strike between an output's rename and its record: confirm such
            # writes now, or the next plan would take keyframed's own file for the user's.
            heal_pending(self.root, self.store)
        # Finished work is written first, so the snapshot below already sees it.
        self._collect(result)
        if self._unchanged():
            self._dispatch(self.snapshot, result)  # type: ignore[arg-type]
            return result
        snap = take_snapshot(self.root, self.settings, self.store, record=True,
                             hasher=self._hasher, memo=self._memo, step=self._step)
        self.snapshot = snap
        self.on_snapshot(snap)
        for d in snap.diagnostics:
            log.error("input_error", file=d.file, line=d.line, error=d.message)
        result.ok = snap.ok
        if not snap.planned:
            self.status.write(snap, self.last_good)
            return result
        # A scene with input errors blocks only itself: the others are built as usual.
        self.last_good = snap
        self._ensure_backends(snap)
        self._step()
        self._copies(snap, result)
        restored = self._restores(snap, result)
        self._sync_jobs(snap, result, restored)
        self._step()
        self._dispatch(snap, result)
        if result.written:
            # What was just written changes what is stale downstream: look again at once.
            self.wake.set()
            self._evict()
        self.status.write(snap, None)
        noted, film = self.sheets.notes, self.film_file.entry
        state_of = self._state_of()
        self.sheets.write(snap, state_of)
        if self.targets is None:  # a one-shot build makes its targets, not the film
            self.film_file.write(snap, state_of)
        if self.sheets.notes != noted or self.film_file.entry != film:
            # A video the sheets could not read, or a film drawn (or not): say so.
            self.status.write(snap, None)
        if not result.changed and not self.inflight:
            paths = watched(snap)
            quiet = signature(paths, self.store.generation)
            self._quiet = (paths, quiet) if quiet is not None else None
        return result

    def _unchanged(self) -> bool:
        """True when nothing the last good pass read has changed (see :mod:`.quiet`)."""
        last, self._quiet = self._quiet, None
        snap = self.snapshot
        if last is None or snap is None or not snap.ok or self.inflight:
            return False
        paths, before = last
        if signature(paths, self.store.generation) != before:
            return False
        self._quiet = last
        return True

    def _collect(self, result: PassResult) -> None:
        for job_id, run in list(self.inflight.items()):
            if not run.future.done():
                continue
            del self.inflight[job_id]
            current = self.jobs.get(job_id)
            if current is None or current.state not in ("submitted", "running"):
                continue  # superseded meanwhile: its result is not wanted
            error = run.future.exception()
            if error is None:
                try:
                    self._finish(run, run.future.result(), result)
                    if current.started_at is not None:
                        self.jobs.record_duration(run.item.artifact.recipe.template, run.backend,
                                                  time.time() - current.started_at)
                except SpaceError:
                    self.inflight[job_id] = run  # its bytes are written once there is room
                    raise
                except OutputError as exc:
                    if not os.path.isdir(self.root):
                        self.jobs.set_state(job_id, "ready")  # the folder went away meanwhile
                        continue
                    self._failed(current, run, exc, result)
            else:
                self._failed(current, run, error, result)

    def _finish(self, run: InFlight, data: bytes, result: PassResult) -> None:
        try:
            commit_output(self.root, self.store, run.item, data, backend=run.backend,
                          job_id=run.job.id)
        except UserFileError as exc:
            self.jobs.set_state(run.job.id, "superseded", error=str(exc))
            log.warning("user_file_kept", artifact=run.item.path, error=str(exc))
            return
        st = (self.root / run.item.path).stat()
        self.own_writes[run.item.path] = (st.st_size, st.st_mtime_ns)
        result.written.append(run.item.path)
        log.info("artifact_written", artifact=run.item.path, scene=run.item.artifact.scene,
                 backend=run.backend, job=run.job.id)

    def _failed(self, job: Job, run: InFlight, error: BaseException, result: PassResult) -> None:
        attempts = job.attempts + 1
        permanent = isinstance(error, PERMANENT) or not isinstance(error, KeyframedError)
        message = redact(f"{type(error).__name__}: {error}")
        if isinstance(error, ComfyExecutionError) and not (job.error or "").startswith(
                f"{type(error).__name__}:"):
            # Only an execution error that repeats is final (a server that ran out of memory
            # once may well succeed); the backend runs the retry under a new prompt id.
            permanent = False
        if permanent or attempts >= self.settings.run.max_attempts:
            self.jobs.set_state(job.id, "failed", attempts=attempts, error=message)
            result.failed.append(job.path)
            log.error("job_failed", artifact=job.path, backend=run.backend, error=message,
                      attempts=attempts)
            return
        delay = min(self.settings.run.retry_max_s,
                    self.settings.run.retry_initial_s * 2 ** attempts) * random.uniform(0.5, 1)
        self.jobs.set_state(job.id, "ready", attempts=attempts, error=message,
                            not_before=self.clock() + delay)
        log.warning("job_retry", artifact=job.path, backend=run.backend, error=message,
                    attempts=attempts, delay=round(delay, 2))

    def _copies(self, snap: Snapshot, result: PassResult) -> None:
        """Copy steps (a landscape's keyframe-start kept as its background layer) run here."""
        for item in snap.items:
            if item.state != "stale" or item.artifact.recipe.step != "copy":
                continue
            self._step()
            source = self.root / item.artifact.recipe.inputs[0].path
            try:
                commit_output(self.root, self.store, item, source.read_bytes(), backend=None)
            except (OSError, UserFileError, OutputError) as exc:
                log.warning("copy_failed", artifact=item.path, error=str(exc))
                continue
            result.written.append(item.path)

    def _restores(self, snap: Snapshot, result: PassResult) -> set[str]:
        """Restore from the output cache every stale artifact whose exact recipe was built
        before (undo, A/B flip-flops, picks): a local write like a copy, no job, no upload.

        A damaged entry (missing bytes, or bytes that no longer match their hash) is dropped,
        and the artifact is left to :meth:`_sync_jobs`, which builds it normally. Returns the
        paths restored, which get no job this pass.
        """
        entries = self.store.cache_entries()
        wanted = self._wanted(snap)
        done: set[str] = set()
        damaged: list[str] = []
        for item in snap.items:
            fp = item.status.fingerprint
            entry = entries.get(fp or "") if item.state == "stale" else None
            if entry is None or item.artifact.recipe.step == "copy" or (
                    wanted is not None and item.path not in wanted):
                continue
            data = read_blob(self.root, entry)
            if data is None:
                damaged.append(entry.fingerprint)
                log.warning("cache_entry_damaged", artifact=item.path, fingerprint=fp)
                continue
            try:
                commit_output(self.root, self.store, item, data, backend=CACHE_BACKEND,
                              restored=True)
            except (UserFileError, OutputError) as exc:
                log.warning("restore_failed", artifact=item.path, error=str(exc))
                continue
            st = (self.root / item.path).stat()
            self.own_writes[item.path] = (st.st_size, st.st_mtime_ns)
            done.add(item.path)
            result.written.append(item.path)
            log.info("artifact_restored", artifact=item.path, scene=item.artifact.scene,
                     take=item.artifact.recipe.take)
        if damaged:
            self.store.cache_drop(damaged)
        return done

    def _evict(self) -> None:
        """Keep the output cache within its configured bound (least recently used first)."""
        gone = prune_cache(self.root, self.store, self.settings.cache.max_mb * 1024 * 1024)
        if gone:
            log.info("cache_evicted", entries=len(gone))

    def _wanted(self, snap: Snapshot) -> set[str] | None:
        """The target artifacts and everything they are made from, or None for all."""
        if self.targets is None:
            return None
        return {a.path for a in closure(snap.artifacts, self.targets)}

    def _sync_jobs(self, snap: Snapshot, result: PassResult,
                   restored: set[str] | frozenset[str] = frozenset()) -> None:
        wanted = self._wanted(snap)
        ready = {i.path: i for i in snap.items
                 if i.state == "stale" and i.artifact.recipe.step != "copy"
                 and i.path not in restored and (wanted is None or i.path in wanted)}
        live = {j.path: j for j in self.jobs.live()}
        for path, job in live.items():
            item = ready.get(path)
            if item is None or item.status.fingerprint != job.fingerprint:
                self._supersede(job, result)
        latest = self.jobs.latest()
        for n, (path, item) in enumerate(ready.items()):
            if n % STEP_EVERY == 0:
                self._step()  # each job is its own transaction: stopping here is safe
            last = latest.get(path)
            # Skip what is already on its way, or failed until its recipe changes (or, for a
            # job that failed on a blocked output path, until the path is cleared).
            if (last is not None and last.fingerprint == item.status.fingerprint
                    and last.state in ("ready", "submitted", "running", "failed")
                    and not self._unblocked(last)):
                continue
            fp = item.status.fingerprint or ""
            self.jobs.create(path, fp, item.artifact.recipe.take,
                             item.artifact.recipe.model_dump_json())
            result.created.append(path)

    def _unblocked(self, job: Job) -> bool:
        """True for a job that failed on a blocked output path which is clear now."""
        return (job.state == "failed" and BLOCKED in (job.error or "")
                and output_obstacle(self.root, job.path) is None)

    def _blocked(self, job: Job, result: PassResult) -> bool:
        """Fail a job whose output path is blocked, before any GPU time is spent on it."""
        problem = output_obstacle(self.root, job.path)
        if problem is None:
            return False
        self.jobs.set_state(job.id, "failed", error=problem)
        result.failed.append(job.path)
        log.error("job_failed", artifact=job.path, error=problem, attempts=job.attempts)
        return True

    def _supersede(self, job: Job, result: PassResult) -> None:
        self.jobs.set_state(job.id, "superseded")
        result.superseded.append(job.path)
        run = self.inflight.pop(job.id, None)
        if run is not None:
            self.backends[run.backend].cancel(job.fingerprint, run.item.artifact)
        log.info("job_superseded", artifact=job.path, job=job.id)

    def _supports(self, backend: Backend, item: PlanItem) -> bool:
        recipe = item.artifact.recipe
        key = (backend.name, f"{stack_key(recipe)}:{len(recipe.inputs)}")
        # What a server offers is cached, but a backend that is down is asked again each time:
        # it takes no job until it has answered a probe.
        if not self._support_cache.get(key) or not backend.health().get("up", True):
            self._support_cache[key] = backend.supports(item.artifact)
        return self._support_cache[key]

    def _dispatch(self, snap: Snapshot, result: PassResult) -> None:
        now = self.clock()
        due = [j for j in self.jobs.live()
               if j.state == "ready" and j.id not in self.inflight and j.not_before <= now]
        if not due:
            return  # before the maps below: they cost ~10 ms a pass at 1,000 scenes
        items = {i.path: i for i in snap.items}
        order = {i.path: n for n, i in enumerate(snap.items)}
        waiting = [j for j in due
                   if j.path in items and items[j.path].status.fingerprint == j.fingerprint]
        waiting = [j for j in waiting if not self._blocked(j, result)]
        if not waiting:
            return
        wants = [Want(job_id=j.id, stack=stack_key(items[j.path].artifact.recipe),
                      order=order[j.path]) for j in waiting]
        slots = [self._slot(b, waiting, items) for b in self.backends.values()]
        by_id = {j.id: j for j in waiting}
        self._note_no_backend(waiting, items, slots)
        for job_id, name in assign(wants, slots):
            self._start(by_id[job_id], items[by_id[job_id].path], name)
            result.dispatched.append(by_id[job_id].path)

    def _note_no_backend(self, waiting: list[Job], items: dict[str, PlanItem],
                         slots: list[Slot]) -> None:
        """Record (and log, once) why no backend can take each waiting job that none can."""
        can_any: set[int] = set().union(*(s.can_run for s in slots))
        live = {j.path for j in self.jobs.live() if j.state == "ready"}
        now = {j.path: self._why_none(items[j.path]) for j in waiting if j.id not in can_any}
        for path, why in now.items():
            if self.no_backend.get(path) != why:
                log.warning("no_backend", artifact=path, scene=items[path].artifact.scene,
                            reason=why)
        asked = {j.path for j in waiting}
        kept = {p: w for p, w in self.no_backend.items() if p in live and p not in asked}
        self.no_backend = kept | now

    def _why_none(self, item: PlanItem) -> str:
        """Why no backend can make the artifact, one clause per backend."""
        parts = []
        for backend in self.backends.values():
            key = (backend.name, stack_key(item.artifact.recipe))
            # A backend that is down is described afresh (its error changes); what an up
            # server lacks is cached until the settings are reloaded.
            if key not in self._lack_cache or not backend.health().get("up", True):
                self._lack_cache[key] = lacking(backend, item.artifact, self.root,
                                                self.settings)
            parts.append(self._lack_cache[key])
        return "; ".join(parts) or "no backend is configured"

    def _slot(self, backend: Backend, waiting: list[Job], items: dict[str, PlanItem]) -> Slot:
        busy = sum(1 for r in self.inflight.values() if r.backend == backend.name)
        can = frozenset(j.id for j in waiting if self._supports(backend, items[j.path]))
        # The stack of the last job sent there, finished or not: it is what the server has
        # loaded (with one job in flight, the finished job used to leave no stack at all).
        return Slot(name=backend.name, free=backend.max_in_flight - busy,
                    last_stack=self._last_stack.get(backend.name, ""), can_run=can)

    def _start(self, job: Job, item: PlanItem, backend_name: str) -> None:
        backend = self.backends[backend_name]
        self.jobs.set_state(job.id, "submitted", backend=backend_name)
        inputs = {i.path: self.root / i.path for i in item.artifact.recipe.inputs}
        future = self.pools[backend_name].submit(self._execute, backend, job, item, inputs)
        self.inflight[job.id] = InFlight(job=job, item=item, backend=backend_name, future=future)
        self._last_stack[backend_name] = stack_key(item.artifact.recipe)
        log.info("job_dispatched", artifact=job.path, scene=item.artifact.scene,
                 backend=backend_name, job=job.id, reasons=[str(r) for r in item.reasons])

    def _execute(self, backend: Backend, job: Job, item: PlanItem,
                 inputs: dict[str, Path]) -> bytes:
        """Worker thread: run one job; wake the loop when done, whatever happened."""
        progress = _JobProgress(self, job.id)
        try:
            self.jobs.set_state(job.id, "running", backend=backend.name, started_at=time.time(),
                                queue_position=None)
            # The snapshot checked the inputs; a folder swapped for a symlink since then must
            # not make the backend read (and send to a server) a file from outside.
            contain = Containment(self.root)
            escaped = [rel for rel in inputs if contain.escapes(rel)]
            if escaped:
                raise ProjectError([Diagnostic(escaped[0], 1, 1, "leads outside the project "
                                               "through a symlink; not read")])
            return backend.execute(job.fingerprint, item.artifact, inputs, progress)
        finally:
            self.wake.set()

    # -- driving ------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while jobs run or wait to run."""
        return bool(self.inflight) or any(j.state == "ready" for j in self.jobs.live())

    def run_until_idle(self, timeout: float | None = None,
                       stop: threading.Event | None = None) -> Snapshot | None:
        """Reconcile until nothing is left to do (or a timeout or stop), for ``keyframed run``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self.wake.clear()
            result = self.reconcile_once()
            if not result.ok and (self.snapshot is None or not self.snapshot.planned):
                # Nothing can be built (a scene with errors blocks only itself).
                return self.snapshot
            if not self.busy and not result.changed:
                return self.snapshot
            if stop is not None and stop.is_set():
                return self.snapshot
            if deadline is not None and time.monotonic() > deadline:
                return self.snapshot
            self.wake.wait(timeout=self._next_due())

    def is_own_write(self, rel: str, st: object) -> bool:
        """True when ``rel`` still holds exactly what this daemon last wrote there."""
        known = self.own_writes.get(rel)
        if known is None or st is None:
            return False
        return known == (getattr(st, "st_size", -1), getattr(st, "st_mtime_ns", -1))

    def reload(self, settings: Settings) -> None:
        """Take new settings; backends are rebuilt on the next pass."""
        self.settings = settings
        for backend in self.backends.values():
            backend.close()
        self.backends.clear()
        self.pools.clear()
        self._support_cache.clear()
        self._lack_cache.clear()
        self.no_backend.clear()

    def next_due(self) -> float:
        """Seconds until a job waiting on backoff becomes ready; the resync interval if none.

        An idle daemon therefore sleeps until an event, a backoff or the periodic resync,
        instead of polling.
        """
        if self.stalled is not None:
            return STALLED_RETRY_S
        now = self.clock()
        live = self.jobs.live()
        waits = [j.not_before - now for j in live if j.not_before > now]
        if any(j.state == "ready" for j in live):
            # Work waits for a backend that is down: wake for its next probe.
            healths = [b.health() for b in self.backends.values()]
            waits += [float(h["retry_at"]) - now for h in healths
                      if not h.get("up", True) and isinstance(h.get("retry_at"), int | float)]
        return max(0.01, min([self.settings.watch.resync_s, *waits]))

    def _next_due(self) -> float:
        """Seconds until a job waiting on backoff becomes ready (capped)."""
        now = self.clock()
        waits = [j.not_before - now for j in self.jobs.live() if j.not_before > now]
        return max(0.01, min([1.0, *waits]))


class _JobProgress:
    """What a running job reports, recorded for status.json (called from a worker thread)."""

    def __init__(self, owner: Reconciler, job_id: int) -> None:
        self.owner = owner
        self.job_id = job_id
        self.last = 0.0
        self._position: int | None = None

    def __call__(self, value: float) -> None:
        if value - self.last < 0.05 and value < 1.0:
            return
        self.last = value
        self.owner.jobs.progress(self.job_id, value)
        # A pass refreshes status.json with the new progress, but a whole pass for every 5 %
        # of every job kept the loop from dispatching (bench/throughput.py).
        now = time.monotonic()
        if now - self.owner._progress_woken >= PROGRESS_WAKE_S:
            self.owner._progress_woken = now
            self.owner.wake.set()

    def submitted(self, prompt_id: str) -> None:
        self.owner.jobs.note_prompt(self.job_id, prompt_id)

    def queued(self, position: int) -> None:
        """Where the job is in its server's line (0: running there); stored when it moves."""
        if position != self._position:
            self._position = position
            self.owner.jobs.queue_position(self.job_id, position)
