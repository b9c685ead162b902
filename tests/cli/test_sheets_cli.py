"""asset-sheet.png and the storyboard's tiles through the real CLI (`keyframed run` on a copy of
the sample, preview backend): the asset sheet is drawn after a run, left alone by a run that
changes nothing, redrawn when an asset image changes; the storyboard has no layer tiles unless
the project's keyframed.toml says ``[storyboard] layers = true``."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from keyframed.render import contact
from keyframed.render.sheets import drawn_key, is_ours, storyboard_rows
from tests.planning import after_one_pass, copy_sample

LAYERS = ["background", "character-start", "character-end"]


def run(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root.parent / "no-user-config")}
    return subprocess.run([sys.executable, "-m", "keyframed", *args, str(root)],
                          capture_output=True, text=True, env=env, timeout=180, check=False)


def built(root: Path) -> None:
    done = run(root, "run")
    assert done.returncode == 0, done.stderr


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "samurai")
    built(root)
    return root


def png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 160)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def board_captions(root: Path) -> list[list[str]]:
    """The storyboard's tiles as the daemon sees them after one more pass."""
    snap, state_of = after_one_pass(root)
    return [[t.caption for t in tiles] for _, tiles in storyboard_rows(snap, state_of)]


def test_asset_sheet_is_drawn_and_redrawn_only_when_an_asset_changes(project: Path) -> None:
    sheet = project / "asset-sheet.png"
    with Image.open(sheet) as image:
        image.verify()
        assert image.format == "PNG"
    key, data, mtime = drawn_key(sheet), sheet.read_bytes(), sheet.stat().st_mtime_ns
    assert key is not None and is_ours(sheet)
    # Nothing changed: the sheet is not written again.
    built(project)
    assert (sheet.read_bytes(), sheet.stat().st_mtime_ns) == (data, mtime)
    # A given image's bytes change: the sheet is redrawn.
    (project / "assets/characters/samurai.png").write_bytes(png((200, 40, 40)))
    built(project)
    assert drawn_key(sheet) not in (None, key)
    key = drawn_key(sheet)
    # A generated asset's description changes: regenerated, and the sheet redrawn.
    assets = json.loads((project / "assets.json").read_text(encoding="utf-8"))
    assets["styles"]["ghibli"]["description"] = "Ink wash painting, soft grey tones"
    (project / "assets.json").write_text(json.dumps(assets), encoding="utf-8")
    before = (project / "assets/styles/ghibli.png").read_bytes()
    built(project)
    assert (project / "assets/styles/ghibli.png").read_bytes() != before
    assert drawn_key(sheet) not in (None, key)


def test_a_users_own_asset_sheet_is_kept(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "samurai")
    (root / "asset-sheet.png").write_bytes(png((1, 2, 3), (40, 30)))
    built(root)
    with Image.open(root / "asset-sheet.png") as image:
        assert image.size == (40, 30)


def test_storyboard_has_layers_only_when_the_project_asks(project: Path) -> None:
    board = project / "storyboard.png"
    captions = board_captions(project)
    assert captions and all(row == ["keyframe-start", "keyframe-end", "video-preview"]
                            for row in captions)
    with Image.open(board) as image:
        narrow = image.size
    assert narrow[0] == contact.storyboard_layout([("", [contact.Tile(None, "", "")] * 3)]).width
    key = drawn_key(board)
    scene_sheet = (project / "scene-01/contact-sheet.png").read_bytes()
    config = project / "keyframed.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[storyboard]\nlayers = true\n",
                      encoding="utf-8")
    built(project)
    captions = board_captions(project)
    assert captions[0] == ["keyframe-start", "keyframe-end", "video-preview", *LAYERS]
    assert drawn_key(board) not in (None, key)
    with Image.open(board) as image:
        assert image.size[0] > narrow[0]
    # A scene's contact sheet shows every tile either way: not redrawn for the setting.
    assert (project / "scene-01/contact-sheet.png").read_bytes() == scene_sheet


def test_unknown_storyboard_keys_are_refused(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "samurai")
    config = root / "keyframed.toml"
    config.write_text(config.read_text(encoding="utf-8") + "\n[storyboard]\nlayer = true\n",
                      encoding="utf-8")
    done = run(root, "validate")
    assert done.returncode != 0
    assert "storyboard.layer" in done.stderr + done.stdout
    assert not (root / "storyboard.png").exists()
