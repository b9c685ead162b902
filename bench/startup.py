"""Start-up and stop of ``keyframed watch`` on a large project, as systemd sees them.

For a generated project (5,000 scenes by default), ``keyframed watch`` runs as a real process
with ``$NOTIFY_SOCKET`` naming a unix datagram socket this benchmark listens on (what systemd
does for ``Type=notify``) and ``$WATCHDOG_USEC`` set as the unit's ``WatchdogSec=30`` sets it.
Two runs per project state:

- **full**: seconds from the process start to ``READY=1``, and to the end of the first reconcile
  pass (``STATUS=watching``, which follows it); the
  longest gap between ``WATCHDOG=1`` pings after READY; how often the kernel's inotify queue
  overflowed (watchdog's warning) and how many ``watcher_lost_sync`` warnings the log got.
  Then SIGTERM, once the pass is over.
- **stop**: SIGTERM ``--stop-after`` seconds after READY, i.e. during the first pass: seconds
  from the signal to the exit, the exit code, whether the pass was cut short (``pass_stopped``
  in the log), how many scene status files the pass had written, and the daemon state that
  root ``status.json`` was left with.

Project states: ``fresh`` (generated, never built: every artifact is planned, every scene's
status file and contact sheet is written) and ``built`` (every artifact written with stand-in
bytes and recorded as built, as :mod:`bench.scale` does, then dated a minute back; the daemon
starts on it as after a reboot, with an empty hash cache, so every file is hashed once).

Run::

    .venv/bin/python -m bench.startup [--scenes 5000] [--states fresh,built] [--stop-after 1]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import gen
from bench.common import table, write_results
from bench.scale import backdate, bulk_build

WATCHDOG_USEC = 30_000_000  # the unit's WatchdogSec=30
PASS_DONE = "STATUS=watching"  # sent once the first reconcile pass is over
OVERFLOW_TEXT = "overflowed"  # in watchdog's warning, printed raw on stderr or caught


@dataclass
class Notifications:
    """Datagrams received on a fake ``$NOTIFY_SOCKET``, with monotonic arrival times."""

    sock: socket.socket
    got: list[tuple[float, str]] = field(default_factory=list)

    def first(self, key: str) -> float | None:
        """Arrival time of the first datagram holding ``key`` (e.g. ``READY=1``)."""
        return next((t for t, m in self.got if key in m.splitlines()), None)

    def times(self, key: str) -> list[float]:
        """Arrival times of every datagram holding ``key``."""
        return [t for t, m in self.got if key in m.splitlines()]


def listen(path: Path) -> Notifications:
    """Bind a unix datagram socket at ``path`` and record what arrives, in a thread."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    notes = Notifications(sock)

    def pump() -> None:
        while True:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            notes.got.append((time.monotonic(), data.decode("utf-8", "replace")))

    threading.Thread(target=pump, daemon=True).start()
    return notes


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    """Poll ``predicate`` every 20 ms until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


def log_events(log: Path) -> list[dict[str, Any]]:
    """The JSON lines of a daemon log (raw lines as ``{"raw": text}``)."""
    out: list[dict[str, Any]] = []
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"raw": line})
    return out


def has_event(log: Path, name: str) -> bool:
    """True once the log holds an event of this name (read as raw bytes: cheap to poll)."""
    try:
        return f'"event": "{name}"'.encode() in log.read_bytes()
    except OSError:
        return False


def start(root: Path, work: Path, tag: str) -> tuple[subprocess.Popen[bytes], Notifications,
                                                     Path, float]:
    """Start ``keyframed watch root`` as systemd would; returns (process, notes, log, t0)."""
    sock_path = work / f"{tag}.sock"
    notes = listen(sock_path)
    log = work / f"{tag}.log"
    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": str(WATCHDOG_USEC),
           "KEYFRAMED_LOG_FORMAT": "json", "KEYFRAMED_CONFIG": str(work / "no-config"),
           "PYTHONUNBUFFERED": "1"}
    env.pop("WATCHDOG_PID", None)
    handle = log.open("wb")
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "keyframed", "watch", str(root)],
                            stdout=handle, stderr=handle, env=env)
    handle.close()
    return proc, notes, log, t0


def overflow_counts(log: Path) -> dict[str, Any]:
    """Kernel queue overflows (counted by the daemon, or before it counted them watchdog's
    warnings), events the watcher got, and the daemon's lost-sync warnings."""
    events = log_events(log)
    raw = sum(1 for e in events if OVERFLOW_TEXT in e.get("raw", ""))
    lost = [e for e in events if e.get("event") in ("watcher_lost_sync", "watch_lost_sync")]
    overflow_lost = sum(1 for e in lost if "overflow" in str(e.get("reason", "")))
    stopped = [e for e in events if e.get("event") == "daemon_stopped"]
    counted = stopped[-1].get("queue_overflows") if stopped else None
    return {"overflow_warnings": raw if counted is None else int(counted),
            "watch_events": stopped[-1].get("watch_events") if stopped else None,
            "lost_sync_warnings": len(lost), "lost_sync_overflow": overflow_lost}


def root_state(root: Path) -> str | None:
    """The daemon state root ``status.json`` was left with."""
    try:
        doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return str(doc.get("daemon", {}).get("state"))


def stop(proc: subprocess.Popen[bytes], timeout: float) -> tuple[float, int | None]:
    """SIGTERM, then seconds until the process exited and its exit code (None: killed)."""
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    return round(time.monotonic() - sent, 3), code


def max_gap(times: Sequence[float], start: float, end: float) -> float:
    """The longest stretch between ``start`` and ``end`` without a ping."""
    points = [start, *[t for t in times if start <= t <= end], end]
    return round(max(b - a for a, b in itertools.pairwise(points)), 2)


def run_full(root: Path, work: Path, timeout: float) -> dict[str, Any]:
    """READY, the first pass to its end, watchdog gaps and overflows; then a SIGTERM."""
    proc, notes, log, t0 = start(root, work, "full")
    try:
        wait_until(lambda: notes.first("READY=1") is not None or proc.poll() is not None,
                   timeout)
        ready = notes.first("READY=1")
        # STATUS=watching follows the first pass (before 2026-12-04 READY=1 did too).
        wait_until(lambda: notes.first(PASS_DONE) is not None or proc.poll() is not None,
                   timeout)
        passed = notes.first(PASS_DONE)
        end = passed or time.monotonic()
        stop_s, code = stop(proc, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        notes.sock.close()
    return {"ready_s": None if ready is None else round(ready - t0, 2),
            "first_pass_s": None if passed is None else round(passed - t0, 2),
            "watchdog_pings": len(notes.times("WATCHDOG=1")),
            "watchdog_max_gap_s": None if ready is None else
            max_gap(notes.times("WATCHDOG=1"), ready, end),
            "stop_after_pass_s": stop_s, "exit_code": code, **overflow_counts(log)}


def run_stop(root: Path, work: Path, stop_after: float, timeout: float,
             sigterm_at: float | None = None) -> dict[str, Any]:
    """SIGTERM ``stop_after`` seconds after READY (or ``sigterm_at`` seconds after the start,
    READY or not): time to exit, code, what was left."""
    proc, notes, log, t0 = start(root, work, "stop")
    try:
        if sigterm_at is not None:
            threading.Event().wait(max(0.0, t0 + sigterm_at - time.monotonic()))
        else:
            wait_until(lambda: notes.first("READY=1") is not None or proc.poll() is not None,
                       timeout)
            threading.Event().wait(stop_after)
        ready = notes.first("READY=1")
        sent_at = round(time.monotonic() - t0, 2)
        stop_s, code = stop(proc, timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
        notes.sock.close()
    return {"ready_s": None if ready is None else round(ready - t0, 2), "sigterm_at_s": sent_at,
            "stop_s": stop_s, "exit_code": code,
            "pass_cut_short": has_event(log, "pass_stopped"),
            "scene_status_files": len(list(root.glob("scene-*/status.json"))),
            "root_status": root_state(root), **overflow_counts(log)}


def prepare(base: Path, scenes: int, seed: int, state: str) -> Path:
    """Generate (and for ``built``, stand-in build) the project of one state."""
    root = base / state
    gen.generate_project(root, scenes, seed=seed)
    if state == "built":
        bulk_build(root)
    backdate(root)
    return root


def measure(scenes: int, seed: int, state: str, stop_after: float, timeout: float,
            work: Path, sigterm_at: float | None = None) -> dict[str, Any]:
    """Both runs on fresh copies of one generated project."""
    base = prepare(work / "base", scenes, seed, state)
    row: dict[str, Any] = {"state": state, "scenes": scenes}
    for name in ("full", "stop"):
        root = work / f"{state}-{name}"
        shutil.copytree(base, root, symlinks=True)
        started = time.perf_counter()
        if name == "full":
            row["full"] = run_full(root, work, timeout)
        else:
            row["stop"] = run_stop(root, work, stop_after, timeout, sigterm_at)
        print(f"  {state} {name}: {time.perf_counter() - started:.0f} s", file=sys.stderr,
              flush=True)
        shutil.rmtree(root, ignore_errors=True)
    return row


def report(rows: list[dict[str, Any]]) -> str:
    """The two tables: start-up (full runs) and stop (SIGTERM during the first pass)."""
    full = [(r["state"], r["scenes"], r["full"]["ready_s"], r["full"]["first_pass_s"],
             r["full"]["watchdog_max_gap_s"], r["full"]["overflow_warnings"],
             r["full"]["lost_sync_warnings"]) for r in rows]
    stops = [(r["state"], r["scenes"], r["stop"]["sigterm_at_s"], r["stop"]["stop_s"],
              r["stop"]["exit_code"], r["stop"]["pass_cut_short"],
              r["stop"]["scene_status_files"], r["stop"]["root_status"]) for r in rows]
    return "\n\n".join([
        table(["state", "scenes", "READY s", "1st pass s", "max ping gap s", "overflows",
               "lost-sync warnings"], full),
        table(["state", "scenes", "SIGTERM at s", "exit after s", "code", "cut short",
               "scene status files", "root status"], stops)])


def main(argv: Sequence[str] | None = None) -> int:
    """Measure each requested state and print the tables."""
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--states", default="fresh,built",
                        help="comma-separated: fresh (never built), built (restart)")
    parser.add_argument("--stop-after", type=float, default=1.0,
                        help="seconds after READY=1 to send SIGTERM in the stop run")
    parser.add_argument("--sigterm-at", type=float,
                        help="instead: send SIGTERM this many seconds after the process "
                             "started, READY or not (to measure a daemon that sends READY late)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="longest wait for READY, the pass and the exit")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="kf-bench-startup-") as tmp:
        for state in args.states.split(","):
            work = Path(tmp) / state
            work.mkdir()
            rows.append(measure(args.scenes, args.seed, state, args.stop_after, args.timeout,
                                work, args.sigterm_at))
    print(report(rows))
    path = write_results("startup", {"scenes": args.scenes, "seed": args.seed,
                                     "stop_after_s": args.stop_after,
                                     "sigterm_at_s": args.sigterm_at, "rows": rows})
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
