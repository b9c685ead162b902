"""``python -m bench.trace_watch watch DIR``: the daemon with timestamps of its inner stages.

For profiling :mod:`bench.latency` only. It wraps a few methods of the daemon (nothing else
changes) and appends one JSON line per stage to the file named by ``$KEYFRAMED_BENCH_TRACE``:
``{"t": time.time(), "stage": ..., ...}``. :func:`stage_table` lines those up with the
benchmark's saves.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fake_farm import percentile, table

TARGET = "scene-01/keyframe-end"

_LOCK = threading.Lock()
STAGES = (
    ("event", "first file event reaches the watcher"),
    ("wake", "debounce ends: the watcher wakes the loop"),
    ("pass_start", "the reconcile pass starts"),
    ("snapshot_end", "snapshot taken (inputs read, plan, staleness)"),
    ("dispatch", "job created and handed to a worker"),
    ("worker_start", "the worker thread runs the job"),
    ("post_send", "the worker sends POST /prompt"),
    ("receipt", "the server has received it"),
)


def _mark(stage: str, **fields: Any) -> None:
    line = json.dumps({"t": time.time(), "stage": stage, **fields}) + "\n"
    with _LOCK, open(os.environ["KEYFRAMED_BENCH_TRACE"], "a", encoding="utf-8") as handle:
        handle.write(line)


def _wrap(owner: Any, name: str, before: str | None, after: str | None = None,
          detail: Callable[..., dict[str, Any]] | None = None) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def traced(*args: Any, **kwargs: Any) -> Any:
        fields = detail(*args, **kwargs) if detail else {}
        if before:
            _mark(before, **fields)
        try:
            return original(*args, **kwargs)
        finally:
            if after:
                _mark(after, **fields)

    setattr(owner, name, traced)


def install() -> None:
    """Wrap the daemon's stages."""
    from keyframed.backends.comfy import client
    from keyframed.daemon import loop, status, watcher
    from keyframed.render import sheets

    def event_path(self: Any, event: Any) -> dict[str, Any]:
        return {"path": os.fsdecode(event.src_path)[-40:], "type": event.event_type}

    _wrap(watcher.Watcher, "_on_event", "event", detail=event_path)
    _wrap(watcher.Watcher, "_call_wake", "wake")
    _wrap(loop.Reconciler, "reconcile_once", "pass_start", "pass_end")
    _wrap(loop, "take_snapshot", "snapshot_start", "snapshot_end")
    _wrap(loop.Reconciler, "_collect", "collect_start", "collect_end")
    _wrap(loop.Reconciler, "_sync_jobs", "sync_start", "sync_end")
    _wrap(loop.Reconciler, "_dispatch", "dispatch_start", "dispatch_end")
    _wrap(status.StatusWriter, "write", "status_start", "status_end")
    _wrap(sheets.SheetWriter, "write", "sheets_start", "sheets_end")
    _wrap(loop.Reconciler, "_start", "dispatch",
          detail=lambda self, job, item, name: {"artifact": job.path})
    _wrap(loop.Reconciler, "_execute", "worker_start",
          detail=lambda self, backend, job, item, inputs: {"artifact": job.path})
    _wrap(client.ComfyClient, "lookup", "lookup_start", "lookup_end")
    _wrap(client.ComfyClient, "upload", "upload_start", "upload_end")
    _wrap(client.ComfyClient, "_post_prompt", "post_send", "post_answered")


def _first(trace: list[dict[str, Any]], stage: str, after: float,
           test: Callable[[dict[str, Any]], bool] = lambda r: True) -> float | None:
    for record in trace:
        if record["stage"] == stage and record["t"] >= after and test(record):
            return float(record["t"])
    return None


def _last(trace: list[dict[str, Any]], stage: str, before: float,
          test: Callable[[dict[str, Any]], bool] = lambda r: True) -> float | None:
    for record in reversed(trace):
        if record["stage"] == stage and record["t"] <= before and test(record):
            return float(record["t"])
    return None


def _is_target(record: dict[str, Any]) -> bool:
    return str(record.get("artifact", "")).startswith(TARGET)


def _is_save_event(record: dict[str, Any]) -> bool:
    path = str(record.get("path", ""))
    return "scene-breakdown" in path or ".goutputstream" in path


def stages_of(sample: dict[str, Any], trace: list[dict[str, Any]]) -> dict[str, float] | None:
    """Times (ms since the save began) at which one save passed each stage.

    The first event and the wake are looked up forwards from the save; the rest backwards
    from the receipt, so a pass that started before the wake (the periodic one) and read the
    new file is the one counted.
    """
    if sample.get("latency_ms") is None:
        return None
    t0 = float(sample["t0"])
    receipt = t0 + sample["latency_ms"] / 1000
    event = _first(trace, "event", t0, _is_save_event)
    wake = _first(trace, "wake", t0)
    post = _last(trace, "post_send", receipt)
    worker = _last(trace, "worker_start", post or receipt, _is_target)
    dispatch = _last(trace, "dispatch", worker or receipt, _is_target)
    snap = _last(trace, "snapshot_end", dispatch or receipt)
    start = _last(trace, "pass_start", snap or receipt)
    found = [event, wake, start, snap, dispatch, worker, post]
    times = [t for t in found if t is not None]
    if len(times) < len(found) or min(times) < t0:
        return None
    out = {"save_start": 0.0, "receipt": float(sample["latency_ms"])}
    out.update({stage: (t - t0) * 1000 for (stage, _), t in zip(STAGES, times, strict=False)})
    return out


def stage_table(samples: list[dict[str, Any]], trace_path: Path) -> dict[str, Any]:
    """Print and return where the time goes between a save and POST /prompt's receipt."""
    trace = [json.loads(line) for line in trace_path.read_text(encoding="utf-8").splitlines()]
    trace.sort(key=lambda r: r["t"])
    per_save = [s for s in (stages_of(x, trace) for x in samples) if s is not None]
    names = ["save_start", *(s for s, _ in STAGES)]
    rows, out = [], {}
    for prev, stage in itertools.pairwise(names):
        gaps = [s[stage] - s[prev] for s in per_save]
        out[stage] = {"p50": percentile(gaps, 50), "p90": percentile(gaps, 90),
                      "max": max(gaps, default=float("nan"))}
        why = dict(STAGES)[stage]
        rows.append([f"{prev} -> {stage}", out[stage]["p50"], out[stage]["p90"],
                     out[stage]["max"], why])
    totals = [s["receipt"] for s in per_save]
    rows.append(["total", percentile(totals, 50), percentile(totals, 90),
                 max(totals, default=float("nan")), f"{len(per_save)} traced saves"])
    passes = _pass_times(trace)
    print("\nwhere the time goes (traced daemon; ms between stages):")
    print(table(["stage", "p50", "p90", "max", "what"], rows))
    print(f"reconcile passes: {len(passes)}, p50 {percentile(passes, 50):.1f} ms, "
          f"p90 {percentile(passes, 90):.1f} ms; snapshots p50 "
          f"{percentile(_span(trace, 'snapshot_start', 'snapshot_end'), 50):.1f} ms")
    return {"stages_ms": out, "traced_saves": len(per_save),
            "pass_ms_p50": percentile(passes, 50),
            "snapshot_ms_p50": percentile(_span(trace, "snapshot_start", "snapshot_end"), 50)}


def _span(trace: list[dict[str, Any]], start: str, end: str) -> list[float]:
    out, opened = [], None
    for record in trace:
        if record["stage"] == start:
            opened = record["t"]
        elif record["stage"] == end and opened is not None:
            out.append((record["t"] - opened) * 1000)
            opened = None
    return out


def _pass_times(trace: list[dict[str, Any]]) -> list[float]:
    return _span(trace, "pass_start", "pass_end")


PARTS = ("collect", "snapshot", "sync", "dispatch", "status", "sheets")


def pass_profile(trace_path: Path) -> dict[str, Any]:
    """Print and return how long passes and their parts took (ms), over a traced run."""
    trace = [json.loads(line) for line in trace_path.read_text(encoding="utf-8").splitlines()]
    trace.sort(key=lambda r: r["t"])
    rows, out = [], {}
    for part in ("pass", *PARTS):
        times = _span(trace, f"{part}_start", f"{part}_end")
        out[part] = {"n": len(times), "total_s": sum(times) / 1000,
                     "p50": percentile(times, 50), "p90": percentile(times, 90),
                     "max": max(times, default=float("nan"))}
        rows.append([part, len(times), sum(times) / 1000, out[part]["p50"], out[part]["p90"],
                     out[part]["max"]])
    print(table(["part of a pass", "n", "total s", "p50 ms", "p90 ms", "max ms"], rows))
    return out


def main() -> int:
    """Install the wrappers and run the keyframed CLI."""
    if "KEYFRAMED_BENCH_TRACE" not in os.environ:
        sys.exit("bench.trace_watch: set KEYFRAMED_BENCH_TRACE to a file path")
    install()
    from keyframed.cli.main import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
