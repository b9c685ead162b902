"""Small Pillow helpers shared by the preview renderer and the contact sheets.

Everything here is deterministic: the same inputs give the same pixels and the same PNG bytes,
so a preview that is re-rendered from unchanged inputs keeps its content hash (early cutoff).
"""

from __future__ import annotations

import io
import threading
import warnings
from collections.abc import Mapping
from pathlib import Path

from PIL import Image, ImageColor, ImageFont, PngImagePlugin

from keyframed.errors import OutputError

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
RGB = tuple[int, int, int]

DEFAULT_MAX_PIXELS = 64_000_000
ELLIPSIS = "…"

_fonts = threading.local()
# Modes that Pillow cannot convert to RGBA in one step, or would clip (16-bit, float).
_WIDE_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def font(size: int) -> Font:
    """Return Pillow's bundled font at ``size`` px, cached per thread.

    Per thread, because a FreeType face is not safe to share between threads that render at
    the same moment (the preview backend may render several jobs in parallel).
    """
    cache: dict[int, Font] | None = getattr(_fonts, "cache", None)
    if cache is None:
        cache = {}
        _fonts.cache = cache
    if size not in cache:
        cache[size] = ImageFont.load_default(size=max(6, size))
    return cache[size]


def line_height(face: Font) -> int:
    """Height of one line of text in ``face``, with a little leading."""
    box = face.getbbox("Ag|")
    return int(box[3] - box[1]) + max(2, int(box[3] - box[1]) // 4)


def fit_line(text: str, face: Font, width: float) -> str:
    """Return ``text`` cut with an ellipsis so that it is at most ``width`` px wide."""
    if face.getlength(text) <= width:
        return text
    while text and face.getlength(text + ELLIPSIS) > width:
        text = text[:-1]
    return text.rstrip() + ELLIPSIS if text else ""


def wrap(text: str, face: Font, width: float, max_lines: int) -> list[str]:
    """Word-wrap ``text`` into at most ``max_lines`` lines no wider than ``width`` px.

    Words longer than a line are broken; text that does not fit ends in an ellipsis.
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if face.getlength(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        current = word
        while face.getlength(current) > width and len(current) > 1:
            cut = _longest_prefix(current, face, width)
            lines.append(current[:cut])
            current = current[cut:]
    if current:
        lines.append(current)
    if max_lines < 1:
        return []
    if len(lines) > max_lines:
        # fit_line keeps the ellipsis: either the whole line plus " …" fits, or it is cut to fit.
        last = fit_line(f"{lines[max_lines - 1]} {ELLIPSIS}", face, width)
        lines = [*lines[: max_lines - 1], last]
    return lines


def _longest_prefix(word: str, face: Font, width: float) -> int:
    cut = len(word)
    while cut > 1 and face.getlength(word[:cut]) > width:
        cut -= 1
    return cut


def parse_colour(spec: str) -> RGB | None:
    """Parse a CSS colour (``#rrggbb``, ``red``, ``rgb(…)``) to RGB, or None if invalid."""
    try:
        value = ImageColor.getrgb(spec.strip())
    except (ValueError, AttributeError):
        return None
    return (value[0], value[1], value[2])


def hex_colour(rgb: RGB) -> str:
    """Format an RGB colour as ``#rrggbb``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    """Linear mix of two colours: ``t`` = 0 gives ``a``, 1 gives ``b``."""
    return (
        round(a[0] + (b[0] - a[0]) * t),
        round(a[1] + (b[1] - a[1]) * t),
        round(a[2] + (b[2] - a[2]) * t),
    )


def ink_for(background: RGB) -> RGB:
    """Black or white, whichever reads better on ``background``."""
    luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (20, 20, 24) if luma > 150 else (250, 250, 250)


def load_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open an image file of any mode and return it decoded as RGBA.

    The pixel count is checked against ``max_pixels`` from the header, before decoding, instead
    of changing Pillow's process-wide ``Image.MAX_IMAGE_PIXELS``. PNG text chunks are kept in
    ``.info``. Animated files give their first frame.

    Raises:
        OutputError: the file is missing, not an image, corrupt or too large.
    """
    try:
        with warnings.catch_warnings():
            # Our own limit below replaces Pillow's bomb warning (an error under pytest). The
            # filter change is process-wide for an instant; it only ever silences this warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                _check_pixels(path, im.size, max_pixels)
                im.load()
                info = dict(im.info)
                rgba = to_rgba(im)
    except (
        OSError,  # missing, unreadable, truncated; UnidentifiedImageError is one
        Image.DecompressionBombError,
        ValueError,
        EOFError,  # some plugins signal a short file this way
        SyntaxError,  # and some a malformed header
    ) as exc:
        raise OutputError(f"cannot read image {path.name}: {exc}") from exc
    rgba.info = info
    return rgba


def _check_pixels(path: Path, size: tuple[int, int], max_pixels: int) -> None:
    if size[0] * size[1] > max_pixels:
        raise OutputError(
            f"image {path.name} is {size[0]}x{size[1]}, more than the limit of {max_pixels} pixels"
        )


def to_rgba(im: Image.Image) -> Image.Image:
    """Convert an image of any mode (P, L, LA, CMYK, 16-bit, float, …) to 8-bit RGBA."""
    if im.mode == "RGBA":
        return im.copy()
    if im.mode in _WIDE_MODES:
        return _wide_to_l(im).convert("RGBA")
    try:
        return im.convert("RGBA")
    except ValueError:
        return im.convert("RGB").convert("RGBA")


def _wide_to_l(im: Image.Image) -> Image.Image:
    # Pillow clips 16-bit and float values when converting to L; scale them into 0..255 first.
    as_float = im.convert("F")
    high = float(as_float.getextrema()[1])  # type: ignore[arg-type]
    if high <= 1.0:
        scale = 255.0  # float image in 0..1
    elif high <= 255.0:
        scale = 1.0
    elif high <= 65535.0:
        scale = 255.0 / 65535.0  # 16-bit
    else:
        scale = 255.0 / high
    return as_float.point(lambda v: v * scale).convert("L")


def png_bytes(im: Image.Image, text: Mapping[str, str] | None = None) -> bytes:
    """Encode ``im`` as PNG with optional text chunks; same image, same bytes."""
    info = PngImagePlugin.PngInfo()
    for key, value in sorted((text or {}).items()):
        info.add_text(key, value)
    buffer = io.BytesIO()
    im.save(buffer, format="PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()
