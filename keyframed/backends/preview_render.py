"""The preview backend: renders every artifact with Pillow from the real reference images.

An animatic for checking a plan before spending GPU time (DESIGN §6): backgrounds and objects
are the reference image cropped to the frame and tinted towards the style, character layers
show the identity image cut out on a plain backdrop (with the pose as an inset), keyframes place
the character layers on the background layer, and videos are an animated WebP crossfade from
the start to the end keyframe. Every image carries a caption with the frame description and a
``PREVIEW`` mark. Output bytes depend only on the recipe, the input files and the arguments.

A character layer records where its figure is and its backdrop colour in a PNG text chunk
(:data:`META_KEY`), so that a composite can cut the figure out exactly; for a layer without it
(a user's own file) the backdrop is taken from the border pixels.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps, ImageStat

from keyframed.errors import OutputError
from keyframed.handlers.recipe import Artifact, InputRef
from keyframed.render.imaging import (
    DEFAULT_MAX_PIXELS,
    RGB,
    Font,
    fit_line,
    font,
    hex_colour,
    ink_for,
    line_height,
    load_image,
    mix,
    parse_colour,
    png_bytes,
    wrap,
)

META_KEY = "keyframed-preview"
MAX_VIDEO_SECONDS = 10.0
# Every frame is held in memory until the WebP encoder assembles the file; this bounds it.
MAX_VIDEO_FRAMES = 48
CHARACTER_HEIGHT = 0.7
BACKDROP: RGB = (232, 230, 224)
PREVIEW_RED: RGB = (214, 40, 57)
_BAR: RGB = (16, 16, 20)
FALLBACK_PALETTE: tuple[RGB, ...] = ((43, 45, 66), (141, 153, 174), (237, 242, 244))
_STYLE_ROLES = ("style",)
_RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class _Job:
    """One render: the artifact, its opened inputs by role, and the frame."""

    artifact: Artifact
    inputs: Mapping[str, Path]
    size: tuple[int, int]
    palette: tuple[RGB, ...]
    max_pixels: int

    @property
    def rng(self) -> random.Random:
        recipe = self.artifact.recipe
        return random.Random(f"{self.artifact.path}|{recipe.seed}|{recipe.take}")

    def refs(self, *roles: str) -> list[InputRef]:
        """Inputs whose role is one of ``roles`` (or ``role:detail``), in recipe order."""
        return [r for r in self.artifact.recipe.inputs if r.role.split(":")[0] in roles]

    def open(self, ref: InputRef) -> Image.Image:
        """Open one input as RGBA."""
        path = self.inputs.get(ref.path)
        if path is None:
            raise OutputError(f"preview of {self.artifact.path}: input {ref.path} not provided")
        return load_image(path, max_pixels=self.max_pixels)

    def first(self, *roles: str) -> Image.Image | None:
        """The first input with one of ``roles``, opened, or None."""
        refs = self.refs(*roles)
        return self.open(refs[0]) if refs else None

    def primary(self) -> Image.Image | None:
        """The first input that is not a style reference: what the frame is made from."""
        refs = [r for r in self.artifact.recipe.inputs if r.role.split(":")[0] not in _STYLE_ROLES]
        return self.open(refs[0]) if refs else None

    def tint(self) -> RGB:
        """The style colour: the mean of the style image, else a palette colour by seed."""
        style = self.first(*_STYLE_ROLES)
        if style is not None:
            return mean_colour(style)
        return self.palette[self.rng.randrange(len(self.palette))]


def render(
    artifact: Artifact,
    inputs: Mapping[str, Path],
    *,
    width: int,
    height: int,
    palette: Sequence[str],
    fps: int = 8,
    seconds: float = 2.0,
    max_seconds: float = MAX_VIDEO_SECONDS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Render a preview of ``artifact`` and return the file's bytes (PNG, or WebP for video).

    Args:
        artifact: what to render; its recipe's step picks the renderer.
        inputs: each ``InputRef.path`` of the recipe mapped to a readable local file.
        width: output width in pixels (image or video settings).
        height: output height in pixels.
        palette: the project's style palette (CSS colours); invalid entries are skipped.
        fps: frames per second of the video preview.
        seconds: video length when the recipe has no ``duration`` parameter.
        max_seconds: cap on the video length (``video.max_seconds`` of the settings).
        max_pixels: inputs with more pixels than this are refused before decoding.

    Returns:
        The encoded file, exactly ``width`` x ``height``.

    Raises:
        OutputError: an input is missing, unreadable or too large, or the size is invalid.
    """
    if width < 8 or height < 8:
        raise OutputError(f"preview size {width}x{height} is too small")
    job = _Job(artifact, inputs, (width, height), _palette(palette), max_pixels)
    step = artifact.recipe.step
    if step == "video":
        return _video(job, fps, min(_duration(job, seconds), max_seconds))
    return _RENDERERS[step](job)


def _palette(specs: Sequence[str]) -> tuple[RGB, ...]:
    colours = tuple(c for c in (parse_colour(s) for s in specs) if c is not None)
    return colours or FALLBACK_PALETTE


def mean_colour(im: Image.Image) -> RGB:
    """Mean colour of the opaque-ish content of ``im``, computed on a small copy (fast)."""
    small = im.copy()
    small.thumbnail((64, 64), Image.Resampling.BILINEAR)
    rgb = flatten(small, (128, 128, 128))
    mean = ImageStat.Stat(rgb).mean
    return (round(mean[0]), round(mean[1]), round(mean[2]))


def flatten(im: Image.Image, backdrop: RGB) -> Image.Image:
    """Composite an RGBA image onto a solid colour and return RGB."""
    if im.mode != "RGBA":
        return im.convert("RGB")
    base = Image.new("RGBA", im.size, (*backdrop, 255))
    return Image.alpha_composite(base, im).convert("RGB")


def cover(im: Image.Image, size: tuple[int, int], backdrop: RGB = BACKDROP) -> Image.Image:
    """Scale ``im`` to cover ``size`` and crop the centre (RGB)."""
    return ImageOps.fit(flatten(im, backdrop), size, method=_RESAMPLE)


def stylise(im: Image.Image, tint: RGB, amount: float = 0.4) -> Image.Image:
    """Pull an RGB image towards a duotone of ``tint`` so a style change is visible."""
    gray = ImageOps.grayscale(im)
    duo = ImageOps.colorize(
        gray, black=mix(tint, (0, 0, 0), 0.75), white=mix(tint, (255, 255, 255), 0.7), mid=tint
    )
    return Image.blend(im, duo, amount)


def _stylise_rgba(im: Image.Image, tint: RGB) -> Image.Image:
    styled = stylise(im.convert("RGB"), tint).convert("RGBA")
    styled.putalpha(im.getchannel("A"))
    return styled


def _gradient(job: _Job, tint: RGB | None = None) -> Image.Image:
    """A vertical two-colour gradient from the palette, for frames with no image input."""
    rng = job.rng
    top = tint or job.palette[rng.randrange(len(job.palette))]
    bottom = job.palette[rng.randrange(len(job.palette))]
    if bottom == top:
        bottom = mix(top, ink_for(top), 0.35)
    ramp = Image.linear_gradient("L").resize(job.size, Image.Resampling.BILINEAR)
    return Image.composite(
        Image.new("RGB", job.size, bottom), Image.new("RGB", job.size, top), ramp
    )


# --- overlays: caption strip, artifact label, PREVIEW mark ---------------------------------


def caption_height(size: tuple[int, int]) -> int:
    """Height of the caption strip at the bottom of a frame of ``size``."""
    return 2 * line_height(font(_caption_px(size))) + max(4, size[1] // 60) * 2


def _caption_px(size: tuple[int, int]) -> int:
    return max(8, min(size[1] // 24, size[0] // 30))


def header_height(size: tuple[int, int]) -> int:
    """Height of the bar at the top of a frame (artifact label and PREVIEW mark)."""
    return line_height(_badge_font(size)) + 3 * _pad(size)


def _pad(size: tuple[int, int]) -> int:
    return max(2, size[1] // 60)


def _badge_font(size: tuple[int, int]) -> Font:
    return font(max(7, min(size[1] // 28, size[0] // 36)))


def overlay(job: _Job, caption: str) -> Image.Image:
    """The RGBA layer drawn over every preview frame: label, PREVIEW mark, caption strip.

    Both bars are opaque, so that a frame made from another preview (a landscape end from its
    start, a keyframe from its background layer) shows no ghost of the earlier labels.
    """
    width, height = job.size
    layer = Image.new("RGBA", job.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    pad = _pad(job.size)
    strip = caption_height(job.size)
    draw.rectangle((0, height - strip, width, height), fill=(*_BAR, 255))
    face = font(_caption_px(job.size))
    lines = wrap(caption or job.artifact.path, face, width - 2 * pad, 2)
    for i, text in enumerate(lines):
        draw.text(
            (pad, height - strip + pad + i * line_height(face)), text, fill="white", font=face
        )
    draw.rectangle((0, 0, width, header_height(job.size) - 1), fill=(*_BAR, 255))
    badge = _badge_font(job.size)
    mark_w = int(badge.getlength("PREVIEW")) + 2 * pad
    draw.rectangle(
        (width - mark_w - pad, pad, width - pad, header_height(job.size) - pad),
        fill=(*PREVIEW_RED, 255),
    )
    draw.text((width - mark_w, pad + pad // 2), "PREVIEW", fill="white", font=badge)
    recipe = job.artifact.recipe
    label = f"{job.artifact.path} · take {recipe.take}" if recipe.take else job.artifact.path
    label = fit_line(label, badge, width - mark_w - 4 * pad)
    draw.text((pad, pad + pad // 2), label, fill="white", font=badge)
    return layer


def _finish(job: _Job, frame: Image.Image, caption: str) -> Image.Image:
    return Image.alpha_composite(frame.convert("RGBA"), overlay(job, caption)).convert("RGB")


# --- the steps ------------------------------------------------------------------------------


def _asset_card(job: _Job) -> bytes:
    """Phase 2.5 asset: a card in the palette with the description, readable."""
    style = job.first(*_STYLE_ROLES)
    card = _gradient(job, mean_colour(style) if style is not None else None)
    draw = ImageDraw.Draw(card)
    width, height = job.size
    stem = job.artifact.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    kind = job.artifact.path.rsplit("/", 2)[-2] if job.artifact.path.count("/") >= 1 else "asset"
    title_face = font(max(9, height // 12))
    body_face = font(max(8, height // 20))
    ink = ink_for(pixel(card, (width // 2, height // 3)))
    margin = max(4, width // 16)
    y = max(height // 6, 2 * line_height(title_face))
    draw.text(
        (margin, y),
        fit_line(f"{kind}: {stem}", title_face, width - 2 * margin),
        fill=ink,
        font=title_face,
    )
    y += line_height(title_face) * 3 // 2
    room = max(1, (height - caption_height(job.size) - y) // line_height(body_face))
    for text in wrap(job.artifact.recipe.prompt, body_face, width - 2 * margin, room):
        draw.text((margin, y), text, fill=ink, font=body_face)
        y += line_height(body_face)
    return png_bytes(_finish(job, card, f"generated {kind} (preview card)"))


def _styled_frame(job: _Job) -> bytes:
    """Background, landscape and object: the reference cropped to the frame, styled."""
    base = job.primary()
    frame = cover(base, job.size) if base is not None else _gradient(job)
    frame = stylise(frame, job.tint())
    return png_bytes(_finish(job, frame, job.artifact.recipe.prompt))


def _copy(job: _Job) -> bytes:
    """A copy step: the source's bytes when they already are a PNG of the frame size."""
    refs = job.refs("source") or list(job.artifact.recipe.inputs)
    if not refs:
        return png_bytes(_finish(job, _gradient(job), job.artifact.recipe.prompt))
    im = job.open(refs[0])  # raises when the input is missing or unreadable
    if im.size == job.size:
        data = job.inputs[refs[0].path].read_bytes()
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return data
    return png_bytes(cover(im, job.size))


def _character(job: _Job) -> bytes:
    """Character layer: the identity cut out on a plain backdrop, pose as an inset."""
    tint = job.tint()
    backdrop = mix(BACKDROP, tint, 0.12)
    canvas = Image.new("RGB", job.size, backdrop)
    identity = job.first("identity", "character") or job.primary()
    pose = job.first("pose")
    figure = (0, 0, 0, 0)
    if identity is not None and pose is not None:
        # The animatic's "pose transfer": the pose's figure in the character's colours, with
        # the character itself as the inset, so start and end keyframes differ as poses do.
        body = _recolour(cutout(pose), mean_colour(cutout(identity)))
        figure = _place_figure(canvas, _stylise_rgba(body, tint), job.size)
        _pose_inset(canvas, identity, job.size)
    elif identity is not None:
        figure = _place_figure(canvas, _stylise_rgba(cutout(identity), tint), job.size)
    elif pose is not None:
        _pose_inset(canvas, pose, job.size)
    meta = json.dumps({"backdrop": hex_colour(backdrop), "figure": list(figure)})
    return png_bytes(_finish(job, canvas, job.artifact.recipe.prompt), {META_KEY: meta})


def _recolour(fig: Image.Image, colour: RGB) -> Image.Image:
    """Shade a cut-out figure in one colour, keeping its shape and light."""
    grey = ImageOps.grayscale(fig.convert("RGB"))
    dark = tuple(c // 4 for c in colour)
    shaded = ImageOps.colorize(grey, black=dark, white=colour).convert("RGBA")
    shaded.putalpha(fig.getchannel("A"))
    return shaded


def _place_figure(
    canvas: Image.Image, fig: Image.Image, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    width, height = size
    top = header_height(size) + _pad(size)
    room_h = height - caption_height(size) - top - 2
    fig = ImageOps.contain(fig, (max(1, width * 6 // 10), max(1, room_h)), method=_RESAMPLE)
    x = (width - fig.width) // 2
    y = top + room_h - fig.height
    canvas.paste(fig, (x, y), fig)
    return (x, y, fig.width, fig.height)


def _pose_inset(canvas: Image.Image, pose: Image.Image, size: tuple[int, int]) -> None:
    width, height = size
    inset = ImageOps.contain(
        flatten(pose, BACKDROP),
        (max(1, width * 17 // 100), max(1, height * 3 // 10)),
        method=_RESAMPLE,
    )
    faint = Image.blend(Image.new("RGB", inset.size, pixel(canvas, (0, 0))), inset, 0.55)
    x, y = max(2, width // 50), height // 4
    canvas.paste(faint, (x, y))
    ImageDraw.Draw(canvas).rectangle(
        (x - 1, y - 1, x + inset.width, y + inset.height), outline=(90, 90, 90)
    )


def cutout(im: Image.Image) -> Image.Image:
    """The subject of an RGBA image: its own alpha, or its plain border colour keyed out.

    A photo whose corners disagree (no plain backdrop) is kept whole.
    """
    alpha = im.getchannel("A")
    if alpha.getextrema()[0] < 250:  # type: ignore[operator]
        return im
    rgb = [pixel(im, p) for p in _corners(im.size)]
    if max(_distance(a, b) for a in rgb for b in rgb) > 60:
        return im
    key = mix(mix(rgb[0], rgb[1], 0.5), mix(rgb[2], rgb[3], 0.5), 0.5)
    keyed = im.copy()
    keyed.putalpha(key_mask(im, key))
    return keyed


def pixel(im: Image.Image, xy: tuple[int, int]) -> RGB:
    """The RGB colour of one pixel of an RGB or RGBA image."""
    value = im.getpixel(xy)
    if not isinstance(value, tuple):
        raise TypeError(f"expected an RGB(A) image, got mode {im.mode}")
    return (int(value[0]), int(value[1]), int(value[2]))


def _corners(size: tuple[int, int]) -> list[tuple[int, int]]:
    w, h = size
    return [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]


def _distance(a: RGB, b: RGB) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1]) + abs(a[2] - b[2])


def key_mask(im: Image.Image, key: RGB, threshold: int = 10) -> Image.Image:
    """An L mask: 0 where ``im`` is (near) ``key``, ramping to 255 for other colours.

    The mask is eroded by one pixel: anti-aliased edge pixels are part backdrop, and keeping
    them would leave a light fringe around a figure placed on a darker background.
    """
    diff = ImageChops.difference(im.convert("RGB"), Image.new("RGB", im.size, key))
    channels = diff.split()
    spread = ImageChops.add(ImageChops.add(channels[0], channels[1]), channels[2])
    mask = spread.point(lambda v: 0 if v <= threshold else min(255, (v - threshold) * 12))
    return mask.filter(ImageFilter.MinFilter(3))


def figure_of(layer: Image.Image) -> Image.Image:
    """Cut the figure out of a character layer (RGBA, cropped to the figure)."""
    meta = _layer_meta(layer)
    if meta is not None:
        backdrop, box = meta
        x, y, w, h = box
        if w > 0 and h > 0:
            region = layer.crop((x, y, x + w, y + h))
            region.putalpha(key_mask(region, backdrop))
            return region
        return Image.new("RGBA", (1, 1), (0, 0, 0, 0))
    keyed = cutout(layer)
    bbox = keyed.getchannel("A").getbbox()
    return keyed.crop(bbox) if bbox else keyed


def _layer_meta(layer: Image.Image) -> tuple[RGB, tuple[int, int, int, int]] | None:
    raw = layer.info.get(META_KEY)
    if not isinstance(raw, str):
        return None
    try:
        data = json.loads(raw)
        colour = parse_colour(str(data["backdrop"]))
        x, y, w, h = (int(v) for v in data["figure"])
    except (ValueError, KeyError, TypeError):
        return None
    if colour is None or x < 0 or y < 0 or x + w > layer.width or y + h > layer.height:
        return None
    return colour, (x, y, w, h)


def _composite(job: _Job) -> bytes:
    """Keyframe: the background layer with each character layer's figure placed on it."""
    background = job.first("background")
    if background is None:
        others = [r for r in job.artifact.recipe.inputs if r.role.split(":")[0] != "character"]
        background = job.open(others[0]) if others else None
    frame = cover(background, job.size) if background is not None else _gradient(job)
    layers = job.refs("character")
    for index, ref in enumerate(layers):
        _place_character(frame, figure_of(job.open(ref)), index, len(layers))
    style = job.first(*_STYLE_ROLES)
    if style is not None:
        frame = stylise(frame, mean_colour(style), 0.2)
    return png_bytes(_finish(job, frame, job.artifact.recipe.prompt))


def _place_character(frame: Image.Image, fig: Image.Image, index: int, count: int) -> None:
    width, height = frame.size
    target_h = max(1, round(height * CHARACTER_HEIGHT))
    target_w = max(1, round(fig.width * target_h / max(1, fig.height)))
    lane = max(1, width * 9 // (10 * count))
    if target_w > lane:  # a wide figure is fitted into its lane
        target_h = max(1, round(target_h * lane / target_w))
        target_w = lane
    fig = fig.resize((target_w, target_h), _RESAMPLE)
    centre_x = width * (index + 1) // (count + 1)
    bottom = height - height // 20
    frame.paste(fig, (centre_x - target_w // 2, bottom - target_h), fig)


def _video(job: _Job, fps: int, length: float) -> bytes:
    """Video: an animated WebP crossfade from the start to the end keyframe."""
    start_im = job.first("start")
    end_im = job.first("end")
    first = cover(start_im, job.size) if start_im is not None else _gradient(job)
    last = cover(end_im, job.size) if end_im is not None else first
    count = max(2, min(MAX_VIDEO_FRAMES, round(max(1, fps) * length)))
    top = overlay(job, job.artifact.recipe.prompt)
    frames = [
        _timeline(Image.alpha_composite(
            Image.blend(first, last, i / (count - 1)).convert("RGBA"), top
        ).convert("RGB"), i / (count - 1))
        for i in range(count)
    ]
    buffer = io.BytesIO()
    frames[0].save(
        buffer,
        format="WEBP",
        save_all=True,
        append_images=frames[1:],
        duration=max(10, round(length * 1000 / count)),
        loop=0,
        quality=75,
        method=4,
    )
    return buffer.getvalue()


def _timeline(frame: Image.Image, done: float) -> Image.Image:
    """A thin playhead along the bottom edge, so an animatic of two equal keyframes still plays."""
    bar = max(2, frame.height // 100)
    ImageDraw.Draw(frame).rectangle(
        (0, frame.height - bar, round((frame.width - 1) * done), frame.height - 1),
        fill=(239, 35, 60),
    )
    return frame


def _duration(job: _Job, default: float) -> float:
    value = job.artifact.recipe.params.get("duration")
    if isinstance(value, bool) or value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if seconds > 0 else default


_RENDERERS: dict[str, Callable[[_Job], bytes]] = {
    "asset": _asset_card,
    "background": _styled_frame,
    "landscape": _styled_frame,
    "object": _styled_frame,
    "character": _character,
    "composite": _composite,
    "copy": _copy,
}
