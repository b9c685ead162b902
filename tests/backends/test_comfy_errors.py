"""The transient/permanent split made by ``keyframed.backends.comfy.errors.mapped``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyframed.backends.comfy.errors import ProtocolMismatch, mapped, summarise_node_errors
from keyframed.errors import (
    ComfyError,
    ComfyExecutionError,
    ComfyPermanentError,
    ComfyTransientError,
)

REQUEST = httpx.Request("POST", "http://127.0.0.1:8188/prompt?secret=q")


def _all_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subclasses: list[type] = cls.__subclasses__()
    for sub in subclasses:
        found += [sub, *_all_subclasses(sub)]
    return found


HTTPX_ERRORS = sorted(
    {
        c
        for c in [httpx.HTTPError, *_all_subclasses(httpx.HTTPError)]
        if c.__module__.startswith("httpx")
    },
    key=lambda c: c.__name__,
)


def _instance(cls: type[httpx.HTTPError]) -> httpx.HTTPError:
    if issubclass(cls, httpx.HTTPStatusError):
        response = httpx.Response(503, request=REQUEST)
        return cls("boom", request=REQUEST, response=response)
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=REQUEST)
    return cls("boom")


def _map(
    exc: BaseException, server: str = "gpu1", job: str = "scene-01/keyframe-start"
) -> ComfyError:
    with pytest.raises(ComfyError) as info, mapped(server, job):
        raise exc
    assert info.value.__cause__ is exc or info.value is exc
    return info.value


def test_the_walk_finds_the_transport_errors() -> None:
    names = {c.__name__ for c in HTTPX_ERRORS}
    assert {"ConnectError", "ReadTimeout", "RemoteProtocolError", "HTTPStatusError"} <= names
    assert len(names) >= 20


@pytest.mark.parametrize("cls", HTTPX_ERRORS, ids=lambda c: c.__name__)
def test_every_httpx_error_maps_to_one_of_ours(cls: type[httpx.HTTPError]) -> None:
    error = _map(_instance(cls))
    assert isinstance(error, ComfyTransientError | ComfyPermanentError)
    assert (error.server, error.job) == ("gpu1", "scene-01/keyframe-start")
    assert "gpu1" in str(error)
    assert "secret" not in str(error)  # the query string is not repeated


@pytest.mark.parametrize(
    "cls",
    [
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.WriteError,
        httpx.CloseError,
        httpx.RemoteProtocolError,
    ],
    ids=lambda c: c.__name__,
)
def test_network_trouble_is_transient(cls: type[httpx.HTTPError]) -> None:
    assert isinstance(_map(_instance(cls)), ComfyTransientError)


@pytest.mark.parametrize(
    "cls", [httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.TooManyRedirects]
)
def test_our_own_malformed_requests_are_permanent(cls: type[httpx.HTTPError]) -> None:
    assert isinstance(_map(_instance(cls)), ComfyPermanentError)


def _status(code: int, body: Any = None, text: str = "") -> ComfyError:
    content = json.dumps(body).encode() if body is not None else text.encode()
    response = httpx.Response(code, content=content, request=REQUEST)
    with pytest.raises(ComfyError) as info, mapped("gpu1", "job-1"):
        response.raise_for_status()
    assert isinstance(info.value.__cause__, httpx.HTTPStatusError)
    return info.value


@pytest.mark.parametrize("code", [500, 502, 503, 504, 408, 429])
def test_server_side_statuses_are_transient(code: int) -> None:
    error = _status(code, text="500 Internal Server Error\n\nServer got itself in trouble")
    assert isinstance(error, ComfyTransientError)
    assert f"HTTP {code}" in str(error) and "POST /prompt" in str(error)


@pytest.mark.parametrize("code", [301, 400, 401, 403, 404, 405, 413])
def test_client_side_statuses_are_permanent(code: int) -> None:
    assert isinstance(_status(code), ComfyPermanentError)


def test_an_error_page_is_shortened_to_one_line() -> None:
    error = _status(502, text="<html>\n" + "x" * 5000 + "\n</html>")
    assert "\n" not in str(error) and len(str(error)) < 400


def _transcript(shared_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (shared_dir / "comfyui" / "transcripts" / f"{name}.json").read_text(encoding="utf-8")
    )
    return data


def test_lora_not_in_list_names_node_class_and_value(shared_dir: Path) -> None:
    body = _transcript(shared_dir, "prompt_invalid_lora_not_in_list")["response"]["body"]
    error = _status(400, body)
    assert isinstance(error, ComfyPermanentError)
    text = str(error)
    assert "Prompt outputs failed validation" in text
    assert "node 2 (LoraLoaderModelOnly): lora_name: 'AnyPose.safetensors' not in list" in text
    assert "node 1 (UNETLoader): unet_name:" in text
    assert text.index("node 1 ") < text.index("node 2 ")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prompt_invalid_float_out_of_range", "node 4 (ImageBlend): Value 7.5 bigger than max"),
        ("prompt_invalid_image_not_uploaded", "node 1 (LoadImage): Custom validation failed"),
        (
            "prompt_invalid_missing_required_input",
            "node 2 (SaveImage): Required input is missing: images",
        ),
        ("prompt_invalid_no_output_node", "Prompt has no outputs"),
        ("prompt_invalid_unknown_class", "node NoSuchNode does not exist. (Node ID '#1')"),
    ],
)
def test_each_recorded_rejection_reads_well(shared_dir: Path, name: str, expected: str) -> None:
    response = _transcript(shared_dir, name)["response"]
    error = _status(response["status"], response["body"])
    assert isinstance(error, ComfyPermanentError)
    assert expected in str(error)


def test_recorded_500_for_a_bad_body_is_transient(shared_dir: Path) -> None:
    recorded = _transcript(shared_dir, "prompt_invalid_body")
    assert isinstance(_status(recorded["status"], text=recorded["text"]), ComfyTransientError)


def test_many_failing_nodes_are_cut_short() -> None:
    nodes = {
        str(i): {"class_type": "VAELoader", "errors": [{"message": "bad", "details": "x"}]}
        for i in range(1, 12)
    }
    summary = summarise_node_errors(nodes)
    assert summary.count("node ") == 6 and summary.endswith("and 5 more")


def test_invalid_json_is_transient_and_wrong_shape_is_permanent() -> None:
    for body in (b"<html>proxy</html>", b"\x80\x81 not utf-8", b""):
        with pytest.raises(ComfyTransientError, match="not JSON"), mapped("gpu1"):
            httpx.Response(200, content=body).json()
    with pytest.raises(ComfyPermanentError, match="unexpected answer: no queue"), mapped("gpu1"):
        raise ProtocolMismatch("no queue")


def test_our_errors_and_others_pass_through_unchanged() -> None:
    original = ComfyExecutionError("failed", node_id="4", node_type="VAELoader")
    with pytest.raises(ComfyExecutionError) as info, mapped("gpu1"):
        raise original
    assert info.value is original
    with pytest.raises(KeyError), mapped("gpu1"):
        raise KeyError("not ours to map")
