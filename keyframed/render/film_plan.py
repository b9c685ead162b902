"""What the film is made of: one segment per scene, in scene order. Pure: no file is read.

The film (``film.mp4``, ``film-preview.mp4`` on the preview backend: DESIGN §2) is the scene
videos joined for a person to watch. Each scene's segment lasts that scene's ``Duration`` from
scene-breakdown.md, as a whole number of frames at :data:`FILM_FPS`, so the film lasts the sum
of the durations within one frame per scene whatever the videos' own lengths and rates.

A scene whose video is not made yet (not built, failed, waiting for an approval, being made
again after an edit) is a *placeholder*: it holds the newest still of the scene (the start
keyframe, else the end keyframe, else its most finished layer; a grey card when there is
none) with a label saying why, so the film always plays through. A scene that input errors
hold back is a grey card of :data:`HELD_SECONDS` (its Duration cannot be read).

:func:`plan_film` decides; :mod:`keyframed.render.film` encodes; the plan's :attr:`FilmPlan.key`
(the sha256 of everything the film shows, content hashes included) says when to redraw.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

from keyframed.handlers.project import Scene
from keyframed.handlers.steps.composite import keyframe_path
from keyframed.handlers.steps.video import video_path
from keyframed.handlers.verdict import PlanItem

# Wan 2.2 makes video at 16 fps (config.toml [video] fps); the preview's 8-fps animatics
# sample to it exactly. Fixed, so a film's length never depends on what its scenes were made at.
FILM_FPS = 16
FILM = "film.mp4"
PREVIEW_FILM = "film-preview.mp4"
# A held scene's Duration cannot be read: Scene's default.
HELD_SECONDS = Scene.model_fields["duration"].default
# Bump when the encoding changes, so every film is drawn again once.
FORMAT = 1
# States in which the scene's video file is the current one.
MADE = frozenset({"fresh", "done", "user_override"})
_WHY = {"awaiting_approval": "video waits for approval", "failed": "video failed"}


@dataclass(frozen=True)
class Segment:
    """One scene's part of the film."""

    scene: int
    frames: int
    # Project-relative path of what is shown: the scene video, or the still a placeholder
    # holds; None for a grey card.
    source: str | None
    digest: str | None  # the source's content hash (what the key is made of)
    video: bool  # True: the scene's video plays; False: a placeholder holds a still
    label: str | None  # drawn on a placeholder: "Scene 3: video not made yet"

    @property
    def seconds(self) -> float:
        """How long the segment lasts."""
        return self.frames / FILM_FPS


@dataclass(frozen=True)
class FilmPlan:
    """The whole film: where it goes, its frame size and its segments."""

    name: str
    size: tuple[int, int]
    segments: tuple[Segment, ...]

    @property
    def seconds(self) -> float:
        """The film's length: its frames at :data:`FILM_FPS`."""
        return sum(s.frames for s in self.segments) / FILM_FPS

    @property
    def placeholders(self) -> list[int]:
        """The scenes that hold a still instead of their video."""
        return [s.scene for s in self.segments if not s.video]

    @property
    def key(self) -> str:
        """The sha256 of everything the film shows: equal keys, equal films."""
        doc = [FORMAT, FILM_FPS, self.name, list(self.size), [asdict(s) for s in self.segments]]
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def entry(self) -> dict[str, object]:
        """The film's entry in root status.json."""
        return {"path": self.name, "seconds": round(self.seconds, 3),
                "placeholders": self.placeholders}


def film_name(backend_kind: str) -> str:
    """``film-preview.mp4`` on the preview backend (its scene videos are previews), else
    ``film.mp4``."""
    return PREVIEW_FILM if backend_kind == "preview" else FILM


def film_size(width: int, height: int) -> tuple[int, int]:
    """The configured video size, made even (H.264 in yuv420p needs even dimensions)."""
    return max(2, width - width % 2), max(2, height - height % 2)


def frames_for(seconds: float) -> int:
    """A scene's Duration as whole frames at :data:`FILM_FPS` (at least one)."""
    return max(1, round(seconds * FILM_FPS))


def plan_film(scenes: Sequence[Scene], items: Sequence[PlanItem],
              hashes: Mapping[str, str | None], state_of: Callable[[PlanItem], str], *,
              backend_kind: str, size: tuple[int, int],
              unreadable: Collection[str] = (), held: Collection[int] = ()) -> FilmPlan:
    """The film of a project: per scene (and per scene input errors hold back, ``held``) in
    number order, its video or a placeholder.

    Args:
        scenes: the scenes that could be planned.
        items: the plan's items (other scenes' and assets' are ignored).
        hashes: content hash per project-relative path; None or absent: no file there.
        state_of: an item's state, as status.json shows it.
        backend_kind: picks the film's name and the scene videos' paths.
        size: the film's frame size (even).
        unreadable: video paths that do not decode: their scenes are placeholders.
        held: numbers of the scenes input errors hold back.
    """
    by_scene: dict[int, list[PlanItem]] = {}
    for item in items:
        if item.artifact.scene is not None:
            by_scene.setdefault(item.artifact.scene, []).append(item)
    segments = {s.number: _segment(s, by_scene.get(s.number, []), hashes, state_of,
                                   backend_kind, unreadable) for s in scenes}
    for number in held:
        segments.setdefault(number, Segment(
            number, frames_for(HELD_SECONDS), None, None, False,
            f"Scene {number}: input error, not built"))
    ordered = tuple(segments[n] for n in sorted(segments))
    return FilmPlan(film_name(backend_kind), size, ordered)


def _segment(scene: Scene, items: list[PlanItem], hashes: Mapping[str, str | None],
             state_of: Callable[[PlanItem], str], backend_kind: str,
             unreadable: Collection[str]) -> Segment:
    frames = frames_for(scene.duration)
    path = video_path(scene, backend_kind)
    video = next((i for i in items if i.path == path), None)
    state = state_of(video) if video is not None else "blocked"
    digest = hashes.get(path)
    if state in MADE and digest and path not in unreadable:
        return Segment(scene.number, frames, path, digest, True, None)
    if state in MADE and digest:
        why = "video cannot be read"
    elif state != "failed" and any(state_of(i) == "awaiting_approval" for i in items):
        why = _WHY["awaiting_approval"]  # the video, or a keyframe it is made from, waits
    else:
        why = _WHY.get(state, "video not made yet")
    still = newest_still(scene, items, hashes)
    return Segment(scene.number, frames, still, hashes.get(still) if still else None, False,
                   f"Scene {scene.number}: {why}")


def newest_still(scene: Scene, items: Sequence[PlanItem],
                 hashes: Mapping[str, str | None]) -> str | None:
    """The still a placeholder holds: the start keyframe, else the end keyframe, else the
    scene's layer furthest along (character layers before the background), if on disk."""
    layers = [i.path for i in items if i.artifact.kind == "layer" and "/takes/" not in i.path]
    layers.sort(key=lambda p: (p.endswith("/background.png"), p))
    wanted = [keyframe_path(scene, "start"), keyframe_path(scene, "end"), *layers]
    return next((p for p in wanted if hashes.get(p)), None)
