"""Files going to and coming from a server: upload names, ``/view`` queries, capped streaming."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from keyframed.backends.comfy.deadline import DEADLINE_EXTENSION, MAX_BYTES_EXTENSION
from keyframed.backends.comfy.errors import ProtocolMismatch
from keyframed.errors import OutputError

__all__ = ["UPLOAD_SUBFOLDER", "load_name", "stream_view", "upload_name", "view_params"]

UPLOAD_SUBFOLDER = "keyframed"
_VIEW_TYPES = frozenset({"output", "temp", "input"})
# Limits of a sane output name (file systems allow 255 bytes per name).
_MAX_NAME_BYTES = 255
_MAX_SUBFOLDER_CHARS = 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_SHOWN_CHARS = 80


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
        ProtocolMismatch: no file name, an unknown ``type``, or a name no save node writes
            (a path, control characters, too long).
    """
    filename, subfolder = output.get("filename"), output.get("subfolder") or ""
    kind = output.get("type") or "output"
    if not isinstance(filename, str) or not filename or not isinstance(subfolder, str):
        raise ProtocolMismatch(f"an output entry has no usable filename: {_shown(output)}")
    if kind not in _VIEW_TYPES:
        raise ProtocolMismatch(f"an output entry has type {_shown(kind)}")
    # A server reporting ``../x``, an absolute path, control characters or an impossibly
    # long name is broken or hostile; what it serves under that name is not trusted either.
    problem = _name_problem(filename, subfolder)
    if problem:
        raise ProtocolMismatch(
            f"refusing output {_shown(filename)} in subfolder {_shown(subfolder)}: {problem}"
        )
    return {"filename": filename, "subfolder": subfolder, "type": str(kind)}


def _name_problem(filename: str, subfolder: str) -> str:
    """Why a reported output name is not one a ComfyUI save node writes ("" when it is)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in filename + subfolder):
        return "control characters in the name"
    if len(filename.encode("utf-8", "surrogatepass")) > _MAX_NAME_BYTES:
        return f"a file name over {_MAX_NAME_BYTES} bytes"
    if len(subfolder) > _MAX_SUBFOLDER_CHARS:
        return f"a subfolder over {_MAX_SUBFOLDER_CHARS} characters"
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        return "the file name is a path"
    # Subfolders may nest (``keyframed/<project>/scene-01``; backslashes on Windows).
    if subfolder.startswith(("/", "\\")) or _DRIVE.match(subfolder):
        return "an absolute subfolder"
    if ".." in re.split(r"[/\\]", subfolder):
        return "the subfolder leaves the server's folder"
    return ""


def _shown(value: Any) -> str:
    """A value for an error message: its repr, cut short."""
    text = repr(dict(value) if isinstance(value, Mapping) else value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"


def stream_view(
    http: httpx.Client,
    params: Mapping[str, str],
    buffer: IO[bytes],
    max_bytes: int,
    deadline: float | None = None,
) -> tuple[str, int]:
    """Stream ``GET /view`` into ``buffer``, refusing more than ``max_bytes``.

    ``deadline`` (seconds for the whole download) replaces the client's request deadline.

    Call it inside :func:`~keyframed.backends.comfy.errors.mapped`: HTTP errors are raised as
    httpx exceptions.

    Returns:
        The sha256 hex digest and the number of bytes.

    Raises:
        OutputError: the body is (or says it is) larger than ``max_bytes``.
    """
    digest, count = hashlib.sha256(), 0
    # The transport's bound lies a mebibyte past the cap (httpx reads 64 KiB at a time), so the
    # check below, which names the file, is the one that speaks.
    extensions: dict[str, float | int] = {MAX_BYTES_EXTENSION: max_bytes + (1 << 20)}
    if deadline is not None:
        extensions[DEADLINE_EXTENSION] = deadline
    with http.stream("GET", "/view", params=params, extensions=extensions) as response:
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
