"""When the film is drawn (issue 13): like the storyboard while jobs run, at once when settled,
never again for the same content, and a failure to make it is a warning, never a crash. The
clock is injected; nothing here measures time."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from keyframed.daemon.snapshot import Snapshot
from keyframed.errors import OutputError
from keyframed.render import film_file, sheets
from keyframed.render.film_file import FilmWriter, drawn_key
from tests.render.kit import Clock, states

FILM = "film-preview.mp4"


def test_while_busy_the_film_waits_like_the_storyboard(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = FilmWriter(root, 64_000_000, clock=clock)
    video = "scene-02/video-preview.webp"
    assert not writer.write(snap, states(video))  # busy from the start: not yet
    assert not (root / FILM).exists()
    clock.now += sheets.BOARD_MIN_S
    assert writer.write(snap, states(video))
    assert writer.entry is not None and writer.entry["placeholders"] == [2]
    clock.now += 1
    assert not writer.write(snap, states("scene-03/video-preview.webp"))  # drawn a moment ago
    assert writer.write(snap, states("scene-03/video-preview.webp"), force=True)  # run's end
    assert writer.entry is not None and writer.entry["placeholders"] == [3]


def test_the_settled_film_is_drawn_at_once_and_only_once(built: tuple[Path, Snapshot]) -> None:
    root, snap = built
    clock = Clock()
    writer = FilmWriter(root, 64_000_000, clock=clock)
    assert writer.write(snap, states(None))
    key = drawn_key(root / FILM)
    assert key is not None and writer.entry == {"path": FILM, "seconds": 15.0,
                                                "placeholders": []}
    clock.now += 100
    assert not writer.write(snap, states(None))
    again = FilmWriter(root, 64_000_000, clock=clock)  # a later process: the file's key
    assert not again.write(snap, states(None))
    assert again.entry == writer.entry and drawn_key(root / FILM) == key
    (root / FILM).unlink()  # removed by a person: drawn again
    assert again.write(snap, states(None))


def test_a_full_disk_is_a_warning_and_tried_again_later(
        built: tuple[Path, Snapshot], monkeypatch: pytest.MonkeyPatch) -> None:
    root, snap = built
    clock = Clock()
    writer = FilmWriter(root, 64_000_000, clock=clock)

    def full(*_: object) -> str:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(film_file, "write_inside", full)
    assert not writer.write(snap, states(None))
    assert writer.entry is not None and "No space left" in writer.entry["warning"]
    assert not (root / FILM).exists()
    monkeypatch.undo()
    assert not writer.write(snap, states(None))  # not on every pass
    clock.now += sheets.BOARD_MIN_S
    assert writer.write(snap, states(None))
    assert writer.entry is not None and "warning" not in writer.entry


def test_an_encoder_failure_is_a_warning(built: tuple[Path, Snapshot],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    root, snap = built

    def broken(*_: object, **__: object) -> object:
        raise OutputError("cannot encode the film: no H.264 encoder")

    monkeypatch.setattr(film_file, "encode", broken)
    writer = FilmWriter(root, 64_000_000, clock=Clock())
    assert not writer.write(snap, states(None))
    assert writer.entry == {"path": FILM, "warning": "the film was not written: cannot "
                            "encode the film: no H.264 encoder"}
