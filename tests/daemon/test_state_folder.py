"""The state folder under a running daemon (issue 14): a deleted lock file lets no second
daemon in, and a removed ``.keyframed/`` is restored, so nothing built is forgotten."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.test_daemon_process import start_watch, wait_for
from tests.planning import copy_sample

CLI = [sys.executable, "-m", "keyframed"]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYFRAMED_CONFIG": os.devnull + ".none"}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def counts(root: Path) -> dict[str, int]:
    try:
        doc = json.loads((root / "status.json").read_text())
    except (OSError, ValueError):
        return {}
    return dict(doc.get("counts", {}))


def built(root: Path) -> bool:
    return sum(counts(root).get(s, 0) for s in ("fresh", "done")) == 19


def test_deleting_the_lock_file_lets_no_second_daemon_in(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "p")
    daemon = start_watch(root, tmp_path / "watch.log")
    try:
        assert wait_for(lambda: (root / ".keyframed" / "daemon.lock").is_file(), 30)
        (root / ".keyframed" / "daemon.lock").unlink()
        second = cli("run", str(root), "--timeout", "20")
        assert second.returncode == 1, second.stdout + second.stderr
        assert "already working on this project" in second.stderr
        assert wait_for(lambda: built(root), 90), counts(root)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    log = (tmp_path / "watch.log").read_text()
    assert "UNIQUE constraint" not in log and "Traceback" not in log


@pytest.mark.timeout(300)
def test_a_removed_state_folder_is_restored_and_nothing_is_taken_for_a_user_file(
    tmp_path: Path,
) -> None:
    root = copy_sample(tmp_path / "p")
    daemon = start_watch(root, tmp_path / "watch.log")
    try:
        assert wait_for(lambda: built(root), 90), counts(root)
        subprocess.run(["rm", "-rf", str(root / ".keyframed")], check=True)
        # An edit wakes the daemon: scene 3's end expression.
        breakdown = root / "scene-breakdown.md"
        text = breakdown.read_text()
        assert "eyes open, alert" in text
        breakdown.write_text(text.replace("eyes open, alert", "eyes wide, startled"))
        assert wait_for(lambda: (root / ".keyframed" / "state.db").is_file()
                        and "state_folder_vanished" in (tmp_path / "watch.log").read_text(), 60)
        assert until(lambda: all_fresh(root), 90), plan_states(root)
        # No second daemon can start on the new folder either.
        assert cli("run", str(root), "--timeout", "10").returncode == 1
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
    # After a restart too, every output is keyframed's own, none a "user override".
    assert all_fresh(root), plan_states(root)


def until(predicate: Callable[[], bool], seconds: float) -> bool:
    """Poll a slow predicate (it runs the CLI) until it holds or ``seconds`` have passed."""
    deadline = time.monotonic() + seconds
    pause = threading.Event()
    while time.monotonic() < deadline:
        if predicate():
            return True
        pause.wait(0.2)
    return predicate()


def plan_states(root: Path) -> dict[str, str]:
    plan = json.loads(cli("plan", str(root), "--json", "--all").stdout)
    return {item["path"]: item["state"] for item in plan["artifacts"]}


def all_fresh(root: Path) -> bool:
    states = plan_states(root)
    return len(states) == 19 and all(s in ("fresh", "done") for s in states.values())
