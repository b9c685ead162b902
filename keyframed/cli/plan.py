"""``keyframed plan DIR [--json] [--all]``: what is stale and why, in build order.

Changes nothing (only the file-hash cache in ``.keyframed/`` is refreshed).

The ``--json`` document is stable (``"format": 1``)::

    {"format": 1, "ok": true, "errors": [{"file", "line", "column", "message", "suggestion"}],
     "counts": {"stale": 12, "blocked": 3, ...},
     "artifacts": [{"order": 1, "path": "scene-01/layers/background.png", "scene": 1,
                    "kind": "layer", "step": "background", "state": "stale",
                    "reasons": ["never_built"], "backend": "local", "deps": [...],
                    "recipe": {"template", "mode", "prompt", "negative", "inputs": [{"path",
                               "role", "artifact"}], "loras": [{"role", "file", "strength"}],
                               "models", "params", "seed", "take", "backend_kind"},
                    "fingerprint": "…" | null}]}

``state`` is one of fresh, stale (ready to build), blocked (an input is stale or missing),
awaiting_approval, user_override. Fresh artifacts are listed only with ``--all``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.store import Store
from keyframed.errors import ConfigError, StoreError
from keyframed.handlers.verdict import PlanItem
from keyframed.inputs.config import load_settings

FORMAT = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` subcommand."""
    p = sub.add_parser("plan", help="show what is stale and why (changes nothing)")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also list fresh artifacts")
    p.set_defaults(func=run)


def item_json(order: int, item: PlanItem, backend: str) -> dict[str, Any]:
    """The stable JSON form of one plan item."""
    art = item.artifact
    return {
        "order": order,
        "path": art.path,
        "scene": art.scene,
        "kind": art.kind,
        "step": art.recipe.step,
        "state": item.state,
        "reasons": [str(r) for r in item.reasons],
        "backend": backend,
        "deps": art.deps,
        "gate": art.gate,
        "recipe": art.recipe.model_dump(mode="json"),
        "fingerprint": item.status.fingerprint,
    }


def plan_document(snap: Snapshot, include_fresh: bool) -> dict[str, Any]:
    """The whole ``--json`` document."""
    backend = snap.settings.backends[0].name
    listed = [i for i in snap.items if include_fresh or i.state != "fresh"]
    return {
        "format": FORMAT,
        "ok": snap.ok,
        "errors": [d.as_dict() for d in snap.diagnostics],
        "counts": dict(Counter(i.state for i in snap.items)),
        "artifacts": [item_json(n, item, backend) for n, item in enumerate(listed, 1)],
    }


def _print_table(doc: dict[str, Any]) -> None:
    rows = doc["artifacts"]
    if not rows:
        print("Everything is up to date.")
        return
    width = max(len(r["path"]) for r in rows)
    for r in rows:
        reasons = "; ".join(r["reasons"])
        print(f"{r['order']:>4}  {r['path']:<{width}}  {r['state']:<17}  "
              f"{r['backend']:<8}  {reasons}")
    counts = ", ".join(f"{n} {state}" for state, n in sorted(doc["counts"].items()))
    print(f"\n{counts}")


def run(args: argparse.Namespace) -> int:
    """Print the plan; exit 1 when the inputs have errors."""
    root: Path = args.dir
    if not root.is_dir():
        print(f"keyframed: {root}: no such project folder", file=sys.stderr)
        return 1
    try:
        settings = load_settings(root)
        store = Store.for_project(root)
    except (ConfigError, StoreError) as exc:
        print(f"keyframed: {exc}", file=sys.stderr)
        return 1
    try:
        snap = take_snapshot(root, settings, store)
    finally:
        store.close()
    doc = plan_document(snap, args.all)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=False))
    else:
        for d in snap.diagnostics:
            print(d, file=sys.stderr)
        if snap.planned:  # the scenes that input errors do not block
            _print_table(doc)
    return 0 if snap.ok else 1
