"""The fake ComfyUI against real sampling runs recorded on a GPU (issue 16).

``recordings/gpu/`` holds what ComfyUI 0.3.64 sent while it executed keyframed's own bound
prompts on an H200 (``python -m bench.gpu --record``, see bench/README.md): for a text-to-image,
an AnyPose edit and a Wan first/last-frame video, a run with fresh seeds (every node executing,
sampler progress, latent2rgb preview frames) and the identical prompt again (every node
``execution_cached``). They are replayed here in the order they were made, on one fake server
with previews on, and each WebSocket sequence, history entry and ``/view`` answer is compared
once prompt ids, prompt numbers and timestamps are normalised; a preview frame is compared by
its event type, image format and pixel size (its pixels were random-weight noise).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.fakecomfy import MODEL_INPUTS, FakeComfy
from tests.fakecomfy.fixtures import object_info_path
from tests.fakecomfy.test_fakecomfy_conformance import normalise
from tests.fakecomfy.testkit import png, upload

RECORDINGS = Path(__file__).parent / "recordings" / "gpu"
# The order they were recorded in: ComfyUI's cache carries over from one prompt to the next.
RUNS = [
    f"gpu_{kind}_{phase}"
    for kind in ("qwen_t2i", "qwen_anypose", "wan_flf2v")
    for phase in ("sampling", "cached")
]


def load(name: str) -> dict[str, Any]:
    recorded: dict[str, Any] = json.loads((RECORDINGS / f"{name}.json").read_text())
    return recorded


def models_named(graphs: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every model file the recorded prompts load, by folder (the GPU run had them all)."""
    found: dict[str, set[str]] = {}
    for graph in graphs:
        for node in graph.values():
            for (loader, name), folder in MODEL_INPUTS.items():
                value = node["inputs"].get(name)
                if loader == node["class_type"] and isinstance(value, str):
                    found.setdefault(folder, set()).add(value)
    return {folder: sorted(names) for folder, names in found.items()}


def upload_inputs(client: httpx.Client, graph: dict[str, Any]) -> None:
    """Stand-in PNGs under the names the prompt's LoadImage nodes read."""
    for node in graph.values():
        if node["class_type"] == "LoadImage":
            subfolder, _, name = node["inputs"]["image"].rpartition("/")
            r = upload(client, name, png((90, 120, 150), (512, 288)),
                       {"subfolder": subfolder, "overwrite": "true"})
            assert r.status_code == 200, r.text


def frame(raw: str | bytes) -> dict[str, Any]:
    """A received frame the way the recorder keeps it (binary: header words and pixel size)."""
    if isinstance(raw, str):
        message: dict[str, Any] = json.loads(raw)
        return message
    from bench.gpu.record import binary_frame

    shown = binary_frame(raw)
    shown["binary"]["bytes"] = "<bytes>"
    return shown


def run(server: FakeComfy, client: httpx.Client, request: dict[str, Any]) -> dict[str, Any]:
    """Post the recorded request under its client id; keep every frame until it is done."""
    messages: list[dict[str, Any]] = []
    with connect(f"{server.ws_url}?clientId={request['client_id']}") as ws:
        messages.append(frame(ws.recv(timeout=10)))
        answer = client.post("/prompt", json=request)
        prompt_id = answer.json()["prompt_id"]
        while True:
            message = frame(ws.recv(timeout=30))
            messages.append(message)
            data = message.get("data", {})
            if message.get("type") == "executing" and data.get("node") is None \
                    and data.get("prompt_id") == prompt_id:
                break
    history = client.get(f"/history/{prompt_id}")
    views = []
    for output in history.json()[prompt_id]["outputs"].values():
        for item in output.get("images", []):
            r = client.get("/view", params=item)
            views.append({"params": item, "status": r.status_code,
                          "content_type": r.headers.get("content-type"),
                          "magic": r.content[:12].hex()})
    return {"response": {"status": answer.status_code, "body": answer.json()},
            "ws_messages": messages, "views": views,
            "history": {"status": history.status_code, "body": history.json()}}


def comparable(doc: dict[str, Any], prompt_id: str) -> Any:
    """A run with the volatile parts blanked: ids, numbers, timestamps, preview bytes, lengths."""
    doc = json.loads(json.dumps(doc))
    doc["response"]["body"]["number"] = "<n>"
    for entry in doc["history"]["body"].values():
        entry["prompt"][0] = "<n>"
        # The fake answers as 0.8.0, which stamps extra_data with create_time; 0.3.64 did not.
        entry["prompt"][3].pop("create_time", None)
    for message in doc["ws_messages"]:
        if "binary" in message:
            message["binary"]["bytes"] = "<bytes>"
    for view in doc["views"]:
        view.pop("length", None)
        view["magic"] = view["magic"][:8]  # PNG signature, or the MP4 box length (varies)
    return normalise(doc, {prompt_id: "<id>"})


@pytest.fixture(scope="module")
def replayed(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, tuple[Any, Any]]]:
    recorded = {name: load(name) for name in RUNS}
    graphs = [doc["request"]["prompt"] for doc in recorded.values()]
    server = FakeComfy(object_info_path(shared_dir), tmp_path_factory.mktemp("gpu"),
                       models=models_named(graphs), previews=True)
    pairs = {}
    with server, httpx.Client(base_url=server.url, timeout=30) as client:
        for graph in graphs:
            upload_inputs(client, graph)
        for name, doc in recorded.items():
            actual = run(server, client, doc["request"])
            expected = {key: doc[key] for key in ("response", "ws_messages", "views", "history")}
            pairs[name] = (
                comparable(expected, doc["response"]["body"]["prompt_id"]),
                comparable(actual, actual["response"]["body"]["prompt_id"]),
            )
    yield pairs


def test_every_recording_is_replayed() -> None:
    on_disk = {p.stem for p in RECORDINGS.glob("gpu_*_*.json")} - {"gpu_system_stats"}
    assert on_disk == set(RUNS)


@pytest.mark.parametrize("name", RUNS)
@pytest.mark.parametrize("part", ["ws_messages", "history", "views", "response"])
def test_matches_the_gpu_recording(name: str, part: str,
                                   replayed: dict[str, tuple[Any, Any]]) -> None:
    expected, actual = replayed[name]
    assert actual[part] == expected[part]


def test_recordings_show_what_a_real_sampling_run_sends() -> None:
    """The facts the fake was changed for, read from the recordings themselves."""
    video = load("gpu_wan_flf2v_sampling")
    progress = [m["data"] for m in video["ws_messages"] if m.get("type") == "progress"]
    # KSamplerAdvanced reports the steps of its own pass (0..1 and 1..end of 2), not of all.
    assert [(p["value"], p["max"]) for p in progress] == [(1, 1), (1, 1)]
    previews = [m["binary"] for m in video["ws_messages"] if "binary" in m]
    assert [(p["event"], p["format"], p["size"]) for p in previews] == [(1, 1, [512, 307])] * 2
    cached = load("gpu_wan_flf2v_cached")["history"]["body"]
    (entry,) = cached.values()
    assert entry["outputs"]["17"]["animated"] == [True]
    names = dict(entry["status"]["messages"])["execution_cached"]["nodes"]
    assert len(names) == len(load("gpu_wan_flf2v_cached")["request"]["prompt"])


def test_the_fake_system_stats_have_the_fields_of_the_gpu_ones(shared_dir: Path,
                                                                tmp_path: Path) -> None:
    """keyframed reads VRAM and the version from here; a GPU's answer has every field the
    fake's has (a CUDA device's ``index`` is an int where the CPU recording had null)."""
    gpu = json.loads((RECORDINGS / "gpu_system_stats.json").read_text())["body"]
    with FakeComfy(object_info_path(shared_dir), tmp_path) as server:
        fake = httpx.get(server.url + "/system_stats", timeout=10).json()
    assert set(fake["system"]) <= set(gpu["system"])
    assert set(fake["devices"][0]) == set(gpu["devices"][0])
    assert gpu["devices"][0]["type"] == "cuda" and gpu["devices"][0]["vram_total"] > 0
