"""The ComfyUI client and run_job: MockTransport for exact exchanges, the fake server for faults."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from structlog.testing import capture_logs

from keyframed.backends.comfy import (
    ComfyClient,
    Done,
    Failed,
    Lost,
    Queued,
    RetryPolicy,
    Running,
    prompt_id_for,
    run_job,
    upload_name,
)
from keyframed.errors import (
    ComfyExecutionError,
    ComfyLostError,
    ComfyPermanentError,
    ComfyTransientError,
    OutputError,
)
from tests.fakecomfy.server import FakeComfy
from tests.fakecomfy.testkit import image_graph, png, qwen_edit_graph, video_graph

TOKEN = "tok-" + "s3cr3t" * 4
PID = "fd664afb-14dd-4bc6-810f-fb950993424f"
Handler = Callable[[httpx.Request], httpx.Response]


def png_bytes(size: tuple[int, int] = (64, 48), colour: str = "red") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def history_entry(prompt_id: str, outputs: dict[str, Any], *, status: str = "success") -> Any:
    messages: list[Any] = [["execution_start", {"prompt_id": prompt_id, "timestamp": 1}]]
    if status == "success":
        messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": 2}])
    return {
        prompt_id: {
            "prompt": [0, prompt_id, {}, {"client_id": "c"}, list(outputs)],
            "outputs": outputs,
            "status": {
                "status_str": status,
                "completed": status == "success",
                "messages": messages,
            },
            "meta": {},
        }
    }


IMAGE_OUT = {
    "filename": "keyframe-start_00001_.png",
    "subfolder": "keyframed/scene-01",
    "type": "output",
}


class Recorder:
    """A MockTransport handler that records each request and answers through ``route``."""

    def __init__(self, route: Handler) -> None:
        self.route = route
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.route(request)

    def paths(self, method: str | None = None) -> list[str]:
        return [r.url.path for r in self.requests if method in (None, r.method)]


def make_client(route: Handler, **kwargs: Any) -> tuple[ComfyClient, Recorder]:
    recorder = Recorder(route)
    kwargs.setdefault("retry", RetryPolicy.immediate(3))
    kwargs.setdefault("websocket", False)
    client = ComfyClient(
        "http://comfy.test:8188", name="gpu1", transport=httpx.MockTransport(recorder), **kwargs
    )
    return client, recorder


@pytest.fixture
def transcripts(shared_dir: Path) -> Callable[[str], Any]:
    def load(name: str) -> Any:
        path = shared_dir / "comfyui" / "transcripts" / f"{name}.json"
        return json.loads(path.read_text(encoding="utf-8"))

    return load


# -- preflight ---------------------------------------------------------------------------


def test_preflight_reads_nodes_models_version_and_devices(
    shared_dir: Path, transcripts: Callable[[str], Any]
) -> None:
    object_info = json.loads((shared_dir / "comfyui" / "object_info.json").read_text("utf-8"))
    loras = ["InStyle-0.5.safetensors", "sub/AnyPose.safetensors"]

    def route(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/object_info":
            return httpx.Response(200, json=object_info)
        if path == "/system_stats":
            return httpx.Response(200, json=transcripts("get_system_stats")["body"])
        if path == "/models":
            return httpx.Response(200, json=transcripts("get_models")["body"])
        if path == "/models/loras":
            return httpx.Response(200, json=loras)
        if path.startswith("/models/"):
            return httpx.Response(200, json=[])
        return httpx.Response(404)

    client, recorder = make_client(route)
    with client:
        info = client.preflight()
    assert info.version == "0.8.0"
    assert info.devices[0].type == "cpu" and info.vram_free == 24151298048
    assert {"LoraLoaderModelOnly", "SaveImage", "TextEncodeQwenImageEditPlus"} <= info.node_classes
    assert info.models["loras"] == frozenset(loras)
    assert info.has_model("loras", "sub/AnyPose.safetensors")
    assert info.missing(
        nodes=["SaveImage", "NoSuchNode"],
        models=[("loras", "InStyle-0.5.safetensors"), ("vae", "qwen_image_vae.safetensors")],
    ) == ["node NoSuchNode", "vae/qwen_image_vae.safetensors"]
    assert "/models/unet" not in recorder.paths()  # not a folder ComfyUI serves


def test_preflight_of_something_that_is_not_comfyui_is_permanent() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json=["not", "an", "object"]))
    with client, pytest.raises(ComfyPermanentError, match="object_info"):
        client.preflight()


# -- uploads -----------------------------------------------------------------------------


def _upload_route(answers: list[dict[str, Any]]) -> Handler:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/upload/image":
            return httpx.Response(200, json=answers.pop(0))
        return httpx.Response(404)

    return route


def test_upload_sends_a_content_hash_name_once(tmp_path: Path) -> None:
    data = png_bytes()
    local = tmp_path / "Samurai.PNG"
    local.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    name = f"kf-{digest[:20]}.png"
    recorded: list[tuple[str, str]] = []
    client, recorder = make_client(
        _upload_route([{"name": name, "subfolder": "keyframed", "type": "input"}]),
        on_upload=lambda sha, n: recorded.append((sha, n)),
    )
    with client:
        assert client.upload(local, digest) == f"keyframed/{name}"
        assert client.upload(local, digest) == f"keyframed/{name}"
    assert recorder.paths() == ["/upload/image"]
    body = recorder.requests[0].content
    assert f'filename="{name}"'.encode() in body and data in body
    for field, value in (("subfolder", "keyframed"), ("type", "input"), ("overwrite", "false")):
        assert f'name="{field}"\r\n\r\n{value}\r\n'.encode() in body
    assert recorded == [(digest, f"keyframed/{name}")]
    assert upload_name(local, digest) == name


def test_upload_uses_the_name_the_server_chose(tmp_path: Path) -> None:
    local = tmp_path / "a.png"
    local.write_bytes(png_bytes())
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    renamed = f"kf-{digest[:20]} (1).png"
    client, _ = make_client(_upload_route([{"name": renamed, "subfolder": "keyframed"}]))
    with client:
        assert client.upload(local, digest) == f"keyframed/{renamed}"


def test_known_uploads_are_checked_once_and_not_sent_again(tmp_path: Path) -> None:
    local = tmp_path / "a.png"
    local.write_bytes(png_bytes())
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    known = f"keyframed/kf-{digest[:20]}.png"

    def route(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/view"
        assert dict(request.url.params) == {
            "filename": f"kf-{digest[:20]}.png",
            "subfolder": "keyframed",
            "type": "input",
        }
        return httpx.Response(200, content=local.read_bytes())

    client, recorder = make_client(route, known_uploads={digest: known})
    with client:
        assert client.upload(local, digest) == known
        assert client.upload(local, digest) == known
    assert recorder.paths() == ["/view"]


def test_a_known_upload_the_server_lost_is_sent_again(tmp_path: Path) -> None:
    local = tmp_path / "a.png"
    local.write_bytes(png_bytes())
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    name = f"kf-{digest[:20]}.png"

    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/view":
            return httpx.Response(404)
        return httpx.Response(200, json={"name": name, "subfolder": "keyframed", "type": "input"})

    client, recorder = make_client(route, known_uploads={digest: f"keyframed/{name}"})
    with client:
        assert client.upload(local, digest) == f"keyframed/{name}"
    assert recorder.paths() == ["/view", "/upload/image"]


def test_upload_rejects_a_bad_hash(tmp_path: Path) -> None:
    client, recorder = make_client(lambda r: httpx.Response(500))
    with client, pytest.raises(ValueError, match="sha256"):
        client.upload(tmp_path / "a.png", "../../etc")
    assert recorder.requests == []


# -- submit ------------------------------------------------------------------------------


class MiniComfy:
    """Just enough of ComfyUI's queue and history for MockTransport tests."""

    def __init__(self) -> None:
        self.queue: dict[str, Any] = {}
        self.running: dict[str, Any] = {}
        self.history: dict[str, Any] = {}
        self.posts: list[dict[str, Any]] = []
        self.faults: dict[str, list[Callable[[httpx.Request], httpx.Response]]] = {}
        self.view_body = png_bytes()

    def fault(self, path: str, *answers: Callable[[httpx.Request], httpx.Response]) -> None:
        self.faults.setdefault(path, []).extend(answers)

    def finish(self, prompt_id: str, outputs: dict[str, Any] | None = None) -> None:
        self.queue.pop(prompt_id, None)
        self.running.pop(prompt_id, None)
        self.history.update(
            history_entry(prompt_id, {"9": {"images": [IMAGE_OUT]}} if outputs is None else outputs)
        )

    def __call__(self, request: httpx.Request) -> httpx.Response:
        pending = self.faults.get(request.url.path)
        if pending:
            return pending.pop(0)(request)
        path = request.url.path
        if path == "/prompt":
            body = json.loads(request.content)
            self.posts.append(body)
            self.queue[body["prompt_id"]] = body
            return httpx.Response(
                200, json={"prompt_id": body["prompt_id"], "number": 0, "node_errors": {}}
            )
        if path.startswith("/history/"):
            pid = path.removeprefix("/history/")
            return httpx.Response(200, json={pid: self.history[pid]} if pid in self.history else {})
        if path == "/queue" and request.method == "GET":
            return httpx.Response(
                200,
                json={
                    "queue_running": [[0, p, {}, {}, ["9"]] for p in self.running],
                    "queue_pending": [[1, p, {}, {}, ["9"]] for p in self.queue],
                },
            )
        if path in ("/queue", "/interrupt"):
            return httpx.Response(200)
        if path == "/view":
            return httpx.Response(
                200, content=self.view_body, headers={"content-type": "image/png"}
            )
        return httpx.Response(404)


def reset_after_accepting(server: MiniComfy) -> Callable[[httpx.Request], httpx.Response]:
    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        server.queue[body["prompt_id"]] = body  # the server took it; the answer is lost
        raise httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )

    return answer


def test_submit_sends_prompt_id_and_client_id() -> None:
    server = MiniComfy()
    client, _ = make_client(server, client_id="cid-1")
    with client:
        client.submit({"1": {"class_type": "SaveImage", "inputs": {}}}, PID, job="j")
    assert server.posts == [
        {
            "prompt": {"1": {"class_type": "SaveImage", "inputs": {}}},
            "prompt_id": PID,
            "client_id": "cid-1",
        }
    ]


def test_a_reset_after_the_server_took_the_prompt_does_not_post_it_again() -> None:
    server = MiniComfy()
    server.fault("/prompt", reset_after_accepting(server))
    client, recorder = make_client(server)
    with client:
        client.submit({}, PID)
    assert recorder.paths("POST") == ["/prompt"]
    assert list(server.queue) == [PID]


def test_a_5xx_before_the_server_took_the_prompt_posts_it_again() -> None:
    server = MiniComfy()
    server.fault("/prompt", lambda r: httpx.Response(503), lambda r: httpx.Response(500))
    client, recorder = make_client(server)
    with client:
        client.submit({}, PID)
    assert recorder.paths("POST") == ["/prompt"] * 3
    assert len(server.posts) == 1


def test_submit_gives_up_after_the_policy_attempts() -> None:
    server = MiniComfy()
    server.fault("/prompt", *[lambda r: httpx.Response(502)] * 5)
    client, recorder = make_client(server, retry=RetryPolicy.immediate(2))
    with client, pytest.raises(ComfyTransientError, match="HTTP 502"):
        client.submit({}, PID)
    assert recorder.paths("POST") == ["/prompt"] * 2


def test_node_errors_in_a_200_are_logged(transcripts: Callable[[str], Any]) -> None:
    nodes = transcripts("prompt_invalid_lora_not_in_list")["response"]["body"]["node_errors"]
    client, _ = make_client(
        lambda r: httpx.Response(200, json={"prompt_id": PID, "number": 1, "node_errors": nodes})
    )
    with client, capture_logs() as logs:
        client.submit({}, PID, job="scene-01/keyframe-start")
    warning = next(e for e in logs if e["event"] == "comfy_prompt_node_errors")
    assert "node 2 (LoraLoaderModelOnly)" in warning["errors"]
    assert warning["job"] == "scene-01/keyframe-start" and warning["server"] == "gpu1"


def test_a_server_that_ignores_our_prompt_id_is_refused() -> None:
    client, _ = make_client(lambda r: httpx.Response(200, json={"prompt_id": "other", "number": 1}))
    with client, pytest.raises(ComfyPermanentError, match="not under the id"):
        client.submit({}, PID)


# -- lookup and wait ---------------------------------------------------------------------


def test_lookup_reads_each_state(transcripts: Callable[[str], Any]) -> None:
    server = MiniComfy()
    client, _ = make_client(server)
    with client:
        assert isinstance(client.lookup(PID), Lost)
        server.queue[PID] = {}
        assert isinstance(client.lookup(PID), Queued)
        server.running[PID] = server.queue.pop(PID)
        assert isinstance(client.lookup(PID), Running)
        server.finish(PID)
        state = client.lookup(PID)
        assert isinstance(state, Done) and state.outputs["9"]["images"][0] == IMAGE_OUT
        failed = transcripts("prompt_qwen_models_empty_execution_error")["history"]["body"]
        server.history = failed
        state = client.lookup(next(iter(failed)))
        assert state == Failed(
            message="Error while deserializing header: header too small",
            node_id="4",
            node_type="VAELoader",
            exception_type="safetensors._safetensors_rust.SafetensorError",
        )


def test_lookup_reads_an_interrupted_prompt(transcripts: Callable[[str], Any]) -> None:
    recorded = transcripts("queue_delete_and_interrupt")["history_interrupted"]
    client, _ = make_client(lambda r: httpx.Response(200, json=recorded))
    with client:
        state = client.lookup(next(iter(recorded)))
    assert isinstance(state, Failed) and state.interrupted
    assert (state.node_id, state.node_type) == ("3", "ImageScale")


def test_a_prompt_finishing_between_the_two_reads_is_not_lost() -> None:
    server = MiniComfy()

    def finishes_now(request: httpx.Request) -> httpx.Response:
        server.finish(PID)
        return server(request)

    server.fault("/queue", finishes_now)
    client, _ = make_client(server)
    with client:
        assert isinstance(client.lookup(PID), Done)


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_polls_history_until_done() -> None:
    server = MiniComfy()
    server.running[PID] = {}
    time = FakeTime()
    polls = iter(range(100))

    def progress(request: httpx.Request) -> httpx.Response:
        if next(polls) == 3:
            server.finish(PID)
        return MiniComfy.__call__(server, request)

    client, _ = make_client(
        lambda r: progress(r) if r.url.path.startswith("/history") else server(r)
    )
    with client:
        state = client.wait(PID, timeout=60, poll=2, clock=time.clock, sleep=time.sleep)
    assert isinstance(state, Done)
    assert time.sleeps == [2, 2, 2]  # finished at the fourth look


def test_wait_times_out_as_a_transient_error() -> None:
    server = MiniComfy()
    server.queue[PID] = {}
    time = FakeTime()
    client, _ = make_client(server)
    with client, pytest.raises(ComfyTransientError, match="still queued after 5 s"):
        client.wait(PID, timeout=5, poll=2, clock=time.clock, sleep=time.sleep)
    assert time.sleeps == [2, 2, 1]


# -- download ----------------------------------------------------------------------------


def test_download_writes_a_verified_png(tmp_path: Path) -> None:
    server = MiniComfy()
    client, recorder = make_client(server)
    dest = tmp_path / "scene-01" / "keyframe-start.png"
    with client:
        digest = client.download(IMAGE_OUT, dest, expect="image", size=(64, 48), max_bytes=1 << 20)
    assert dest.read_bytes() == server.view_body
    assert digest == hashlib.sha256(server.view_body).hexdigest()
    assert dict(recorder.requests[0].url.params) == IMAGE_OUT
    assert sorted(p.name for p in dest.parent.iterdir()) == ["keyframe-start.png"]


@pytest.mark.parametrize(
    ("body", "size", "max_bytes", "error"),
    [
        (b"<html>not an image</html>", None, 1 << 20, "not a valid image"),
        (png_bytes()[:-20], None, 1 << 20, "not a valid image"),
        (png_bytes((32, 32)), (64, 48), 1 << 20, "is 32x32, expected 64x48"),
        (png_bytes(), None, 100, "over 100"),
    ],
    ids=["html", "truncated", "wrong-size", "too-big"],
)
def test_a_bad_download_leaves_nothing_behind(
    tmp_path: Path, body: bytes, size: tuple[int, int] | None, max_bytes: int, error: str
) -> None:
    server = MiniComfy()
    server.view_body = body
    client, _ = make_client(server)
    dest = tmp_path / "keyframe-start.png"
    with client, pytest.raises(OutputError, match=error):
        client.download(IMAGE_OUT, dest, expect="image", size=size, max_bytes=max_bytes)
    assert list(tmp_path.iterdir()) == []


def test_a_download_never_replaces_a_good_file_with_a_bad_one(tmp_path: Path) -> None:
    dest = tmp_path / "keyframe-start.png"
    dest.write_bytes(b"previous take")
    server = MiniComfy()
    server.fault("/view", *[lambda r: httpx.Response(500)] * 3)
    client, _ = make_client(server)
    with client, pytest.raises(ComfyTransientError, match="HTTP 500"):
        client.download(IMAGE_OUT, dest, expect="image", max_bytes=1 << 20)
    assert dest.read_bytes() == b"previous take"
    assert [p.name for p in tmp_path.iterdir()] == ["keyframe-start.png"]


def test_a_cut_download_is_retried(tmp_path: Path) -> None:
    server = MiniComfy()

    def cut(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset by peer", request=request)

    server.fault("/view", cut, lambda r: httpx.Response(503))
    client, recorder = make_client(server)
    with client:
        client.download(IMAGE_OUT, tmp_path / "k.png", expect="image", max_bytes=1 << 20)
    assert recorder.paths() == ["/view"] * 3
    assert (tmp_path / "k.png").read_bytes() == server.view_body


def test_a_missing_output_is_permanent(tmp_path: Path) -> None:
    client, _ = make_client(lambda r: httpx.Response(404))
    with client, pytest.raises(ComfyPermanentError, match="HTTP 404"):
        client.download(IMAGE_OUT, tmp_path / "k.png", expect="image", max_bytes=1 << 20)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", True),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01", True),
        (b"RIFF\x10\x00\x00\x00WEBPVP8X", True),
        (png_bytes(), False),
    ],
    ids=["mp4", "webm", "webp", "png"],
)
def test_video_downloads_check_the_container(tmp_path: Path, head: bytes, ok: bool) -> None:
    server = MiniComfy()
    server.view_body = head + b"\x00" * 64
    client, _ = make_client(server)
    video = {"filename": "video_00001_.mp4", "subfolder": "video", "type": "output"}
    with client:
        if ok:
            client.download(video, tmp_path / "video.mp4", expect="video", max_bytes=1 << 20)
            assert (tmp_path / "video.mp4").read_bytes() == server.view_body
        else:
            with pytest.raises(OutputError, match="not an MP4"):
                client.download(video, tmp_path / "video.mp4", expect="video", max_bytes=1 << 20)
            assert list(tmp_path.iterdir()) == []


def test_server_file_names_never_become_paths(tmp_path: Path) -> None:
    server = MiniComfy()
    client, recorder = make_client(server)
    odd = {"filename": "..%2F..%2Fescape.png", "subfolder": "", "type": "output"}
    with client:
        client.download(odd, tmp_path / "out.png", expect="image", max_bytes=1 << 20)
        with pytest.raises(ComfyPermanentError, match="type"):
            client.download(
                {**odd, "type": "../x"}, tmp_path / "b.png", expect="image", max_bytes=1 << 20
            )
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]
    assert recorder.requests[0].url.params["filename"] == "..%2F..%2Fescape.png"


# -- cancel ------------------------------------------------------------------------------


def test_cancel_deletes_from_the_queue_and_interrupts_only_a_running_prompt() -> None:
    server = MiniComfy()
    client, recorder = make_client(server)
    with client:
        server.queue[PID] = {}
        client.cancel(PID)
        assert recorder.paths("POST") == ["/queue"]
        assert recorder.paths("GET")[0] == "/api/jobs"  # asked once: an older server (404)
        posts = [r for r in recorder.requests if r.method == "POST"]
        assert json.loads(posts[0].content) == {"delete": [PID]}
        server.running[PID] = {}
        client.cancel(PID)
    assert recorder.paths("POST") == ["/queue", "/queue", "/interrupt"]
    assert json.loads(recorder.requests[-1].content) == {"prompt_id": PID}
    assert recorder.paths("GET").count("/api/jobs") == 1


# -- the token ---------------------------------------------------------------------------


def test_the_token_is_sent_but_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = MiniComfy()
    server.fault(
        "/prompt", *[lambda r: httpx.Response(500, text="Server got itself in trouble")] * 9
    )
    client, recorder = make_client(server, token=TOKEN)
    errors: list[str] = []
    with client, capture_logs() as logs:
        client.lookup(PID)
        try:
            client.submit({}, PID, job="j")
        except ComfyTransientError as exc:
            errors += [str(exc), repr(exc), str(exc.__cause__)]
        try:
            client.download(IMAGE_OUT, tmp_path / "x.webm", expect="video", max_bytes=1 << 20)
        except OutputError as exc:
            errors += [str(exc), repr(exc)]
        errors.append(repr(client))
    assert recorder.requests[0].headers["authorization"] == f"Bearer {TOKEN}"
    shown = "\n".join([*errors, caplog.text, *(json.dumps(e, default=str) for e in logs)])
    assert len(errors) == 6 and any(e["event"] == "comfy_retry" for e in logs)
    assert "s3cr3t" not in shown


# -- prompt ids --------------------------------------------------------------------------


def test_prompt_ids_are_stable_uuids_per_take_and_attempt() -> None:
    fingerprint = hashlib.sha256(b"recipe").hexdigest()
    first = prompt_id_for(fingerprint, 0)
    assert first == prompt_id_for(fingerprint, 0, 0)
    assert str(uuid.UUID(first)) == first
    others = {
        prompt_id_for(fingerprint, 1),
        prompt_id_for(fingerprint, 0, 1),
        prompt_id_for("f" * 64, 0),
    }
    assert first not in others and len(others) == 3
    with pytest.raises(ValueError):
        prompt_id_for(fingerprint, -1)


# -- run_job -----------------------------------------------------------------------------


def _run(client: ComfyClient, dest: Path, time: FakeTime | None = None, **kwargs: Any) -> Any:
    time = time or FakeTime()
    kwargs.setdefault("max_lost_resubmits", 1)
    kwargs.setdefault("prompt_id", PID)
    return run_job(
        client,
        prompt={"9": {"class_type": "SaveImage", "inputs": {}}},
        dest=dest,
        expect="image",
        size=(64, 48),
        timeout=60,
        on_progress=None,
        clock=time.clock,
        sleep=time.sleep,
        **kwargs,
    )


def auto_finishing(server: MiniComfy, after: int = 1) -> Handler:
    """Finish each queued prompt after ``after`` history polls."""
    seen: dict[str, int] = {}

    def route(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith("/history/"):
            pid = path.removeprefix("/history/")
            if pid in server.queue or pid in server.running:
                seen[pid] = seen.get(pid, 0) + 1
                if seen[pid] > after:
                    server.finish(pid)
        return server(request)

    return route


def test_run_job_submits_waits_and_downloads(tmp_path: Path) -> None:
    server = MiniComfy()
    client, recorder = make_client(auto_finishing(server))
    with client:
        outcome = _run(client, tmp_path / "k.png")
    assert len(server.posts) == 1
    assert outcome.prompt_id == PID and outcome.output == IMAGE_OUT
    assert outcome.sha256 == hashlib.sha256((tmp_path / "k.png").read_bytes()).hexdigest()
    # Asked before submitting (after asking once whether the server has the jobs API).
    assert recorder.paths()[:2] == ["/api/jobs", f"/history/{PID}"]


def test_run_job_of_a_finished_prompt_only_downloads(tmp_path: Path) -> None:
    server = MiniComfy()
    server.finish(PID)
    client, recorder = make_client(server)
    with client:
        _run(client, tmp_path / "k.png")
    assert server.posts == [] and recorder.paths("POST") == []


def test_run_job_of_a_queued_prompt_waits_without_submitting(tmp_path: Path) -> None:
    server = MiniComfy()
    server.queue[PID] = {}
    client, _ = make_client(auto_finishing(server, after=3))
    with client:
        _run(client, tmp_path / "k.png")
    assert server.posts == []


def test_run_job_resubmits_a_lost_prompt_within_bounds(tmp_path: Path) -> None:
    server = MiniComfy()
    restarts = [True]
    finishing = auto_finishing(server, after=2)

    def forgetting(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/queue" and server.queue and restarts:
            restarts.pop()
            server.queue.clear()  # the server restarted and forgot its queue
        return finishing(request)

    client, _ = make_client(forgetting)
    with client:
        _run(client, tmp_path / "k.png", max_lost_resubmits=1)
    assert [p["prompt_id"] for p in server.posts] == [PID, PID]


def test_run_job_stops_after_too_many_losses(tmp_path: Path) -> None:
    server = MiniComfy()

    def amnesiac(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/queue":
            server.queue.clear()
        return server(request)

    client, _ = make_client(amnesiac)
    with client, pytest.raises(ComfyLostError, match="vanished"):
        _run(client, tmp_path / "k.png", max_lost_resubmits=2)
    assert len(server.posts) == 3
    assert not (tmp_path / "k.png").exists()


def test_run_job_reports_the_execution_error(
    tmp_path: Path, transcripts: Callable[[str], Any]
) -> None:
    recorded = transcripts("prompt_qwen_models_empty_execution_error")["history"]["body"]
    server = MiniComfy()
    server.history = recorded
    client, _ = make_client(server)
    with client, pytest.raises(ComfyExecutionError) as info:
        _run(client, tmp_path / "k.png", prompt_id=next(iter(recorded)))
    assert (info.value.node_id, info.value.node_type) == ("4", "VAELoader")
    assert "header too small" in str(info.value) and "node 4 (VAELoader)" in str(info.value)
    assert server.posts == []


def test_run_job_without_an_image_output_is_permanent(tmp_path: Path) -> None:
    server = MiniComfy()
    server.finish(
        PID, {"7": {"text": ["hello"]}, "8": {"images": [{**IMAGE_OUT, "filename": "a.mp4"}]}}
    )
    client, _ = make_client(server)
    with client, pytest.raises(ComfyPermanentError, match="without an image output"):
        _run(client, tmp_path / "k.png")


def test_run_job_prefers_saved_files_of_output_nodes(tmp_path: Path) -> None:
    preview = {"filename": "ComfyUI_temp_00001_.png", "subfolder": "", "type": "temp"}
    server = MiniComfy()
    server.finish(PID, {"3": {"images": [preview]}, "9": {"images": [IMAGE_OUT]}})
    client, _ = make_client(server)
    with client:
        assert _run(client, tmp_path / "k.png").output == IMAGE_OUT


def test_run_job_times_out_within_its_bound(tmp_path: Path) -> None:
    server = MiniComfy()
    time = FakeTime()
    client, _ = make_client(server)
    with client, pytest.raises(ComfyTransientError, match="still queued"):
        _run(client, tmp_path / "k.png", time=time)
    assert sum(time.sleeps) == pytest.approx(60)
    assert len(server.posts) == 1


# == against the fake ComfyUI (tests/fakecomfy) ==========================================
# Real HTTP and WebSocket on 127.0.0.1; what the server received is in ``fake.records``.
# Every test runs twice: against the recorded ComfyUI 0.8.0 (prompts read through /history
# and /queue) and against a newer ComfyUI with the core jobs API (read through /api/jobs).

FAST = httpx.Timeout(2.0, connect=1.0)


@pytest.fixture(params=[False, True], ids=["comfyui-0.8.0", "jobs-api"])
def jobs_api(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def fake_comfy(fake_comfy_factory: Any, jobs_api: bool) -> FakeComfy:
    server: FakeComfy = fake_comfy_factory(jobs_api=jobs_api)
    return server


def fake_client(fake: FakeComfy, **kwargs: Any) -> ComfyClient:
    kwargs.setdefault("retry", RetryPolicy.immediate(3))
    kwargs.setdefault("websocket", False)
    kwargs.setdefault("timeout", FAST)
    return ComfyClient(fake.url, name="fake", **kwargs)


def real_poll(hook: Callable[[], None] | None = None) -> Callable[[float], None]:
    """A short real pause between polls (the fake runs jobs on its own thread)."""
    calls = [0]

    def pause(seconds: float) -> None:
        calls[0] += 1
        if hook is not None and calls[0] == 1:
            hook()
        threading.Event().wait(min(seconds, 0.01))

    return pause


def run_fake(client: ComfyClient, prompt: dict[str, Any], dest: Path, **kwargs: Any) -> Any:
    kwargs.setdefault(
        "prompt_id", prompt_id_for(hashlib.sha256(json.dumps(prompt).encode()).hexdigest(), 0)
    )
    kwargs.setdefault("expect", "image")
    kwargs.setdefault("timeout", 20)
    kwargs.setdefault("poll", 0.01)
    kwargs.setdefault("max_lost_resubmits", 1)
    kwargs.setdefault("sleep", real_poll())
    return run_job(client, prompt=prompt, dest=dest, **kwargs)


def test_fake_preflight(fake_comfy: FakeComfy, jobs_api: bool) -> None:
    with fake_client(fake_comfy) as client:
        info = client.preflight()
    assert info.version == ("0.38.1" if jobs_api else "0.8.0")
    assert info.jobs_api is jobs_api
    assert info.has_model("loras", "InStyle-0.5.safetensors")
    assert info.missing(nodes=["LoraLoaderModelOnly", "KSampler"]) == []
    assert info.missing(models=[("loras", "nope.safetensors")]) == ["loras/nope.safetensors"]


def test_fake_submit_wait_download_gives_a_png(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    dest = tmp_path / "scene-01" / "keyframe-start.png"
    with fake_client(fake_comfy) as client:
        outcome = run_fake(client, image_graph(size=(64, 48)), dest, size=(64, 48))
    with Image.open(dest) as im:
        assert (im.format, im.size) == ("PNG", (64, 48))
    assert outcome.sha256 == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id]
    assert fake_comfy.records.execution_count(outcome.prompt_id) == 1


def test_fake_uploads_once_per_distinct_content(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    paths = []
    for name, colour in (
        ("a.png", (255, 0, 0)),
        ("b.png", (0, 255, 0)),
        ("a-copy.png", (255, 0, 0)),
    ):
        paths.append(tmp_path / name)
        paths[-1].write_bytes(png(colour, (96, 64)))
    with fake_client(fake_comfy) as client:
        names = [client.upload(p, hashlib.sha256(p.read_bytes()).hexdigest()) for p in paths * 2]
        outcome = run_fake(
            client, qwen_edit_graph(names[0], size=(96, 64)), tmp_path / "k.png", size=(96, 64)
        )
    assert names[0] == names[2] and names[0] != names[1] and names[3:] == names[:3]
    assert all(n.startswith("keyframed/kf-") and n.endswith(".png") for n in names)
    assert len(fake_comfy.records.uploads) == 2
    assert fake_comfy.records.requests.count(("POST", "/upload/image")) == 2
    assert (fake_comfy.dirs.input / names[0]).read_bytes() == paths[0].read_bytes()
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id]


def test_fake_upload_follows_a_rename(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    local = tmp_path / "a.png"
    local.write_bytes(png((1, 2, 3)))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    squatter = fake_comfy.dirs.input / "keyframed" / upload_name(local, digest)
    squatter.parent.mkdir(parents=True, exist_ok=True)
    squatter.write_bytes(png((9, 9, 9)))  # another file already has the name
    with fake_client(fake_comfy) as client:
        name = client.upload(local, digest)
    assert name == f"keyframed/kf-{digest[:20]} (1).png"
    assert (fake_comfy.dirs.input / name).read_bytes() == local.read_bytes()


def test_fake_recorded_uploads_survive_until_the_server_loses_them(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    local = tmp_path / "a.png"
    local.write_bytes(png((1, 2, 3)))
    digest = hashlib.sha256(local.read_bytes()).hexdigest()
    store: dict[str, str] = {}
    with fake_client(fake_comfy, on_upload=store.__setitem__) as client:
        name = client.upload(local, digest)
    with fake_client(fake_comfy, known_uploads=store) as client:
        assert client.upload(local, digest) == name
    assert len(fake_comfy.records.uploads) == 1
    fake_comfy.restart(clear_uploads=True)
    with fake_client(fake_comfy, known_uploads=store) as client:
        assert client.upload(local, digest) == name
        assert len(fake_comfy.records.uploads) == 2
        fake_comfy.restart(clear_uploads=True)
        assert client.upload(local, digest) == name  # remembered: nothing is sent
        client.forget_uploads()
        assert client.upload(local, digest) == name
    assert len(fake_comfy.records.uploads) == 3
    assert (fake_comfy.dirs.input / name).is_file()


def test_fake_node_errors_are_permanent_and_name_the_node(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    graph = qwen_edit_graph("missing.png")
    graph["2"]["inputs"]["lora_name"] = "AnyPose-not-installed.safetensors"
    with fake_client(fake_comfy) as client, pytest.raises(ComfyPermanentError) as info:
        run_fake(client, graph, tmp_path / "k.png")
    text = str(info.value)
    assert (
        "node 2 (LoraLoaderModelOnly): lora_name: 'AnyPose-not-installed.safetensors' not in list"
        in text
    )
    assert "node 5 (LoadImage)" in text and "HTTP 400" in text
    assert not isinstance(info.value, ComfyTransientError)
    assert fake_comfy.records.prompt_ids == []


def test_fake_5xx_twice_then_ok_is_one_submission(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    fake_comfy.faults.fail_next("POST /prompt", n=2, status=500)
    fake_comfy.faults.fail_next("/history/*", n=2, status=503)
    fake_comfy.faults.fail_next("/api/jobs/*", n=2, status=503)
    with fake_client(fake_comfy) as client:
        outcome = run_fake(client, image_graph(), tmp_path / "k.png")
    assert fake_comfy.records.requests.count(("POST", "/prompt")) == 3
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id]
    assert (tmp_path / "k.png").is_file()


def test_fake_reset_after_queueing_is_not_submitted_twice(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    fake_comfy.faults.drop_next("POST /prompt", after_handling=True)
    fake_comfy.faults.drop_next("GET /queue")
    fake_comfy.faults.drop_next("GET /view")
    with fake_client(fake_comfy) as client:
        outcome = run_fake(client, image_graph(), tmp_path / "k.png")
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id]
    assert fake_comfy.records.execution_count(outcome.prompt_id) == 1
    assert fake_comfy.records.requests.count(("GET", "/view")) == 2


def test_fake_garbled_json_is_retried_and_wrong_shape_is_not(
    fake_comfy: FakeComfy, jobs_api: bool
) -> None:
    pid = str(uuid.uuid4())
    garbled, shaped = ("/api/jobs/*", "/api/jobs/*") if jobs_api else ("/queue", "/history/*")
    fake_comfy.faults.fail_next(f"GET {garbled}", n=2, status=200, body=b"<html>proxy</html>")
    with fake_client(fake_comfy) as client:
        assert isinstance(client.lookup(pid), Lost)
        fake_comfy.faults.wrong_shape_next(f"GET {shaped}")
        with pytest.raises(ComfyPermanentError, match="unexpected answer"):
            client.lookup(pid)
    # Two garbled answers and the good one, then (jobs API) the wrongly shaped one.
    asked, times = (f"/api/jobs/{pid}", 4) if jobs_api else ("/queue", 3)
    assert fake_comfy.records.requests.count(("GET", asked)) == times


def test_fake_hung_server_times_out_within_the_bound(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    fake_comfy.faults.hang("*")
    timeout = httpx.Timeout(0.2, connect=0.2)
    try:
        with (
            fake_client(fake_comfy, timeout=timeout, retry=RetryPolicy.immediate(2)) as client,
            pytest.raises(ComfyTransientError, match="ReadTimeout"),
        ):
            run_fake(client, image_graph(), tmp_path / "k.png")
    finally:
        fake_comfy.faults.release()
    # The first request (does the server have the jobs API?) is the one that hangs.
    assert fake_comfy.records.requests == [("GET", "/api/jobs")] * 2
    assert list(tmp_path.iterdir()) == []


def _pid(prompt: dict[str, Any]) -> str:
    return prompt_id_for(hashlib.sha256(json.dumps(prompt).encode()).hexdigest(), 0)


def test_fake_restart_forgetting_the_queue_resubmits_exactly_once(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    fake_comfy.faults.hold_jobs()

    def restart() -> None:
        fake_comfy.faults.wait_held()
        fake_comfy.restart()  # the held job, its queue and history are gone
        fake_comfy.faults.release_jobs()

    with fake_client(fake_comfy) as client, capture_logs() as logs:
        outcome = run_fake(client, image_graph(), tmp_path / "k.png", sleep=real_poll(restart))
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id] * 2
    assert [e["resubmit"] for e in logs if e["event"] == "comfy_prompt_lost"] == [1]
    assert (tmp_path / "k.png").is_file()


def test_fake_server_down_then_back_resumes_without_duplicates(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    graph = image_graph()
    fake_comfy.faults.hold_jobs()
    with fake_client(fake_comfy) as client:
        with pytest.raises(ComfyTransientError, match="ConnectError"):
            run_fake(client, graph, tmp_path / "k.png", sleep=real_poll(fake_comfy.go_down))
        fake_comfy.faults.release_jobs()
        fake_comfy.come_up()
        run_fake(client, graph, tmp_path / "k.png")  # the daemon's later retry
    assert fake_comfy.records.prompt_ids == [_pid(graph)] * 2  # one per server lifetime


def test_fake_execution_error_names_message_and_node(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    fake_comfy.faults.fail_next_prompts(1, node_type="ImageInvert")
    with fake_client(fake_comfy) as client, pytest.raises(ComfyExecutionError) as info:
        run_fake(client, image_graph(), tmp_path / "k.png")
    assert (info.value.node_id, info.value.node_type) == ("2", "ImageInvert")
    assert "header too small" in str(info.value)
    assert len(fake_comfy.records.prompt_ids) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("previews", [False, True], ids=["no-previews", "latent2rgb-previews"])
def test_fake_progress_arrives_over_the_websocket(
    fake_comfy_factory: Any, tmp_path: Path, jobs_api: bool, previews: bool
) -> None:
    # With previews, a binary JPEG frame follows each step's progress, as on the GPU run.
    fake = fake_comfy_factory(job_seconds=0.1, jobs_api=jobs_api)
    fake.faults.previews = previews
    seen: list[float] = []
    inputs = tmp_path / "in.png"
    inputs.write_bytes(png((10, 20, 30), (96, 64)))
    # Hold the job after the sampler until its last step has been reported: progress that
    # arrives after completion is (rightly) of no interest to a waiter.
    fake.faults.hold_jobs(class_type="VAEDecode")

    def release_after_last_step() -> None:
        _until(lambda: 1.0 in seen, what=lambda: f"progress 1.0 in {seen}")
        fake.faults.release_jobs()

    with fake_client(fake, websocket=True) as client:
        client.start_listening()  # before submitting, or the sampler may finish unheard
        _until(lambda: client.listening)
        name = client.upload(inputs, hashlib.sha256(inputs.read_bytes()).hexdigest())
        graph = qwen_edit_graph(name, steps=4)
        run_fake(
            client,
            graph,
            tmp_path / "k.png",
            sleep=real_poll(release_after_last_step),
            on_progress=seen.append,
        )
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen) and set(seen) <= {0.25, 0.5, 0.75, 1.0}


def test_fake_silent_websocket_still_completes(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    fake_comfy.faults.ws_silent = True
    seen: list[float] = []
    with fake_client(fake_comfy, websocket=True) as client:
        client.start_listening()
        _until(lambda: client.listening)
        outcome = run_fake(client, image_graph(), tmp_path / "k.png", on_progress=seen.append)
    assert (tmp_path / "k.png").is_file() and seen == []
    assert fake_comfy.records.prompt_ids == [outcome.prompt_id]


def test_fake_no_websocket_at_all_still_completes(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    fake_comfy.faults.fail_next("GET /ws", n=1000, status=404)
    with fake_client(fake_comfy, websocket=True) as client:
        run_fake(client, image_graph(), tmp_path / "k.png", sleep=None)
        assert not client.listening
    assert (tmp_path / "k.png").is_file()


@pytest.mark.parametrize("fault", ["500", "not_png", "huge", "wrong_size"])
def test_fake_failed_download_leaves_no_file(
    fake_comfy: FakeComfy, tmp_path: Path, fault: str
) -> None:
    if fault == "500":
        fake_comfy.faults.fail_next("GET /view", n=10, status=500)
    elif fault in ("not_png", "huge"):
        fake_comfy.faults.view_mode = fault  # type: ignore[assignment]
    dest = tmp_path / "scene-01" / "keyframe-start.png"
    expected = ComfyTransientError if fault == "500" else OutputError
    with fake_client(fake_comfy) as client, pytest.raises(expected):
        run_fake(client, image_graph(size=(64, 48)), dest, size=(32, 32), max_bytes=1 << 20)
    assert not dest.exists()
    assert not dest.parent.exists() or list(dest.parent.iterdir()) == []


def test_fake_hostile_output_names_stay_on_the_server(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    fake_comfy.faults.hostile_output_name = "../../../../escape.png"
    dest = tmp_path / "out" / "k.png"
    with fake_client(fake_comfy) as client, pytest.raises(ComfyPermanentError):
        run_fake(client, image_graph(), dest)
    assert list(tmp_path.rglob("*")) == []
    assert not (fake_comfy.dirs.output.parent / "escape.png").exists()


def test_fake_video_output(fake_comfy: FakeComfy, tmp_path: Path) -> None:
    with fake_client(fake_comfy) as client:
        outcome = run_fake(client, video_graph(), tmp_path / "video.mp4", expect="video")
    assert outcome.output["filename"].endswith(".mp4")
    assert (tmp_path / "video.mp4").read_bytes()[4:8] == b"ftyp"


def test_fake_cancel_pending_and_running(fake_comfy: FakeComfy) -> None:
    fake_comfy.faults.hold_jobs()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    with fake_client(fake_comfy) as client:
        client.submit(image_graph(colour=1), first)
        client.submit(image_graph(colour=2), second)
        assert fake_comfy.faults.wait_held()[0] == first
        client.cancel(second)
        assert isinstance(client.lookup(second), Lost)
        client.cancel(first)
        state = client.wait(first, timeout=10, poll=0.01, sleep=real_poll())
    assert isinstance(state, Failed) and state.interrupted
    assert fake_comfy.records.executions == {first: 1}


def test_fake_token_never_shows(
    fake_comfy: FakeComfy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake_comfy.faults.fail_next("GET /view", n=10, status=500)
    shown: list[str] = []
    with capture_logs() as logs, fake_client(fake_comfy, token=TOKEN, websocket=True) as client:
        client.start_listening()
        _until(lambda: client.listening)
        try:
            run_fake(client, image_graph(), tmp_path / "k.png")
        except ComfyTransientError as exc:
            shown += [str(exc), repr(exc), repr(exc.__cause__)]
        shown.append(repr(client))
    shown += [caplog.text, *(json.dumps(e, default=str) for e in logs)]
    assert len(shown) >= 5 and any(e["event"] == "comfy_retry" for e in logs)
    assert "s3cr3t" not in "\n".join(shown)


def _until(
    condition: Callable[[], bool], timeout: float = 10.0, what: Callable[[], str] = str
) -> None:
    """Poll ``condition`` until true, failing the test after ``timeout`` seconds."""
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(f"condition not met in time: {what()}")


# -- the core jobs API versus /history ---------------------------------------------------


def test_fake_each_server_is_read_through_its_own_surface(
    fake_comfy: FakeComfy, jobs_api: bool, tmp_path: Path
) -> None:
    with fake_client(fake_comfy) as client:
        outcome = run_fake(client, image_graph(), tmp_path / "k.png")
    paths = [path for _, path in fake_comfy.records.requests]
    legacy = [p for p in paths if p.startswith("/history") or p == "/queue"]
    jobs = [p for p in paths if p.startswith("/api/jobs/")]
    assert paths.count("/api/jobs") == 1  # asked once, not per request
    if jobs_api:
        assert legacy == [] and f"/api/jobs/{outcome.prompt_id}" in jobs
    else:
        assert jobs == [] and f"/history/{outcome.prompt_id}" in legacy
    assert fake_comfy.records.execution_count(outcome.prompt_id) == 1


def test_fake_queued_place_and_a_second_submit_of_a_queued_prompt(
    fake_comfy: FakeComfy, jobs_api: bool
) -> None:
    fake_comfy.faults.hold_jobs()
    ids = [str(uuid.uuid4()) for _ in range(3)]
    with fake_client(fake_comfy) as client:
        for colour, pid in enumerate(ids):
            client.submit(image_graph(colour=colour), pid)
        fake_comfy.faults.wait_held()
        assert client.lookup(ids[2]) == Queued(ahead=2)
        assert isinstance(client.lookup(ids[0]), Running)
        # Newer ComfyUI answers 409 for an id it has queued: the submit got through.
        client.submit(image_graph(colour=2), ids[2])
    fake_comfy.faults.release_jobs()
    assert fake_comfy.records.prompt_ids == (ids if jobs_api else [*ids, ids[2]])


def test_fake_a_server_downgraded_behind_the_same_address_is_followed(
    fake_comfy_factory: Any, tmp_path: Path
) -> None:
    fake = fake_comfy_factory(jobs_api=True)
    with fake_client(fake) as client:
        run_fake(client, image_graph(colour=1), tmp_path / "a.png")
        assert client.uses_jobs_api()
        fake.jobs_api = False
        fake.restart()  # an older ComfyUI now answers there: /api/jobs/{id} is a bare 404
        with capture_logs() as logs:
            outcome = run_fake(client, image_graph(colour=2), tmp_path / "b.png")
        assert not client.uses_jobs_api()
    assert "comfy_jobs_api_gone" in [e["event"] for e in logs]
    assert fake.records.execution_count(outcome.prompt_id) == 1
