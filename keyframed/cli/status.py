"""``keyframed status DIR [--json]``: the status files as a table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from keyframed.daemon.status import ROOT_STATUS


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``status`` subcommand."""
    p = sub.add_parser("status", help="show the status files as a table")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--json", action="store_true", help="print the status documents as JSON")
    p.set_defaults(func=run)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def collect(root: Path) -> dict[str, Any]:
    """The root status and every scene status, as one document."""
    scenes = []
    for path in sorted(root.glob("scene-*/status.json")):
        doc = _read(path)
        if doc is not None:
            scenes.append(doc)
    return {"project": _read(root / ROOT_STATUS), "scenes": scenes}


def _table(doc: dict[str, Any]) -> None:
    project = doc["project"] or {}
    state = project.get("daemon", {}).get("state", "unknown")
    counts = ", ".join(f"{n} {s}" for s, n in project.get("counts", {}).items())
    print(f"daemon: {state}    {counts}")
    for b in project.get("backends", []):
        print(f"backend {b['name']} ({b['kind']}): {'up' if b.get('up') else 'DOWN'}")
    for err in project.get("errors", []):
        print(f"error: {err['file']}:{err['line']}:{err['column']}: {err['message']}")
    for marker, paths in project.get("waiting_for_approval", {}).items():
        print(f"waiting for {marker}: {len(paths)} artifact(s)")
    for scene in doc["scenes"]:
        for art in scene["artifacts"]:
            reasons = "; ".join(art["reasons"])
            extra = f" ({art['progress']:.0%})" if art["state"] == "running" else ""
            print(f"  {art['path']:<40} {art['state']:<17}{extra} {reasons}")


def run(args: argparse.Namespace) -> int:
    """Print the status; exit 1 when there is none yet."""
    doc = collect(args.dir)
    if doc["project"] is None and not doc["scenes"]:
        print(f"keyframed: no status in {args.dir} yet (run `keyframed run` or `watch`)",
              file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        _table(doc)
    return 0
