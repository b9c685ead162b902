"""Pictures of real videos (issue 17): a scene's video shows its own frames on the sheets.

A real h264 MP4 is written with PyAV here, served by the ComfyUI-compatible test server as the
output of every video job, and built through ``keyframed run``; the scene's contact sheet and
the storyboard must then hold pixels of its first, middle and last frame. A damaged MP4 gives
a "cannot read video" tile and a note in the scene's status file, never a crash.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from PIL import Image

from keyframed.cli.main import main
from keyframed.render import contact
from keyframed.render.video_frames import read_frames
from tests.comfy_project import comfy_project
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.render import h264_bytes

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text())
# First, middle and last thirds of the test video: colours no state border on a sheet uses.
YELLOW, MAGENTA, CYAN = (250, 250, 0), (250, 0, 250), (0, 250, 250)
FRAMES, FPS = 24, 8


def h264(size: tuple[int, int] = (128, 80)) -> bytes:
    """A real h264 MP4: 8 yellow, 8 magenta, 8 cyan frames at 8 fps (3.0 s)."""
    return h264_bytes([(YELLOW, MAGENTA, CYAN)[n * 3 // FRAMES] for n in range(FRAMES)], size,
                      FPS)


def near(image: Image.Image, colour: tuple[int, int, int], tolerance: int = 48) -> int:
    """How many pixels of the image lie within ``tolerance`` of ``colour`` on every channel."""
    data = image.convert("RGB").tobytes()
    r, g, b = colour
    return sum(1 for i in range(0, len(data), 3)
               if abs(data[i] - r) <= tolerance and abs(data[i + 1] - g) <= tolerance
               and abs(data[i + 2] - b) <= tolerance)


def last_tile(sheet: Image.Image) -> Image.Image:
    """The thumbnail of the last tile of a scene's contact sheet (the video's: layers, then
    keyframes, then the video), found from the sheet's own geometry."""
    w, gap, margin = contact.THUMB_W + 2 * contact.BORDER, contact.GAP, contact.MARGIN
    count = (sheet.width - 2 * margin + gap) // (w + gap)
    x, y = margin + (count - 1) * (w + gap) + contact.BORDER, contact.TITLE_H + contact.BORDER
    return sheet.crop((x, y, x + contact.THUMB_W, y + contact.THUMB_H))


def test_frames_of_an_mp4_are_read_with_count_and_duration(tmp_path: Path) -> None:
    video = tmp_path / "video.mp4"
    video.write_bytes(h264())
    frames = read_frames(video)
    assert frames.frame_count == FRAMES
    assert frames.duration_s == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    assert frames.label == "3.0 s · 24 frames"
    firsts = [f.convert("RGB").getpixel((f.width // 2, f.height // 2)) for f in frames.frames]
    for got, want in zip(firsts, (YELLOW, MAGENTA, CYAN), strict=True):
        assert all(abs(a - b) <= 48 for a, b in zip(got, want, strict=True)), (got, want)


def test_a_damaged_video_gives_a_cannot_read_tile(tmp_path: Path) -> None:
    video = tmp_path / "video.mp4"
    video.write_bytes(h264()[:600])
    frames = contact.video_frames(video, "damaged", 10**8)
    assert isinstance(frames, str) and frames
    tile = contact.video_thumbnail(video, "damaged", (246, 134), 10**8)
    assert near(tile, contact.PLACEHOLDER, tolerance=2) > tile.width * tile.height // 2
    assert near(tile, MAGENTA) == 0


def build(fake_comfy_factory: FakeComfyFactory, tmp_path: Path, video: bytes) -> Path:
    server = fake_comfy_factory()
    server.faults.video_bytes = video
    root = comfy_project(tmp_path / "p", [server])
    assert main(["run", str(root), "--timeout", "120"]) == 0
    return root


def test_sheet_and_storyboard_show_frames_of_a_real_mp4(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    root = build(fake_comfy_factory, tmp_path, h264())
    assert (root / "scene-01" / "video.mp4").read_bytes() == h264()
    with Image.open(root / "scene-01" / "contact-sheet.png") as sheet:
        tile = last_tile(sheet)
    for colour in (YELLOW, MAGENTA, CYAN):
        assert near(tile, colour) > 2000, colour
    with Image.open(root / "storyboard.png") as board:
        # Three scenes, each with the same video: every frame colour shows three times.
        for colour in (YELLOW, MAGENTA, CYAN):
            assert near(board, colour) > 3 * 2000, colour
    status = json.loads((root / "scene-01" / "status.json").read_text())
    assert not any("note" in a for a in status["artifacts"])


def test_a_damaged_mp4_is_a_cannot_read_tile_and_a_status_note(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    root = build(fake_comfy_factory, tmp_path, h264()[:600])
    with Image.open(root / "scene-01" / "contact-sheet.png") as sheet:
        tile = last_tile(sheet)
    assert near(tile, contact.PLACEHOLDER, tolerance=2) > tile.width * tile.height // 2
    assert near(tile, MAGENTA) == 0
    status = json.loads((root / "scene-01" / "status.json").read_text())
    jsonschema.validate(status, SCHEMA)
    video = next(a for a in status["artifacts"] if a["kind"] == "video")
    assert video["note"].startswith("cannot read video: ")
    assert video["state"] in ("fresh", "done")
