"""Encode a :class:`~keyframed.render.film_plan.FilmPlan` as one H.264 MP4, with PyAV.

Locally, no GPU and no ffmpeg binary (PyAV ships FFmpeg and libx264 as wheels). Each scene's
video is sampled by time at :data:`~keyframed.render.film_plan.FILM_FPS`: output frame ``k``
of a segment shows the source frame on screen at ``k / FILM_FPS`` seconds, and the last one
is held once the video is shorter than the scene's Duration. Frames of any size are
letterboxed onto the film's size. Sources are decoded one frame at a time (animated WebP with
Pillow, anything else with PyAV: :func:`keyframed.render.video_frames.timed_frames`), so a
long film costs little memory; the MP4 is built in memory and written by the caller.

A placeholder holds its still (or a grey card) with its label on a bar along the bottom. A
video that stops decoding part-way holds its last good frame for the rest of its segment and
says so in :attr:`Encoded.problems`; the film is still written.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from PIL import Image, ImageDraw, ImageOps

from keyframed.errors import OutputError
from keyframed.render.film_plan import FILM_FPS, FilmPlan, Segment
from keyframed.render.imaging import fit_line, font, line_height, load_image
from keyframed.render.video_frames import timed_frames

if TYPE_CHECKING:
    from av.video.frame import VideoFrame

T = TypeVar("T")
# libx264: crf 23 is its default quality; veryfast keeps 30 s of 832x480 well under a second.
X264_OPTIONS = {"crf": "23", "preset": "veryfast"}
BLACK = (0, 0, 0)
CARD = (72, 74, 80)  # a placeholder without a still
BAR = (0, 0, 0, 170)
INK = (245, 245, 245, 255)


@dataclass
class Encoded:
    """The MP4's bytes, and what could not be shown as planned (one line each)."""

    data: bytes
    problems: list[str] = field(default_factory=list)


def encode(root: Path, plan: FilmPlan, *, max_pixels: int) -> Encoded:
    """The film as MP4 bytes.

    Raises:
        OutputError: FFmpeg could not encode it (no H.264 encoder, out of memory, ...).
    """
    import av  # loaded only when a film is drawn

    problems: list[str] = []
    frames = (frame for segment in plan.segments
              for frame in segment_frames(root, segment, plan.size, max_pixels, problems))
    try:
        data = h264(frames, plan.size, FILM_FPS)
    except (av.FFmpegError, ValueError) as exc:
        raise OutputError(f"cannot encode the film: {exc}") from exc
    return Encoded(data, problems)


def h264(frames: Iterable[VideoFrame], size: tuple[int, int], fps: int) -> bytes:
    """Frames, one after another at ``fps``, as an H.264 MP4 (yuv420p) in memory.

    Raises:
        av.FFmpegError, ValueError: FFmpeg could not encode them.
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options=X264_OPTIONS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for pts, frame in enumerate(frames):
            frame.pts = pts
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return buffer.getvalue()


def segment_frames(root: Path, segment: Segment, size: tuple[int, int], max_pixels: int,
                   problems: list[str]) -> Iterator[VideoFrame]:
    """Exactly ``segment.frames`` frames of the film's size for one segment."""
    if not segment.video:
        still = placeholder(root, segment, size, max_pixels)
        for _ in range(segment.frames):
            yield still  # one frame, its time stamp set anew each time it is sent
        return
    assert segment.source is not None
    shown, held = 0, None
    source = timed_frames(root / segment.source, max_pixels=max_pixels)
    try:
        last: Image.Image | None = None
        for image in sampled(source, segment.frames):
            if image is not last:
                last, held = image, to_frame(fit(image, size))
            assert held is not None
            yield held
            shown += 1
    except OutputError as exc:
        problems.append(f"scene {segment.scene}: {exc}; held from {shown / FILM_FPS:.2f} s")
        if held is None:
            held = to_frame(card(None, size, f"Scene {segment.scene}: video cannot be read"))
        for _ in range(segment.frames - shown):
            yield held


def sampled(frames: Iterator[tuple[float, T]], count: int) -> Iterator[T]:
    """``count`` items sampled by time at :data:`FILM_FPS` from ``(start_s, item)`` pairs in
    time order: each the item on screen then, the last one held past the end.

    Raises:
        OutputError: there is no frame at all (or what ``frames`` raises).
    """
    current = next(frames, None)
    if current is None:
        raise OutputError("cannot read video: it has no frames")
    upcoming = next(frames, None)
    for k in range(count):
        # A frame due at k/fps shows from that frame on (a small slack for rounding).
        while upcoming is not None and upcoming[0] <= k / FILM_FPS + 1e-6:
            current, upcoming = upcoming, next(frames, None)
        yield current[1]


def fit(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` scaled to fit ``size``, centred on black (letterboxed or pillarboxed)."""
    if image.size == size:
        return image.convert("RGB")
    return ImageOps.pad(image.convert("RGB"), size, method=Image.Resampling.BILINEAR,
                        color=BLACK)


def placeholder(root: Path, segment: Segment, size: tuple[int, int],
                max_pixels: int) -> VideoFrame:
    """The one frame a placeholder holds: its still (or a grey card) and its label."""
    still = None
    if segment.source is not None:
        try:
            still = load_image(root / segment.source, max_pixels=max_pixels)
        except OutputError:
            still = None  # gone or damaged since the plan: the card says as much
    return to_frame(card(still, size, segment.label or f"Scene {segment.scene}"))


def card(still: Image.Image | None, size: tuple[int, int], label: str) -> Image.Image:
    """``still`` fitted to ``size`` (grey without one) with ``label`` on a dark bar."""
    ground = fit(still, size) if still is not None else Image.new("RGB", size, CARD)
    face = font(max(12, size[1] // 18))
    bar = line_height(face) + size[1] // 30
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    pen.rectangle((0, size[1] - bar, size[0], size[1]), fill=BAR)
    text = fit_line(label, face, size[0] - 16)
    pen.text((size[0] / 2, size[1] - bar / 2), text, fill=INK, font=face, anchor="mm")
    return Image.alpha_composite(ground.convert("RGBA"), layer).convert("RGB")


def to_frame(image: Image.Image) -> VideoFrame:
    """An RGB picture as a yuv420p frame, converted once however often it is shown."""
    from av.video.frame import VideoFrame

    frame: VideoFrame = VideoFrame.from_image(image)  # type: ignore[no-untyped-call]
    return frame.reformat(format="yuv420p")
