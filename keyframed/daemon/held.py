"""The outputs that input errors hold back: shown as ``input_error``, their files left alone.

A scene whose section (or an asset it uses) has an error cannot be planned, so the plan has no
items for it; yet a person looking at ``keyframed status`` must not see its old outputs as
``done`` when their inputs changed. The outputs of such a scene are the ones keyframed knows
it made there or listed there before: the state store's build records under ``scene-XX/``
and the entries of the scene's own last ``status.json``. When the whole project is unreadable
every scene keyframed knows of is held, and so are the Phase 2.5 assets it generated.

Nothing here writes: the files stay byte for byte as they were.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keyframed.daemon.store import Store
from keyframed.errors import Diagnostic

_SCENE_FOLDER = re.compile(r"^scene-(\d+)$")
INPUT_ERROR_REASON = "input_error"


@dataclass(frozen=True)
class Held:
    """One output that input errors hold back, as last known (``scene`` None: an asset)."""

    path: str
    scene: int | None
    kind: str
    step: str
    take: int = 0
    seed: int = 0
    fingerprint: str | None = None


def _kind(rel: str) -> tuple[str, str]:
    """(kind, step) of an output known only by its path."""
    name = rel.rsplit("/", 1)[-1]
    if rel.startswith("assets/"):
        return "asset", "asset"
    if "/layers/" in rel:
        return "layer", "background" if name.startswith("background") else "character"
    if name.startswith("keyframe-"):
        return "keyframe", "composite"
    return "video", "video"


def _is_output(rel: str) -> bool:
    """An artifact path (not a take, a status file, a sheet or a marker)."""
    if "/takes/" in rel or rel.endswith(("status.json", "contact-sheet.png")):
        return False
    name = rel.rsplit("/", 1)[-1]
    return "/layers/" in rel or name.startswith(("keyframe-", "video"))


def _old_entries(path: Path, key: str) -> list[dict[str, Any]]:
    """The artifact entries of a status file keyframed wrote before (none if unreadable)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    entries = doc.get(key) if isinstance(doc, dict) else None
    return [e for e in entries if isinstance(e, dict) and isinstance(e.get("path"), str)] \
        if isinstance(entries, list) else []


def scene_folders(root: Path, store: Store) -> set[int]:
    """Every scene number keyframed built for or wrote a status file for."""
    found = {int(m.group(1)) for p in store.records()
             if (m := _SCENE_FOLDER.match(p.split("/", 1)[0]))}
    with contextlib.suppress(OSError):
        found |= {int(m.group(1)) for child in root.iterdir()
                  if (m := _SCENE_FOLDER.match(child.name)) and (child / "status.json").is_file()}
    return found


def held_outputs(root: Path, store: Store, scenes: Collection[int], *,
                 assets: bool = False) -> list[Held]:
    """The outputs of ``scenes`` (and, with ``assets``, the generated assets) known so far."""
    if not scenes and not assets:
        return []  # the usual pass: nothing held, no copy of the records made
    records = store.records()
    held: dict[str, Held] = {}
    for number in sorted(scenes):
        folder = f"scene-{number:02d}"
        for entry in _old_entries(root / folder / "status.json", "artifacts"):
            if entry["path"].startswith(folder + "/"):
                held[entry["path"]] = _from_entry(entry, number)
        for rel, rec in records.items():
            if rel.startswith(folder + "/") and _is_output(rel) and rel not in held:
                kind, step = _kind(rel)
                held[rel] = Held(rel, number, kind, step, rec.take, 0, rec.fingerprint)
    if assets:
        for entry in _old_entries(root / "status.json", "assets"):
            if entry["path"].startswith("assets/"):
                held.setdefault(entry["path"], _from_entry(entry, None))
        for rel, rec in records.items():
            if rel.startswith("assets/") and "/takes/" not in rel and rel not in held:
                held[rel] = Held(rel, None, "asset", "asset", rec.take, 0, rec.fingerprint)
    return list(held.values())


def _from_entry(entry: dict[str, Any], scene: int | None) -> Held:
    kind, step = _kind(entry["path"])
    take, seed = entry.get("take"), entry.get("seed")
    fingerprint = entry.get("fingerprint")
    return Held(entry["path"], scene, str(entry.get("kind") or kind),
                str(entry.get("step") or step),
                take if isinstance(take, int) and take >= 0 else 0,
                seed if isinstance(seed, int) and seed >= 0 else 0,
                fingerprint if isinstance(fingerprint, str) else None)


def held_reasons(diagnostics: Sequence[Diagnostic]) -> list[str]:
    """``input_error: file:line:col: message (suggestion)`` for each error that holds it."""
    return [f"{INPUT_ERROR_REASON}: {d}" for d in diagnostics]


def held_entry(held: Held, diagnostics: Sequence[Diagnostic]) -> dict[str, Any]:
    """The status-file entry of a held output: ``input_error``, with the messages."""
    return {
        "path": held.path, "kind": held.kind, "step": held.step, "state": "input_error",
        "reasons": held_reasons(diagnostics), "progress": 0.0, "backend": None,
        "prompt_id": None, "take": held.take, "seed": held.seed,
        "fingerprint": held.fingerprint, "created_at": None, "updated_at": None,
        "attempts": 0, "error": None, "restored": False, "started_at": None,
        "elapsed_s": None, "queue_position": None, "eta_s": None,
    }
