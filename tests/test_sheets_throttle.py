"""Sheets while jobs run: a changed sheet is redrawn at most once per interval, and the
settled state is drawn at once. The clock is injected; nothing here measures time."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyframed.daemon import sheets
from keyframed.daemon.sheets import SheetWriter
from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import Store
from keyframed.handlers.plan import PlanItem
from tests.planning import build_all, copy_sample


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture()
def built(tmp_path: Path) -> tuple[Path, Snapshot]:
    root = copy_sample(tmp_path / "p")
    store = Store.for_project(root)
    try:
        return root, build_all(root, store)
    finally:
        store.close()


def states(running: str | None, other: str = "fresh") -> sheets.StateOf:
    """Every artifact ``other``, except ``running`` which is running."""
    return lambda item: "running" if item.path == running else other


def first_keyframe(snap: Snapshot) -> PlanItem:
    return next(i for i in snap.items if i.path.endswith("keyframe-start.png"))


def test_while_busy_a_changed_sheet_waits_for_its_interval(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = SheetWriter(root, 64_000_000, clock=clock)
    busy = first_keyframe(snap)
    assert sheets.STORYBOARD in writer.write(snap, states(busy.path))
    # Another job runs now: the storyboard changed, but was drawn a moment ago.
    other = next(i for i in snap.items if i.path.startswith("scene-03/"))
    clock.now += 0.5
    assert writer.write(snap, states(other.path)) == []
    clock.now += sheets.BUSY_MIN_S
    drawn = writer.write(snap, states(other.path))
    assert sheets.STORYBOARD in drawn
    assert "scene-03/contact-sheet.png" in drawn


def test_the_settled_state_is_drawn_at_once(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = SheetWriter(root, 64_000_000, clock=clock)
    busy = first_keyframe(snap)
    writer.write(snap, states(busy.path))
    clock.now += 0.1
    before = (root / sheets.STORYBOARD).read_bytes()
    drawn = writer.write(snap, states(None))  # nothing queued or running any more
    assert sheets.STORYBOARD in drawn
    assert (root / sheets.STORYBOARD).read_bytes() != before
    # And nothing is drawn again while nothing changes.
    clock.now += 100
    assert writer.write(snap, states(None)) == []
