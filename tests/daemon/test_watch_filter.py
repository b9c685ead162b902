"""Which project paths the watcher ignores: keyframed's own files and editors' side files."""

from __future__ import annotations

import pytest

from keyframed.daemon.watch_filter import ignored_path, is_editor_artefact

IGNORED = [
    ".keyframed",
    ".keyframed/state.db-wal",
    ".git/index.lock",
    "assets/.git/HEAD",
    ".idea/workspace.xml",
    "scene-01/.kf-tmp-abc123.png",
    ".kf-tmp-x.json",
    "status.json",
    "scene-01/status.json",
    "scene-112/status.json",
    "storyboard.png",
    "asset-sheet.png",
    "scene-07/contact-sheet.png",
    ".scene-breakdown.md.swp",
    ".assets.json.swo",
    ".assets.json.swx",
    ".assets.json.svz",
    "4913",
    "5036",
    "scene-breakdown.md~",
    "assets/characters/samurai.png~",
    ".#assets.json",
    "#assets.json#",
    "assets.json___jb_tmp___",
    "assets.json___jb_old___",
    ".goutputstream-7Q3ZB2",
    "assets/.DS_Store",
    "assets/characters/Thumbs.db",
    ".style.json.kate-swp",
]

KEPT = [
    "",  # the root itself: the watcher decides what a root event means
    "assets.json",
    "scene-breakdown.md",
    "style.json",
    "philosophy.md",
    "keyframed.toml",
    "workflows/qwen_anypose.json",
    "assets/characters/samurai.png",
    "assets/status.json",  # a user's file that merely shares the name
    "assets/storyboard.png",
    "assets/asset-sheet.png",
    "scene-01/keyframes.approved",
    "assets.approved",
    "scene-01/keyframe-start.retry",
    "scene-01/keyframe-start.png",
    "scene-01/layers/background.png",
    "scene-01",
    "sedX1b2c3",  # sed's temp: part of the same burst as the rename it ends with
    "4914",
    "1234",
    "#",
]


@pytest.mark.parametrize("rel", IGNORED)
def test_ignored(rel: str) -> None:
    assert ignored_path(rel)


@pytest.mark.parametrize("rel", KEPT)
def test_kept(rel: str) -> None:
    assert not ignored_path(rel)


def test_artefact_names_only_look_at_the_name() -> None:
    assert is_editor_artefact("scene-breakdown.md~")
    assert not is_editor_artefact("scene-breakdown.md")
