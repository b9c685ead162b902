"""The one boundary where HTTP failures become keyframed errors.

Every request the ComfyUI client makes runs inside :func:`mapped`, and nothing else in keyframed
decides whether a ComfyUI problem is worth retrying. The split:

========================================  ======================  ==============================
what happened                             becomes                 why
========================================  ======================  ==============================
connect/read/write/pool timeout,          ComfyTransientError     the server is busy, restarting
refused, reset, closed, proxy failure,                            or the network blipped
server closed mid-response, bad gzip
HTTP 5xx, 408, 425, 429                   ComfyTransientError     the server says "later"
HTTP 4xx (other), 3xx                     ComfyPermanentError     the request itself is wrong;
                                                                  sending it again changes nothing
malformed request on our side             ComfyPermanentError     a bug or a bad URL, not the
(LocalProtocolError, UnsupportedProtocol,                         server's state
TooManyRedirects)
body that is not JSON                     ComfyTransientError     a truncated answer or a proxy's
                                                                  error page while the server
                                                                  restarts; retries are capped
JSON of the wrong shape                   ComfyPermanentError     a server speaking another
(:class:`ProtocolMismatch`)                                       dialect will not change its
                                                                  mind on retry
========================================  ======================  ==============================

A 400 from ``POST /prompt`` carries ComfyUI's own ``error.message`` and a one-line summary of
each entry of ``node_errors``, e.g. ``node 7 (LoraLoaderModelOnly): lora_name:
'x.safetensors' not in list``. Messages name the method and path, never headers (the bearer
token) and never query strings.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from keyframed.backends.comfy.deadline import AnswerTooLarge
from keyframed.errors import ComfyError, ComfyPermanentError, ComfyTransientError
from keyframed.redact import redact

__all__ = ["ProtocolMismatch", "is_transient_status", "mapped", "summarise_node_errors"]

# Transport failures that say nothing about the request being wrong: try again later.
_TRANSIENT: tuple[type[httpx.HTTPError], ...] = (
    httpx.TimeoutException,
    httpx.NetworkError,
    httpx.RemoteProtocolError,
    httpx.ProxyError,
    httpx.DecodingError,
)
# 4xx answers that mean "not now" rather than "never".
_TRANSIENT_4XX = frozenset({408, 425, 429})
_MAX_NODES_SHOWN = 6
_BODY_SNIPPET = 200


class ProtocolMismatch(ValueError):
    """The server answered JSON, but not in the shape ComfyUI uses.

    Raised by the response parsers and turned into :class:`ComfyPermanentError` by
    :func:`mapped`; it never escapes the client.
    """


@contextmanager
def mapped(server: str, job: str = "") -> Iterator[None]:
    """Turn httpx exceptions, HTTP error statuses and bad bodies into keyframed errors.

    Code inside the block calls ``response.raise_for_status()`` (or lets httpx raise); errors
    that are already :class:`ComfyError` pass through unchanged.

    Args:
        server: the backend name, recorded on the error and shown in its message.
        job: the job the request belongs to (may be empty), recorded on the error.

    Raises:
        ComfyTransientError: worth retrying (see the module docstring).
        ComfyPermanentError: retrying cannot help.
    """
    try:
        yield
    except ComfyError:
        raise
    except httpx.HTTPStatusError as exc:
        raise _status_error(exc.response, server, job) from exc
    except AnswerTooLarge as exc:
        raise ComfyPermanentError(f"{server}: {_where(exc.request)}: {exc}", server=server,
                                  job=job) from exc
    except httpx.HTTPError as exc:
        raise _transport_error(exc, server, job) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ComfyTransientError(
            f"{server}: the answer is not JSON ({exc})", server=server, job=job
        ) from exc
    except ProtocolMismatch as exc:
        raise ComfyPermanentError(
            f"{server}: unexpected answer: {exc}", server=server, job=job
        ) from exc


def is_transient_status(status: int) -> bool:
    """True when an HTTP status means "try again later"."""
    return status >= 500 or status in _TRANSIENT_4XX


def _where(request: httpx.Request | None) -> str:
    # Path only: the query may be long, and headers (the token) are never shown.
    if request is None:
        return "request"
    return f"{request.method} {request.url.path}"


def _transport_error(exc: httpx.HTTPError, server: str, job: str) -> ComfyError:
    try:
        where = _where(exc.request)
    except RuntimeError:  # httpx raises this when the error has no request attached
        where = "request"
    detail = str(exc) or type(exc).__name__
    message = f"{server}: {where} failed: {type(exc).__name__}: {detail}"
    if isinstance(exc, _TRANSIENT):
        return ComfyTransientError(message, server=server, job=job)
    return ComfyPermanentError(message, server=server, job=job)


def _status_error(response: httpx.Response, server: str, job: str) -> ComfyError:
    where = _where(response.request)
    body = _body_json(response)
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        reason = _comfy_reason(body)
    else:
        reason = _snippet(response)
    message = f"{server}: {where} answered HTTP {response.status_code}"
    if reason:
        # An error page may echo the request's headers (a proxy's debugging page does).
        message += f": {redact(reason)}"
    if is_transient_status(response.status_code):
        return ComfyTransientError(message, server=server, job=job)
    return ComfyPermanentError(message, server=server, job=job)


def _body_text(response: httpx.Response) -> str:
    try:
        return response.text
    except (httpx.ResponseNotRead, httpx.StreamError, UnicodeDecodeError):
        return ""


def _body_json(response: httpx.Response) -> Any:
    text = _body_text(response)
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _snippet(response: httpx.Response) -> str:
    text = " ".join(_body_text(response).split())
    return text[:_BODY_SNIPPET] + ("…" if len(text) > _BODY_SNIPPET else "")


def _comfy_reason(body: Mapping[str, Any]) -> str:
    """ComfyUI's ``error.message`` (with ``details``) and the per-node summary."""
    error = body["error"]
    reason = str(error.get("message") or error.get("type") or "rejected")
    details = error.get("details")
    nodes = body.get("node_errors")
    if details and not nodes:
        reason += f" ({details})"
    if isinstance(nodes, Mapping) and nodes:
        reason += ": " + summarise_node_errors(nodes)
    return reason


def summarise_node_errors(node_errors: Mapping[str, Any]) -> str:
    """One line for ComfyUI's ``node_errors``: ``node 7 (LoraLoaderModelOnly): lora_name: ...``.

    Args:
        node_errors: the ``node_errors`` object of a ``POST /prompt`` answer.

    Returns:
        The nodes in id order, separated by ``; ``; after a few, ``and N more``.
    """
    parts: list[str] = []
    for node_id in sorted(node_errors, key=_node_order):
        entry = node_errors[node_id]
        if not isinstance(entry, Mapping):
            continue
        errors = entry.get("errors")
        problems = (
            [_one_error(e) for e in errors if isinstance(e, Mapping)]
            if isinstance(errors, list)
            else []
        )
        parts.append(
            f"node {node_id} ({entry.get('class_type', '?')}): "
            + (", ".join(problems) or "invalid")
        )
    if len(parts) > _MAX_NODES_SHOWN:
        parts = [*parts[:_MAX_NODES_SHOWN], f"and {len(parts) - _MAX_NODES_SHOWN} more"]
    return "; ".join(parts)


def _node_order(node_id: str) -> tuple[int, str]:
    return (int(node_id), "") if node_id.isdigit() else (1 << 62, node_id)


def _one_error(error: Mapping[str, Any]) -> str:
    extra = error.get("extra_info")
    extra = extra if isinstance(extra, Mapping) else {}
    if error.get("type") == "value_not_in_list" and "input_name" in extra:
        # ComfyUI's details list every option; the name and the value are what matter.
        return f"{extra['input_name']}: {extra.get('received_value')!r} not in list"
    message = str(error.get("message") or error.get("type") or "error")
    details = error.get("details")
    return f"{message}: {details}" if details else message
