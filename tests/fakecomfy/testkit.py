"""Small client-side helpers for tests that talk to a (fake) ComfyUI."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from PIL import Image
from websockets.sync.client import ClientConnection


def png(colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    """A small real PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(
    filename: str, data: bytes, fields: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart body with an ``image`` part named exactly ``filename`` (no re-encoding).

    Returns:
        The body and its Content-Type header value.
    """
    boundary = f"fakecomfy{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in (fields or {}).items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
    )
    parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    client: httpx.Client, filename: str, data: bytes, fields: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST /upload/image with the file part named ``filename``."""
    body, content_type = multipart(filename, data, fields)
    return client.post("/upload/image", content=body, headers={"Content-Type": content_type})


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON text frame."""
    while True:
        frame = ws.recv(timeout=timeout)
        if isinstance(frame, str):
            message: dict[str, Any] = json.loads(frame)
            return message


def messages_until_done(
    ws: ClientConnection, prompt_id: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every message up to and including ``executing {node: null}`` for ``prompt_id``."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        message = receive(ws, max(0.01, deadline - time.monotonic()))
        seen.append(message)
        data = message["data"]
        if (
            message["type"] == "executing"
            and data.get("node") is None
            and data.get("prompt_id") == prompt_id
        ):
            return seen


def wait_history(client: httpx.Client, prompt_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll GET /history/{id} until the entry exists; return the entry.

    Raises:
        TimeoutError: No entry within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/history/{prompt_id}").json()
        if prompt_id in body:
            entry: dict[str, Any] = body[prompt_id]
            return entry
        if time.monotonic() > deadline:
            raise TimeoutError(f"no history for {prompt_id}")
        time.sleep(0.01)
