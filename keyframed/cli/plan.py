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
                    "fingerprint": "…" | null,
                    "next": "`touch P/assets.approved` or `keyframed approve P assets`" | null}]}

``next`` is what ends a wait (``awaiting_approval``), the retry after a failure, or the line to
edit for an input error; null otherwise.

``state`` is a word of the one vocabulary that ``run``, ``status`` and the status files use
(``keyframed.daemon.status.STATES``): fresh, done, stale (ready to build), queued, running,
failed (with ``failed: <ComfyUI's message>`` first among the reasons), blocked (an input is
stale or missing), input_error (the scene's inputs have errors: ``recipe`` is null, the
reasons are ``input_error: file:line:col: message``, the old file is left as it is),
awaiting_approval, user_override; the counts are theirs too.
Fresh and done artifacts are listed only with ``--all``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from keyframed.cli.opening import open_project
from keyframed.daemon.held import Held, held_reasons
from keyframed.daemon.snapshot import Snapshot, take_snapshot
from keyframed.daemon.status import (
    all_counts,
    approval_step,
    artifact_reasons,
    artifact_state,
    edit_step,
    retry_command,
    waiting_markers,
)
from keyframed.daemon.store import CACHE_BACKEND, Job, JobStore
from keyframed.handlers.verdict import PlanItem

FORMAT = 1


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` subcommand."""
    p = sub.add_parser("plan", help="show what is stale and why (changes nothing)")
    p.add_argument("dir", type=Path, help="project folder")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--all", action="store_true", help="also list fresh artifacts")
    p.set_defaults(func=run)


RESTORED = "restored: cache"


def item_json(order: int, item: PlanItem, backend: str,
              job: Job | None = None, restorable: bool = False) -> dict[str, Any]:
    """The stable JSON form of one plan item (its state refined by its last job); one the
    output cache holds says so (its backend is ``cache``: it is restored with no job)."""
    art = item.artifact
    return {
        "order": order,
        "path": art.path,
        "scene": art.scene,
        "kind": art.kind,
        "step": art.recipe.step,
        "state": artifact_state(item, job),
        "reasons": artifact_reasons(item, job) + ([RESTORED] if restorable else []),
        "backend": CACHE_BACKEND if restorable else backend,
        "deps": art.deps,
        "gate": art.gate,
        "recipe": art.recipe.model_dump(mode="json"),
        "fingerprint": item.status.fingerprint,
        "next": None,
    }


def plan_document(snap: Snapshot, include_fresh: bool,
                  jobs: dict[str, Job] | None = None) -> dict[str, Any]:
    """The whole ``--json`` document."""
    backend = snap.settings.backends[0].name
    jobs = jobs or {}
    listed = [i for i in snap.items
              if include_fresh or artifact_state(i, jobs.get(i.path)) not in ("fresh", "done")]
    rows = [item_json(n, item, backend, jobs.get(item.path), item.path in snap.restorable)
            for n, item in enumerate(listed, 1)]
    # What ends each wait: the marker to drop, or the command that drops it; after a
    # failure, the retry.
    for row, item in zip(rows, listed, strict=False):
        if row["state"] == "failed":
            row["next"] = retry_command(snap.root, item)
    for marker, paths in waiting_markers(listed).items():
        for row in rows:
            if row["path"] in paths:
                row["next"] = approval_step(snap.root, marker)
    # What input errors hold back: not built, its old files left as they are.
    rows += [held_json(len(rows) + n, h, snap) for n, h in enumerate(snap.held, 1)]
    return {
        "format": FORMAT,
        "ok": snap.ok,
        "errors": [d.as_dict() for d in snap.diagnostics],
        "counts": all_counts(snap, jobs),
        "artifacts": rows,
    }


def held_json(order: int, held: Held, snap: Snapshot) -> dict[str, Any]:
    """The plan row of an output that input errors hold back (``input_error``)."""
    return {
        "order": order, "path": held.path, "scene": held.scene, "kind": held.kind,
        "step": held.step, "state": "input_error", "reasons": held_reasons(snap.held_by(held)),
        "backend": "-", "deps": [], "gate": None, "recipe": None,
        "fingerprint": held.fingerprint,
        "next": "; ".join(edit_step(d) for d in snap.held_by(held)) or None,
    }


def _print_table(doc: dict[str, Any]) -> None:
    rows = doc["artifacts"]
    if not rows:
        print("Everything is up to date.")
        return
    width = max(len(r["path"]) for r in rows)
    for r in rows:
        # Input errors carry their fix in the reason; a wait or a failure gets its next step.
        step = r.get("next") if r["state"] in ("awaiting_approval", "failed") else None
        reasons = "; ".join(r["reasons"]) + (f"; next: {step}" if step else "")
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
    opened = open_project(root)
    if opened is None:
        return 1
    settings, store = opened
    try:
        snap = take_snapshot(root, settings, store)
        jobs = JobStore(store).latest()
    finally:
        store.close()
    doc = plan_document(snap, args.all, jobs)
    if args.json:
        print(json.dumps(doc, indent=2, sort_keys=False))
    else:
        for d in snap.diagnostics:
            print(d, file=sys.stderr)
        if snap.planned or doc["artifacts"]:  # what is built, and what input errors hold
            _print_table(doc)
    return 0 if snap.ok else 1
