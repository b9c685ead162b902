"""Frames of a video for people to look at: the first, middle and last, with its length.

A scene's video is the artifact that took the most GPU time; on a contact sheet or the
storyboard it is shown as a strip of three of its own frames with its duration and frame count,
not as a grey card. MP4 (and anything else FFmpeg reads) is decoded with PyAV; animated WebP
(the preview backend's animatic) with Pillow, because the FFmpeg that PyAV's wheels ship does
not decode animated WebP (tried with PyAV 18.1: ``InvalidDataError`` on the first packet).

Decoding is bounded: at most :data:`MAX_FRAMES` frames are read and each is shrunk to its thumb
as it is decoded, so a long or huge file costs little memory. A file that cannot be read raises
:class:`~keyframed.errors.OutputError` with the reason, which the caller draws as a
"cannot read video" tile.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageSequence

from keyframed.errors import OutputError
from keyframed.render.imaging import DEFAULT_MAX_PIXELS, to_rgba

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.frame import VideoFrame
    from av.video.stream import VideoStream

# Frames read at most: a 10-minute film at 24 fps; what lies beyond is not looked at.
MAX_FRAMES = 14_400
# Each decoded frame is shrunk to at most this size at once (three share a 256-px tile).
FRAME_THUMB = (160, 160)
VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".webp", ".gif"})


@dataclass(frozen=True)
class VideoFrames:
    """What a tile shows of a video: up to three frames, their count and the duration."""

    frames: tuple[Image.Image, ...]
    frame_count: int
    duration_s: float

    @property
    def label(self) -> str:
        """For example ``2.0 s · 48 frames``."""
        unit = "frame" if self.frame_count == 1 else "frames"
        return f"{self.duration_s:.1f} s · {self.frame_count} {unit}"


def is_video(path: Path) -> bool:
    """True when the file name says video (WebP is a video only where keyframed made one)."""
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_frames(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> VideoFrames:
    """The first, middle and last frame of the video at ``path``, with count and duration.

    Raises:
        OutputError: the file is missing, empty, damaged, has no video stream, or its frames
            are larger than ``max_pixels``.
    """
    if _for_pillow(path):
        return _pick(*_pillow_frames(path, max_pixels))
    return _pick(*_av_frames(path, max_pixels))


def _for_pillow(path: Path) -> bool:
    """True for animated WebP and GIF, which Pillow decodes (PyAV's FFmpeg cannot)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(12)
    except OSError as exc:
        raise OutputError(f"cannot read video {path.name}: {exc.strerror or exc}") from exc
    return (head[:4] == b"RIFF" and head[8:12] == b"WEBP") or head[:4] == b"GIF8"


def timed_frames(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS
                 ) -> Iterator[tuple[float, Image.Image]]:
    """Each frame of the video at ``path`` as RGB, with the second it starts at (the first
    at 0), decoded one at a time as the caller asks, at most :data:`MAX_FRAMES` (the film
    samples scene videos by time with it).

    Raises:
        OutputError: as :func:`read_frames`, when the frame that raises is asked for.
    """
    if _for_pillow(path):
        yield from _pillow_timed(path, max_pixels)
    else:
        yield from _av_timed(path, max_pixels)


def _pillow_timed(path: Path, max_pixels: int) -> Iterator[tuple[float, Image.Image]]:
    millis = 0
    try:
        with Image.open(path) as im:
            for count, frame in enumerate(ImageSequence.Iterator(im)):
                if count >= MAX_FRAMES:
                    return
                _check_size(frame.width, frame.height, max_pixels)
                yield millis / 1000.0, frame.convert("RGB")
                millis += int(frame.info.get("duration", 0) or 0)
    except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
        raise OutputError(f"cannot read video {path.name}: {exc}") from exc


def _av_timed(path: Path, max_pixels: int) -> Iterator[tuple[float, Image.Image]]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise OutputError(f"cannot read video {path.name}: it has no video stream")
            first: float | None = None
            for count, frame in enumerate(container.decode(container.streams.video[0])):
                if count >= MAX_FRAMES:
                    return
                _check_size(frame.width, frame.height, max_pixels)
                at = frame.time if frame.time is not None else 0.0
                first = at if first is None else first
                yield max(0.0, at - first), frame.to_image()  # type: ignore[no-untyped-call]
    except av.FFmpegError as exc:
        raise OutputError(f"cannot read video {path.name}: {exc}") from exc


def _check_size(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise OutputError(f"cannot read video: frames of {width}x{height} are more than "
                          f"the limit of {max_pixels} pixels")


def _pick(thumbs: list[Image.Image], duration_s: float) -> VideoFrames:
    if not thumbs:
        raise OutputError("cannot read video: it has no frames")
    wanted = sorted({0, len(thumbs) // 2, len(thumbs) - 1})
    return VideoFrames(tuple(thumbs[i] for i in wanted), len(thumbs), duration_s)


def _thumb(im: Image.Image, max_pixels: int) -> Image.Image:
    _check_size(im.width, im.height, max_pixels)
    small = to_rgba(im)
    small.thumbnail(FRAME_THUMB, Image.Resampling.BILINEAR)
    return small


def _pillow_frames(path: Path, max_pixels: int) -> tuple[list[Image.Image], float]:
    thumbs: list[Image.Image] = []
    millis = 0
    try:
        with Image.open(path) as im:
            for frame in ImageSequence.Iterator(im):
                if len(thumbs) >= MAX_FRAMES:
                    break
                thumbs.append(_thumb(frame, max_pixels))
                millis += int(frame.info.get("duration", 0) or 0)
    except (OSError, ValueError, EOFError, SyntaxError, Image.DecompressionBombError) as exc:
        raise OutputError(f"cannot read video {path.name}: {exc}") from exc
    return thumbs, millis / 1000.0


def _av_frames(path: Path, max_pixels: int) -> tuple[list[Image.Image], float]:
    import av  # imported here: only drawing sheets of real videos needs FFmpeg loaded

    thumbs: list[Image.Image] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise OutputError(f"cannot read video {path.name}: it has no video stream")
            stream = container.streams.video[0]
            end = Fraction(0)
            for frame in container.decode(stream):
                thumbs.append(_thumb(frame.to_image(), max_pixels))  # type: ignore[no-untyped-call]
                end = max(end, _frame_end(frame, stream))
                if len(thumbs) >= MAX_FRAMES:
                    break
            duration = float(end) or _container_seconds(container, len(thumbs), stream)
    except av.FFmpegError as exc:
        raise OutputError(f"cannot read video {path.name}: {exc}") from exc
    return thumbs, duration


def _frame_end(frame: VideoFrame, stream: VideoStream) -> Fraction:
    """Where a frame ends in seconds: its time plus its own duration (or one frame period)."""
    base = frame.time_base or stream.time_base
    if frame.pts is None or base is None:
        return Fraction(0)
    if frame.duration:
        return (Fraction(frame.pts) + Fraction(frame.duration)) * Fraction(base)
    rate = stream.average_rate
    return Fraction(frame.pts) * Fraction(base) + (1 / Fraction(rate) if rate else 0)


def _container_seconds(container: InputContainer, count: int, stream: VideoStream) -> float:
    if container.duration:
        return float(container.duration) / 1_000_000  # FFmpeg's AV_TIME_BASE
    rate = stream.average_rate
    return float(count / Fraction(rate)) if rate else 0.0
