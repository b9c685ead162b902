"""Contact sheets: a scene's layers and keyframes side by side, a storyboard of scenes, and
the asset sheet.

So a director can look rather than read: every thumbnail has a border in the colour of its
state, a ``STALE`` / ``FAILED`` badge where something needs doing, an ``APPROVED`` badge once
approved, and its caption and state underneath. The geometry is computed first, as data
(:func:`scene_sheet_layout`, :func:`storyboard_layout`), and the drawing code only paints that
layout, so tests can check what is on a sheet without reading pixels back as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageOps

from keyframed.errors import OutputError
from keyframed.render.imaging import (
    DEFAULT_MAX_PIXELS,
    RGB,
    fit_line,
    font,
    line_height,
    load_image,
    png_bytes,
)
from keyframed.render.video_frames import VideoFrames, is_video, read_frames

THUMB_W, THUMB_H = 256, 144
BORDER = 5
MARGIN = 16
GAP = 16
TITLE_H = 44
HEADING_H = 26
CAPTION_H = 40
# Bounds on the canvas: a storyboard of a 1,000-scene project is paged by the caller.
MAX_COLUMNS = 12
MAX_ROWS = 40

SHEET_BG: RGB = (248, 249, 250)
INK: RGB = (33, 37, 41)
MUTED: RGB = (110, 117, 125)
THUMB_BG: RGB = (34, 34, 38)
PLACEHOLDER: RGB = (160, 160, 160)
PLACEHOLDER_INK: RGB = (74, 74, 74)
APPROVED: RGB = (47, 158, 68)
STATE_COLOURS: dict[str, RGB] = {
    "fresh": (64, 192, 87),
    "done": (64, 192, 87),
    "stale": (232, 89, 12),
    "blocked": (134, 142, 150),
    "awaiting_approval": (245, 159, 0),
    "queued": (77, 171, 247),
    "running": (28, 126, 214),
    "failed": (201, 42, 42),
    "input_error": (201, 42, 42),
    "user_override": (156, 54, 181),
    "given": (21, 170, 191),  # an asset image the user supplied (asset-sheet.png)
    "unused": (206, 212, 218),  # an asset with no image that nothing will generate
}
UNKNOWN_STATE: RGB = (173, 181, 189)
BADGES: dict[str, str] = {"stale": "STALE", "failed": "FAILED", "user_override": "USER FILE",
                          "input_error": "INPUT ERROR"}


@dataclass(frozen=True)
class Tile:
    """One artifact on a sheet.

    Attributes:
        path: the image file; None or a missing/unreadable file shows a grey placeholder.
        caption: the line under the thumbnail (for example ``keyframe-start``).
        state: the artifact's state (``fresh``, ``stale``, ``blocked``, …).
        approved: draw an ``APPROVED`` badge.
        digest: the file's content hash where the caller knows it: a video's frames are
            decoded once per content, not on every drawing.
    """

    path: Path | None
    caption: str
    state: str
    approved: bool = False
    digest: str | None = None


@dataclass(frozen=True)
class TileBox:
    """Where one tile goes: ``x, y, w, h`` is the outer edge of its coloured border."""

    x: int
    y: int
    w: int
    h: int
    tile: Tile

    @property
    def caption(self) -> str:
        """The tile's caption."""
        return self.tile.caption

    @property
    def state(self) -> str:
        """The tile's state."""
        return self.tile.state

    @property
    def thumb(self) -> tuple[int, int, int, int]:
        """The thumbnail area inside the border: ``(left, top, right, bottom)``, exclusive."""
        return (
            self.x + BORDER,
            self.y + BORDER,
            self.x + self.w - BORDER,
            self.y + self.h - BORDER,
        )


@dataclass(frozen=True)
class TextBox:
    """A line of text on the sheet (the title, a row heading, a note)."""

    x: int
    y: int
    text: str
    size: int


@dataclass(frozen=True)
class SheetLayout:
    """Everything on a sheet, in pixels."""

    width: int
    height: int
    texts: tuple[TextBox, ...]
    tiles: tuple[TileBox, ...]


def state_colour(state: str) -> RGB:
    """The border colour of a state (grey for a state this module does not know)."""
    return STATE_COLOURS.get(state, UNKNOWN_STATE)


def _tile_row(tiles: Sequence[Tile], y: int) -> tuple[list[TileBox], int]:
    """Lay ``tiles`` out left to right at ``y``; return the boxes and the row's width."""
    w, h = THUMB_W + 2 * BORDER, THUMB_H + 2 * BORDER
    boxes = [TileBox(MARGIN + i * (w + GAP), y, w, h, t) for i, t in enumerate(tiles)]
    return boxes, MARGIN * 2 + max(1, len(tiles)) * (w + GAP) - GAP


def _row_height() -> int:
    return THUMB_H + 2 * BORDER + CAPTION_H


def _shown(tiles: Sequence[Tile]) -> tuple[Sequence[Tile], str]:
    hidden = len(tiles) - MAX_COLUMNS
    return (tiles[:MAX_COLUMNS], f"  (+{hidden} more not shown)") if hidden > 0 else (tiles, "")


def scene_sheet_layout(scene_label: str, tiles: Sequence[Tile]) -> SheetLayout:
    """Lay out one scene: a title, then the tiles left to right in the order given."""
    shown, more = _shown(tiles)
    texts = [TextBox(MARGIN, MARGIN // 2, scene_label + more, 22)]
    if not tiles:
        texts.append(TextBox(MARGIN, TITLE_H, "nothing to show yet", 14))
    boxes, width = _tile_row(shown, TITLE_H)
    return SheetLayout(width, TITLE_H + _row_height() + MARGIN, tuple(texts), tuple(boxes))


def storyboard_layout(rows: Sequence[tuple[str, Sequence[Tile]]]) -> SheetLayout:
    """Lay out a storyboard: a title, then one headed row of tiles per scene."""
    texts = [TextBox(MARGIN, MARGIN // 2, "Storyboard", 22)]
    boxes: list[TileBox] = []
    width = MARGIN * 2 + THUMB_W + 2 * BORDER
    y = TITLE_H
    for label, tiles in rows[:MAX_ROWS]:
        shown, more = _shown(tiles)
        texts.append(TextBox(MARGIN, y, label + more, 16))
        row, row_width = _tile_row(shown, y + HEADING_H)
        boxes.extend(row)
        width = max(width, row_width)
        y += HEADING_H + _row_height()
    if len(rows) > MAX_ROWS:
        texts.append(TextBox(MARGIN, y, f"… and {len(rows) - MAX_ROWS} more scenes", 16))
        y += HEADING_H
    return SheetLayout(width, y + MARGIN, tuple(texts), tuple(boxes))


def asset_sheet_layout(rows: Sequence[tuple[str, Sequence[Tile]]], note: str) -> SheetLayout:
    """Lay out the asset sheet: a title and ``note``, then per heading (an asset type) its
    tiles, wrapped after :data:`MAX_COLUMNS` so that no asset is left off (up to
    :data:`MAX_ROWS` lines of tiles in all)."""
    texts = [TextBox(MARGIN, MARGIN // 2, "Assets", 22), TextBox(MARGIN, TITLE_H, note, 14)]
    boxes: list[TileBox] = []
    width = MARGIN * 2 + THUMB_W + 2 * BORDER
    y, lines, left = TITLE_H + HEADING_H, 0, 0
    for heading, tiles in rows:
        if lines >= MAX_ROWS:
            left += len(tiles)
            continue
        texts.append(TextBox(MARGIN, y, heading, 16))
        y += HEADING_H
        for start in range(0, max(1, len(tiles)), MAX_COLUMNS):
            if lines >= MAX_ROWS:
                left += len(tiles) - start
                break
            row, row_width = _tile_row(tiles[start:start + MAX_COLUMNS], y)
            boxes.extend(row)
            width = max(width, row_width)
            y, lines = y + _row_height(), lines + 1
    if left:
        texts.append(TextBox(MARGIN, y, f"… and {left} more tiles not shown", 16))
        y += HEADING_H
    return SheetLayout(width, y + MARGIN, tuple(texts), tuple(boxes))


def asset_sheet(
    rows: Sequence[tuple[str, Sequence[Tile]]], note: str, *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Draw the asset sheet, one headed group of tiles per asset type, and return PNG bytes."""
    return draw(asset_sheet_layout(rows, note), max_pixels=max_pixels)


def scene_sheet(
    scene_label: str, tiles: Sequence[Tile], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes:
    """Draw a scene's contact sheet and return PNG bytes (deterministic)."""
    return draw(scene_sheet_layout(scene_label, tiles), max_pixels=max_pixels)


def storyboard(
    rows: Sequence[tuple[str, Sequence[Tile]]], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> bytes:
    """Draw a storyboard, one row per ``(scene label, tiles)``, and return PNG bytes."""
    return draw(storyboard_layout(rows), max_pixels=max_pixels)


def draw(layout: SheetLayout, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """Paint a layout: texts, then each tile's border, thumbnail, badges and caption."""
    sheet = Image.new("RGB", (layout.width, layout.height), SHEET_BG)
    pen = ImageDraw.Draw(sheet)
    for text in layout.texts:
        face = font(text.size)
        pen.text(
            (text.x, text.y),
            fit_line(text.text, face, layout.width - text.x - MARGIN),
            fill=INK,
            font=face,
        )
    for box in layout.tiles:
        _draw_tile(sheet, pen, box, max_pixels)
    return png_bytes(sheet)


def _draw_tile(sheet: Image.Image, pen: ImageDraw.ImageDraw, box: TileBox, max_pixels: int) -> None:
    pen.rectangle(
        (box.x, box.y, box.x + box.w - 1, box.y + box.h - 1), fill=state_colour(box.state)
    )
    left, top, right, bottom = box.thumb
    size = (right - left, bottom - top)
    path = box.tile.path
    if path is not None and is_video(path) and path.is_file():
        thumb = video_thumbnail(path, box.tile.digest or _stat_key(path), size, max_pixels)
    else:
        thumb = _thumbnail(path, size, max_pixels)
    sheet.paste(thumb, (left, top))
    badge = BADGES.get(box.state)
    if badge:
        _badge(pen, badge, (left + 4, top + 4), state_colour(box.state), right_align=False)
    if box.tile.approved:
        _badge(pen, "APPROVED", (right - 4, top + 4), APPROVED, right_align=True)
    face = font(13)
    y = box.y + box.h + 3
    pen.text((box.x, y), fit_line(box.caption, face, box.w), fill=INK, font=face)
    state_text = box.state.replace("_", " ") + (" · approved" if box.tile.approved else "")
    pen.text(
        (box.x, y + line_height(face)), fit_line(state_text, face, box.w), fill=MUTED, font=face
    )


def _badge(
    pen: ImageDraw.ImageDraw, text: str, at: tuple[int, int], colour: RGB, *, right_align: bool
) -> None:
    face = font(12)
    text_w = int(face.getlength(text))
    x = at[0] - text_w - 8 if right_align else at[0]
    pen.rectangle((x, at[1], x + text_w + 8, at[1] + line_height(face) + 2), fill=colour)
    pen.text((x + 4, at[1] + 2), text, fill="white", font=face)


def _thumbnail(path: Path | None, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """The image contained in ``size`` on a dark ground, or a labelled grey placeholder."""
    if path is None or not path.is_file():
        return _placeholder(size, "not made yet")
    try:
        im = load_image(path, max_pixels=max_pixels)
    except OutputError:
        return _placeholder(size, "unreadable")
    im.thumbnail(size, Image.Resampling.LANCZOS)
    ground = Image.new("RGBA", size, (*THUMB_BG, 255))
    fitted = ImageOps.pad(im, size, method=Image.Resampling.LANCZOS, color=(*THUMB_BG, 255))
    return Image.alpha_composite(ground, fitted).convert("RGB")


def _stat_key(path: Path) -> str:
    info = path.stat()
    return f"{info.st_size}:{info.st_mtime_ns}:{info.st_ino}"


@lru_cache(maxsize=64)
def video_thumbnail(path: Path, key: str, size: tuple[int, int], max_pixels: int) -> Image.Image:
    """A video's tile: its first, middle and last frame side by side over a line giving its
    duration and frame count; or a "cannot read video" card saying why.

    Cached by ``key`` (the file's content hash): the frames of one video are decoded once, not
    on every drawing of a sheet or the storyboard.
    """
    frames = video_frames(path, key, max_pixels)
    if isinstance(frames, str):
        return _placeholder(size, "cannot read video", why=frames)
    return frame_strip(frames, size)


@lru_cache(maxsize=256)
def video_frames(path: Path, key: str, max_pixels: int) -> VideoFrames | str:
    """The frames of the video at ``path`` (whose content is ``key``), or why it cannot be
    read, decoded once per content."""
    try:
        return read_frames(path, max_pixels=max_pixels)
    except OutputError as exc:
        return str(exc).removeprefix("cannot read video").removeprefix(f" {path.name}")[2:] \
            or str(exc)


def frame_strip(frames: VideoFrames, size: tuple[int, int]) -> Image.Image:
    """Up to three frames left to right on the dark ground, the label on a bar below."""
    face = font(12)
    bar = line_height(face) + 6
    ground = Image.new("RGB", size, THUMB_BG)
    cell_w = size[0] // max(1, len(frames.frames))
    cell = (max(1, cell_w - 2), max(1, size[1] - bar - 2))
    for n, frame in enumerate(frames.frames):
        fitted = ImageOps.pad(frame, cell, method=Image.Resampling.LANCZOS,
                              color=(*THUMB_BG, 255))
        ground.paste(fitted.convert("RGB"), (n * cell_w + 1, 1))
    pen = ImageDraw.Draw(ground)
    pen.text((4, size[1] - bar + 3), fit_line(frames.label, face, size[0] - 8),
             fill=(230, 230, 230), font=face)
    return ground


def _placeholder(size: tuple[int, int], text: str, why: str = "") -> Image.Image:
    tile = Image.new("RGB", size, PLACEHOLDER)
    face = font(16)
    width = face.getlength(text)
    pen = ImageDraw.Draw(tile)
    top = size[1] / 2 if why else size[1] * 2 / 3
    pen.text(((size[0] - width) / 2, top), text, fill=PLACEHOLDER_INK, font=face)
    if why:
        small = font(11)
        pen.text((6, top + line_height(face) + 4), fit_line(why, small, size[0] - 12),
                 fill=PLACEHOLDER_INK, font=small)
    return tile
