"""The film from real MP4 scene videos (issue 13): ``film.mp4`` on a ComfyUI backend, each
scene video sampled by time and its last frame held for the rest of the scene's Duration; a
video that does not decode is a placeholder and the film is still written."""

from __future__ import annotations

import json
import re
from pathlib import Path

import av
import jsonschema
from PIL import Image

from keyframed.render.film_plan import FILM_FPS, frames_for
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.render.test_video_tiles import CYAN, MAGENTA, SCHEMA, YELLOW, build, h264, near


def decoded(path: Path) -> list[Image.Image]:
    with av.open(str(path)) as container:
        return [f.to_image() for f in container.decode(container.streams.video[0])]  # type: ignore[no-untyped-call]


def durations(root: Path) -> list[float]:
    text = (root / "scene-breakdown.md").read_text(encoding="utf-8")
    return [float(s) for s in re.findall(r"\*\*Duration\*\*: ([0-9.]+)", text)]


def film_entry(root: Path) -> dict[str, object]:
    doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(doc, SCHEMA)
    return doc["film"]  # type: ignore[no-any-return]


def test_the_film_samples_each_mp4_by_time_and_holds_its_last_frame(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    root = build(fake_comfy_factory, tmp_path, h264())  # 3.0 s: yellow, magenta, cyan
    assert not (root / "film-preview.mp4").exists()
    frames = decoded(root / "film.mp4")
    wanted = durations(root)
    assert len(frames) == sum(frames_for(s) for s in wanted)
    assert film_entry(root) == {"path": "film.mp4", "seconds": sum(frames_for(s) for s in wanted)
                                / FILM_FPS, "placeholders": []}
    first = frames[: frames_for(wanted[0])]
    for at, colour in ((0.5, YELLOW), (1.5, MAGENTA), (2.5, CYAN)):
        shown = first[int(at * FILM_FPS)]
        assert near(shown, colour) > shown.width * shown.height // 2, (at, colour)
    if wanted[0] > 3.0:  # past the video's end: its last frame is held
        assert near(first[-1], CYAN) > first[-1].width * first[-1].height // 2


def test_a_damaged_mp4_is_a_placeholder_and_the_film_is_written(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    root = build(fake_comfy_factory, tmp_path, h264()[:600])
    entry = film_entry(root)
    assert entry["placeholders"] == [1, 2, 3]
    frames = decoded(root / "film.mp4")
    assert len(frames) == sum(frames_for(s) for s in durations(root))
    # Each scene holds its keyframe: none of the video's frames shows.
    assert all(near(f, YELLOW) < f.width * f.height // 4 for f in frames[:: FILM_FPS])
