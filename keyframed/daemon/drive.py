"""Driving a reconcile loop to the end of a bounded run (``run`` and ``generate-keyframe``).

A bounded run reconciles in slices until nothing is left to do, and stops early, with the
reasons in words, when what is left can never run (no configured backend can take it) or the
caller's time is up.
"""

from __future__ import annotations

import time
from pathlib import Path

from keyframed.backends.requirements import why_not
from keyframed.daemon.loop import Reconciler
from keyframed.settings import Settings

# How long one slice of run_until_idle lasts before looking for a stuck run.
SLICE_S = 2.0


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
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        left = SLICE_S if deadline is None else max(0.0, deadline - time.monotonic())
        snap = rec.run_until_idle(timeout=min(SLICE_S, left))
        if snap is None or not snap.planned or not rec.busy:
            return []
        left_over = stuck(rec, root, settings)
        if left_over:
            return ["no configured backend can run what is left:", *left_over]
        if deadline is not None and time.monotonic() >= deadline:
            running = sorted(j.path for j in rec.jobs.live())
            return [f"gave up after --timeout {timeout:g} s; still queued or running (a new run "
                    f"picks them up): {', '.join(running)}"]


def stuck(rec: Reconciler, root: Path, settings: Settings) -> list[str]:
    """Reasons, when jobs are ready, none is in flight, and no backend can take them."""
    if rec.inflight or rec.snapshot is None:
        return []
    now = rec.clock()
    ready = [j for j in rec.jobs.live() if j.state == "ready" and j.not_before <= now]
    reasons: list[str] = []
    for job in ready:
        item = rec.snapshot.item(job.path)
        if item is None:
            continue
        if any(b.supports(item.artifact) for b in rec.backends.values()):
            return []  # dispatched on the next pass
        reasons += [f"  {job.path}: {why_not(b, item.artifact, root, settings)}"
                    for b in rec.backends.values()]
    return reasons
