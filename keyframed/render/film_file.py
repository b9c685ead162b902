"""Keep the film at the project root in step with the scene videos, like the sheets.

A derived file, not a job: no GPU, no ComfyUI, drawn by the reconcile loop after the sheets
(:class:`FilmWriter`). It is redrawn only when what it shows changed: the key is the sha256 of
its plan (:attr:`~keyframed.render.film_plan.FilmPlan.key`: segments, durations, labels and
the content hash of every video and still), kept in the file itself, so a restarted daemon or
a second ``keyframed run`` with nothing changed writes nothing. While jobs are queued or
running it is drawn at most as often as the storyboard (:data:`~keyframed.render.sheets.
BOARD_MIN_S`, and not sooner than :data:`~keyframed.render.sheets.BUSY_COST_FACTOR` times its
last drawing); the settled state is drawn at once, and ``keyframed run`` draws it once more
at its end whatever the throttle says.

A film keyframed did not write is never overwritten (a director's own cut at that path stays):
keyframed's films end in an MP4 ``free`` box (players skip it) holding :data:`MAGIC` and the
key. Written atomically and only inside the project. A film that cannot be made (a full disk,
no encoder) is a warning in the log and in status, never a failed pass.
"""

from __future__ import annotations

import os
import stat
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from keyframed.daemon.snapshot import Snapshot
from keyframed.errors import OutputError
from keyframed.fsio import write_inside
from keyframed.handlers.verdict import PlanItem
from keyframed.render import contact
from keyframed.render.film import encode
from keyframed.render.film_plan import MADE, FilmPlan, film_size, plan_film
from keyframed.render.sheets import ACTIVE_STATES, BOARD_MIN_S, BUSY_COST_FACTOR

log = structlog.get_logger(__name__)
MAGIC = b"keyframed film\x00"
_TRAILER = 8 + len(MAGIC) + 64  # box size and type, MAGIC, the key
StateOf = Callable[[PlanItem], str]


def signed(mp4: bytes, key: str) -> bytes:
    """The MP4 with a trailing ``free`` box holding :data:`MAGIC` and ``key`` (64 hex)."""
    return mp4 + struct.pack(">I", _TRAILER) + b"free" + MAGIC + key.encode("ascii")


def _tail(path: Path) -> bytes | None:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() < _TRAILER:
                return b""
            handle.seek(-_TRAILER, os.SEEK_END)
            return handle.read(_TRAILER)
    except OSError:
        return None


def _is_signed(tail: bytes | None) -> bool:
    head = struct.pack(">I", _TRAILER) + b"free" + MAGIC
    return tail is not None and tail.startswith(head)


def drawn_key(path: Path) -> str | None:
    """The key of the film keyframed drew at ``path``, or None."""
    tail = _tail(path)
    return tail[-64:].decode("ascii", "replace") if tail and _is_signed(tail) else None


def is_ours(path: Path) -> bool:
    """True when ``path`` is absent or a regular file ending in keyframed's film box."""
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return False
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return _is_signed(_tail(path))


class FilmWriter:
    """Draws one project's film when what it shows changes."""

    def __init__(self, root: Path, max_pixels: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.root = root
        self.max_pixels = max_pixels
        self._clock = clock
        self._key: str | None = None  # the key of the film on disk, as far as known
        self._problems: str | None = None  # what its drawing could not show as planned
        self._failed: str | None = None  # the key whose drawing failed last
        self._next = clock() + BOARD_MIN_S  # while busy (or after a failure): not before
        self._kept = False
        self._readable: dict[str, bool] = {}  # per video content hash: does it decode?
        # The film's entry in root status.json: the film on disk (or why there is none).
        self.entry: dict[str, Any] | None = None

    def plan(self, snap: Snapshot, state_of: StateOf) -> FilmPlan | None:
        """What the film is made of now (None while nothing can be planned)."""
        if snap.project is None:
            return None
        video = snap.settings.video
        return plan_film(snap.project.scenes, snap.items, snap.hashes, state_of,
                         backend_kind=snap.settings.backend_kind,
                         size=film_size(video.width, video.height),
                         unreadable=self._unreadable(snap, state_of),
                         held=sorted(snap.blocked))

    def _unreadable(self, snap: Snapshot, state_of: StateOf) -> set[str]:
        """Scene videos that do not decode: each content tried once (through the sheets'
        cache, which has just decoded the same videos for their tiles)."""
        bad = set()
        for item in snap.items:
            digest = snap.hashes.get(item.path)
            if item.artifact.kind != "video" or not digest or state_of(item) not in MADE:
                continue
            if digest not in self._readable:
                frames = contact.video_frames(snap.root / item.path, digest, self.max_pixels)
                self._readable[digest] = not isinstance(frames, str)
            if not self._readable[digest]:
                bad.add(item.path)
        return bad

    def write(self, snap: Snapshot, state_of: StateOf, *, force: bool = False) -> bool:
        """Redraw the film if what it shows changed and it is due (``force``: whether or not
        jobs are running, as at the end of ``keyframed run``); True when it was written."""
        busy = any(state_of(i) in ACTIVE_STATES for i in snap.items)
        if busy and not force and self._clock() < self._next:
            return False
        plan = self.plan(snap, state_of)
        if plan is None:
            return False
        path = self.root / plan.name
        if self._key is None:
            self._key = drawn_key(path)  # a film drawn by an earlier process
        if self._key == plan.key and path.is_file():
            self.entry = plan.entry() | ({"warning": self._problems} if self._problems else {})
            return False
        if not is_ours(path):
            self._keep(plan)
            return False
        if plan.key == self._failed and not force and self._clock() < self._next:
            return False  # failed a moment ago: not tried again on every pass
        return self._draw(plan)

    def _draw(self, plan: FilmPlan) -> bool:
        self._kept = False
        started = self._clock()
        try:
            made = encode(self.root, plan, max_pixels=self.max_pixels)
            write_inside(self.root, plan.name, signed(made.data, plan.key))
        except (OutputError, OSError, MemoryError) as exc:
            self._key, self._failed = None, plan.key
            self._next = self._clock() + BOARD_MIN_S
            log.warning("film_failed", film=plan.name, error=str(exc))
            self.entry = {"path": plan.name, "warning": f"the film was not written: {exc}"}
            return False
        took = self._clock() - started
        self._next = started + max(BOARD_MIN_S, BUSY_COST_FACTOR * took)
        self._key, self._failed = plan.key, None
        self._problems = "; ".join(made.problems) or None
        for problem in made.problems:
            log.warning("film_problem", film=plan.name, problem=problem)
        self.entry = plan.entry() | ({"warning": self._problems} if self._problems else {})
        log.info("film_written", film=plan.name, seconds=plan.seconds,
                 placeholders=plan.placeholders, took_s=round(took, 3))
        return True

    def _keep(self, plan: FilmPlan) -> None:
        """A file keyframed did not write is at the film's path: leave it, say so once."""
        why = "a file keyframed did not write is there; keeping it"
        if not self._kept:
            log.warning("film_not_drawn", film=plan.name, error=why)
            self._kept = True
        self.entry = {"path": plan.name, "warning": f"not drawn: {why}"}
