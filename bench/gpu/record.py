"""Record what a real sampling run sends, for the ComfyUI-compatible test server to replay.

After ``keyframed run`` has filled ComfyUI's history, :func:`record` takes one bound prompt of
each kind it finds (``qwen_t2i``, ``qwen_anypose``, ``wan_flf2v``), gives its samplers a new seed
(so the sampling really runs instead of coming from ComfyUI's cache) and its save nodes a
``record/<kind>`` prefix (so output counters start at 1), then for each:

1. ``sampling``: opens ``/ws?clientId=...`` (as keyframed does, without feature flags, so
   previews come as type-1 binary frames), posts the prompt, keeps every frame until
   ``executing {node: null}``, then ``GET /history/{id}`` and each output's ``/view`` headers;
2. ``cached``: posts the identical prompt again: every node ``execution_cached``.

Binary frames are kept as ``{"binary": {"event", "format", "size", "bytes"}}`` (the preview
image's pixel size, not its pixels: they are random-weight noise). The transcripts are written
as ``<out>/gpu_<kind>_<phase>.json`` in the layout of ``shared/comfyui/transcripts``.
"""

from __future__ import annotations

import io
import json
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from PIL import Image
from websockets.sync.client import connect

from bench.gpu.check import template_of

KINDS = ("qwen_t2i", "qwen_anypose", "wan_flf2v")
SEED_INPUTS = {"KSampler": "seed", "KSamplerAdvanced": "noise_seed"}
SAVE_NODES = {"SaveImage", "SaveVideo", "SaveAnimatedWEBP"}


def pick_prompts(history: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The first successful prompt graph of each kind in :data:`KINDS`."""
    found: dict[str, dict[str, Any]] = {}
    for entry in history.values():
        graph = entry["prompt"][2]
        kind = template_of(graph)
        if kind in KINDS and kind not in found and entry["status"].get("status_str") == "success":
            found[kind] = graph
    return found


def reseeded(graph: dict[str, Any], kind: str) -> dict[str, Any]:
    """The graph with new sampler seeds and a ``record/<kind>`` output prefix."""
    out: dict[str, Any] = json.loads(json.dumps(graph))
    for node in out.values():
        key = SEED_INPUTS.get(node["class_type"])
        if key is not None and isinstance(node["inputs"].get(key), int):
            node["inputs"][key] = node["inputs"][key] + 1000
        if node["class_type"] in SAVE_NODES:
            node["inputs"]["filename_prefix"] = f"record/{kind}"
    return out


def binary_frame(frame: bytes) -> dict[str, Any]:
    """A binary WebSocket frame as its event type, image format, pixel size and length."""
    event, fmt = struct.unpack(">II", frame[:8])
    with Image.open(io.BytesIO(frame[8:])) as image:
        size = list(image.size)
    return {"binary": {"event": event, "format": fmt, "size": size, "bytes": len(frame)}}


def run_prompt(url: str, graph: dict[str, Any], timeout_s: float = 600.0) -> dict[str, Any]:
    """Post one prompt over a fresh client id and keep everything it sends until it is done."""
    client_id = str(uuid.uuid4())
    request = {"client_id": client_id, "prompt": graph}
    messages: list[dict[str, Any]] = []
    ws_url = url.replace("http://", "ws://") + f"/ws?clientId={client_id}"
    with connect(ws_url, max_size=None) as ws, httpx.Client(base_url=url, timeout=60) as http:
        messages.append(json.loads(ws.recv(timeout=30)))
        answer = http.post("/prompt", json=request)
        prompt_id = answer.json()["prompt_id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            frame = ws.recv(timeout=deadline - time.monotonic())
            if isinstance(frame, bytes):
                messages.append(binary_frame(frame))
                continue
            message = json.loads(frame)
            messages.append(message)
            data = message.get("data", {})
            if message["type"] == "executing" and data.get("node") is None \
                    and data.get("prompt_id") == prompt_id:
                break
        history = http.get(f"/history/{prompt_id}")
        views = _views(http, history.json().get(prompt_id, {}))
    return {
        "request": request,
        "response": {"status": answer.status_code, "body": answer.json()},
        "ws_messages": messages,
        "history": {"status": history.status_code, "body": history.json()},
        "views": views,
    }


def _views(http: httpx.Client, entry: dict[str, Any]) -> list[dict[str, Any]]:
    """Status, type and length of every output file the history entry names."""
    views = []
    for output in entry.get("outputs", {}).values():
        for item in output.get("images", []) + output.get("gifs", []):
            r = http.get("/view", params=item)
            views.append({"params": item, "status": r.status_code,
                          "content_type": r.headers.get("content-type"),
                          "magic": r.content[:12].hex(), "length": len(r.content)})
    return views


def record(url: str, history: dict[str, Any], out: Path, meta: dict[str, Any]) -> list[str]:
    """Record the sampling and cached runs of each kind; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    stats = httpx.get(url + "/system_stats", timeout=30).json()
    argv = stats["system"].get("argv", [])  # the recording machine's paths stay there
    stats["system"]["argv"] = ["<path>" if str(a).startswith("/") else a for a in argv]
    written = []
    for kind, graph in pick_prompts(history).items():
        prompt = reseeded(graph, kind)
        for phase in ("sampling", "cached"):
            doc = {"meta": {**meta, "kind": kind, "phase": phase,
                            "comfyui": stats["system"].get("comfyui_version")},
                   **run_prompt(url, prompt)}
            path = out / f"gpu_{kind}_{phase}.json"
            # Key order kept: a graph's order is the prompt's (execution_cached lists by it).
            path.write_text(json.dumps(doc, indent=1) + "\n")
            written.append(path.name)
    (out / "gpu_system_stats.json").write_text(
        json.dumps({"status": 200, "body": stats}, indent=1, sort_keys=True) + "\n")
    return [*written, "gpu_system_stats.json"]
