"""Contact sheets: layout as data, and the pixels the drawing code puts where the layout says."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from keyframed.render import contact
from keyframed.render.contact import Tile, TileBox


def _png(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (320, 180)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.fixture
def tiles(tmp_path: Path) -> list[Tile]:
    """A scene's artifacts in the order a scene sheet shows them."""
    return [
        Tile(_png(tmp_path / "bg.png", (10, 90, 200)), "background", "fresh"),
        Tile(_png(tmp_path / "ch.png", (200, 30, 30), (100, 300)), "character-start", "stale"),
        Tile(tmp_path / "never-made.png", "character-end", "blocked"),
        Tile(_png(tmp_path / "k.png", (30, 160, 40)), "keyframe-start", "fresh", approved=True),
        Tile(None, "video", "awaiting_approval"),
    ]


def _sheet(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    im.load()
    assert im.format == "PNG"
    return im.convert("RGB")


def _inside(box: TileBox, dx: int, dy: int) -> tuple[int, int]:
    left, top, _, _ = box.thumb
    return left + dx, top + dy


def test_scene_layout_puts_tiles_left_to_right_in_order(tiles: list[Tile]) -> None:
    layout = contact.scene_sheet_layout("Scene 1: The duel", tiles)
    assert [b.caption for b in layout.tiles] == [t.caption for t in tiles]
    assert [b.state for b in layout.tiles] == [t.state for t in tiles]
    xs = [b.x for b in layout.tiles]
    assert xs == sorted(xs) and len(set(xs)) == len(xs)
    assert len({b.y for b in layout.tiles}) == 1
    for a, b in zip(layout.tiles, layout.tiles[1:], strict=False):
        assert a.x + a.w <= b.x, "tiles do not overlap"
    assert all(b.x + b.w <= layout.width and b.y + b.h <= layout.height for b in layout.tiles)
    assert layout.texts[0].text == "Scene 1: The duel"
    assert layout.texts[0].y < layout.tiles[0].y


def test_scene_sheet_draws_the_layout(tiles: list[Tile]) -> None:
    layout = contact.scene_sheet_layout("Scene 1", tiles)
    im = _sheet(contact.scene_sheet("Scene 1", tiles))
    assert im.size == (layout.width, layout.height)
    for box in layout.tiles:
        assert im.getpixel((box.x + 1, box.y + 1)) == contact.state_colour(box.state)
        assert im.getpixel((box.x + box.w - 2, box.y + box.h - 2)) == contact.state_colour(
            box.state
        )


def test_stale_tile_has_the_stale_border_and_badge(tiles: list[Tile]) -> None:
    layout = contact.scene_sheet_layout("Scene 1", tiles)
    stale = next(b for b in layout.tiles if b.state == "stale")
    im = _sheet(contact.scene_sheet("Scene 1", tiles))
    assert im.getpixel((stale.x + 2, stale.y + stale.h // 2)) == contact.STATE_COLOURS["stale"]
    # The STALE badge sits in the thumbnail's top-left corner, over the image.
    assert im.getpixel(_inside(stale, 5, 5)) == contact.STATE_COLOURS["stale"]
    fresh = layout.tiles[0]
    assert im.getpixel(_inside(fresh, 5, 5)) != contact.STATE_COLOURS["stale"]


def test_approved_tile_has_the_approved_badge(tiles: list[Tile]) -> None:
    layout = contact.scene_sheet_layout("Scene 1", tiles)
    im = _sheet(contact.scene_sheet("Scene 1", tiles))
    approved = layout.tiles[3]
    right = approved.thumb[2]
    assert im.getpixel((right - 6, approved.thumb[1] + 6)) == contact.APPROVED
    plain = layout.tiles[0]
    assert im.getpixel((plain.thumb[2] - 6, plain.thumb[1] + 6)) != contact.APPROVED


def test_missing_file_and_none_give_placeholders(tiles: list[Tile], tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    tiles.append(Tile(tmp_path / "broken.png", "keyframe-end", "failed"))
    layout = contact.scene_sheet_layout("Scene 1", tiles)
    im = _sheet(contact.scene_sheet("Scene 1", tiles))
    mid = contact.THUMB_H // 2
    for index in (2, 4, 5):  # missing file, None, unreadable file
        assert im.getpixel(_inside(layout.tiles[index], 3, mid)) == contact.PLACEHOLDER
    # A real image shows its own colour in the middle of the thumbnail.
    centre = _inside(layout.tiles[0], contact.THUMB_W // 2, mid)
    r, _, b = im.getpixel(centre)  # type: ignore[misc]
    assert int(b) > 150 and int(r) < 60
    # A tall image is letterboxed on the thumbnail ground, not stretched.
    assert im.getpixel(_inside(layout.tiles[1], 3, mid)) == contact.THUMB_BG


def test_sheets_are_deterministic(tiles: list[Tile]) -> None:
    assert contact.scene_sheet("Scene 1", tiles) == contact.scene_sheet("Scene 1", tiles)
    rows = [("Scene 1", tiles[:2]), ("Scene 2", tiles[2:])]
    assert contact.storyboard(rows) == contact.storyboard(rows)


def test_storyboard_has_one_row_per_scene(tiles: list[Tile]) -> None:
    rows = [("Scene 1: Dawn", tiles[:2]), ("Scene 2: Duel", tiles[2:]), ("Scene 3: Empty", [])]
    layout = contact.storyboard_layout(rows)
    headings = [t.text for t in layout.texts[1:]]
    assert headings == ["Scene 1: Dawn", "Scene 2: Duel", "Scene 3: Empty"]
    assert [b.caption for b in layout.tiles] == [t.caption for t in tiles]
    row_ys = sorted({b.y for b in layout.tiles})
    assert len(row_ys) == 2
    assert [b.y for b in layout.tiles] == [row_ys[0]] * 2 + [row_ys[1]] * 3
    heading_ys = [t.y for t in layout.texts[1:]]
    assert heading_ys[0] < row_ys[0] < heading_ys[1] < row_ys[1] < heading_ys[2]
    im = _sheet(contact.storyboard(rows))
    assert im.size == (layout.width, layout.height)
    stale = layout.tiles[1]
    assert im.getpixel((stale.x + 1, stale.y + 1)) == contact.STATE_COLOURS["stale"]


def test_sheet_size_is_bounded(tmp_path: Path) -> None:
    many = [Tile(None, f"t{i}", "queued") for i in range(contact.MAX_COLUMNS + 5)]
    layout = contact.scene_sheet_layout("Scene 9", many)
    assert len(layout.tiles) == contact.MAX_COLUMNS
    assert "+5 more" in layout.texts[0].text
    rows = [(f"Scene {i}", many[:2]) for i in range(contact.MAX_ROWS + 3)]
    board = contact.storyboard_layout(rows)
    assert len(board.tiles) == 2 * contact.MAX_ROWS
    assert board.texts[-1].text == "… and 3 more scenes"
    assert board.height < 300 * (contact.MAX_ROWS + 2)
    assert all(t.w <= contact.THUMB_W + 2 * contact.BORDER for t in board.tiles)


def test_unknown_state_and_empty_scene_still_draw() -> None:
    layout = contact.scene_sheet_layout("Scene 4", [Tile(None, "x", "mystery")])
    im = _sheet(contact.scene_sheet("Scene 4", [Tile(None, "x", "mystery")]))
    box = layout.tiles[0]
    assert im.getpixel((box.x + 1, box.y + 1)) == contact.UNKNOWN_STATE
    empty = contact.scene_sheet_layout("Scene 5", [])
    assert empty.tiles == () and empty.texts[-1].text == "nothing to show yet"
    assert _sheet(contact.scene_sheet("Scene 5", [])).size == (empty.width, empty.height)


def test_oversized_image_is_a_placeholder(tmp_path: Path) -> None:
    tile = Tile(_png(tmp_path / "big.png", (0, 0, 255), (400, 400)), "background", "fresh")
    layout = contact.scene_sheet_layout("Scene 1", [tile])
    im = _sheet(contact.scene_sheet("Scene 1", [tile], max_pixels=1000))
    assert im.getpixel(_inside(layout.tiles[0], 3, contact.THUMB_H // 2)) == contact.PLACEHOLDER
