"""``keyframed status DIR [--json] [--follow]``: the status files as a table, or live."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from keyframed.daemon.status import approval_step, read_status
from keyframed.render.live import attention_lines, film_line, headline, view

# How often --follow reads the status files again.
FOLLOW_S = 0.5


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` subcommand."""
    p = sub.add_parser("status", help="show the status files as a table")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--json", action="store_true", help="print the status documents as JSON")
    p.add_argument("--follow", action="store_true",
                   help="a live view with a progress bar per running job (Ctrl-C ends it)")
    p.set_defaults(func=run)


def collect(root: Path) -> dict[str, Any]:
    """The root status and every scene status, as one document."""
    return read_status(root)


def _table(doc: dict[str, Any], root: Path) -> None:
    project = doc["project"] or {}
    # What needs a person comes first, each with its next step.
    for line in attention_lines(doc):
        print(line)
    print(headline(doc))
    film = film_line(project.get("film"))
    if film:
        print(film)
    for b in project.get("backends", []):
        print(f"backend {b['name']} ({b['kind']}): {'up' if b.get('up') else 'DOWN'}")
    for marker, paths in project.get("waiting_for_approval", {}).items():
        print(f"waiting for {marker}: {len(paths)} artifact(s); ends with "
              f"{approval_step(root, marker)}")
    orphaned = project.get("orphaned", [])
    if orphaned:
        # Built for scenes no longer in the breakdown: kept, nothing uses them.
        print(f"orphaned (not in scene-breakdown.md, kept on disk): {', '.join(orphaned)}")
    entries = [*project.get("assets", []),
               *(a for scene in doc["scenes"] for a in scene["artifacts"])]
    for art in entries:
        reasons = "; ".join(art["reasons"])
        extra = f" ({art['progress']:.0%})" if art["state"] == "running" else ""
        print(f"  {art['path']:<40} {art['state']:<17}{extra} {reasons}")


def follow(root: Path, stop_after: float | None = None) -> int:
    """Redraw the live view until Ctrl-C (or ``stop_after`` seconds, for captures)."""
    from rich.console import Console
    from rich.live import Live

    console = Console()
    end = None if stop_after is None else time.monotonic() + stop_after
    try:
        with Live(view(read_status(root)), console=console, refresh_per_second=4) as live:
            while end is None or time.monotonic() < end:
                time.sleep(FOLLOW_S)  # a terminal view's refresh, not a wait for a condition
                live.update(view(read_status(root)))
    except KeyboardInterrupt:
        pass
    return 0


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 1 when there is none yet."""
    doc = collect(args.dir)
    if doc["project"] is None and not doc["scenes"] and not args.follow:
        print(f"keyframed: no status in {args.dir} yet (run `keyframed run` or `watch`)",
              file=sys.stderr)
        return 1
    if args.follow:
        return follow(args.dir)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _table(doc, args.dir)
    return 0
