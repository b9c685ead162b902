"""The watch loop: a :class:`~keyframed.daemon.loop.Reconciler` woken by the watcher.

Signals only set flags (:mod:`keyframed.daemon.signals`): SIGTERM/SIGINT stop gracefully
(nothing half-written; jobs in flight stay recorded and the next start carries on), SIGHUP
reloads the configuration. Readiness and watchdog pings go to systemd through
``$NOTIFY_SOCKET``; the watchdog is pinged only while the loop makes passes and the watcher
is alive, so a hung daemon is restarted.

Large projects (README "Running as a service"): READY=1 is sent as soon as the first pass has
read the project and made its plan, before it acts on it (on 5,000 scenes the rest of that
pass, status files and contact sheets of every scene, takes a minute or more). Between the
steps of every pass (each scene's status file and sheet, every 100 jobs created, every 200
files hashed) the watchdog is pinged and a stop request is honoured, so SIGTERM ends even the
first pass within about a second, with every file and the store whole.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path

import structlog

from keyframed.daemon import notify
from keyframed.daemon.loop import PassResult, Reconciler
from keyframed.daemon.signals import Signals
from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.watcher import Watcher
from keyframed.errors import ConfigError, Diagnostic, StopRequested
from keyframed.inputs.config import PROJECT_CONFIG, load_settings
from keyframed.settings import Settings

log = structlog.get_logger(__name__)
STOP_GRACE_S = 4.0


class Daemon:
    """The watch loop around a :class:`Reconciler`."""

    def __init__(self, root: Path, settings: Settings, signals: Signals,
                 wake: threading.Event) -> None:
        self.root = root
        self.settings = settings
        self.signals = signals
        self.rec = Reconciler(root, settings, wake=wake)
        self.rec.step = self._between_steps
        self.rec.on_snapshot = self._snapshot_taken
        self.watcher = self._watcher(settings)
        self._last_ping = 0.0
        self._ready = False

    def _watcher(self, settings: Settings) -> Watcher:
        return Watcher(self.root, self.rec.wake.set, is_own_write=self.rec.is_own_write,
                       quiet_ms=settings.watch.quiet_ms, cap_ms=settings.watch.cap_ms,
                       poll=settings.watch.poll, on_lost_sync=self._lost_sync)

    def _lost_sync(self, reason: str) -> None:
        # The watcher has logged it (once per overflow burst); a full re-check follows.
        self.rec.wake.set()

    def _pass(self) -> PassResult | None:
        try:
            return self.rec.reconcile_once()
        except Exception:  # one bad pass must never end the daemon
            log.exception("reconcile_failed")
            time.sleep(1.0)
            return None

    def _between_steps(self) -> None:
        """Between two steps of a pass: feed the watchdog; end the pass on a stop request."""
        self._ping()
        if self.signals.stop.is_set():
            raise StopRequested

    def _snapshot_taken(self, snap: Snapshot) -> None:
        """The first plan is made: systemd may consider the start done (see the module doc)."""
        if not self._ready:
            self._tell_ready("first pass: writing status files and contact sheets")

    def _tell_ready(self, status: str) -> None:
        if not self._ready:
            self._ready = True
            notify.ready()
            log.info("daemon_ready")
        notify.status(status)

    def _ping(self) -> None:
        interval = notify.watchdog_interval()
        now = time.monotonic()
        # Time first: this runs between every two steps of a pass (thousands per pass).
        if interval is not None and now - self._last_ping >= interval and self.watcher.alive():
            notify.watchdog_ping()
            self._last_ping = now

    def _reload(self) -> None:
        self.signals.reload.clear()
        notify.reloading()
        try:
            settings = load_settings(self.root)
        except ConfigError as exc:
            # The last good configuration stays; status.json shows why the new one was refused.
            log.error("reload_failed", error=str(exc))
            self.rec.status.config_error = config_diagnostic(str(exc))
        else:
            self.rec.reload(settings)
            self.settings = settings
            self.rec.status.config_error = None
            log.info("config_reloaded")
        self.rec.wake.set()
        notify.ready()

    def serve(self) -> None:
        """Run until SIGTERM/SIGINT (the reconciler is started by the caller)."""
        self.watcher.start()
        notify.status("reading the project")
        started = time.monotonic()
        result = self._pass()
        self._tell_ready("watching")  # READY came with the plan, unless none was made
        if result is not None and not result.stopped:
            log.info("first_pass_done", seconds=round(time.monotonic() - started, 2))
        while not self.signals.stop.is_set():
            self._ping()
            if self.signals.reload.is_set():
                self._reload()
            interval = notify.watchdog_interval() or self.settings.watch.resync_s
            timeout = min(self.settings.watch.resync_s, interval, self.rec.next_due())
            # The timeout doubles as the periodic full resync.
            self.rec.wake.wait(timeout=timeout)
            if self.signals.stop.is_set():
                break
            self.rec.wake.clear()
            self._pass()
        self.stop()

    def stop(self) -> None:
        """Stop gracefully: status says stopped, workers are let go, the store closes."""
        notify.stopping()
        self.watcher.stop()
        self.rec.status.state = "stopped"
        if self.rec.snapshot is not None:
            # The root file alone: each scene's file is as the last pass left it.
            self.rec.status.write_root(self.rec.snapshot)
        self.rec.close(wait=False)
        log.info("daemon_stopped", watch_events=self.watcher.events_seen,
                 queue_overflows=self.watcher.overflows)


def config_diagnostic(message: str) -> Diagnostic:
    """A refused configuration as a status.json error (file and line when the text says)."""
    where = re.search(r"at line (\d+), column (\d+)", message)
    line, column = (int(where[1]), int(where[2])) if where else (1, 1)
    file = PROJECT_CONFIG if PROJECT_CONFIG in message else "config.toml"
    return Diagnostic(file, line, column, f"configuration not reloaded: {message}",
                      "fix it and send SIGHUP again; the previous configuration stays in use")


def exit_soon() -> None:
    """Worker threads blocked in network calls must not hold the exit past the grace time."""
    deadline = time.monotonic() + STOP_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate()
           if t is not threading.current_thread()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
