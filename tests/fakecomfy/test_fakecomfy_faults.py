"""Each fault mode of the fake ComfyUI, seen from a client."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.fakecomfy import FakeComfy, fixtures
from tests.fakecomfy.faults import WRONG_SHAPE_BODY, route_matches
from tests.fakecomfy.testkit import (
    image_graph,
    messages_until_done,
    png,
    receive,
    upload,
    wait_history,
)

# Until tests/conftest.py registers tests.fakecomfy.fixtures as a plugin.
fake_comfy = fixtures.fake_comfy
fake_comfy_factory = fixtures.fake_comfy_factory


@pytest.fixture
def client(fake_comfy: FakeComfy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_comfy.url, timeout=10) as http:
        yield http


def submit(client: httpx.Client, prompt: dict[str, object], **body: object) -> str:
    r = client.post("/prompt", json={"prompt": prompt, **body})
    assert r.status_code == 200, r.text
    prompt_id: str = r.json()["prompt_id"]
    return prompt_id


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.mark.parametrize(
    ("pattern", "method", "path", "matches"),
    [
        ("POST /prompt", "POST", "/api/prompt", True),
        ("POST /prompt", "GET", "/prompt", False),
        ("/history/*", "GET", "/history/abc", True),
        ("/api/history/*", "GET", "/history/abc", True),
        ("/history/*", "GET", "/history", False),
        ("*", "GET", "/view", True),
    ],
)
def test_route_patterns(pattern: str, method: str, path: str, matches: bool) -> None:
    assert route_matches(pattern, method, path) is matches


def test_fail_next_answers_5xx_n_times(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.fail_next("POST /prompt", n=2, status=503)
    statuses = [
        client.post("/prompt", json={"prompt": image_graph()}).status_code for _ in range(3)
    ]
    assert statuses == [503, 503, 200]
    assert len(fake_comfy.records.prompts) == 1
    fake_comfy.faults.fail_next("/queue", status=500, body="boom")
    r = client.get("/api/queue")
    assert (r.status_code, r.text) == (500, "boom")


def test_drop_before_handling_loses_the_request(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    fake_comfy.faults.drop_next("POST /prompt")
    with pytest.raises(httpx.TransportError):
        client.post("/prompt", json={"prompt": image_graph()})
    assert fake_comfy.records.prompts == []
    assert client.get("/queue").json() == {"queue_running": [], "queue_pending": []}


def test_drop_after_handling_hides_a_queued_prompt(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    fake_comfy.faults.drop_next("POST /prompt", after_handling=True)
    with pytest.raises(httpx.TransportError):
        client.post("/prompt", json={"prompt": image_graph(), "prompt_id": "lost-answer"})
    entry = wait_history(client, "lost-answer")
    assert entry["status"]["status_str"] == "success"
    assert fake_comfy.records.prompt_ids == ["lost-answer"]
    assert fake_comfy.records.execution_count("lost-answer") == 1


def test_hang_until_released(fake_comfy: FakeComfy) -> None:
    fake_comfy.faults.hang("GET /history/*")
    answers: list[int] = []

    def ask() -> None:
        answers.append(httpx.get(f"{fake_comfy.url}/history/x", timeout=10).status_code)

    asker = threading.Thread(target=ask)
    asker.start()
    wait_until(lambda: ("GET", "/history/x") in fake_comfy.records.requests)
    assert answers == []  # the server has the request and keeps it
    assert httpx.get(f"{fake_comfy.url}/queue").status_code == 200  # other routes still answer
    fake_comfy.faults.release("GET /history/*")
    asker.join(timeout=10)
    assert answers == [200]


def test_hung_request_is_reset_when_the_server_goes_down(fake_comfy: FakeComfy) -> None:
    fake_comfy.faults.hang("*")
    errors: list[Exception] = []

    def ask() -> None:
        try:
            httpx.get(f"{fake_comfy.url}/system_stats", timeout=10)
        except httpx.TransportError as ex:
            errors.append(ex)

    asker = threading.Thread(target=ask)
    asker.start()
    wait_until(lambda: bool(fake_comfy.records.requests))
    fake_comfy.go_down()
    asker.join(timeout=10)
    assert len(errors) == 1


def test_restart_forgets_queue_and_history_but_keeps_port_and_uploads(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    upload(client, "keep.png", png((8, 8, 8)))
    done = submit(client, image_graph())
    wait_history(client, done)
    fake_comfy.faults.hold_jobs()
    running = submit(client, image_graph(prefix="lost"))
    fake_comfy.faults.wait_held()
    port = fake_comfy.port
    fake_comfy.go_down()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake_comfy.url}/queue")
    fake_comfy.faults.release_jobs()
    fake_comfy.come_up()
    with httpx.Client(base_url=fake_comfy.url) as fresh:
        assert fake_comfy.port == port
        assert fresh.get(f"/history/{done}").json() == {}
        assert fresh.get(f"/history/{running}").json() == {}
        assert fresh.get("/queue").json() == {"queue_running": [], "queue_pending": []}
        graph = {
            "1": {"class_type": "LoadImage", "inputs": {"image": "keep.png"}},
            "2": {
                "class_type": "SaveImage",
                "inputs": {"images": ["1", 0], "filename_prefix": "k"},
            },
        }
        r = fresh.post("/prompt", json={"prompt": graph})
        assert r.json()["number"] == 0  # the counter starts again
        fake_comfy.restart(clear_uploads=True)
        refused = fresh.post("/prompt", json={"prompt": graph}).json()
        assert refused["node_errors"]["1"]["errors"][0]["type"] == "custom_validation_failed"
    assert fake_comfy.records.execution_count(running) == 1


def test_next_prompts_end_in_execution_error(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.fail_next_prompts(2, node_type="ImageInvert", exception_message="boom")
    with connect(f"{fake_comfy.ws_url}?clientId=err") as ws:
        receive(ws)
        first = submit(client, image_graph(prefix="e1"), client_id="err")
        kinds = [m["type"] for m in messages_until_done(ws, first)]
    assert kinds[-3:] == ["execution_error", "status", "executing"]
    entry = wait_history(client, first)
    event, error = entry["status"]["messages"][-1]
    assert (event, error["node_id"], error["node_type"]) == ("execution_error", "2", "ImageInvert")
    assert (error["executed"], error["exception_message"]) == (["1"], "boom")
    assert entry["status"] | {"messages": None} == {
        "status_str": "error",
        "completed": False,
        "messages": None,
    }
    assert entry["outputs"] == {}
    second = wait_history(client, submit(client, image_graph(prefix="e2")))
    third = wait_history(client, submit(client, image_graph(prefix="e3")))
    assert [second["status"]["status_str"], third["status"]["status_str"]] == ["error", "success"]


def test_silent_websocket_sends_nothing(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.ws_silent = True
    with connect(f"{fake_comfy.ws_url}?clientId=quiet") as ws:
        wait_history(client, submit(client, image_graph(), client_id="quiet"))
        fake_comfy.faults.ws_silent = False
        submit(client, image_graph(prefix="loud"), client_id="quiet")
        # Messages keep their order: had anything leaked while silent, it would come first.
        first = receive(ws)
    assert first == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}}


def test_closed_websockets_can_reconnect(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    with connect(f"{fake_comfy.ws_url}?clientId=c") as ws:
        receive(ws)
        fake_comfy.close_websockets()
        with pytest.raises(ConnectionClosed):
            receive(ws)
    with connect(f"{fake_comfy.ws_url}?clientId=c") as ws:
        assert receive(ws)["data"]["sid"] == "c"
        prompt_id = submit(client, image_graph(), client_id="c")
        assert messages_until_done(ws, prompt_id)[-1]["data"]["node"] is None


def test_slow_jobs_run_one_at_a_time(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.job_seconds = 0.05
    ids = [submit(client, image_graph(prefix=f"s{i}")) for i in range(3)]
    queue = client.get("/queue").json()
    assert len(queue["queue_running"]) + len(queue["queue_pending"]) == 3
    assert len(queue["queue_running"]) <= 1
    fake_comfy.wait_idle()
    assert list(fake_comfy.history()) == ids
    assert fake_comfy.records.executions == dict.fromkeys(ids, 1)


def test_hold_and_interrupt_a_running_job(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.hold_jobs(class_type="ImageInvert")
    prompt_id = submit(client, image_graph())
    assert fake_comfy.faults.wait_held() == (prompt_id, "2")
    assert client.get("/queue").json()["queue_running"][0][1] == prompt_id
    assert client.get(f"/history/{prompt_id}").json() == {}
    client.post("/interrupt", json={"prompt_id": prompt_id})
    entry = wait_history(client, prompt_id)
    event, data = entry["status"]["messages"][-1]
    assert (event, data["node_id"], data["executed"]) == ("execution_interrupted", "2", ["1"])


def test_hostile_output_names(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.hostile_output_name = "../../escape.png"
    entry = wait_history(client, submit(client, image_graph()))
    assert entry["outputs"]["3"]["images"][0]["filename"] == "../../escape.png"
    fake_comfy.faults.hostile_output_name = "/etc/passwd"
    fake_comfy.faults.hostile_output_subfolder = "../.."
    entry = wait_history(client, submit(client, image_graph(prefix="abs")))
    assert entry["outputs"]["3"]["images"][0] | {"type": None} == {
        "filename": "/etc/passwd",
        "subfolder": "../..",
        "type": None,
    }


def test_view_returns_hostile_bodies(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    entry = wait_history(client, submit(client, image_graph()))
    params = entry["outputs"]["3"]["images"][0]
    fake_comfy.faults.view_mode = "not_png"
    r = client.get("/view", params=params)
    assert r.status_code == 200 and not r.content.startswith(b"\x89PNG")
    fake_comfy.faults.view_mode = "huge"
    with client.stream("GET", "/view", params=params) as streamed:
        assert int(streamed.headers["content-length"]) == fake_comfy.faults.huge_view_bytes
        first = next(streamed.iter_bytes())
    assert first.startswith(b"\x89PNG")
    fake_comfy.faults.view_mode = "normal"
    assert client.get("/view", params=params).content.startswith(b"\x89PNG")


def test_wrong_shape_json(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.wrong_shape_next("GET /history/*")
    assert client.get("/history/any").json() == WRONG_SHAPE_BODY
    fake_comfy.faults.wrong_shape_next("POST /prompt", body={"prompt_id": 5})
    assert client.post("/prompt", json={"prompt": image_graph()}).json() == {"prompt_id": 5}
    assert client.get("/history/any").json() == {}


def test_reset_switches_everything_off(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    faults = fake_comfy.faults
    faults.fail_next("*", n=5)
    faults.fail_next_prompts(3)
    faults.ws_silent = True
    faults.view_mode = "huge"
    faults.reset()
    entry = wait_history(client, submit(client, image_graph()))
    assert entry["status"]["status_str"] == "success"
    assert (faults.ws_silent, faults.view_mode) == (False, "normal")


def test_bookkeeping(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    data = png((9, 8, 7))
    upload(client, "ref.png", data)
    upload(client, "ref.png", data)
    body = {"prompt": image_graph(), "client_id": "books", "extra_data": {"note": 1}}
    prompt_id = client.post("/prompt", json=body).json()["prompt_id"]
    wait_history(client, prompt_id)
    records = fake_comfy.records
    assert [(u.name, u.written) for u in records.uploads] == [("ref.png", True), ("ref.png", False)]
    assert records.uploads[0].size == len(data)
    assert records.prompts[0].body == body
    assert records.executions == {prompt_id: 1}
    assert [p.name for p in records.files_written] == ["x_00001_.png"]
    assert ("POST", "/upload/image") in records.requests
    records.clear()
    assert records.prompts == [] and records.requests == []
