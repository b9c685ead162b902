"""Keep ``scene-XX/contact-sheet.png``, ``storyboard.png`` and ``asset-sheet.png`` in step with
the project.

A scene's contact sheet shows all its tiles (layers → keyframes → video); the storyboard shows
each scene's keyframes and video, and its layers only where ``[storyboard] layers = true``
(:func:`storyboard_rows`); the asset sheet every asset of assets.json (:mod:`.asset_sheet`).

A sheet is redrawn only when something on it changed (a tile's file, state or approval), so a
quiet daemon draws nothing. Drawing happens in the reconcile loop, and redrawing the sheets
after every finished job kept the loop, and so the servers, waiting (bench/throughput.py): so
while jobs are queued or running, the changed scene sheets (and the asset sheet) are redrawn
together at most once per :data:`BUSY_MIN_S`, the storyboard (every scene: far slower) at most
once per :data:`BOARD_MIN_S`, and neither sooner than :data:`BUSY_COST_FACTOR` times what its last
drawing took. The settled state (nothing queued or running) is always drawn at once. Drawing is
:mod:`keyframed.render.contact`'s job; this module only decides the tiles and when.

Sheets follow the rule of every output: a file keyframed did not write is never overwritten (a
director may well keep a hand-drawn ``storyboard.png``). keyframed's sheets carry a PNG text
chunk right after the header (:data:`SIGNATURE`); a file at a sheet's path without it is the
user's and is left alone. Sheets are written only inside the project (never through a symlink).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import struct
import time
import zlib
from collections.abc import Callable
from functools import partial
from pathlib import Path

import structlog

from keyframed.daemon.snapshot import Snapshot
from keyframed.errors import OutputError
from keyframed.fsio import write_inside
from keyframed.handlers.verdict import PlanItem
from keyframed.render import contact
from keyframed.render.asset_sheet import ASSET_SHEET, approval_line, asset_rows
from keyframed.render.video_frames import is_video

log = structlog.get_logger(__name__)
SCENE_SHEET = "contact-sheet.png"
STORYBOARD = "storyboard.png"
StateOf = Callable[[PlanItem], str]
_TEXT = b"Software\x00keyframed contact sheet"
SIGNATURE = (struct.pack(">I", len(_TEXT)) + b"tEXt" + _TEXT
             + struct.pack(">I", zlib.crc32(b"tEXt" + _TEXT)))
_AFTER_IHDR = 33  # PNG signature (8) + IHDR chunk (4 + 4 + 13 + 4)
BUSY_MIN_S = 2.0
BOARD_MIN_S = 30.0
BUSY_COST_FACTOR = 10.0
ACTIVE_STATES = frozenset({"queued", "running"})


def _text_chunk(keyword: bytes, text: bytes) -> bytes:
    body = keyword + b"\x00" + text
    crc = struct.pack(">I", zlib.crc32(b"tEXt" + body))
    return struct.pack(">I", len(body)) + b"tEXt" + body + crc


_KEY_WORD = b"keyframed-key"
_KEY_CHUNK_BYTES = len(_text_chunk(_KEY_WORD, b"0" * 64))


def signed(png: bytes, key: str) -> bytes:
    """The PNG with keyframed's signature chunk right after its header chunk, then a chunk
    holding ``key`` (the sha256 of what the sheet shows: a restarted daemon reads it back
    instead of drawing every sheet again)."""
    return png[:_AFTER_IHDR] + SIGNATURE + _text_chunk(_KEY_WORD, key.encode()) + png[_AFTER_IHDR:]


def drawn_key(path: Path) -> str | None:
    """The key a sheet keyframed drew was drawn for, or None."""
    try:
        with path.open("rb") as handle:
            head = handle.read(_AFTER_IHDR + len(SIGNATURE) + _KEY_CHUNK_BYTES)
    except OSError:
        return None
    chunk = head[_AFTER_IHDR + len(SIGNATURE):]
    prefix = struct.pack(">I", len(_KEY_WORD) + 65) + b"tEXt" + _KEY_WORD + b"\x00"
    if head[_AFTER_IHDR:_AFTER_IHDR + len(SIGNATURE)] != SIGNATURE or not chunk.startswith(prefix):
        return None
    return chunk[len(prefix):len(prefix) + 64].decode("ascii", "replace")


def is_ours(path: Path) -> bool:
    """True when ``path`` is absent or a regular file carrying keyframed's sheet signature."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
        with path.open("rb") as handle:
            head = handle.read(_AFTER_IHDR + len(SIGNATURE))
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return head[_AFTER_IHDR:] == SIGNATURE


def _caption(item: PlanItem) -> str:
    name = item.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{name} (take {item.artifact.recipe.take})" if item.artifact.recipe.take else name


def take_caption(snap: Snapshot, item: PlanItem) -> str:
    """A tile's caption once an artifact has several takes (issue 13): the take number on
    each, and ``picked`` on the live one that a ``.pick`` file chose. The other candidates of
    a ``--takes N`` retry are tiles of their own (their ``takes/`` paths), so a scene's sheet
    shows the takes of each artifact side by side."""
    take = item.artifact.recipe.take
    base = item.artifact.name.split(".take-", 1)[0]
    if snap.picked.get(item.path) == take:
        return f"{base} take {take} picked"
    return f"{base} take {take}" if take or ".take-" in item.path else _caption(item)


def _approved(snap: Snapshot, item: PlanItem) -> bool:
    art = item.artifact
    if art.kind != "keyframe" or art.scene is None:
        return False
    approved = snap.approvals.scenes.get(art.scene, {})
    current = approved.get(item.path)
    return current is not None and current == snap.hashes.get(item.path)


# Build order on a scene's contact sheet; on the storyboard the keyframes and the video come
# first (the layers, where [storyboard] layers asks for them, after).
SHEET_ORDER = {"layer": 0, "keyframe": 1, "video": 2}
BOARD_ORDER = {"keyframe": 0, "video": 1, "layer": 2}


def board_order(layers: bool) -> dict[str, int]:
    """The kinds on the storyboard, in order: keyframes and video, then layers if asked."""
    return BOARD_ORDER if layers else {k: n for k, n in BOARD_ORDER.items() if k != "layer"}


def scene_tiles(snap: Snapshot, scene: int, state_of: StateOf,
                items: list[PlanItem] | None = None,
                order: dict[str, int] = SHEET_ORDER) -> list[contact.Tile]:
    """The tiles of one scene: the artifacts of the kinds in ``order``, in that order (by
    default every tile, layers → keyframes → video, as its contact sheet shows them;
    ``items``: the scene's, when the caller has them grouped already)."""
    if items is None:
        items = [i for i in snap.items if i.artifact.scene == scene]
    items = sorted((i for i in items if i.artifact.kind in order),
                   key=lambda i: order[i.artifact.kind])
    return [
        # A path with no hash is missing, or leads outside the project: nothing to draw.
        contact.Tile(path=snap.root / i.path if snap.hashes.get(i.path) else None,
                     caption=take_caption(snap, i), state=state_of(i),
                     approved=_approved(snap, i), digest=snap.hashes.get(i.path))
        for i in items
    ]


def held_rows(snap: Snapshot, order: dict[str, int] = SHEET_ORDER,
              ) -> list[tuple[int, str, str, list[contact.Tile]]]:
    """(number, folder, label, tiles) of each scene input errors hold back: its outputs of
    the kinds in ``order`` as they are on disk, each marked INPUT ERROR (the outputs themselves
    are not touched)."""
    held: dict[int, list[contact.Tile]] = {n: [] for n in snap.blocked}
    for h in sorted((h for h in snap.held if h.kind in order), key=lambda h: order[h.kind]):
        if h.scene is None:
            continue
        path = snap.root / h.path
        name = h.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        held.setdefault(h.scene, []).append(contact.Tile(
            path=path if path.is_file() else None, caption=name, state="input_error"))
    return [(n, f"scene-{n:02d}", f"Scene {n}: input error, not built", tiles)
            for n, tiles in held.items()]


def storyboard_rows(snap: Snapshot, state_of: StateOf,
                    grouped: dict[int, list[PlanItem]] | None = None,
                    ) -> list[tuple[str, list[contact.Tile]]]:
    """(label, tiles) of every scene on the storyboard, held ones included, in scene order:
    keyframes and video, and layers only where ``[storyboard] layers`` asks (``grouped``: the
    plan's items by scene, when the caller has them already)."""
    if snap.project is None:
        return []
    if grouped is None:
        grouped = {}
        for item in snap.items:
            if item.artifact.scene is not None:
                grouped.setdefault(item.artifact.scene, []).append(item)
    order = board_order(snap.settings.storyboard.layers)
    rows = [(s.number, f"Scene {s.number}: {s.title}",
             scene_tiles(snap, s.number, state_of, grouped.get(s.number, []), order))
            for s in snap.project.scenes]
    rows += [(n, label, tiles) for n, _, label, tiles in held_rows(snap, order)]
    rows.sort(key=lambda r: r[0])
    return [(label, tiles) for _, label, tiles in rows]


def _go_on() -> None:
    """The default ``step``: never interrupts."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SheetWriter:
    """Draws the sheets of one project when they change."""

    def __init__(self, root: Path, max_pixels: int,
                 clock: Callable[[], float] = time.monotonic,
                 step: Callable[[], None] | None = None) -> None:
        self.root = root
        self.max_pixels = max_pixels
        self._clock = clock
        # Called before each sheet is considered: the daemon pings its watchdog there, and
        # raises StopRequested on SIGTERM (5,000 sheets take about a minute to draw).
        self._step = step or _go_on
        self._keys: dict[str, str] = {}
        self._kept: set[str] = set()
        # Videos the sheets could not show, by artifact path: the reason goes in status.
        self.notes: dict[str, str] = {}
        # While busy: no scene sheets, or no storyboard, drawn before these times.
        self._next_scenes = clock() + BUSY_MIN_S
        self._next_board = clock() + BOARD_MIN_S

    def _key(self, snap: Snapshot, tiles: list[contact.Tile], label: str) -> str:
        parts = [(label, t.caption, t.state, t.approved,
                  snap.hashes.get(t.path.relative_to(self.root).as_posix()) if t.path else None)
                 for t in tiles]
        return json.dumps(parts, sort_keys=True, default=str)

    def write(self, snap: Snapshot, state_of: StateOf) -> list[str]:
        """Redraw what changed; return the sheets written."""
        if snap.project is None:  # nothing can be planned: the sheets are kept as they are
            return []
        busy = any(state_of(i) in ACTIVE_STATES for i in snap.items)
        started = self._clock()
        if busy and started < self._next_scenes and started < self._next_board:
            return []  # nothing is due: the tiles below cost about a pass's time
        written: list[str] = []
        grouped: dict[int, list[PlanItem]] = {}
        for item in snap.items:
            if item.artifact.scene is not None:
                grouped.setdefault(item.artifact.scene, []).append(item)
        scenes = [(s.number, s.folder, f"Scene {s.number}: {s.title}",
                   scene_tiles(snap, s.number, state_of, grouped.get(s.number, [])))
                  for s in snap.project.scenes]
        scenes += held_rows(snap)
        scenes.sort(key=lambda s: s[0])
        self.notes = self._video_notes([(label, tiles) for _, _, label, tiles in scenes])
        # A sheet not drawn now keeps its old key, so it still counts as changed later.
        if not busy or started >= self._next_scenes:
            for _, folder, label, tiles in scenes:
                self._step()  # before _changed, which records the key as drawn
                self._sheet(snap, f"{folder}/{SCENE_SHEET}", label, tiles, written)
            # The asset sheet is about a scene sheet's size: drawn on the same cadence.
            self._step()
            self._assets(snap, state_of, written)
            if written:
                self._next_scenes = self._after(started, BUSY_MIN_S)
        started = self._clock()
        self._step()
        if not busy or started >= self._next_board:
            rows = storyboard_rows(snap, state_of, grouped)
            key = json.dumps([self._key(snap, t, lb) for lb, t in rows])
            if self._changed(STORYBOARD, key):
                self._draw(STORYBOARD, partial(contact.storyboard, rows,
                                               max_pixels=self.max_pixels), written, key)
                self._next_board = self._after(started, BOARD_MIN_S)
        return written

    def _sheet(self, snap: Snapshot, rel: str, label: str, tiles: list[contact.Tile],
               written: list[str]) -> None:
        """Draw one scene's contact sheet if what it shows changed."""
        key = self._key(snap, tiles, label)
        if self._changed(rel, key):
            self._draw(rel, partial(contact.scene_sheet, label, tiles,
                                    max_pixels=self.max_pixels), written, key)

    def _assets(self, snap: Snapshot, state_of: StateOf, written: list[str]) -> None:
        """Draw ``asset-sheet.png`` if an asset's image, state or approval changed."""
        rows = asset_rows(snap, state_of)
        note = approval_line(snap, rows) if rows else "assets.json has no assets"
        key = json.dumps([note, *(self._key(snap, tiles, heading) for heading, tiles in rows)])
        if self._changed(ASSET_SHEET, key):
            self._draw(ASSET_SHEET, partial(contact.asset_sheet, rows, note,
                                            max_pixels=self.max_pixels), written, key)

    def _video_notes(self, rows: list[tuple[str, list[contact.Tile]]]) -> dict[str, str]:
        """``cannot read video: why`` for each video on the sheets that does not decode
        (decoded once per content: the same cache draws the tiles)."""
        notes: dict[str, str] = {}
        for _, tiles in rows:
            for tile in tiles:
                if tile.path is None or tile.digest is None or not is_video(tile.path):
                    continue
                frames = contact.video_frames(tile.path, tile.digest, self.max_pixels)
                if isinstance(frames, str):
                    notes[tile.path.relative_to(self.root).as_posix()] = \
                        f"cannot read video: {frames}"
        return notes

    def _after(self, started: float, least: float) -> float:
        """When drawing that began at ``started`` (and ended now) may next happen while busy."""
        return started + max(least, BUSY_COST_FACTOR * (self._clock() - started))

    def _changed(self, rel: str, key: str) -> bool:
        digest = _digest(key)
        known = self._keys.get(rel)
        if known is None:
            # Not drawn by this process: the key in the file says what it shows.
            known = drawn_key(self.root / rel)
        if known == digest and (self.root / rel).is_file():
            self._keys[rel] = digest
            return False
        self._keys[rel] = digest
        return True

    def _draw(self, rel: str, render: Callable[[], bytes], written: list[str],
              key: str) -> None:
        if not is_ours(self.root / rel):
            if rel not in self._kept:
                log.warning("sheet_not_drawn", sheet=rel,
                            error="a file keyframed did not write is there; keeping it")
                self._kept.add(rel)
            return
        self._kept.discard(rel)
        try:
            write_inside(self.root, rel, signed(render(), _digest(key)))
        except (OutputError, OSError) as exc:
            self._keys.pop(rel, None)
            log.warning("sheet_failed", sheet=rel, error=str(exc))
            return
        written.append(rel)
