"""Throughput behind a Comfy API v2 surface with many workers (issue 15), for bench.throughput.

``python -m bench.throughput --servers 0 --v2-workers 16``

One fake ComfyUI with ``workers`` prompts running side by side (a serverless deployment's
GPUs behind one queue), the real ``comfy-api-proxy`` in front of it as the v2 surface, and a
generated project with a single ``kind = "comfy-api"`` backend (``max_in_flight`` = two per
worker: one running, one waiting) built from nothing by ``keyframed run``. Job times are
spread like real ones, scaled down: each prompt's time is drawn (deterministically from its
output prefix) from a log-normal around 1.8 s for images and 3.0 s for videos, clipped to
0.6-6 s. Measured:

* makespan (first execution start to last end on the server) against the ideal bound
  max(sum of the job times / workers, the critical path: the longest dependency chain in
  seconds of the job times actually drawn);
* daemon CPU per job (``keyframed run``'s CPU less a no-op run's, over the jobs);
* uploads reaching ComfyUI against the distinct bytes among them, and the most uploads of
  one file.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from bench.fake_farm import need_object_info
from tests.backends.apiproxy import ApiProxy
from tests.comfy_project import PREFIX
from tests.fakecomfy.server import FakeComfy

IMAGE_MEDIAN_S = 1.8
VIDEO_MEDIAN_S = 3.0
SPREAD = 0.35  # sigma of the log-normal
SHORTEST_S, LONGEST_S = 0.6, 6.0
VIDEO_HINTS = ("Wan", "SaveVideo", "SaveWEBM", "CreateVideo")


def _prefix(prompt: dict[str, Any]) -> str:
    for node in prompt.values():
        value = node.get("inputs", {}).get("filename_prefix")
        if isinstance(value, str):
            return value
    return json.dumps(prompt, sort_keys=True)


def job_time(prompt: dict[str, Any]) -> float:
    """The simulated duration of one prompt: log-normal around its kind's median, stable per
    output prefix (the same job gets the same time whatever the order of submission)."""
    video = any(h in str(n.get("class_type", "")) for n in prompt.values() for h in VIDEO_HINTS)
    digest = hashlib.sha256(_prefix(prompt).encode()).digest()
    # Two uniforms from the hash, then Box-Muller: a standard normal without a global RNG.
    u1 = (int.from_bytes(digest[:8], "big") + 1) / (2**64 + 2)
    u2 = int.from_bytes(digest[8:16], "big") / 2**64
    normal = math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
    median = VIDEO_MEDIAN_S if video else IMAGE_MEDIAN_S
    return min(LONGEST_S, max(SHORTEST_S, median * math.exp(SPREAD * normal)))


def start_surface(base: Path, workers: int) -> tuple[FakeComfy, ApiProxy]:
    """The many-worker fake ComfyUI and the proxy in front of it (caller stops both)."""
    folder = base / "comfy"
    folder.mkdir(parents=True, exist_ok=True)
    comfy = FakeComfy(need_object_info(), folder, workers=workers).start()
    comfy.faults.job_time = job_time
    try:
        proxy = ApiProxy(comfy, state_dir=base / "proxy-state").start()
    except BaseException:
        comfy.stop()
        raise
    return comfy, proxy


def write_v2_config(root: Path, url: str, max_in_flight: int) -> None:
    """One comfy-api backend at ``url``, small images (the fake draws real PNGs)."""
    lines = ['approval = "auto"', "", "[image]", "width = 128", "height = 72", "",
             "[video]", "width = 128", "height = 80", "",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.5", "max_attempts = 8", "",
             "[[backends]]", 'name = "cloud"', 'kind = "comfy-api"', f'url = "{url}"',
             f"max_in_flight = {max_in_flight}", "timeout_s = 300", ""]
    (root / "keyframed.toml").write_text("\n".join(lines), encoding="utf-8")


def v2_runs(comfy: FakeComfy,
            spans: list[tuple[str, float, float]]) -> dict[str, tuple[float, float]]:
    """Artifact (path without extension) -> (start, end) of its job on the server."""
    bodies = {p.prompt_id: p.body["prompt"] for p in comfy.records.prompts}
    out: dict[str, tuple[float, float]] = {}
    for prompt_id, start, end in spans:
        match = PREFIX.match(_prefix(bodies.get(prompt_id, {})))
        if match:  # the v2 prefix ends in "-" and the idempotency key's tail
            out[match.group(1).rsplit("-", 1)[0]] = (start, end)
    return out


def critical_seconds(graph: dict[str, tuple[bool, list[str]]],
                     runs: dict[str, tuple[float, float]]) -> float:
    """The longest dependency chain, in seconds of the jobs' own times."""
    memo: dict[str, float] = {}

    def chain(path: str) -> float:
        if path not in memo:
            job, deps = graph[path]
            start, end = runs.get(path.rsplit(".", 1)[0], (0.0, 0.0)) if job else (0.0, 0.0)
            own = end - start
            memo[path] = own + max((chain(d) for d in deps), default=0.0)
        return memo[path]

    return max((chain(p) for p in graph), default=0.0)


def upload_figures(comfy: FakeComfy) -> dict[str, int]:
    """Uploads that reached ComfyUI (through the proxy) against distinct bytes."""
    uploads = comfy.records.uploads
    per_file: dict[str, int] = {}
    for u in uploads:
        per_file[u.sha256] = per_file.get(u.sha256, 0) + 1
    return {"uploads": len(uploads), "upload_bytes": sum(u.size for u in uploads),
            "distinct_files": len(per_file),
            "distinct_bytes": sum({u.sha256: u.size for u in uploads}.values()),
            "max_uploads_per_file": max(per_file.values(), default=0)}
