"""What the film is made of (issue 13), decided with no file read: the pure segment plan, the
sampling by time, and the signature that tells keyframed's film from a person's."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import Store
from keyframed.daemon.watch_filter import FILM_NAMES
from keyframed.errors import OutputError
from keyframed.handlers.verdict import PlanItem
from keyframed.render.film import sampled
from keyframed.render.film_file import drawn_key, is_ours, signed
from keyframed.render.film_plan import (
    FILM,
    FILM_FPS,
    HELD_SECONDS,
    PREVIEW_FILM,
    FilmPlan,
    film_name,
    film_size,
    frames_for,
    plan_film,
)
from tests.planning import build_all, copy_sample

VIDEO = "scene-{:02d}/video-preview.webp"


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    """The sample, every artifact built (stand-in bytes: the plan reads no file)."""
    root = copy_sample(tmp_path_factory.mktemp("film") / "samurai")
    store = Store.for_project(root)
    try:
        return build_all(root, store)
    finally:
        store.close()


def film(snap: Snapshot, states: dict[str, str] | None = None,
         hashes: dict[str, str | None] | None = None, **kw: object) -> FilmPlan:
    states = states or {}

    def state_of(item: PlanItem) -> str:
        return states.get(item.path, "fresh")

    assert snap.project is not None
    return plan_film(snap.project.scenes, snap.items, {**snap.hashes, **(hashes or {})},
                     state_of, backend_kind="preview", size=(832, 480), **kw)  # type: ignore[arg-type]


def test_every_video_made_plays_in_scene_order_for_its_duration(snap: Snapshot) -> None:
    plan = film(snap)
    assert plan.name == "film-preview.mp4"
    assert [s.scene for s in plan.segments] == [1, 2, 3]
    assert [s.source for s in plan.segments] == [VIDEO.format(n) for n in (1, 2, 3)]
    assert all(s.video and s.label is None and s.frames == 5 * FILM_FPS for s in plan.segments)
    assert plan.seconds == 15.0 and plan.placeholders == []
    assert plan.entry() == {"path": "film-preview.mp4", "seconds": 15.0, "placeholders": []}


def test_a_scene_without_its_video_holds_its_start_keyframe_labelled(snap: Snapshot) -> None:
    waiting = film(snap, {VIDEO.format(3): "awaiting_approval"})
    third = waiting.segments[2]
    assert (third.video, third.source) == (False, "scene-03/keyframe-start.png")
    assert third.digest == snap.hashes["scene-03/keyframe-start.png"]
    assert third.label == "Scene 3: video waits for approval"
    assert third.frames == 5 * FILM_FPS and waiting.seconds == 15.0
    assert waiting.placeholders == [3]
    assert film(snap, {VIDEO.format(1): "failed"}).segments[0].label == "Scene 1: video failed"
    upstream = {"scene-03/keyframe-end.png": "awaiting_approval", VIDEO.format(3): "blocked"}
    assert film(snap, upstream).segments[2].label == "Scene 3: video waits for approval"
    for state in ("stale", "queued", "running", "blocked"):
        assert film(snap, {VIDEO.format(2): state}).segments[1].label == \
            "Scene 2: video not made yet"


def test_a_placeholder_holds_the_newest_still_there_is(snap: Snapshot) -> None:
    gone = {VIDEO.format(1): None, "scene-01/keyframe-start.png": None}
    assert film(snap, hashes=gone).segments[0].source == "scene-01/keyframe-end.png"
    gone["scene-01/keyframe-end.png"] = None
    assert film(snap, hashes=gone).segments[0].source == "scene-01/layers/character-end.png"
    nothing = {p: None for p in snap.hashes if p.startswith("scene-01/")}
    first = film(snap, hashes=nothing).segments[0]
    assert (first.source, first.digest, first.video) == (None, None, False)  # a grey card
    assert first.label == "Scene 1: video not made yet"


def test_a_video_that_does_not_decode_is_a_placeholder(snap: Snapshot) -> None:
    plan = film(snap, unreadable={VIDEO.format(2)})
    assert plan.placeholders == [2]
    assert plan.segments[1].label == "Scene 2: video cannot be read"


def test_a_scene_held_by_input_errors_is_a_grey_card_in_its_place(snap: Snapshot) -> None:
    plan = film(snap, held=[4, 2])  # 2 could be planned: its own segment stays
    assert [s.scene for s in plan.segments] == [1, 2, 3, 4]
    assert plan.segments[1].video
    held = plan.segments[3]
    assert (held.source, held.video, held.label) == (None, False,
                                                      "Scene 4: input error, not built")
    assert held.frames == frames_for(HELD_SECONDS)


def test_the_key_follows_what_the_film_shows(snap: Snapshot) -> None:
    key = film(snap).key
    assert film(snap).key == key  # the same inputs: the same key
    assert film(snap, hashes={VIDEO.format(2): "0" * 64}).key != key
    assert film(snap, {VIDEO.format(2): "awaiting_approval"}).key != key
    # Which state keeps a video in the film does not matter, only that it is made.
    assert film(snap, {VIDEO.format(2): "done"}).key == key


def test_durations_round_to_frames_within_one_frame() -> None:
    for seconds in (0.01, 2.03, 4.97, 5.0, 7.3, 12.0):
        frames = frames_for(seconds)
        assert frames >= 1
        assert abs(frames / FILM_FPS - seconds) <= 1 / FILM_FPS or seconds < 1 / FILM_FPS


def test_names_and_sizes() -> None:
    assert film_name("preview") == PREVIEW_FILM and film_name("comfyui") == FILM
    assert {FILM, PREVIEW_FILM} == FILM_NAMES  # the watcher ignores what the loop writes
    assert film_size(832, 480) == (832, 480) and film_size(833, 481) == (832, 480)


def test_sampling_by_time() -> None:
    eight = iter([(n / 8, n) for n in range(4)])  # 0.5 s at 8 fps
    assert list(sampled(eight, 12)) == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3]  # last held
    thirty_two = iter([(n / 32, n) for n in range(16)])
    assert list(sampled(thirty_two, 4)) == [0, 2, 4, 6]  # every other frame
    uneven = iter([(0.0, "a"), (0.2, "b"), (0.21, "c")])
    assert list(sampled(uneven, 5)) == ["a", "a", "a", "a", "c"]
    with pytest.raises(OutputError, match="no frames"):
        list(sampled(iter([]), 3))


def test_the_signature_tells_keyframeds_film_from_a_persons(tmp_path: Path) -> None:
    path = tmp_path / "film.mp4"
    assert is_ours(path) and drawn_key(path) is None  # absent: free to draw
    mp4 = struct.pack(">I", 8) + b"ftyp" + b"\x00" * 100
    path.write_bytes(signed(mp4, "ab" * 32))
    assert is_ours(path) and drawn_key(path) == "ab" * 32
    path.write_bytes(mp4)  # a director's own cut
    assert not is_ours(path) and drawn_key(path) is None
    path.write_bytes(b"")
    assert not is_ours(path)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.mp4")
    assert not is_ours(path)
