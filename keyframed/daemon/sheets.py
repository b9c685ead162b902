"""Keep ``scene-XX/contact-sheet.png`` and ``storyboard.png`` in step with the project.

A sheet is redrawn only when something on it changed (a tile's file, state or approval), so a
quiet daemon draws nothing. Drawing is :mod:`keyframed.daemon.contact`'s job; this module only
decides the tiles.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path

import structlog

from keyframed.daemon import contact
from keyframed.daemon.fsio import atomic_write
from keyframed.daemon.snapshot import Snapshot
from keyframed.errors import OutputError
from keyframed.handlers.plan import PlanItem

log = structlog.get_logger(__name__)
SCENE_SHEET = "contact-sheet.png"
STORYBOARD = "storyboard.png"
StateOf = Callable[[PlanItem], str]


def _caption(item: PlanItem) -> str:
    name = item.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{name} (take {item.artifact.recipe.take})" if item.artifact.recipe.take else name


def _approved(snap: Snapshot, item: PlanItem) -> bool:
    art = item.artifact
    if art.kind != "keyframe" or art.scene is None:
        return False
    approved = snap.approvals.scenes.get(art.scene, {})
    current = approved.get(item.path)
    return current is not None and current == snap.hashes.get(item.path)


def scene_tiles(snap: Snapshot, scene: int, state_of: StateOf) -> list[contact.Tile]:
    """Layers → keyframes → video of one scene, in build order."""
    order = {"layer": 0, "keyframe": 1, "video": 2}
    items = [i for i in snap.items if i.artifact.scene == scene]
    items.sort(key=lambda i: order.get(i.artifact.kind, 3))
    return [
        contact.Tile(path=snap.root / i.path if (snap.root / i.path).is_file() else None,
                     caption=_caption(i), state=state_of(i), approved=_approved(snap, i))
        for i in items
    ]


class SheetWriter:
    """Draws the sheets of one project when they change."""

    def __init__(self, root: Path, max_pixels: int) -> None:
        self.root = root
        self.max_pixels = max_pixels
        self._keys: dict[str, str] = {}

    def _key(self, snap: Snapshot, tiles: list[contact.Tile], label: str) -> str:
        parts = [(label, t.caption, t.state, t.approved,
                  snap.hashes.get(t.path.relative_to(self.root).as_posix()) if t.path else None)
                 for t in tiles]
        return json.dumps(parts, sort_keys=True, default=str)

    def write(self, snap: Snapshot, state_of: StateOf) -> list[str]:
        """Redraw what changed; return the sheets written."""
        if not snap.ok or snap.project is None:
            return []
        written: list[str] = []
        rows: list[tuple[str, list[contact.Tile]]] = []
        for scene in sorted(snap.project.scenes, key=lambda s: s.number):
            tiles = scene_tiles(snap, scene.number, state_of)
            label = f"Scene {scene.number}: {scene.title}"
            rows.append((label, tiles))
            rel = f"{scene.folder}/{SCENE_SHEET}"
            if self._changed(rel, self._key(snap, tiles, label)):
                self._draw(rel, partial(contact.scene_sheet, label, tiles,
                                        max_pixels=self.max_pixels), written)
        key = json.dumps([self._key(snap, t, lb) for lb, t in rows])
        if self._changed(STORYBOARD, key):
            self._draw(STORYBOARD, partial(contact.storyboard, rows, max_pixels=self.max_pixels),
                       written)
        return written

    def _changed(self, rel: str, key: str) -> bool:
        if self._keys.get(rel) == key and (self.root / rel).is_file():
            return False
        self._keys[rel] = key
        return True

    def _draw(self, rel: str, render: Callable[[], bytes], written: list[str]) -> None:
        target = self.root / rel
        if not target.parent.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
        try:
            atomic_write(target, render())
        except (OutputError, OSError) as exc:
            self._keys.pop(rel, None)
            log.warning("sheet_failed", sheet=rel, error=str(exc))
            return
        written.append(rel)
