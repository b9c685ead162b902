"""The asset sheet's rows and the storyboard's tile list, as data: which tiles, in which order,
with which captions, states and approvals (the pixels are :mod:`tests.render.test_contact`'s
business, the real CLI's in :mod:`tests.cli.test_sheets_cli`)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from keyframed.daemon.snapshot import Snapshot
from keyframed.daemon.store import Store
from keyframed.render import contact
from keyframed.render.asset_sheet import approval_line, asset_rows, live_path
from keyframed.render.contact import Tile
from keyframed.render.sheets import scene_tiles, storyboard_rows
from keyframed.settings import StoryboardSettings
from tests.planning import build_all, copy_sample, snapshot


def fresh(_item: object) -> str:
    return "fresh"


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = copy_sample(tmp_path / "p")
    store = Store.for_project(root)
    try:
        build_all(root, store)
    finally:
        store.close()
    return root


def look(root: Path) -> Snapshot:
    store = Store.for_project(root)
    try:
        return snapshot(root, store)
    finally:
        store.close()


def by_caption(snap: Snapshot) -> dict[str, Tile]:
    return {t.caption: t for _, tiles in asset_rows(snap, fresh) for t in tiles}


def test_every_asset_by_type_with_its_state(project: Path) -> None:
    snap = look(project)
    rows = asset_rows(snap, fresh)
    assert [h for h, _ in rows] == ["characters (2)", "backgrounds (2)", "poses (3)",
                                    "styles (2)", "objects (1)"]
    assert [[t.caption for t in tiles] for _, tiles in rows] == [
        ["samurai", "ninja"], ["temple_courtyard", "mountain_sunset"],
        ["standing", "meditation", "fighting"], ["ghibli", "realistic"], ["katana"]]
    states = {t.caption: t.state for _, tiles in rows for t in tiles}
    # Given by the user; generated (the plan's state); no image and no scene that uses it.
    assert states["samurai"] == states["fighting"] == "given"
    assert states["temple_courtyard"] == states["ghibli"] == "fresh"
    assert states["realistic"] == states["katana"] == "unused"
    tiles = by_caption(snap)
    assert tiles["samurai"].path == project / "assets/characters/samurai.png"
    assert tiles["ghibli"].digest == snap.hashes["assets/styles/ghibli.png"]
    assert tiles["katana"].path is None  # a card with its name and state, no image


def test_generated_states_come_from_the_plan(project: Path) -> None:
    snap = look(project)
    running = {"assets/styles/ghibli.png": "running", "assets/backgrounds/mountain_sunset.png":
               "failed"}
    rows = asset_rows(snap, lambda i: running.get(i.path, "fresh"))
    states = {t.caption: t.state for _, tiles in rows for t in tiles}
    assert (states["ghibli"], states["mountain_sunset"], states["samurai"]) == \
        ("running", "failed", "given")


def test_approval_badges_and_line(project: Path) -> None:
    config = project / "keyframed.toml"
    config.write_text(config.read_text().replace('approval = "auto"', 'approval = "manual"'))
    snap = look(project)
    assert approval_line(snap, asset_rows(snap, fresh)).startswith(
        "assets.approved not dropped yet")
    assert not any(t.approved for t in by_caption(snap).values())
    (project / "assets.approved").write_text("")
    snap = look(project)
    tiles = by_caption(snap)
    assert all(t.approved == (t.path is not None) for t in tiles.values())
    assert approval_line(snap, asset_rows(snap, fresh)) == \
        "assets.approved: every asset image approved"
    # A given image replaced after the marker: no longer the approved one.
    buf = io.BytesIO()
    Image.new("RGB", (64, 96), (10, 200, 10)).save(buf, format="PNG")
    (project / "assets/characters/samurai.png").write_bytes(buf.getvalue())
    snap = look(project)
    tiles = by_caption(snap)
    assert not tiles["samurai"].approved and tiles["ninja"].approved
    assert "is stale: 1 image(s) changed" in approval_line(snap, asset_rows(snap, fresh))


def test_approval_auto_says_there_is_no_checkpoint(project: Path) -> None:
    snap = look(project)
    assert approval_line(snap, asset_rows(snap, fresh)).startswith("approval = auto")


def test_take_paths_belong_to_their_asset() -> None:
    assert live_path("assets/styles/takes/ghibli.take-2.png") == "assets/styles/ghibli.png"
    assert live_path("assets/styles/ghibli.png") == "assets/styles/ghibli.png"
    assert live_path("scene-01/takes/keyframe-start.take-0.png") == "scene-01/keyframe-start.png"


def test_storyboard_shows_keyframes_and_video_but_no_layers_by_default(project: Path) -> None:
    snap = look(project)
    assert snap.settings.storyboard.layers is False
    rows = storyboard_rows(snap, fresh)
    assert [label for label, _ in rows] == [
        "Scene 1: Temple Meditation", "Scene 2: Sunset Transition", "Scene 3: Eyes Open"]
    for _, tiles in rows:
        assert [t.caption for t in tiles] == ["keyframe-start", "keyframe-end", "video-preview"]
    # The scene's own contact sheet keeps every tile, layers first.
    assert [t.caption for t in scene_tiles(snap, 1, fresh)] == [
        "background", "character-start", "character-end", "keyframe-start", "keyframe-end",
        "video-preview"]


def test_storyboard_layers_follow_when_asked(project: Path) -> None:
    snap = look(project)
    snap.settings = snap.settings.model_copy(update={"storyboard": StoryboardSettings(layers=True)})
    rows = dict(storyboard_rows(snap, fresh))
    assert [t.caption for t in rows["Scene 1: Temple Meditation"]] == [
        "keyframe-start", "keyframe-end", "video-preview", "background", "character-start",
        "character-end"]
    # Scene 2's background is a copy of the asset: a layer too.
    assert [t.caption for t in rows["Scene 2: Sunset Transition"]][3:] == ["background"]


def test_asset_layout_wraps_and_is_bounded() -> None:
    many = [Tile(None, f"a{i}", "given") for i in range(contact.MAX_COLUMNS * 2 + 3)]
    layout = contact.asset_sheet_layout([("characters (27)", many), ("styles (1)", many[:1])],
                                        "assets.approved not dropped yet")
    assert [b.caption for b in layout.tiles] == [t.caption for t in many] + ["a0"]
    ys = sorted({b.y for b in layout.tiles})
    assert len(ys) == 4  # 12 + 12 + 3, then the next type on a line of its own
    assert max(b.x + b.w for b in layout.tiles) <= layout.width
    assert [t.text for t in layout.texts[:4]] == [
        "Assets", "assets.approved not dropped yet", "characters (27)", "styles (1)"]
    huge = [(f"t{n}", many[:contact.MAX_COLUMNS]) for n in range(contact.MAX_ROWS + 2)]
    bounded = contact.asset_sheet_layout(huge, "")
    assert len(bounded.tiles) == contact.MAX_ROWS * contact.MAX_COLUMNS
    assert bounded.texts[-1].text == f"… and {2 * contact.MAX_COLUMNS} more tiles not shown"
