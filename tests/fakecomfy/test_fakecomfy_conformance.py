"""The fake ComfyUI against every recorded exchange with a real ComfyUI 0.8.0.

One module-scoped replay runs the recordings in the order they were made (so prompt numbers,
cache hits and output counters line up), then each transcript is compared on its own: status
codes and bodies, history entries and WebSocket message sequences must be equal once prompt
ids, timestamps, tracebacks and the order of set-like lists are normalised.

The replay runs twice: against the recorded 0.8.0 look-alike and against the fake serving
newer ComfyUI's core jobs API too (``jobs_api=True``), whose legacy routes must answer
exactly as 0.8.0 did.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.fakecomfy import MODEL_INPUTS, FakeComfy
from tests.fakecomfy.fixtures import object_info_path
from tests.fakecomfy.models import NON_MODEL_EMPTY_LISTS
from tests.fakecomfy.testkit import messages_until_done, png, receive, upload, wait_history

REPLAYED = (
    "get_embeddings",
    "get_features",
    "get_models",
    "get_models_loras",
    "get_prompt",
    "get_queue",
    "get_system_stats",
    "upload_image",
    "prompt_ok",
    "view_output",
    "view_missing",
    "view_traversal",
    "prompt_ok_again_cached",
    "prompt_ok_one_input_changed",
    "prompt_with_client_prompt_id",
    "prompt_invalid_body",
    "prompt_invalid_not_json_graph",
    "prompt_invalid_unknown_class",
    "prompt_invalid_no_output_node",
    "prompt_invalid_missing_required_input",
    "prompt_invalid_image_not_uploaded",
    "prompt_invalid_float_out_of_range",
    "prompt_invalid_lora_not_in_list",
    "prompt_qwen_models_empty_execution_error",
    "queue_delete_and_interrupt",
    "get_history_max2",
)
VOLATILE = {"timestamp", "create_time"}
UNORDERED = {"executed", "current_outputs"}  # Python sets in ComfyUI: order is arbitrary


def normalise(value: Any, ids: dict[str, str]) -> Any:
    """Map prompt ids to placeholders, blank timestamps and tracebacks, sort set-like lists."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            key = ids.get(key, key) if isinstance(key, str) else key
            if key in VOLATILE:
                out[key] = "<time>"
            elif key == "traceback" and isinstance(item, list):
                out[key] = "<traceback>" if all(isinstance(x, str) for x in item) else item
            elif key in UNORDERED and isinstance(item, list):
                out[key] = sorted(normalise(x, ids) for x in item)
            else:
                out[key] = normalise(item, ids)
        return out
    if isinstance(value, list):
        return [normalise(item, ids) for item in value]
    if isinstance(value, str):
        return ids.get(value, value)
    return value


def shape(value: Any) -> Any:
    """Keys and value types only (for bodies whose values depend on the machine)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        distinct: list[Any] = []  # lists differ in length from machine to machine
        for item in map(shape, value):
            if item not in distinct:
                distinct.append(item)
        return distinct
    return type(value).__name__


def response(r: httpx.Response) -> dict[str, Any]:
    """A response the way the transcripts store it: JSON body, or the text."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return {"status": r.status_code, "body": r.json()}
    return {"status": r.status_code, "text": r.text}


def done_tail(prompt_id: str) -> list[dict[str, Any]]:
    """What ComfyUI sends after the last status message of a prompt (comfyui-api.md §6).

    The recordings stop at execution_success/_error; the worker then writes history, which
    broadcasts ``status``, and sends ``executing {node: null}``.
    """
    return [
        {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}}},
        {"type": "executing", "data": {"node": None, "prompt_id": prompt_id}},
    ]


class Replay:
    """Runs the recordings against one fake server and keeps (expected, actual) pairs."""

    def __init__(self, server: FakeComfy, client: httpx.Client, recorded: dict[str, Any]) -> None:
        self.server, self.client, self.recorded = server, client, recorded
        self.pairs: dict[str, tuple[Any, Any]] = {}

    def run(self) -> dict[str, tuple[Any, Any]]:
        self.simple_gets()
        self.uploads()
        self.prompt("prompt_ok")
        self.views()
        for name in (
            "prompt_ok_again_cached",
            "prompt_ok_one_input_changed",
            "prompt_with_client_prompt_id",
        ):
            self.prompt(name)
        self.invalid_prompts()
        self.execution_error()
        self.queue_delete_and_interrupt()
        self.history_max2()
        return self.pairs

    def pair(
        self, name: str, expected: Any, actual: Any, ids: dict[str, str] | None = None
    ) -> None:
        self.pairs[name] = (normalise(expected, ids or {}), normalise(actual, ids or {}))

    # -- plain GETs -----------------------------------------------------------------------
    def simple_gets(self) -> None:
        for name, path in (
            ("get_embeddings", "/embeddings"),
            ("get_features", "/features"),
            ("get_models", "/models"),
            ("get_models_loras", "/models/loras"),
            ("get_prompt", "/prompt"),
            ("get_queue", "/queue"),
        ):
            self.pair(name, self.recorded[name], response(self.client.get(path)))
        stats = response(self.client.get("/system_stats"))
        self.pair("get_system_stats", shape(self.recorded["get_system_stats"]), shape(stats))

    # -- uploads --------------------------------------------------------------------------
    def uploads(self) -> None:
        recorded = self.recorded["upload_image"]
        first, other = png((30, 60, 90), (80, 60)), png((200, 20, 20), (64, 48))
        steps = [
            ("first", "kf_bg.png", first, {}),
            ("same_name_same_bytes", "kf_bg.png", first, {}),
            ("same_name_other_bytes", "kf_bg.png", other, {}),
            ("overwrite_true", "kf_bg.png", other, {"overwrite": "true"}),
            ("subfolder", "kf_char.png", other, {"subfolder": "keyframed", "type": "input"}),
            # The recorder's client (aiohttp) percent-encodes "/" in the part's filename.
            ("traversal_name", "..%2Fevil2.png", first, {}),
            ("traversal_subfolder", "evil.png", first, {"subfolder": "../../tmp"}),
        ]
        actual = {}
        for case, filename, data, fields in steps:
            r = upload(self.client, filename, data, fields)
            body = r.json() if r.status_code == 200 else None
            actual[case] = {
                "body": body,
                "request": recorded[case]["request"],
                "status": r.status_code,
            }
        self.pair("upload_image", recorded, actual)

    # -- prompts that run -----------------------------------------------------------------
    def prompt(self, name: str) -> str:
        recorded = self.recorded[name]
        request = recorded["request"]
        with connect(f"{self.server.ws_url}?clientId={request['client_id']}") as ws:
            hello = receive(ws)
            r = self.client.post("/prompt", json=request)
            prompt_id: str = r.json()["prompt_id"]
            messages = [hello, *messages_until_done(ws, prompt_id)]
        history = self.client.get(f"/history/{prompt_id}")
        actual = {
            "history": {"status": history.status_code, "body": history.json()},
            "request": request,
            "response": response(r),
            "ws_messages": messages,
        }
        expected_id = recorded["response"]["body"]["prompt_id"]
        expected = {**recorded, "ws_messages": recorded["ws_messages"] + done_tail(expected_id)}
        self.pair(name, expected, actual, {expected_id: "<id>", prompt_id: "<id>"})
        return prompt_id

    def views(self) -> None:
        recorded = self.recorded["view_output"]
        r = self.client.get("/view", params=recorded["params"])
        with Image.open(io.BytesIO(r.content)) as image:
            image.verify()
        actual = {
            "bytes": recorded["bytes"],  # pixel data differs from the real node's; the rest not
            "content_type": r.headers["content-type"],
            "params": recorded["params"],
            "png_magic": r.content[:8].hex(),
            "status": r.status_code,
        }
        self.pair("view_output", recorded, actual)
        missing = self.client.get(
            "/view", params={"filename": "nothing_here.png", "type": "output"}
        )
        self.pair("view_missing", self.recorded["view_missing"], response(missing))
        traversal = self.client.get("/view", params={"filename": "../secret.png", "type": "output"})
        self.pair("view_traversal", self.recorded["view_traversal"], response(traversal))

    # -- prompts that are refused ---------------------------------------------------------
    def invalid_prompts(self) -> None:
        bad_json = self.client.post(
            "/prompt", content=b'{"prompt": ', headers={"Content-Type": "application/json"}
        )
        self.pair("prompt_invalid_body", self.recorded["prompt_invalid_body"], response(bad_json))
        for name in (
            "prompt_invalid_not_json_graph",
            "prompt_invalid_unknown_class",
            "prompt_invalid_no_output_node",
            "prompt_invalid_missing_required_input",
            "prompt_invalid_image_not_uploaded",
            "prompt_invalid_float_out_of_range",
            "prompt_invalid_lora_not_in_list",
        ):
            recorded = self.recorded[name]
            r = self.client.post("/prompt", json=recorded["request"])
            queue = self.client.get("/queue").json()
            expected = {
                "response": recorded["response"],
                "queue": {"queue_pending": [], "queue_running": []},
            }
            self.pair(name, expected, {"response": response(r), "queue": queue})

    # -- execution error ------------------------------------------------------------------
    def execution_error(self) -> None:
        # The recording had these files installed (as empty files, so loading failed).
        name = "prompt_qwen_models_empty_execution_error"
        prompt = self.recorded[name]["request"]["prompt"]
        for folder, node_id, key in (
            ("diffusion_models", "1", "unet_name"),
            ("loras", "2", "lora_name"),
            ("text_encoders", "3", "clip_name"),
            ("vae", "4", "vae_name"),
        ):
            self.server.install_model(folder, prompt[node_id]["inputs"][key])
        self.server.faults.fail_next_prompts(1, node_type="VAELoader")
        self.qwen_id = self.prompt(name)

    # -- queue, interrupt, history --------------------------------------------------------
    def queue_delete_and_interrupt(self) -> None:
        recorded = self.recorded["queue_delete_and_interrupt"]
        running = recorded["queue_while_running"]["queue_running"][0]
        pending = recorded["queue_while_running"]["queue_pending"][0]
        faults = self.server.faults
        faults.hold_jobs(node_id="3")
        slow = self._submit(running)
        faults.wait_held()
        queued = self._submit(pending)
        while_running = self.client.get("/queue").json()
        delete = self.client.post("/queue", json={"delete": [queued]})
        after_delete = self.client.get("/queue").json()
        interrupt = self.client.post("/interrupt", json={"prompt_id": slow})
        faults.release_jobs()
        interrupted = {slow: wait_history(self.client, slow)}
        actual = {
            "delete_response": response(delete),
            "history_deleted": self.client.get(f"/history/{queued}").json(),
            "history_interrupted": interrupted,
            "interrupt_response": response(interrupt),
            "prompt_ids": [slow, queued],
            "queue_after_delete": after_delete,
            "queue_while_running": while_running,
        }
        ids = {recorded["prompt_ids"][0]: "<id0>", recorded["prompt_ids"][1]: "<id1>"}
        self.pair(
            "queue_delete_and_interrupt", recorded, actual, {**ids, slow: "<id0>", queued: "<id1>"}
        )
        self.slow_id = slow

    def _submit(self, item: list[Any]) -> str:
        r = self.client.post("/prompt", json={"client_id": item[3]["client_id"], "prompt": item[2]})
        assert r.status_code == 200, r.text
        prompt_id: str = r.json()["prompt_id"]
        return prompt_id

    def history_max2(self) -> None:
        recorded = self.recorded["get_history_max2"]
        actual = response(self.client.get("/history", params={"max_items": 2}))
        qwen = self.recorded["prompt_qwen_models_empty_execution_error"]["response"]["body"][
            "prompt_id"
        ]
        slow = self.recorded["queue_delete_and_interrupt"]["prompt_ids"][0]
        ids = {qwen: "<qwen>", self.qwen_id: "<qwen>", slow: "<slow>", self.slow_id: "<slow>"}
        self.pair("get_history_max2", recorded, actual, ids)


def transcripts_dir(shared_dir: Path) -> Path:
    return shared_dir / "comfyui" / "transcripts"


@pytest.fixture(scope="module", params=[False, True], ids=["comfyui-0.8.0", "jobs-api"])
def replay(
    shared_dir: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[dict[str, Any]]:
    recorded = {
        p.stem: json.loads(p.read_text()) for p in transcripts_dir(shared_dir).glob("*.json")
    }
    # The recordings were made on a server without models.
    server = FakeComfy(
        object_info_path(shared_dir), tmp_path_factory.mktemp("replay"), models={},
        jobs_api=request.param,
    )
    with server, httpx.Client(base_url=server.url, timeout=10) as client:
        yield Replay(server, client, recorded).run()


def test_every_transcript_is_replayed(shared_dir: Path) -> None:
    recorded = {p.stem for p in transcripts_dir(shared_dir).glob("*.json")}
    assert recorded == set(REPLAYED)


@pytest.mark.parametrize("name", REPLAYED)
def test_matches_recording(name: str, replay: dict[str, tuple[Any, Any]]) -> None:
    expected, actual = replay[name]
    assert actual == expected


def test_model_lists_are_the_empty_lists_of_the_recorded_schema(shared_dir: Path) -> None:
    info = json.loads(object_info_path(shared_dir).read_text())
    empty = set()
    for class_type, node in info.items():
        for category in ("required", "optional"):
            for name, spec in node["input"].get(category, {}).items():
                options = spec[0] if isinstance(spec[0], list) else None
                if spec[0] == "COMBO":
                    options = spec[1].get("options", [])
                if options == [] or options == ["pixel_space"]:
                    empty.add((class_type, name))
    assert empty == set(MODEL_INPUTS) | NON_MODEL_EMPTY_LISTS
