"""Driving a reconcile loop to the end of a bounded run (``run`` and ``generate-keyframe``).

A bounded run reconciles in slices until nothing is left to do, and stops early, with the
reasons in words, when what is left can never run (no configured backend can take it) or the
caller's time is up. Both commands share this core and its exit codes:

====  =======================================================================================
 0    done: nothing is left to do (what waits for an approval marker is not "left to do")
 1    input errors: the project cannot be read, or a command-line problem
 3    failures: at least one artifact failed (ComfyUI's message is in the summary)
 4    no backend can run what is left (down, or lacking a node, model or LoRA)
 5    gave up waiting: ``--timeout`` passed with work still queued or running
====  =======================================================================================

A backend that does not answer is waited for, up to ``run.backend_start_wait_s``, before the run
gives up on it: a ComfyUI that is still starting (loading its nodes) is not a failure. A
backend that answers but lacks what a job needs is reported at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from keyframed.daemon.loop import Reconciler
from keyframed.settings import Settings

# How long one slice of run_until_idle lasts before looking for a stuck run.
SLICE_S = 2.0

EXIT_DONE = 0
EXIT_INPUT = 1
EXIT_FAILED = 3
EXIT_NO_BACKEND = 4
EXIT_TIMEOUT = 5


@dataclass
class Stopped:
    """Why a bounded run ended: ``idle`` (nothing left), ``no_backend``, ``timeout`` or
    ``stalled`` (the disk is full)."""

    why: Literal["idle", "no_backend", "timeout", "stalled"] = "idle"
    lines: list[str] = field(default_factory=list)


def retry_failed(rec: Reconciler, paths: set[str]) -> dict[str, int]:
    """Let failed jobs of these paths run again; return each path's latest job id."""
    latest = rec.jobs.latest()
    for path in paths:
        job = latest.get(path)
        if job is not None and job.state == "failed":
            rec.jobs.set_state(job.id, "superseded")
    return {p: j.id for p, j in latest.items()}


def drive(rec: Reconciler, root: Path, settings: Settings, timeout: float | None) -> list[str]:
    """Reconcile in slices until idle; return why it stopped early (empty when it did not)."""
    return drive_until(rec, root, settings, timeout).lines


def drive_until(rec: Reconciler, root: Path, settings: Settings, timeout: float | None,
                on_slice: Callable[[], None] | None = None) -> Stopped:
    """Reconcile in slices until idle, stuck on backends, or out of time.

    Args:
        rec: A started reconciler.
        root: The project folder.
        settings: Its settings.
        timeout: Seconds to give up after (None: no limit).
        on_slice: Called with no argument after each slice (the terminal's progress view).
    """
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    while True:
        left = SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
        snap = rec.run_until_idle(timeout=min(SLICE_S, left))
        if on_slice is not None:
            on_slice()
        if rec.stalled is not None:
            return Stopped("stalled")  # a full disk: the caller says so
        if snap is None or not snap.planned or not rec.busy:
            return Stopped()
        starting = time.monotonic() - started < settings.run.backend_start_wait_s
        left_over = stuck(rec, waiting_for_start=starting)
        if left_over:
            return Stopped("no_backend", ["no configured backend can run what is left:",
                                          *left_over])
        if deadline is not None and time.monotonic() >= deadline:
            running = sorted(j.path for j in rec.jobs.live())
            return Stopped("timeout", [
                f"gave up after --timeout {timeout:g} s; still queued or running (a new run "
                f"picks them up): {', '.join(running)}"])


def stuck(rec: Reconciler, waiting_for_start: bool = False) -> list[str]:
    """Reasons, when jobs are ready, none is in flight, and no backend can take them.

    The loop records why for each such job (:attr:`Reconciler.no_backend`), the same words
    the status files show. While ``waiting_for_start``, a backend that does not answer may
    still come up, so the run is not stuck yet.
    """
    if rec.inflight or rec.snapshot is None:
        return []
    now = rec.clock()
    ready = [j for j in rec.jobs.live() if j.state == "ready" and j.not_before <= now]
    if not ready or any(j.path not in rec.no_backend for j in ready):
        return []  # dispatched on the next pass
    if waiting_for_start and any(not b.health().get("up", True) for b in rec.backends.values()):
        return []
    return [f"  {j.path}: no_backend: {rec.no_backend[j.path]}" for j in ready]
