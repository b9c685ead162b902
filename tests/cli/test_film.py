"""The film (issue 13) through the real CLI on the bundled example, preview backend: after
README command 1 ``film-preview.mp4`` opens with PyAV and lasts the sum of the scene
durations within a frame per scene; it is drawn again only when what it shows changes, holds
a still for a scene without its video, and a person's file at its path is never replaced."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import jsonschema
import pytest

from keyframed.render.film_plan import FILM_FPS, frames_for
from tests.planning import copy_sample

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text())
FILM = "film-preview.mp4"


def keyframed(command: str, root: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI on a project as a person would, with no user configuration."""
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "none")}
    return subprocess.run([sys.executable, "-m", "keyframed", command, str(root)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def run(root: Path) -> subprocess.CompletedProcess[str]:
    done = keyframed("run", root)
    assert done.returncode == 0, done.stderr
    return done


def durations(root: Path) -> list[float]:
    """Each scene's Duration, read from scene-breakdown.md as a person writes it."""
    text = (root / "scene-breakdown.md").read_text(encoding="utf-8")
    return [float(s) for s in re.findall(r"\*\*Duration\*\*: ([0-9.]+)", text)]


def probe(path: Path) -> tuple[int, float]:
    """Frames decoded and the video stream's duration in seconds."""
    with av.open(str(path)) as container:
        assert container.streams.video, "no video stream"
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = sum(1 for _ in container.decode(stream))
        assert stream.duration is not None and stream.time_base is not None
        return frames, float(stream.duration * Fraction(stream.time_base))


def root_status(root: Path) -> dict[str, object]:
    doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(doc, SCHEMA)
    return doc  # type: ignore[no-any-return]


def edited(built: Path, dest: Path, old: str, new: str, *, manual: bool = False) -> Path:
    root = dest / "p"
    shutil.copytree(built, root)
    text = (root / "scene-breakdown.md").read_text(encoding="utf-8")
    assert old in text
    (root / "scene-breakdown.md").write_text(text.replace(old, new, 1), encoding="utf-8")
    if manual:
        toml = root / "keyframed.toml"
        toml.write_text(toml.read_text().replace('approval = "auto"', 'approval = "manual"'))
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("film") / "samurai")
    done = run(root)
    assert "  film: film-preview.mp4, 15.0 s\n" in done.stdout  # the run says where its film is
    return root


def test_the_film_after_readme_command_1(built: Path) -> None:
    film = built / FILM
    assert film.is_file() and not (built / "film.mp4").exists()
    frames, seconds = probe(film)
    wanted = durations(built)
    assert len(wanted) == 3
    assert abs(seconds - sum(wanted)) <= len(wanted) / FILM_FPS
    assert frames == sum(frames_for(s) for s in wanted)
    assert root_status(built)["film"] == {"path": FILM, "seconds": sum(wanted),
                                          "placeholders": []}
    shown = keyframed("status", built)
    assert f"film: {FILM}, {sum(wanted):.1f} s" in shown.stdout


def test_a_second_run_with_no_change_does_not_rewrite_it(built: Path) -> None:
    film = built / FILM
    before = (film.read_bytes(), film.stat().st_mtime_ns)
    run(built)
    assert (film.read_bytes(), film.stat().st_mtime_ns) == before


def test_an_edit_of_one_scene_video_redraws_it(built: Path, tmp_path: Path) -> None:
    root = edited(built, tmp_path, "**Duration**: 5 seconds", "**Duration**: 3 seconds")
    before = (root / FILM).read_bytes()
    video = (root / "scene-01" / "video-preview.webp").read_bytes()
    run(root)
    assert (root / "scene-01" / "video-preview.webp").read_bytes() != video
    assert (root / FILM).read_bytes() != before
    frames, seconds = probe(root / FILM)
    assert durations(root)[0] == 3.0
    assert abs(seconds - 13.0) <= 3 / FILM_FPS and frames == 13 * FILM_FPS
    assert root_status(root)["film"] == {"path": FILM, "seconds": 13.0, "placeholders": []}


def test_a_scene_held_for_an_approval_is_a_placeholder(built: Path, tmp_path: Path) -> None:
    root = edited(built, tmp_path, "eyes open, alert", "eyes wide", manual=True)
    before = (root / FILM).read_bytes()
    done = run(root)  # waits for scene-03/keyframes.approved: not a failure
    assert "keyframes.approved" in done.stdout
    assert "scene 3 holds a still in place of its video" in done.stdout
    film = root_status(root)["film"]
    assert film == {"path": FILM, "seconds": 15.0, "placeholders": [3]}
    assert (root / FILM).read_bytes() != before
    frames, seconds = probe(root / FILM)
    assert frames == 15 * FILM_FPS and abs(seconds - 15.0) <= 3 / FILM_FPS
    assert "scene 3 holds a still" in keyframed("status", root).stdout


def test_a_video_that_does_not_decode_is_a_placeholder_not_a_failure(
        built: Path, tmp_path: Path) -> None:
    root = tmp_path / "p"
    shutil.copytree(built, root)
    # A person's file in place of scene 2's video (a user override) that is no video at all.
    (root / "scene-02" / "video-preview.webp").write_bytes(b"RIFF\x10\x00\x00\x00WEBPnot a video")
    run(root)
    assert root_status(root)["film"] == {"path": FILM, "seconds": 15.0, "placeholders": [2]}
    assert probe(root / FILM)[0] == 15 * FILM_FPS


def test_a_film_keyframed_did_not_write_is_kept(built: Path, tmp_path: Path) -> None:
    root = edited(built, tmp_path, "**Duration**: 5 seconds", "**Duration**: 4 seconds")
    own = b"\x00\x00\x00\x08ftypmine, cut by hand"
    (root / FILM).write_bytes(own)
    run(root)
    assert (root / FILM).read_bytes() == own
    film = root_status(root)["film"]
    assert isinstance(film, dict) and "keyframed did not write" in film["warning"]
