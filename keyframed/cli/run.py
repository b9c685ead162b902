"""``keyframed run DIR``: reconcile until nothing is left to do, then exit with a summary.

Exit codes (see :mod:`keyframed.daemon.drive`): 0 done, 1 input errors, 3 failures (a full
disk too: free space and run again), 4 no
backend can run what is left, 5 gave up waiting (``--timeout``). While it works it shows
progress: a live view when stdout is a terminal, plain lines (one per change of state)
otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from keyframed.cli.logs import setup_logging
from keyframed.daemon.drive import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_INPUT,
    EXIT_NO_BACKEND,
    EXIT_TIMEOUT,
    Stopped,
    drive_until,
)
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.status import all_counts, approval_step, read_status, waiting_markers
from keyframed.errors import ConfigError, StoreError
from keyframed.inputs.config import load_settings
from keyframed.render.live import changes, film_line, view


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser("run", help="build what is stale, wait for it, then exit",
                       description="Exit codes: 0 done, 1 input errors, 3 failures, "
                       "4 no backend can run what is left, 5 gave up after --timeout.")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def summary(snap: Snapshot | None, rec: Reconciler, stopped: Stopped) -> tuple[str, int]:
    """A few lines saying what is done, what failed and what waits; and the exit code.

    The counts are those of root status.json and ``keyframed status`` (one vocabulary).
    """
    if snap is None or not snap.planned:
        lines = [str(d) for d in (snap.diagnostics if snap else [])]
        return "\n".join(["keyframed: the project has errors; nothing was built:",
                          *lines]), EXIT_INPUT
    latest = rec.jobs.latest()
    counts = all_counts(snap, latest, rec.no_backend)
    lines = [f"keyframed: {len(snap.items) + len(snap.held)} artifacts: "
             + ", ".join(f"{n} {s}" for s, n in counts.items())]
    film = film_line(rec.film_entry)
    lines += [f"  {film}"] if film else []
    lines += [f"  waiting for {marker} ({len(paths)} artifact(s)); ends with "
              f"{approval_step(rec.root, marker)}"
              for marker, paths in sorted(waiting_markers(snap.items).items())]
    failed = [i for i in snap.items if i.state == "stale"
              and (j := latest.get(i.path)) is not None and j.state == "failed"
              and j.fingerprint == i.status.fingerprint]
    lines += [f"  failed: {i.path}: {latest[i.path].error}" for i in failed]
    # Scenes with input errors were left as they are; the others were built.
    lines += [f"  input error (scene {n} not built): {d}" for n, ds in sorted(snap.blocked.items())
              for d in ds]
    lines += [f"  input error: {d}" for d in snap.diagnostics
              if not any(d in ds for ds in snap.blocked.values())]
    lines += [f"  {line}" if not line.startswith("  ") else line for line in stopped.lines]
    if failed:
        code = EXIT_FAILED
    elif snap.diagnostics:
        code = EXIT_INPUT
    elif stopped.why == "no_backend":
        code = EXIT_NO_BACKEND
    elif stopped.why == "timeout":
        code = EXIT_TIMEOUT
    else:
        code = EXIT_DONE
    return "\n".join(lines), code


def _progress(root: Path, stack: ExitStack) -> Callable[[], None]:
    """What to call after each slice: redraw the live view, or print the changes."""
    if sys.stdout.isatty():
        from rich.live import Live

        live = stack.enter_context(Live(view(read_status(root)), refresh_per_second=4))
        return lambda: live.update(view(read_status(root)))
    seen: dict[str, str] = {}

    def plain() -> None:
        doc: dict[str, Any] = read_status(root)
        for line in changes(doc, seen):
            print(line, flush=True)
    return plain


def run(args: argparse.Namespace) -> int:
    """Build until idle, stuck on backends, or out of time."""
    setup_logging(args.verbose)
    root: Path = args.dir
    if not root.is_dir():
        print(f"keyframed: {root}: no such project folder", file=sys.stderr)
        return EXIT_INPUT
    try:
        settings = load_settings(root)
        rec = Reconciler(root, settings)
    except (ConfigError, StoreError) as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return EXIT_INPUT
    try:
        try:
            rec.start()
        except StoreError as exc:
            print(f"keyframed: {exc}", file=sys.stderr)
            return EXIT_INPUT
        with ExitStack() as stack:
            stopped = drive_until(rec, root, settings, args.timeout, _progress(root, stack))
        rec.finish_film()  # the film of what was made, even if the run stopped early
        snap = rec.snapshot
        rec.status.state = "idle"
        if snap is not None:
            rec.status.write(snap, rec.last_good)
        text, code = summary(snap, rec, stopped)
        if rec.stalled is not None:
            text, code = f"keyframed: stopped: {rec.stalled}\n{text}", EXIT_FAILED
    finally:
        rec.close()
    print(text, file=sys.stdout if code == EXIT_DONE else sys.stderr)
    return code
