"""kill -9 of the daemon at random moments during a run, 50 times (DESIGN.md section 9).

``python -m bench.crash [--kills 50] [--scenes 40] [--seed 7]``

A generated project (:mod:`bench.gen`, ~40 scenes, ``approval = "auto"``) is wired to fake
ComfyUI servers in this process whose jobs take ``--job-ms``. The real daemon
(``python -m keyframed watch``) is started and killed with SIGKILL again and again: most
kills land a random 0-0.8 s after it reports ready, one in five a random moment during
start-up. After each kill, before the next start (which sweeps temp files), the project is
checked: every output image readable, every video a real MP4, the SQLite store passing
``PRAGMA integrity_check``; temp files the kill left are counted. After the last kill a
clean ``keyframed run`` finishes the work, and then:

* jobs lost: artifacts not fresh at the end (must be 0);
* jobs executed twice: prompt ids the servers executed more than once (must be 0);
* partial files: ``.kf-tmp-*`` left at the end, unreadable outputs (must be 0);
* time to ready: from process start to the ``READY=1`` datagram on a ``$NOTIFY_SOCKET``
  this benchmark listens on (the sender's pid is checked with ``SO_PASSCRED``).
"""

from __future__ import annotations

import argparse
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from PIL import Image

from bench.fake_farm import (
    CLI,
    daemon_env,
    fake_servers,
    percentile,
    save_results,
    scratch,
    start_daemon,
    table,
    wait_for,
    write_config,
)
from bench.gen import generate_project
from keyframed.daemon.store import Store

TEMP_MARK = ".kf-tmp-"


class NotifyListener:
    """A ``$NOTIFY_SOCKET`` datagram socket that records READY=1 with the sender's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.settimeout(0.2)
        self.ready: dict[int, float] = {}
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="notify", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        space = socket.CMSG_SPACE(struct.calcsize("3i"))
        while not self._stop:
            try:
                data, ancdata, _, _ = self.sock.recvmsg(4096, space)
            except TimeoutError:
                continue
            except OSError:
                return
            now = time.time()
            pid = next((struct.unpack("3i", d[:12])[0] for level, kind, d in ancdata
                        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS), -1)
            if b"READY=1" in data.split(b"\n"):
                with self._cond:
                    self.ready.setdefault(pid, now)
                    self._cond.notify_all()

    def wait_ready(self, pid: int, timeout: float) -> float | None:
        """When ``pid`` said READY=1, waiting up to ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: pid in self.ready, timeout)
            return self.ready.get(pid)

    def close(self) -> None:
        """Stop listening."""
        self._stop = True
        self._thread.join(1.0)
        self.sock.close()


def unreadable_outputs(root: Path) -> list[str]:
    """Output images that do not open, and videos that are not MP4s.

    Temp files of atomic writes are not outputs (nothing reads them; the next start sweeps
    them): they are counted apart, by :func:`temp_files`.
    """
    bad = []
    for path in root.glob("scene-*/**/*.png"):
        if path.name.startswith(TEMP_MARK):
            continue
        try:
            with Image.open(path) as image:
                image.verify()
        except (OSError, SyntaxError, ValueError):
            bad.append(str(path.relative_to(root)))
    for path in root.glob("scene-*/*.mp4"):
        if path.name.startswith(TEMP_MARK):
            continue
        with path.open("rb") as handle:
            if handle.read(12)[4:8] != b"ftyp":
                bad.append(str(path.relative_to(root)))
    return bad


def temp_files(root: Path) -> list[str]:
    """Temp files of atomic writes anywhere in the project."""
    return [str(p.relative_to(root)) for p in root.rglob(f"{TEMP_MARK}*")]


def integrity(root: Path) -> str:
    """``PRAGMA integrity_check`` of the state store."""
    store = Store.for_project(root)
    try:
        return store.integrity_check()
    finally:
        store.close()


def kill_once(root: Path, log: Path, env: dict[str, str], listener: NotifyListener,
              rng: random.Random, during_start: bool) -> dict[str, Any]:
    """Start the daemon, kill it at a random moment, check the project."""
    t_start = time.time()
    proc = start_daemon(root, log, "watch", env=env)
    if during_start:
        threading.Event().wait(rng.uniform(0.0, 0.4))  # a random moment of start-up
        ready_at = listener.ready.get(proc.pid)
    else:
        ready_at = listener.wait_ready(proc.pid, 60.0)
        if ready_at is None:
            proc.kill()
            raise SystemExit(f"bench: the daemon never said READY=1; see {log}")
        threading.Event().wait(rng.uniform(0.0, 0.8))  # a random moment of the run
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    return {"during_start": during_start,
            "ready_ms": (ready_at - t_start) * 1000 if ready_at is not None else None,
            "alive_ms": (time.time() - t_start) * 1000,
            "temp_left": len(temp_files(root)), "unreadable": unreadable_outputs(root),
            "integrity": integrity(root)}


def final_state(root: Path) -> dict[str, Any]:
    """What is not fresh after the final run."""
    from keyframed.daemon.snapshot import take_snapshot
    from keyframed.inputs.config import load_settings

    store = Store.for_project(root)
    try:
        snap = take_snapshot(root, load_settings(root, env={}), store)
    finally:
        store.close()
    states = Counter(i.state for i in snap.items)
    return {"artifacts": len(snap.items), "states": dict(states),
            "not_fresh": [i.path for i in snap.items if i.state != "fresh"]}


def run(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    """The whole benchmark inside ``base``."""
    rng = random.Random(args.seed)
    with fake_servers(args.servers, base / "servers", job_seconds=args.job_ms / 1000) as servers:
        root = base / "project"
        generate_project(root, args.scenes, seed=args.seed, backend="comfyui",
                         comfy_urls=[s.url for s in servers])
        write_config(root, servers, approval="auto", max_in_flight=2)
        listener = NotifyListener(base / "notify.sock")
        env = daemon_env(root, NOTIFY_SOCKET=str(base / "notify.sock"))
        log = base / "daemon.log"
        kills = []
        try:
            for n in range(args.kills):
                kills.append(kill_once(root, log, env, listener, rng, during_start=n % 5 == 4))
                kills[-1]["prompts"] = sum(len(s.records.prompts) for s in servers)
                if (n + 1) % 10 == 0:
                    print(f"kill {n + 1}/{args.kills}: {kills[-1]['prompts']} prompts so far",
                          flush=True)
        finally:
            listener.close()
        final = subprocess.run([*CLI, "run", str(root), "--timeout", "600"],
                               env=daemon_env(root), capture_output=True, text=True,
                               timeout=700, check=False)
        for server in servers:
            wait_for(lambda s=server: s.queue_remaining() == 0, 30)  # type: ignore[misc]
        executions: Counter[str] = Counter()
        posts: Counter[str] = Counter()
        for server in servers:
            executions.update(server.records.executions)
            posts.update(p.prompt_id for p in server.records.prompts)
        uploads = Counter((n, u.sha256) for n, s in enumerate(servers) for u in s.records.uploads)
    state = final_state(root)
    return {
        "kills": kills, "final_run": {"code": final.returncode, "stdout": final.stdout.strip()},
        "final": state, "prompts": sum(posts.values()), "distinct_prompts": len(posts),
        "executed_twice": sorted(p for p, c in executions.items() if c > 1),
        "posted_twice": sorted(p for p, c in posts.items() if c > 1),
        "max_uploads_per_file": max(uploads.values(), default=0),
        "temp_left_at_end": temp_files(root), "unreadable_at_end": unreadable_outputs(root),
        "integrity_at_end": integrity(root),
    }


def report(result: dict[str, Any]) -> None:
    """The table and the verdict."""
    kills = result["kills"]
    ready = [k["ready_ms"] for k in kills if k["ready_ms"] is not None]
    lost = len(result["final"]["not_fresh"])
    bad_during = sum(len(k["unreadable"]) for k in kills)
    bad_integrity = sum(1 for k in kills if k["integrity"] != "ok")
    rows: list[list[object]] = [
        ["kills (during start-up)", f"{len(kills)} ({sum(k['during_start'] for k in kills)})"],
        ["prompts accepted / distinct", f"{result['prompts']} / {result['distinct_prompts']}"],
        ["artifacts at the end", f"{result['final']['artifacts']} {result['final']['states']}"],
        ["jobs lost (not fresh at the end)", lost],
        ["jobs executed twice", len(result["executed_twice"])],
        ["prompts posted twice", len(result["posted_twice"])],
        ["unreadable outputs after a kill", bad_during],
        ["unreadable outputs at the end", len(result["unreadable_at_end"])],
        ["kills that left temp files (swept at the next start)",
         sum(1 for k in kills if k["temp_left"])],
        ["temp files left at the end", len(result["temp_left_at_end"])],
        ["integrity_check not ok (after a kill / at the end)",
         f"{bad_integrity} / {0 if result['integrity_at_end'] == 'ok' else 1}"],
        ["most uploads of one file to one server", result["max_uploads_per_file"]],
        ["time to READY=1 p50 / p90 / max ms",
         f"{percentile(ready, 50):.0f} / {percentile(ready, 90):.0f} / "
         f"{max(ready, default=float('nan')):.0f}"],
    ]
    print(table(["measure", "value"], rows))
    sound = (lost == 0 and not result["executed_twice"] and bad_during == 0
             and not result["unreadable_at_end"] and not result["temp_left_at_end"]
             and bad_integrity == 0 and result["integrity_at_end"] == "ok"
             and result["final_run"]["code"] == 0)
    print(f"target: no job lost, no output corrupt, no job executed twice: "
          f"{'met' if sound else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--job-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    if not hasattr(socket, "SO_PASSCRED"):
        sys.exit("bench.crash needs Linux (SO_PASSCRED on the notify socket)")
    started = time.monotonic()
    with scratch("kf-bench-crash-", args.keep) as base:
        result = run(args, base)
    report(result)
    result.update(scenes=args.scenes, servers=args.servers, job_ms=args.job_ms,
                  seconds=round(time.monotonic() - started, 1))
    path = save_results("crash", result)
    print(f"wrote {path} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
