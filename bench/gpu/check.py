"""What the real-engine run checks, from ComfyUI's ``/history`` and its log (no torch needed).

Per prompt: no ``execution_error``; every image at the ``width``x``height`` the bound prompt asked
for; the video at the size and ``length`` (frames) of ``WanFirstLastFrameToVideo``. In the log:
no "lora key not loaded", and one "lora applied" line (written by :mod:`bench.gpu.serve`) per
LoRA node run with every key of its file matched. ``python -m bench.gpu.check VIDEO`` prints a
video's size and frame count with PyAV (run with ComfyUI's Python, which has it).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from PIL import Image

LORA_LINE = re.compile(r"lora applied: (\d+) of (\d+) keys from (\S+)")


def template_of(graph: dict[str, Any]) -> str:
    """Which of keyframed's six templates a bound prompt came from (by its nodes and LoRAs)."""
    classes = {n.get("class_type") for n in graph.values()}
    if "WanFirstLastFrameToVideo" in classes:
        return "wan_flf2v"
    if "TextEncodeQwenImageEditPlus" not in classes:
        return "qwen_t2i"
    loras = " ".join(str(n["inputs"].get("lora_name", "")) for n in graph.values()).lower()
    if "anypose" in loras:
        return "qwen_anypose"
    text = " ".join(str(n["inputs"].get("prompt", "")) for n in graph.values()
                    if n.get("class_type") == "TextEncodeQwenImageEditPlus")
    if text.startswith("Place character"):
        return "qwen_composite"
    if "instyle" in loras and "scene" not in text:
        return "qwen_instyle"
    return "qwen_background"


def _asked(graph: dict[str, Any]) -> tuple[int, int, int | None]:
    """(width, height, frames or None) the prompt asked for."""
    for node in graph.values():
        if node.get("class_type") == "WanFirstLastFrameToVideo":
            i = node["inputs"]
            return int(i["width"]), int(i["height"]), int(i["length"])
    for node in graph.values():
        if node.get("class_type") == "EmptySD3LatentImage":
            return int(node["inputs"]["width"]), int(node["inputs"]["height"]), None
    raise ValueError("no size node in the prompt")


def _seconds(status: dict[str, Any]) -> float | None:
    """execution_start → execution_success, from the history's status messages."""
    stamps = {m[0]: m[1].get("timestamp") for m in status.get("messages", [])}
    if "execution_start" in stamps and "execution_success" in stamps:
        return (stamps["execution_success"] - stamps["execution_start"]) / 1000.0
    return None


def probe_video(path: Path, comfy_python: str) -> dict[str, int]:
    """Width, height and frame count of a video, read with PyAV in ComfyUI's Python."""
    out = subprocess.run([comfy_python, "-m", "bench.gpu.check", str(path)], check=True,
                         capture_output=True, text=True).stdout
    return dict(json.loads(out))


def report(history: dict[str, Any], log: str, output: Path, *, run_s: float, run_rc: int,
           comfy_python: str = sys.executable) -> dict[str, Any]:
    """Every check, per prompt, plus the totals the table prints."""
    jobs: list[dict[str, Any]] = []
    problems: list[str] = []
    for pid, entry in history.items():
        graph = entry["prompt"][2]
        status = entry.get("status", {})
        name = template_of(graph)
        width, height, frames = _asked(graph)
        job: dict[str, Any] = {"prompt_id": pid, "template": name, "asked": [width, height, frames],
                               "status": status.get("status_str"), "seconds": _seconds(status)}
        if any(m[0] == "execution_error" for m in status.get("messages", [])):
            problems.append(f"{name} {pid}: execution_error")
        got: list[list[int]] = []
        for out in entry.get("outputs", {}).values():
            for item in out.get("images", []) + out.get("videos", []):
                path = output / item.get("subfolder", "") / item["filename"]
                if path.suffix.lower() == ".png":
                    with Image.open(path) as im:
                        got.append([im.width, im.height])
                else:
                    v = probe_video(path, comfy_python)
                    got.append([v["width"], v["height"], v["frames"]])
        job["got"] = got
        if not got:
            problems.append(f"{name} {pid}: no output file")
        for g in got:
            want = [width, height] + ([frames] if frames is not None else [])
            if g != want:
                problems.append(f"{name} {pid}: asked {want}, got {g}")
        jobs.append(job)
    not_loaded = [ln for ln in log.splitlines() if "lora key not loaded" in ln]
    applied = [m.groups() for m in LORA_LINE.finditer(log)]
    partial = [a for a in applied if a[0] != a[1] or a[0] == "0"]
    if not_loaded:
        problems.append(f"{len(not_loaded)} 'lora key not loaded' lines, first: {not_loaded[0]}")
    if not applied:
        problems.append("no 'lora applied' line in ComfyUI's log")
    problems += [f"LoRA {f}: only {n} of {t} keys applied" for n, t, f in partial]
    if run_rc != 0:
        problems.append(f"keyframed run exited {run_rc}")
    engine_s = sum(j["seconds"] or 0.0 for j in jobs)
    return {"ok": not problems, "problems": problems, "jobs": jobs, "run_s": round(run_s, 1),
            "engine_s": round(engine_s, 1), "loras_applied": sorted({a[2] for a in applied}),
            "overhead_per_job_s": round((run_s - engine_s) / max(len(jobs), 1), 2)}


def table(rep: dict[str, Any]) -> str:
    """Per template: prompts, execution seconds (min–max), sizes; then the totals."""
    rows = ["| template | prompts | seconds per prompt | asked → got |", "|---|---|---|---|"]
    by: dict[str, list[dict[str, Any]]] = {}
    for job in rep["jobs"]:
        by.setdefault(job["template"], []).append(job)
    for name in sorted(by):
        secs = [j["seconds"] for j in by[name] if j["seconds"] is not None]
        span = f"{min(secs):.1f}–{max(secs):.1f}" if secs else "?"
        j = by[name][0]
        rows.append(f"| {name} | {len(by[name])} | {span} | {j['asked']} → {j['got']} |")
    rows.append("")
    rows.append(f"keyframed run: {rep['run_s']} s wall for {len(rep['jobs'])} prompts, ComfyUI "
                f"executing {rep['engine_s']} s; overhead {rep['overhead_per_job_s']} s per job")
    rows.append(f"LoRAs applied: {', '.join(rep['loras_applied']) or 'none'}")
    rows.append("ok" if rep["ok"] else "FAILED: " + "; ".join(rep["problems"]))
    return "\n".join(rows)


def _probe_main(path: str) -> None:
    """Print a video's size and frame count (PyAV)."""
    import av

    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        print(json.dumps({"width": stream.width, "height": stream.height, "frames": frames}))


if __name__ == "__main__":
    _probe_main(sys.argv[1])
