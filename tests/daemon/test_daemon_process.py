"""The real daemon process: SIGTERM while jobs run, kill -9 at random moments, and a restart
that carries on. The ComfyUI-compatible server runs in the test process; the daemon reaches it
over HTTP."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from keyframed.daemon.store import Store
from tests.comfy_project import comfy_project, submission_counts
from tests.fakecomfy.fixtures import FakeComfyFactory

CLI = [sys.executable, "-m", "keyframed"]


def start_watch(root: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KEYFRAMED_LOG_FORMAT": "json", "KEYFRAMED_CONFIG": str(root / "none")}
    handle = log.open("ab")
    return subprocess.Popen([*CLI, "watch", str(root)], stdout=handle, stderr=handle, env=env)


def run_to_end(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "none")}
    return subprocess.run([*CLI, "run", str(root), "--timeout", "120"], capture_output=True,
                          text=True, env=env, timeout=180, check=False)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    pause = threading.Event()
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return True
        pause.wait(0.02)
    return predicate()


def _status(root: Path) -> str:
    try:
        return (root / "status.json").read_text(encoding="utf-8")
    except OSError:
        return ""


def assert_sound(root: Path) -> None:
    """No partial file, every image readable, the store intact."""
    assert not list(root.rglob(".kf-tmp-*"))
    for png in root.glob("scene-*/**/*.png"):
        with Image.open(png) as image:
            image.verify()
    store = Store.for_project(root)
    try:
        assert store.integrity_check() == "ok"
    finally:
        store.close()


def test_sigterm_while_jobs_run_exits_quickly_and_the_next_start_carries_on(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    server = fake_comfy_factory(job_seconds=2.0)
    root = comfy_project(tmp_path / "p", [server])
    proc = start_watch(root, tmp_path / "watch.log")
    try:
        log = (tmp_path / "watch.log")
        assert wait_for(lambda: len(server.records.prompts) >= 1), log.read_text()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    server.faults.job_seconds = 0.0
    done = run_to_end(root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fresh" in done.stdout
    assert max(submission_counts(server).values()) == 1
    assert_sound(root)


def test_kill_9_at_random_moments_loses_nothing_and_runs_nothing_twice(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    # Jobs long enough that the build spans several kills (with 50 ms jobs a fast daemon was
    # done before the third kill, and the kills tested nothing).
    server = fake_comfy_factory(job_seconds=0.25)
    root = comfy_project(tmp_path / "p", [server], max_in_flight=2)
    rng = random.Random(20261124)
    log = tmp_path / "watch.log"
    seen_at_kill = []
    for _ in range(20):
        proc = start_watch(root, log)
        wait_for(lambda proc=proc: f'"pid": {proc.pid}' in _status(root), timeout=20)  # type: ignore[misc]
        threading.Event().wait(rng.uniform(0.0, 0.5))  # a random moment is the point here
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        seen_at_kill.append(len(server.records.prompts))
    # The kills landed while work was under way, not only before or after it.
    assert len({n for n in seen_at_kill if 0 < n < 17}) >= 3, seen_at_kill
    done = run_to_end(root)
    assert done.returncode == 0, done.stdout + done.stderr
    executions = server.records.executions
    assert executions and max(executions.values()) == 1, executions
    assert max(submission_counts(server).values()) == 1
    # 18 by jobs and 1 local copy; a job whose output reached the output cache but not its
    # record before a kill comes back from the cache as fresh (as in test_disk_full).
    last = next(line for line in done.stdout.splitlines() if line.startswith("keyframed: "))
    assert last.startswith("keyframed: 19 artifacts: "), last
    assert {part.split(" ")[1] for part in last.rsplit(": ", 1)[1].split(", ")} <= {
        "done", "fresh"}, last
    assert len(executions) == 18, executions  # each of the 18 ran (once), cached or not
    assert_sound(root)


def test_a_second_daemon_on_the_same_project_is_refused(tmp_path: Path) -> None:
    from tests.planning import copy_sample

    root = copy_sample(tmp_path / "p")
    first = start_watch(root, tmp_path / "first.log")
    try:
        assert wait_for(lambda: f'"pid": {first.pid}' in _status(root), timeout=30)
        env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "none")}
        second = subprocess.run([*CLI, "run", str(root)], capture_output=True, text=True,
                                env=env, timeout=60, check=False)
        assert second.returncode == 1
        assert f"pid {first.pid}" in second.stderr and "already working" in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=10)
