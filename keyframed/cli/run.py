"""``keyframed run DIR``: reconcile until nothing is left to do, then exit with a summary."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from keyframed.cli.logs import setup_logging
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.snapshot import Snapshot
from keyframed.errors import ConfigError, StoreError
from keyframed.inputs.config import load_settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``run`` subcommand."""
    p = sub.add_parser("run", help="build what is stale, wait for it, then exit")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--timeout", type=float, default=None, help="give up after this many seconds")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.set_defaults(func=run)


def summary(snap: Snapshot | None, rec: Reconciler) -> tuple[str, int]:
    """A few lines saying what is done and what waits; and the exit code."""
    if snap is None or not snap.planned:
        lines = [str(d) for d in (snap.diagnostics if snap else [])]
        return "\n".join(["keyframed: the project has errors; nothing was built:", *lines]), 1
    latest = rec.jobs.latest()
    failed = [j for j in latest.values() if j.state == "failed"]
    counts = Counter(i.state for i in snap.items)
    lines = [f"keyframed: {len(snap.items)} artifacts: "
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))]
    waits = {str(r) for i in snap.items if i.state == "awaiting_approval" for r in i.reasons
             if r.code.startswith("approval_")}
    lines += [f"  waiting: {w}" for w in sorted(waits)]
    lines += [f"  failed: {j.path}: {j.error}" for j in failed]
    # Scenes with input errors were left as they are; the others were built.
    lines += [f"  input error (scene {n} not built): {d}" for n, ds in sorted(snap.blocked.items())
              for d in ds]
    lines += [f"  input error: {d}" for d in snap.diagnostics
              if not any(d in ds for ds in snap.blocked.values())]
    return "\n".join(lines), 1 if failed or snap.diagnostics else 0


def run(args: argparse.Namespace) -> int:
    """Build until idle."""
    setup_logging(args.verbose)
    root: Path = args.dir
    if not root.is_dir():
        print(f"keyframed: {root}: no such project folder", file=sys.stderr)
        return 1
    try:
        settings = load_settings(root)
        rec = Reconciler(root, settings)
    except (ConfigError, StoreError) as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            rec.start()
        except StoreError as exc:
            print(f"keyframed: {exc}", file=sys.stderr)
            return 1
        snap = rec.run_until_idle(timeout=args.timeout)
        rec.status.state = "idle"
        if snap is not None:
            rec.status.write(snap, rec.last_good)
        text, code = summary(snap, rec)
    finally:
        rec.close()
    print(text)
    return code
