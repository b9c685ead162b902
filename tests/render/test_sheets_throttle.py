"""Sheets while jobs run: changed scene sheets are redrawn together at most once per interval,
the storyboard at most once per a longer one, and the settled state is drawn at once. The clock
is injected; nothing here measures time."""

from __future__ import annotations

from pathlib import Path

from keyframed.daemon.snapshot import Snapshot
from keyframed.render import sheets
from keyframed.render.sheets import SheetWriter
from tests.render.kit import Clock, states


def in_scene(snap: Snapshot, scene: int) -> str:
    return next(i.path for i in snap.items if i.path.startswith(f"scene-{scene:02d}/"))


def test_while_busy_sheets_wait_for_their_intervals(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = SheetWriter(root, 64_000_000, clock=clock)
    assert writer.write(snap, states(in_scene(snap, 1))) == []  # busy from the start
    clock.now += sheets.BUSY_MIN_S
    drawn = writer.write(snap, states(in_scene(snap, 1)))
    assert "scene-01/contact-sheet.png" in drawn and sheets.STORYBOARD not in drawn
    # Another job runs: scene 3's sheet changed, but sheets were drawn a moment ago.
    clock.now += 0.5
    assert writer.write(snap, states(in_scene(snap, 3))) == []
    clock.now += sheets.BUSY_MIN_S
    # Scene 1's job finished (its tile changed too); no storyboard yet.
    assert set(writer.write(snap, states(in_scene(snap, 3)))) == {
        "scene-01/contact-sheet.png", "scene-03/contact-sheet.png"}
    clock.now += sheets.BOARD_MIN_S
    assert sheets.STORYBOARD in writer.write(snap, states(in_scene(snap, 3)))
    assert (root / sheets.STORYBOARD).is_file()


def test_the_settled_state_is_drawn_at_once(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = SheetWriter(root, 64_000_000, clock=clock)
    assert writer.write(snap, states(in_scene(snap, 1))) == []
    clock.now += 0.1
    drawn = writer.write(snap, states(None))  # nothing queued or running any more
    assert sheets.STORYBOARD in drawn
    assert {f"scene-0{n}/contact-sheet.png" for n in (1, 2, 3)} <= set(drawn)
    # And nothing is drawn again while nothing changes.
    clock.now += 100
    assert writer.write(snap, states(None)) == []


def test_a_restarted_daemon_draws_only_the_sheets_that_changed(
    built: tuple[Path, Snapshot],
) -> None:
    root, snap = built
    first = SheetWriter(root, 64_000_000, clock=Clock())
    assert sheets.STORYBOARD in first.write(snap, states(None))
    # A new writer (a restarted daemon) reads what each sheet shows from the file itself.
    again = SheetWriter(root, 64_000_000, clock=Clock())
    assert again.write(snap, states(None)) == []
    # One scene's tile changed meanwhile (it failed): that sheet and the storyboard only.
    failed = in_scene(snap, 2)
    changed = SheetWriter(root, 64_000_000, clock=Clock())
    drawn = changed.write(snap, lambda item: "failed" if item.path == failed else "fresh")
    assert set(drawn) == {"scene-02/contact-sheet.png", sheets.STORYBOARD}
