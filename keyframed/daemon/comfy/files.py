"""Files going to and coming from a server: upload names, ``/view`` queries, capped streaming."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from keyframed.daemon.comfy.errors import ProtocolMismatch
from keyframed.errors import OutputError

__all__ = ["UPLOAD_SUBFOLDER", "load_name", "stream_view", "upload_name", "view_params"]

UPLOAD_SUBFOLDER = "keyframed"
_VIEW_TYPES = frozenset({"output", "temp", "input"})


def upload_name(local: Path, sha256: str) -> str:
    """The content-hash file name an input is uploaded under: ``kf-<sha256[:20]><ext>``."""
    return f"kf-{sha256[:20]}{local.suffix.lower()}"


def load_name(body: Any) -> str:
    """The name LoadImage uses for an upload, from ``POST /upload/image``'s answer.

    Raises:
        ProtocolMismatch: the answer has no usable name.
    """
    if not isinstance(body, Mapping) or not isinstance(body.get("name"), str) or not body["name"]:
        raise ProtocolMismatch("POST /upload/image did not answer a name")
    subfolder = body.get("subfolder") or ""
    if not isinstance(subfolder, str):
        raise ProtocolMismatch("POST /upload/image answered a subfolder that is not text")
    return f"{subfolder}/{body['name']}" if subfolder else str(body["name"])


def view_params(output: Mapping[str, Any]) -> dict[str, str]:
    """``/view`` query parameters for one output entry of a history entry.

    The server's names only ever travel back to the server as query parameters.

    Raises:
        ProtocolMismatch: no file name, or an unknown ``type``.
    """
    filename, subfolder = output.get("filename"), output.get("subfolder") or ""
    kind = output.get("type") or "output"
    if not isinstance(filename, str) or not filename or not isinstance(subfolder, str):
        raise ProtocolMismatch(f"an output entry has no usable filename: {dict(output)!r}")
    if kind not in _VIEW_TYPES:
        raise ProtocolMismatch(f"an output entry has type {kind!r}")
    return {"filename": filename, "subfolder": subfolder, "type": str(kind)}


def stream_view(
    http: httpx.Client, params: Mapping[str, str], buffer: IO[bytes], max_bytes: int
) -> tuple[str, int]:
    """Stream ``GET /view`` into ``buffer``, refusing more than ``max_bytes``.

    Call it inside :func:`~keyframed.daemon.comfy.errors.mapped`: HTTP errors are raised as
    httpx exceptions.

    Returns:
        The sha256 hex digest and the number of bytes.

    Raises:
        OutputError: the body is (or says it is) larger than ``max_bytes``.
    """
    digest, count = hashlib.sha256(), 0
    with http.stream("GET", "/view", params=params) as response:
        if response.is_error:
            response.read()  # ComfyUI's error bodies are empty or one line
        response.raise_for_status()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise OutputError(f"{params['filename']} is {declared} bytes, over {max_bytes}")
        for chunk in response.iter_bytes():
            count += len(chunk)
            if count > max_bytes:
                raise OutputError(f"{params['filename']} is over {max_bytes} bytes")
            digest.update(chunk)
            buffer.write(chunk)
    return digest.hexdigest(), count
