"""Deterministic stand-ins for generated media: real PNG/WebP/APNG, MP4- and WebM-shaped files.

Pixels come from a hex digest (the cache signature of what fed the save node), so the same
inputs give the same picture and any changed input gives another one.
"""

from __future__ import annotations

import hashlib
import io
import struct
from collections.abc import Mapping

from PIL import Image, ImageOps, PngImagePlugin

from keyframed.render.film import h264, to_frame

MAX_SIDE = 4096
PREVIEW_IMAGE = 1  # ComfyUI's BinaryEventTypes.PREVIEW_IMAGE
PREVIEW_JPEG = 1  # the image-format word server.send_image writes for JPEG
PREVIEW_MAX = 512  # ComfyUI's --preview-size default
LATENT_SCALE = 8  # pixels per latent cell for the Qwen-Image and Wan VAEs


def _colours(digest: str, count: int) -> list[tuple[int, int, int]]:
    raw = b""
    counter = 0
    while len(raw) < count * 3:
        raw += hashlib.sha256(f"{digest}:{counter}".encode()).digest()
        counter += 1
    return [(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, count * 3, 3)]


def picture(digest: str, size: tuple[int, int]) -> Image.Image:
    """A ``size`` RGB image: a background colour and a 4x4 grid of blocks, all from ``digest``."""
    width, height = (max(1, min(MAX_SIDE, side)) for side in size)
    colours = _colours(digest, 17)
    image = Image.new("RGB", (width, height), colours[0])
    cols, rows = 4, 4
    for index in range(cols * rows):
        x, y = index % cols, index // cols
        box = (
            x * width // cols,
            y * height // rows,
            (x + 1) * width // cols,
            (y + 1) * height // rows,
        )
        # Leave a border of the background colour so the grid is visible.
        inner = (box[0] + 1, box[1] + 1, max(box[0] + 1, box[2] - 1), max(box[1] + 1, box[3] - 1))
        image.paste(colours[index + 1], inner)
    return image


def png_bytes(digest: str, size: tuple[int, int], text: Mapping[str, str] | None = None) -> bytes:
    """A PNG of :func:`picture`, with ``text`` as tEXt chunks (ComfyUI stores the prompt there)."""
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    picture(digest, size).save(buffer, format="PNG", pnginfo=info, compress_level=1)
    return buffer.getvalue()


def animated_bytes(digest: str, size: tuple[int, int], frames: int, fmt: str, fps: float) -> bytes:
    """An animated WEBP or PNG with ``frames`` frames (at most 8, to stay small)."""
    images = [picture(f"{digest}:{i}", size) for i in range(max(1, min(frames, 8)))]
    buffer = io.BytesIO()
    duration = int(1000 / fps) if fps > 0 else 100
    images[0].save(
        buffer, format=fmt, save_all=True, append_images=images[1:], duration=duration, loop=0
    )
    return buffer.getvalue()


# --- MP4 (ISO BMFF): ftyp + moov (one video track with its size) + mdat ---------------------

_MATRIX = struct.pack(">9I", 0x00010000, 0, 0, 0, 0x00010000, 0, 0, 0, 0x40000000)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _full_box(kind: bytes, flags: int, payload: bytes) -> bytes:
    return _box(kind, struct.pack(">I", flags & 0xFFFFFF) + payload)


def _sample_table(width: int, height: int, frames: int, delta: int, chunk_offset: int) -> bytes:
    avc1 = _box(
        b"avc1",
        bytes(6)
        + struct.pack(">H", 1)
        + bytes(16)
        + struct.pack(">HHII", width, height, 0x00480000, 0x00480000)
        + bytes(4)
        + struct.pack(">H", 1)
        + bytes(32)
        + struct.pack(">Hh", 0x18, -1),
    )
    return _box(
        b"stbl",
        _full_box(b"stsd", 0, struct.pack(">I", 1) + avc1)
        + _full_box(b"stts", 0, struct.pack(">III", 1, frames, delta))
        + _full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, frames, 1))
        + _full_box(b"stsz", 0, struct.pack(">II", 16, frames))
        + _full_box(b"stco", 0, struct.pack(">II", 1, chunk_offset)),
    )


def _moov(width: int, height: int, frames: int, fps: float, chunk_offset: int) -> bytes:
    timescale = 1000
    delta = max(1, round(timescale / fps)) if fps > 0 else 62
    duration = delta * frames
    mvhd = _full_box(
        b"mvhd",
        0,
        struct.pack(">IIII", 0, 0, timescale, duration)
        + struct.pack(">IH", 0x00010000, 0x0100)
        + bytes(10)
        + _MATRIX
        + bytes(24)
        + struct.pack(">I", 2),
    )
    tkhd = _full_box(
        b"tkhd",
        3,
        struct.pack(">IIIII", 0, 0, 1, 0, duration)
        + bytes(8)
        + struct.pack(">hhhH", 0, 0, 0, 0)
        + _MATRIX
        + struct.pack(">II", width << 16, height << 16),
    )
    mdhd = _full_box(b"mdhd", 0, struct.pack(">IIIIHH", 0, 0, timescale, duration, 0x55C4, 0))
    hdlr = _full_box(b"hdlr", 0, bytes(4) + b"vide" + bytes(12) + b"VideoHandler\0")
    dinf = _box(b"dinf", _full_box(b"dref", 0, struct.pack(">I", 1) + _full_box(b"url ", 1, b"")))
    minf = _box(
        b"minf",
        _full_box(b"vmhd", 1, bytes(8))
        + dinf
        + _sample_table(width, height, frames, delta, chunk_offset),
    )
    trak = _box(b"trak", tkhd + _box(b"mdia", mdhd + hdlr + minf))
    return _box(b"moov", mvhd + trak)


def mp4_bytes(digest: str, size: tuple[int, int], frames: int, fps: float) -> bytes:
    """An MP4-shaped file: ``ftyp`` first, a ``moov`` with the track size, and an ``mdat``.

    The samples are not decodable video; the structure (and ``tkhd`` width/height) is real.
    """
    width, height = (max(1, min(MAX_SIDE, side)) for side in size)
    frames = max(1, frames)
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2avc1mp41")
    payload = b"".join(
        hashlib.sha256(f"{digest}:{i}".encode()).digest()[:16] for i in range(frames)
    )
    moov_len = len(_moov(width, height, frames, fps, 0))
    offset = len(ftyp) + moov_len + 8
    return ftyp + _moov(width, height, frames, fps, offset) + _box(b"mdat", payload)


def h264_bytes(colours: list[tuple[int, int, int]], size: tuple[int, int] = (128, 80),
               fps: int = 8) -> bytes:
    """A real, decodable h264 MP4: one frame of each colour at ``fps`` (for tests and captures
    that need a video PyAV can read; :func:`mp4_bytes` is only shaped like one), made by the
    film's own encoder."""
    return h264((to_frame(Image.new("RGB", size, c)) for c in colours), size, fps)


# --- WebM (EBML): header with DocType webm, a Segment with one video track ------------------


def _ebml(element_id: bytes, payload: bytes) -> bytes:
    # 8-byte size field: 0x01 marker then 7 bytes of length.
    return element_id + bytes([0x01]) + len(payload).to_bytes(7, "big") + payload


def _uint(value: int) -> bytes:
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def webm_bytes(digest: str, size: tuple[int, int]) -> bytes:
    """A WebM-shaped file (EBML magic ``1A45DFA3``, DocType ``webm``, the video size)."""
    width, height = (max(1, min(MAX_SIDE, side)) for side in size)
    header = _ebml(b"\x1a\x45\xdf\xa3", _ebml(b"\x42\x82", b"webm") + _ebml(b"\x42\x87", _uint(4)))
    video = _ebml(b"\xe0", _ebml(b"\xb0", _uint(width)) + _ebml(b"\xba", _uint(height)))
    track = _ebml(b"\xae", _ebml(b"\xd7", _uint(1)) + _ebml(b"\x83", _uint(1)) + video)
    tracks = _ebml(b"\x16\x54\xae\x6b", track)
    void = _ebml(b"\xec", hashlib.sha256(digest.encode()).digest())
    return header + _ebml(b"\x18\x53\x80\x67", tracks + void)


def preview_frame(digest: str, size: tuple[int, int]) -> bytes:
    """A sampler step's binary WebSocket frame as ComfyUI 0.3.64 sends it with latent2rgb.

    The latent (``size`` / 8) drawn as a picture, scaled into 512x512 keeping its aspect
    (``ImageOps.contain``, as ``server.send_image`` does), JPEG, after the two big-endian words
    event type (1, PREVIEW_IMAGE) and image format (1, JPEG).
    """
    latent = (max(1, size[0] // LATENT_SCALE), max(1, size[1] // LATENT_SCALE))
    image = ImageOps.contain(picture(digest, latent), (PREVIEW_MAX, PREVIEW_MAX))
    buffer = io.BytesIO()
    buffer.write(struct.pack(">II", PREVIEW_IMAGE, PREVIEW_JPEG))
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
