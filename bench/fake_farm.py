"""Shared pieces of the daemon benchmarks: fake ComfyUI servers, projects wired to them, the
real daemon as a subprocess, and small helpers for tables and result files.

The fake servers run in the benchmark's own process (threads), so their timestamps
(``time.time()``) and the benchmark's are on one clock. The daemon is always a separate
process started as ``python -m keyframed ...``, exactly as a user or systemd starts it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.fakecomfy.server import FakeComfy

REPO = Path(__file__).resolve().parents[1]
OBJECT_INFO = REPO / ".." / "shared" / "comfyui" / "object_info.json"
RESULTS = REPO / "bench" / "results"
CLI = [sys.executable, "-m", "keyframed"]


def need_object_info() -> Path:
    """The recorded ComfyUI ``object_info.json`` the fake servers validate against."""
    path = OBJECT_INFO.resolve()
    if not path.is_file():
        sys.exit(f"bench: {path} is missing (the fake ComfyUI needs ../shared/comfyui)")
    return path


@contextmanager
def fake_servers(count: int, base: Path, *, job_seconds: float = 0.0) -> Iterator[list[FakeComfy]]:
    """Start ``count`` fake ComfyUI servers, each with its own folders under ``base``."""
    info = need_object_info()
    servers: list[FakeComfy] = []
    try:
        for n in range(count):
            folder = base / f"comfy{n}"
            folder.mkdir(parents=True, exist_ok=True)
            servers.append(FakeComfy(info, folder, job_seconds=job_seconds).start())
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()


@contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[Path]:
    """A temporary folder, removed afterwards unless ``keep``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"bench: kept {path}")
        else:
            shutil.rmtree(path, ignore_errors=True)


def write_config(root: Path, servers: Sequence[FakeComfy], *, approval: str = "auto",
                 max_in_flight: int = 1, extra: Sequence[str] = ()) -> None:
    """Point the project at the servers, with small images (the fake draws real PNGs)."""
    lines = [f'approval = "{approval}"', "", "[image]", "width = 128", "height = 72", "",
             "[video]", "width = 128", "height = 80", "",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.2", "", *extra, ""]
    for n, server in enumerate(servers):
        lines += ["[[backends]]", f'name = "gpu{n}"', 'kind = "comfyui"', f'url = "{server.url}"',
                  f"max_in_flight = {max_in_flight}", "timeout_s = 120", ""]
    (root / "keyframed.toml").write_text("\n".join(lines), encoding="utf-8")


def daemon_env(root: Path, **extra: str) -> dict[str, str]:
    """The daemon's environment: JSON logs, no user config file."""
    return {**os.environ, "KEYFRAMED_LOG_FORMAT": "json",
            "KEYFRAMED_CONFIG": str(root / "no-user-config"), **extra}


def start_daemon(root: Path, log: Path, *args: str, module: Sequence[str] = (),
                 env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``python -m keyframed <args> DIR`` (or another module) with its output in ``log``."""
    handle = log.open("ab")
    cmd = [sys.executable, "-m", *module] if module else CLI
    try:
        return subprocess.Popen([*cmd, *args, str(root)], stdout=handle, stderr=handle,
                                env=env or daemon_env(root))
    finally:
        handle.close()


def wait_for(predicate: Callable[[], bool], timeout: float, step: float = 0.005) -> bool:
    """Poll ``predicate`` until it holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not predicate():
        if time.monotonic() > deadline:
            return False
        pause.wait(step)
    return True


def read_status(root: Path) -> dict[str, Any]:
    """The root status.json, or {} while it is missing or being replaced."""
    try:
        doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def idle(root: Path) -> bool:
    """True when status.json says nothing is stale, queued or running."""
    doc = read_status(root)
    counts = doc.get("counts", {})
    return bool(doc) and not any(counts.get(s) for s in ("stale", "queued", "running"))


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a live process (Linux /proc), or None where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_at_rest(pid: int, timeout: float = 30.0, window: float = 0.2) -> bool:
    """Wait until the process used (almost) no CPU for ``window`` seconds.

    Status files say "idle" before the pass that wrote them has finished (contact sheets are
    drawn after); a save made then would wait for that work, which is not what a person
    saving into an idle daemon sees. Where /proc is missing this just waits ``window``.
    """
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        pause.wait(window)
        now = cpu_seconds(pid)
        if before is None or now is None or now - before <= 0.011:  # one clock tick
            return True
        before = now
    return False


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table with right-aligned columns (the first left-aligned)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [row[0].ljust(widths[0])]
        parts += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        return "  ".join(parts)

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(r) for r in cells[1:])])


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    return str(value)


def machine() -> dict[str, Any]:
    """Where and when the figures were taken."""
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(),
            # Other work on the machine slows the daemon and the fake servers alike.
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def save_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2) + "\n", encoding="utf-8")
    return path


def stop_daemon(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the daemon and wait; SIGKILL it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
