"""What a simulated node "produces": not tensors, just the facts later nodes and savers need."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_SIZE = (64, 64)


@dataclass(frozen=True)
class NodeValue:
    """The simulated output of one node.

    Attributes:
        sig: The node's cache signature; saved pixels are derived from it.
        size: Image size ``(width, height)`` if known.
        batch: Images (or video frames) in the batch.
        fps: Frame rate, for video nodes.
        text: A text value (primitives), shown by PreviewAny.
    """

    sig: str
    size: tuple[int, int] | None = None
    batch: int = 1
    fps: float | None = None
    text: str | None = None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _size(inputs: Mapping[str, Any], upstream: list[NodeValue]) -> tuple[int, int] | None:
    inherited = next((v.size for v in upstream if v.size), None)
    width, height = _int(inputs.get("width")), _int(inputs.get("height"))
    if width and height and width > 0 and height > 0:
        return (width, height)
    if inherited and (width or height):
        # ComfyUI keeps the aspect ratio when one side is 0.
        w0, h0 = inherited
        if width:
            return (width, max(1, round(h0 * width / w0)))
        if height:
            return (max(1, round(w0 * height / h0)), height)
    return inherited


def _batch(inputs: Mapping[str, Any], upstream: list[NodeValue]) -> int:
    for key in ("length", "batch_size"):
        own = _int(inputs.get(key))
        if own and own > 0:
            return own
    return max((v.batch for v in upstream), default=1)


def _fps(inputs: Mapping[str, Any], upstream: list[NodeValue]) -> float | None:
    own = inputs.get("fps")
    if isinstance(own, int | float) and not isinstance(own, bool) and own > 0:
        return float(own)
    return next((v.fps for v in upstream if v.fps), None)


def compute_value(
    class_type: str,
    inputs: Mapping[str, Any],
    sig: str,
    upstream: Mapping[str, NodeValue],
    image_size: Callable[[str], tuple[int, int] | None],
) -> NodeValue:
    """Simulate one node: propagate size, batch, fps and text from its inputs.

    Args:
        class_type: The node class.
        inputs: The node's inputs (constants and links).
        sig: The node's cache signature.
        upstream: The values of linked inputs, by input name, in input order.
        image_size: Size of an input-dir image named as LoadImage names it (None if unreadable).
    """
    linked = list(upstream.values())
    if class_type in ("LoadImage", "LoadImageMask") and isinstance(inputs.get("image"), str):
        return NodeValue(sig, image_size(inputs["image"]) or DEFAULT_SIZE)
    text = None
    if class_type.startswith("Primitive") and "value" in inputs:
        text = str(inputs["value"])
    else:
        text = next((v.text for v in linked if v.text is not None), None)
    return NodeValue(sig, _size(inputs, linked), _batch(inputs, linked), _fps(inputs, linked), text)
