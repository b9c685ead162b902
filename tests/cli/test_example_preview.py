"""The README's first command on the sample: every output in place, of the configured size, and
contact sheets whose tiles and captions say what each artifact is and its state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keyframed.inputs.config import load_settings
from keyframed.render import contact
from keyframed.render.sheets import scene_tiles
from tests.planning import after_one_pass, copy_sample


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_sample(tmp_path_factory.mktemp("example") / "samurai")
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "none")}
    done = subprocess.run([sys.executable, "-m", "keyframed", "run", str(root)],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    # The same words and counts as `keyframed status`: built by a job is done, the local copy
    # (scene 2's background layer) fresh.
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout
    return root


def test_every_output_is_in_place_and_of_the_configured_size(built: Path) -> None:
    settings = load_settings(built, env={})
    image_size = (settings.image.width, settings.image.height)
    for scene in ("scene-01", "scene-03"):
        for rel in ("layers/background.png", "layers/character-start.png",
                    "layers/character-end.png", "keyframe-start.png", "keyframe-end.png"):
            with Image.open(built / scene / rel) as image:
                assert (image.format, image.size) == ("PNG", image_size), rel
    for rel in ("scene-02/keyframe-start.png", "scene-02/keyframe-end.png",
                "scene-02/layers/background.png", "assets/styles/ghibli.png",
                "assets/backgrounds/temple_courtyard.png"):
        with Image.open(built / rel) as image:
            assert image.size == image_size, rel
    for n in (1, 2, 3):
        with Image.open(built / f"scene-0{n}" / "video-preview.webp") as video:
            assert video.format == "WEBP" and video.is_animated
            assert video.size == (settings.video.width, settings.video.height)
        assert (built / f"scene-0{n}" / "status.json").is_file()
        assert (built / f"scene-0{n}" / "contact-sheet.png").is_file()
    assert (built / "storyboard.png").is_file()


def tiles_after_one_pass(root: Path, scene: int) -> list[contact.Tile]:
    """The contact-sheet tiles of a scene as the daemon sees them after one pass."""
    snap, state_of = after_one_pass(root)
    return scene_tiles(snap, scene, state_of)


def test_contact_sheet_tiles_and_captions(built: Path) -> None:
    tiles = tiles_after_one_pass(built, 1)
    layout = contact.scene_sheet_layout("Scene 1: Temple Meditation", tiles)
    captions = [box.caption for box in layout.tiles]
    assert captions == ["background", "character-start", "character-end", "keyframe-start",
                        "keyframe-end", "video-preview"]
    assert {box.state for box in layout.tiles} <= {"done", "fresh"}
    assert any("Scene 1" in t.text for t in layout.texts)
    with Image.open(built / "scene-01" / "contact-sheet.png") as sheet:
        assert sheet.size == (layout.width, layout.height)


def test_an_edit_marks_the_sheet_stale(built: Path, tmp_path: Path) -> None:
    import shutil

    root = tmp_path / "p"
    shutil.copytree(built, root)
    text = (root / "scene-breakdown.md").read_text(encoding="utf-8")
    (root / "scene-breakdown.md").write_text(text.replace("eyes open, alert", "eyes wide"))
    (root / "keyframed.toml").write_text(
        (root / "keyframed.toml").read_text().replace('approval = "auto"', 'approval = "manual"'))
    tiles = tiles_after_one_pass(root, 3)
    states = {t.caption: t.state for t in tiles}
    assert states["keyframe-end"] == "awaiting_approval" or states["keyframe-end"] == "queued"
    assert states["video-preview"] == "blocked"
    doc = json.loads((root / "scene-03" / "status.json").read_text(encoding="utf-8"))
    assert {a["path"]: a["state"] for a in doc["artifacts"]}["scene-03/video-preview.webp"] == \
        "blocked"
