"""The filesystem watcher: turns bursts of file events into single wake-ups of the loop.

The reconcile loop is level-triggered (DESIGN §6): it re-reads the project on every pass and
never looks at what an event said. So this module only has to answer "did something that
could matter change?", once per save, and "could we have missed something?".

* Every event goes through a filter (:mod:`keyframed.daemon.watch_filter` for paths; reads,
  directory-modified and attribute events are dropped by type). A moved event counts through
  either of its paths, because an atomic save arrives as ``moved tmp -> target``.
* Events that pass are collected and fed to a :class:`Debouncer`: one save by any editor is a
  burst of 1-25 events within a few milliseconds, and gives one wake after ``quiet_ms`` of
  silence (trailing debounce), or after ``cap_ms`` when activity never stops.
* Own writes are judged when the burst is flushed, not when the event arrives: the daemon
  records what it wrote (size, mtime) just after ``os.replace``, which can be after the event
  reached us. By the end of the quiet window the record exists, and ``is_own_write`` is asked
  with a fresh ``lstat``; a burst made only of own writes wakes nobody.
* Lost sync: watchdog reports no queue overflow to handlers and stops its emitter silently
  when the watched folder is deleted. A health check (every 0.5 s, and at once on a root
  event) looks at the observer's threads and the root folder's identity, and the inotify
  overflow warning watchdog logs is caught. Any of these calls ``on_lost_sync(reason)`` and
  ``wake()``, and the observer is restarted with backoff; after a restart the loop is woken
  again, since anything between the two was unseen.
* Kernel queue overflows (inotify's queue holds 16,384 events by default): the watch asks the
  kernel only for the events that can matter (no opens, no closes of files read: the daemon
  itself reads every input and image of every scene in a pass, and those events were most of
  the queue on 5,000 scenes). An overflow that still happens wakes the loop for a full
  re-check; overflows in a row (one burst, no quiet :data:`OVERFLOW_BURST_S` between them)
  are logged once, with their count logged when the burst ends.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from keyframed.daemon.watch_filter import ignored_path

log = structlog.get_logger(__name__)

OwnWrite = Callable[[str, os.stat_result | None], bool]

HEALTH_INTERVAL_S = 0.5
RESTART_BACKOFF_S = (0.1, 5.0)  # first delay, ceiling; doubles in between
STABLE_S = 30.0  # an observer that ran this long after a restart resets the backoff
_JOIN_TIMEOUT_S = 5.0
_DROPPED_TYPES = frozenset({"opened", "closed_no_write", "attrib"})
_DIR_TYPES = frozenset({"deleted", "moved"})
# watchdog warns of an overflow on two loggers below this one (inotify_c, inotify).
_OVERFLOW_LOGGER = "watchdog.observers"
OVERFLOW_BURST_S = 10.0
# The events asked of the kernel: what changes a file's bytes or a folder's entries. Opens
# and closes of files read are left out (the daemon reads thousands a pass; see above).
EVENT_FILTER = [FileCreatedEvent, DirCreatedEvent, FileMovedEvent, DirMovedEvent,
                FileDeletedEvent, DirDeletedEvent, FileModifiedEvent, FileClosedEvent]


class Debouncer:
    """Trailing-edge debounce with a cap, over an injected clock (pure logic, no threads).

    A burst starts at its first :meth:`note`; it is due once ``quiet`` seconds pass with no
    new note, or ``cap`` seconds after it started, whichever comes first. :meth:`reset` ends
    the burst; the next note starts a new one.
    """

    def __init__(self, quiet: float, cap: float) -> None:
        """Create a debouncer.

        Args:
            quiet: Seconds of silence that end a burst.
            cap: Longest a burst may last before it is due anyway (at least ``quiet``).
        """
        if quiet <= 0 or cap < quiet:
            raise ValueError(f"need 0 < quiet <= cap, got quiet={quiet} cap={cap}")
        self.quiet = quiet
        self.cap = cap
        self._first: float | None = None
        self._last = 0.0

    @property
    def pending(self) -> bool:
        """True while a burst has started and not been reset."""
        return self._first is not None

    def note(self, now: float) -> None:
        """Record one event at time ``now``."""
        if self._first is None:
            self._first = now
            self._last = now
        else:
            self._last = max(self._last, now)

    def next_deadline(self) -> float | None:
        """When the current burst becomes due, or None when there is none."""
        if self._first is None:
            return None
        return min(self._last + self.quiet, self._first + self.cap)

    def due(self, now: float) -> bool:
        """True when a burst is pending and its deadline has passed at ``now``."""
        deadline = self.next_deadline()
        return deadline is not None and now >= deadline

    def reset(self) -> None:
        """End the current burst."""
        self._first = None


def _rel(root: str, path: str | bytes) -> str | None:
    """Project-relative ``/`` path of an event path, "" for the root, None if outside."""
    text = os.fsdecode(path)
    if text == root:
        return ""
    if not text.startswith(root + os.sep):
        return None
    return text[len(root) + 1 :].replace(os.sep, "/")


def _event_paths(event: FileSystemEvent) -> list[str | bytes]:
    """The paths of an event worth judging; empty when its type never matters."""
    if event.event_type in _DROPPED_TYPES:
        return []  # reads (ours too) and metadata; content changes bring their own events
    if event.is_directory and event.event_type not in _DIR_TYPES:
        # Dir "modified" is watchdog's echo of a child event; a new empty folder changes no
        # plan, and files in it get their own events (also when a tree is moved in).
        return []
    if event.event_type == "moved":
        return [event.src_path, event.dest_path]
    return [event.src_path]


class _Handler(FileSystemEventHandler):
    """Forwards every watchdog event to the watcher, and never lets one kill the thread."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__()
        self._watcher = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._watcher._on_event(event)
        except Exception:  # an exception here would end watchdog's dispatch thread
            log.exception("watcher_event_failed", event=repr(event))


class _OverflowLog(logging.Handler):
    """Catches watchdog's inotify overflow warning, the only sign it gives of lost events."""

    def __init__(self, watcher: Watcher) -> None:
        super().__init__(logging.WARNING)
        self._watcher = watcher

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().lower()
        # watchdog 7 follows its warning with a second one ("reconciling recursive watches")
        # for the same overflow.
        if "overflow" in text and "reconciling" not in text:
            self._watcher._note_overflow()


class Watcher:
    """Watches a project folder and calls ``wake()`` once per burst of relevant changes."""

    def __init__(
        self,
        root: Path,
        wake: Callable[[], None],
        *,
        is_own_write: OwnWrite = lambda p, st: False,
        quiet_ms: int = 100,
        cap_ms: int = 2000,
        poll: bool = False,
        clock: Callable[[], float] = time.monotonic,
        on_lost_sync: Callable[[str], None] | None = None,
    ) -> None:
        """Create a watcher (nothing runs until :meth:`start`).

        Args:
            root: The project folder, watched recursively.
            wake: Called (from the watcher's thread) once per burst; must not block long.
            is_own_write: ``(rel_path, lstat or None) -> bool``; True when the daemon wrote
                that path and it is still exactly as written (or, for None, deleted it).
                Called from the watcher's thread, so it must be thread-safe.
            quiet_ms: Silence that ends a burst.
            cap_ms: Longest burst before a wake anyway.
            poll: Use watchdog's PollingObserver (network mounts, containers).
            clock: Monotonic seconds; drives debounce deadlines and health-check timing.
            on_lost_sync: Called with a reason when events may have been missed.
        """
        self.root = Path(os.path.abspath(root))
        self._root_str = str(self.root)
        self._wake = wake
        self._is_own_write = is_own_write
        self._poll = poll
        self._clock = clock
        self._on_lost_sync = on_lost_sync
        self._debouncer = Debouncer(quiet_ms / 1000, cap_ms / 1000)
        self._cond = threading.Condition()
        # Per event of the current burst, its paths that passed the filter; own writes are
        # judged at flush time (see the module docstring).
        self._batch: list[tuple[str, ...]] = []
        self._check_reason: str | None = None
        self._check_now = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._observer: BaseObserver | None = None
        self._identity: tuple[int, int] | None = None
        self._lost = False
        self._restart_at = 0.0
        self._restarted_at: float | None = None
        self._backoff = RESTART_BACKOFF_S[0]
        self._log_hook = _OverflowLog(self)
        self._overflow_pending = False
        self._burst: tuple[float, int] | None = None  # (last overflow, overflows in burst)
        self.overflows = 0
        self.wakes = 0
        self.events_seen = 0
        self.events_ignored = 0
        self.lost_syncs = 0
        self.restarts = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the observer and the debounce thread.

        Raises:
            OSError: The root is not a readable folder, or the observer cannot start.
        """
        if self._thread is not None:
            raise RuntimeError("watcher already started")
        self._observer = self._start_observer()
        logging.getLogger(_OVERFLOW_LOGGER).addHandler(self._log_hook)
        self._thread = threading.Thread(target=self._run, name="kf-watcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop everything and wait for the threads; a pending burst is dropped."""
        logging.getLogger(_OVERFLOW_LOGGER).removeHandler(self._log_hook)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_JOIN_TIMEOUT_S)
        self._drop_observer()

    def alive(self) -> bool:
        """True while the observer runs and is in sync (for the systemd watchdog ping)."""
        with self._cond:
            observer, lost = self._observer, self._lost
        thread_ok = self._thread is not None and self._thread.is_alive()
        return thread_ok and not lost and observer is not None and _threads_alive(observer)

    def _start_observer(self) -> BaseObserver:
        st = os.stat(self.root)
        if not os.path.isdir(self.root):
            raise NotADirectoryError(errno.ENOTDIR, "project root is not a folder", str(self.root))
        self._identity = (st.st_dev, st.st_ino)
        try:
            return self._launch(PollingObserver() if self._poll else Observer())
        except OSError as exc:
            if self._poll or exc.errno not in (errno.ENOSPC, errno.EMFILE):
                raise
            # inotify watch/instance limit: polling is slower but sees everything.
            log.warning("watcher_inotify_limit_polling", error=str(exc), root=self._root_str)
            self._poll = True
            return self._launch(PollingObserver())

    def _launch(self, observer: BaseObserver) -> BaseObserver:
        observer.schedule(_Handler(self), self._root_str, recursive=True,
                          event_filter=EVENT_FILTER)
        try:
            observer.start()
        except BaseException:
            _stop_observer(observer)
            raise
        return observer

    def _drop_observer(self) -> None:
        with self._cond:
            observer, self._observer = self._observer, None
        if observer is not None:
            _stop_observer(observer)

    # -- events (watchdog's dispatch thread) --------------------------------------------------

    def _on_event(self, event: FileSystemEvent) -> None:
        rels = [_rel(self._root_str, p) for p in _event_paths(event) if p]
        if "" in rels and event.event_type in _DIR_TYPES:
            self._request_check("project root was deleted or moved")
        kept = tuple(r for r in rels if r and not ignored_path(r))
        with self._cond:
            self.events_seen += 1
            if not kept:
                self.events_ignored += 1
                return
            self._batch.append(kept)
            self._debouncer.note(self._clock())
            self._cond.notify_all()

    def _note_overflow(self) -> None:
        with self._cond:
            self.overflows += 1
            self._overflow_pending = True
            self._check_now = True
            self._cond.notify_all()

    def _request_check(self, reason: str) -> None:
        with self._cond:
            self._check_reason = self._check_reason or reason
            self._check_now = True
            self._cond.notify_all()

    # -- the watcher's own thread -------------------------------------------------------------

    def _run(self) -> None:
        next_health = self._clock() + HEALTH_INTERVAL_S
        while True:
            with self._cond:
                if not self._wait(next_health):
                    return
                now = self._clock()
                batch = self._take_batch(now)
                restart_due = self._lost and now >= self._restart_at
                check = self._check_now or restart_due or now >= next_health
                self._check_now = False
            if batch is not None:
                self._flush(batch)
            if check:
                self._health()
                next_health = self._clock() + HEALTH_INTERVAL_S

    def _wait(self, next_health: float) -> bool:
        """Wait (holding the condition) until something is due; False when stopping."""
        if self._stopping:
            return False
        deadlines = [next_health]
        if (due := self._debouncer.next_deadline()) is not None:
            deadlines.append(due)
        if self._lost:
            deadlines.append(self._restart_at)
        timeout = min(deadlines) - self._clock()
        if timeout > 0 and not self._check_now:
            self._cond.wait(timeout)
        return not self._stopping

    def _take_batch(self, now: float) -> list[tuple[str, ...]] | None:
        if not self._debouncer.due(now):
            return None
        self._debouncer.reset()
        batch, self._batch = self._batch, []
        return batch

    def _flush(self, batch: list[tuple[str, ...]]) -> None:
        """Wake unless every event of the burst was one of the daemon's own writes."""
        verdicts: dict[str, bool] = {}
        own_events = 0
        for rels in batch:
            if all(self._own(rel, verdicts) for rel in rels):
                own_events += 1
        with self._cond:
            self.events_ignored += own_events
        if own_events < len(batch):
            self._call_wake()

    def _own(self, rel: str, verdicts: dict[str, bool]) -> bool:
        if rel not in verdicts:
            try:
                st: os.stat_result | None = os.lstat(self.root / rel)
            except OSError:
                st = None
            try:
                verdicts[rel] = bool(self._is_own_write(rel, st))
            except Exception:  # a broken callback must not hide a user's edit
                log.exception("watcher_own_write_check_failed", path=rel)
                verdicts[rel] = False
        return verdicts[rel]

    def _call_wake(self) -> None:
        with self._cond:
            self.wakes += 1
        try:
            self._wake()
        except Exception:
            log.exception("watcher_wake_failed")

    # -- lost sync and restarts ---------------------------------------------------------------

    def _health(self) -> None:
        with self._cond:
            lost, pending_reason = self._lost, self._check_reason
            overflow, self._overflow_pending = self._overflow_pending, False
            self._check_reason = None
        self._overflow_burst(overflow)
        if lost:
            self._try_restart()
            return
        reason = self._lost_reason()
        if reason is not None:
            self._lose(reason)
        elif pending_reason is not None:
            # Overflow: watchdog rebuilt its watches itself; only a resync is needed.
            self._report_lost(pending_reason)

    def _lost_reason(self) -> str | None:
        observer = self._observer
        if observer is None or not _threads_alive(observer):
            return "file watcher thread stopped (root deleted, or watchdog failed)"
        try:
            st = os.stat(self.root)
        except OSError as exc:
            return f"project root is gone: {exc.strerror}"
        if not os.path.isdir(self.root):
            return "project root is no longer a folder"
        if (st.st_dev, st.st_ino) != self._identity:
            return "project root folder was replaced"
        return None

    def _overflow_burst(self, overflow: bool) -> None:
        """Report an overflow once per burst; every one still wakes the loop (a full re-check
        of the project: cheap to ask twice, as wakes coalesce into one pass)."""
        now = self._clock()
        burst = self._burst
        if overflow:
            if burst is None:
                self._report_lost("kernel event queue overflowed; events were lost")
            else:
                self._report_lost("kernel event queue overflowed again (same burst)", quiet=True)
            self._burst = (now, 1 if burst is None else burst[1] + 1)
        elif burst is not None and now - burst[0] >= OVERFLOW_BURST_S:
            self._burst = None
            if burst[1] > 1:
                log.info("watcher_overflow_burst_ended", overflows=burst[1], root=self._root_str)

    def _lose(self, reason: str) -> None:
        self._drop_observer()
        with self._cond:
            self._lost = True
            now = self._clock()
            # A watcher that keeps dying right after each restart backs off instead of
            # flapping (each loss costs the loop a full pass).
            flapping = self._restarted_at is not None and now - self._restarted_at < STABLE_S
            first, ceiling = RESTART_BACKOFF_S
            self._backoff = min(self._backoff * 2, ceiling) if flapping else first
            self._restart_at = now + self._backoff
        self._report_lost(reason)

    def _report_lost(self, reason: str, quiet: bool = False) -> None:
        with self._cond:
            self.lost_syncs += 1
        if not quiet:
            log.warning("watcher_lost_sync", reason=reason, root=self._root_str)
        if self._on_lost_sync is not None:
            try:
                self._on_lost_sync(reason)
            except Exception:
                log.exception("watcher_on_lost_sync_failed")
        self._call_wake()

    def _try_restart(self) -> None:
        if self._clock() < self._restart_at:
            return
        try:
            observer = self._start_observer()
        except OSError as exc:
            with self._cond:
                self._backoff = min(self._backoff * 2, RESTART_BACKOFF_S[1])
                self._restart_at = self._clock() + self._backoff
            log.info("watcher_restart_failed", error=str(exc), retry_in_s=self._backoff)
            return
        with self._cond:
            stale = self._stopping
            if not stale:
                self._observer, self._lost = observer, False
                self._restarted_at = self._clock()
                self.restarts += 1
        if stale:
            _stop_observer(observer)
            return
        log.info("watcher_restarted", root=self._root_str)
        self._call_wake()  # whatever changed while nobody watched


def _threads_alive(observer: BaseObserver) -> bool:
    """The observer's dispatch thread, its emitters, and inotify's reader thread all run."""
    if not observer.is_alive() or not observer.emitters:
        return False
    if not all(emitter.is_alive() for emitter in observer.emitters):
        return False
    reader = getattr(observer, "_inotify_fd", None)  # InotifyObserver's reader thread
    return not isinstance(reader, threading.Thread) or reader.is_alive()


def _stop_observer(observer: BaseObserver) -> None:
    try:
        observer.stop()
        if observer.is_alive():
            observer.join(_JOIN_TIMEOUT_S)
    except Exception:  # stopping a half-dead observer can raise; it is being discarded
        log.exception("watcher_observer_stop_failed")
