"""Output nodes: write real files where ComfyUI would and return the node's UI dict."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import render
from .files import Dirs, save_target
from .values import DEFAULT_SIZE, NodeValue

MAX_IMAGES = 64  # a batch larger than this is cut, to keep the fake cheap


@dataclass
class SaveContext:
    """What a save node needs besides its inputs."""

    dirs: Dirs
    prompt: dict[str, Any]
    extra_pnginfo: dict[str, Any] | None
    written: list[Path] = field(default_factory=list)
    video_data: bytes | None = None  # SaveVideo writes these bytes when a test gave some

    def write(self, path: Path, data: bytes) -> None:
        """Write a file (output files are not read while being written, so no temp needed)."""
        path.write_bytes(data)
        self.written.append(path)

    def png_text(self) -> dict[str, str]:
        """The tEXt chunks ComfyUI embeds: the prompt and each extra_pnginfo key."""
        text = {"prompt": json.dumps(self.prompt)}
        for key, value in (self.extra_pnginfo or {}).items():
            text[str(key)] = json.dumps(value)
        return text


Saver = Callable[[SaveContext, Mapping[str, Any], Mapping[str, NodeValue]], dict[str, Any]]


def _result(name: str, subfolder: str, kind: str) -> dict[str, str]:
    return {"filename": name, "subfolder": subfolder, "type": kind}


def _source(upstream: Mapping[str, NodeValue], name: str) -> NodeValue:
    value = upstream.get(name)
    return value if value is not None else NodeValue(sig=f"missing:{name}")


def _prefix(inputs: Mapping[str, Any], default: str, size: tuple[int, int]) -> str:
    """The filename prefix with the variables the server expands (%width%, %year%...)."""
    now = datetime.now()
    values = {
        "width": str(size[0]),
        "height": str(size[1]),
        "year": str(now.year),
        **{k: f"{getattr(now, k):02}" for k in ("month", "day", "hour", "minute", "second")},
    }
    prefix = str(inputs.get("filename_prefix", default))
    for key, value in values.items():
        prefix = prefix.replace(f"%{key}%", value)
    return prefix


def _save_pngs(
    ctx: SaveContext, root: Path, kind: str, prefix: str, images: NodeValue
) -> dict[str, Any]:
    size = images.size or DEFAULT_SIZE
    folder, base, counter, subfolder = save_target(root, prefix)
    results = []
    for index in range(max(1, min(images.batch, MAX_IMAGES))):
        name = f"{base.replace('%batch_num%', str(index))}_{counter:05}_.png"
        ctx.write(folder / name, render.png_bytes(f"{images.sig}:{index}", size, ctx.png_text()))
        results.append(_result(name, subfolder, kind))
        counter += 1
    return {"images": results}


def save_image(
    ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
) -> dict[str, Any]:
    """SaveImage: ``<prefix>_<counter:05>_.png`` per image in the output folder."""
    images = _source(up, "images")
    prefix = _prefix(inputs, "ComfyUI", images.size or DEFAULT_SIZE)
    return _save_pngs(ctx, ctx.dirs.output, "output", prefix, images)


def preview_image(
    ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
) -> dict[str, Any]:
    """PreviewImage: like SaveImage but in temp, with a random ``ComfyUI_temp_xxxxx`` prefix."""
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(5))
    return _save_pngs(ctx, ctx.dirs.temp, "temp", f"ComfyUI_temp_{suffix}", _source(up, "images"))


def _save_one(
    ctx: SaveContext, inputs: Mapping[str, Any], source: NodeValue, ext: str, data: bytes
) -> dict[str, Any]:
    prefix = _prefix(inputs, "ComfyUI", source.size or DEFAULT_SIZE)
    folder, base, counter, subfolder = save_target(ctx.dirs.output, prefix)
    name = f"{base}_{counter:05}_.{ext}"
    ctx.write(folder / name, data)
    return {"images": [_result(name, subfolder, "output")]}


def save_video(
    ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
) -> dict[str, Any]:
    """SaveVideo: an MP4 reported under ``images`` with ``animated: [true]``."""
    video = _source(up, "video")
    data = ctx.video_data or render.mp4_bytes(
        video.sig, video.size or DEFAULT_SIZE, video.batch, video.fps or 24.0)
    return {**_save_one(ctx, inputs, video, "mp4", data), "animated": [True]}


def save_webm(
    ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
) -> dict[str, Any]:
    """SaveWEBM: a WebM reported under ``images`` with ``animated: [true]``."""
    images = _source(up, "images")
    data = render.webm_bytes(images.sig, images.size or DEFAULT_SIZE)
    return {**_save_one(ctx, inputs, images, "webm", data), "animated": [True]}


def _animated(fmt: str, ext: str) -> Saver:
    def save(
        ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
    ) -> dict[str, Any]:
        images = _source(up, "images")
        fps = float(inputs.get("fps", 6.0)) if isinstance(inputs.get("fps"), int | float) else 6.0
        data = render.animated_bytes(
            images.sig, images.size or DEFAULT_SIZE, images.batch, fmt, fps
        )
        return {**_save_one(ctx, inputs, images, ext, data), "animated": [images.batch != 1]}

    return save


def preview_any(
    ctx: SaveContext, inputs: Mapping[str, Any], up: Mapping[str, NodeValue]
) -> dict[str, Any]:
    """PreviewAny: the source as text, no file."""
    source = up.get("source")
    if source is not None:
        return {"text": [source.text if source.text is not None else source.sig]}
    return {"text": [str(inputs.get("source"))]}


SAVERS: dict[str, Saver] = {
    "SaveImage": save_image,
    "PreviewImage": preview_image,
    "SaveVideo": save_video,
    "SaveWEBM": save_webm,
    "SaveAnimatedWEBP": _animated("WEBP", "webp"),
    "SaveAnimatedPNG": _animated("PNG", "png"),
    "PreviewAny": preview_any,
}
