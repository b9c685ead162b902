"""Checks that a downloaded output is what the job expects, before it is written in place."""

from __future__ import annotations

import warnings
from typing import IO, Literal

from PIL import Image, UnidentifiedImageError

from keyframed.errors import OutputError

__all__ = ["Expect", "verify_image", "verify_video"]

Expect = Literal["image", "video"]

IMAGE_FORMATS = frozenset({"PNG", "WEBP"})
DEFAULT_MAX_PIXELS = 64_000_000


def verify_image(
    data: IO[bytes],
    *,
    size: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    name: str = "output",
) -> tuple[int, int]:
    """Check that ``data`` is a whole PNG or WebP image, optionally of ``size``.

    Pillow's ``verify()`` checks the structure and chunk CRCs without decoding pixels, so a
    truncated or corrupted file is caught cheaply.

    Args:
        data: a readable, seekable binary file, at any position.
        size: the expected (width, height), or None to accept any.
        max_pixels: refuse larger images before Pillow allocates anything.
        name: what to call the file in error messages.

    Returns:
        The image's (width, height).

    Raises:
        OutputError: not PNG/WebP, corrupt, too large, or not of ``size``.
    """
    data.seek(0)
    try:
        with warnings.catch_warnings():
            # Our own limit replaces Pillow's bomb warning (an error under pytest).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(data) as im:
                fmt, got = im.format, im.size
                if fmt not in IMAGE_FORMATS:
                    raise OutputError(f"{name} is {fmt or 'unknown'}, expected PNG or WebP")
                if got[0] * got[1] > max_pixels:
                    raise OutputError(f"{name} is {got[0]}x{got[1]}, over {max_pixels} pixels")
                im.verify()
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise OutputError(f"{name} is not a valid image: {exc}") from exc
    if size is not None and tuple(got) != tuple(size):
        raise OutputError(f"{name} is {got[0]}x{got[1]}, expected {size[0]}x{size[1]}")
    return got


def verify_video(data: IO[bytes], *, name: str = "output") -> str:
    """Check the container magic of a video: MP4 (``ftyp`` box), WebM/Matroska or WebP.

    Only the container is checked; decoding a video would need ffmpeg.

    Returns:
        ``"mp4"``, ``"webm"`` or ``"webp"``.

    Raises:
        OutputError: none of these.
    """
    data.seek(0)
    head = data.read(16)
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    raise OutputError(f"{name} is not an MP4, WebM or WebP video")
