"""A large project under systemd: READY=1 comes once the first plan is made, before the first
pass has written every scene's status file and sheet, and SIGTERM right after it ends that pass
between two steps, with code 0 and root status.json saying stopped (README "Running as a
service"; bench/startup.py measures the same at 5,000 scenes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import gen
from bench.startup import Notifications, listen
from tests.daemon.test_daemon_process import wait_for

SCENES = 400  # the rest of the first pass takes seconds here, the plan well under that


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    gen.generate_project(root, SCENES, seed=0)
    return root


class Watch:
    """``keyframed watch`` as systemd starts it, with a fake ``$NOTIFY_SOCKET``."""

    def __init__(self, root: Path, work: Path) -> None:
        self.root = root
        self.log = work / "watch.log"
        self.notes: Notifications = listen(work / "notify.sock")
        env = {**os.environ, "NOTIFY_SOCKET": str(work / "notify.sock"),
               "WATCHDOG_USEC": "1000000", "KEYFRAMED_LOG_FORMAT": "json",
               "KEYFRAMED_CONFIG": str(work / "none")}
        env.pop("WATCHDOG_PID", None)
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen([sys.executable, "-m", "keyframed", "watch", str(root)],
                                         stdout=handle, stderr=handle, env=env)

    def events(self) -> list[str]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        return [json.loads(line)["event"] for line in lines if line.startswith("{")]

    def ready(self) -> bool:
        return self.notes.first("READY=1") is not None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.notes.sock.close()


@pytest.fixture()
def watch(project: Path, tmp_path: Path) -> Iterator[Watch]:
    w = Watch(project, tmp_path)
    yield w
    w.close()


def _root_state(root: Path) -> str:
    return str(json.loads((root / "status.json").read_text(encoding="utf-8"))["daemon"]["state"])


def test_ready_comes_before_the_first_pass_is_over(watch: Watch) -> None:
    assert wait_for(watch.ready, timeout=120), watch.log.read_text()
    assert wait_for(lambda: "first_pass_done" in watch.events(), timeout=300)
    events = watch.events()
    # Logged right after READY=1 was sent, and before the pass wrote the scenes' files.
    assert events.index("daemon_ready") < events.index("first_pass_done")
    ready_at = watch.notes.first("READY=1")
    watching_at = watch.notes.first("STATUS=watching")
    assert ready_at is not None and watching_at is not None and ready_at < watching_at
    # The watchdog was fed during the pass too, not only between passes.
    assert any(ready_at <= t <= watching_at for t in watch.notes.times("WATCHDOG=1"))
    assert len(list(watch.root.glob("scene-*/status.json"))) == SCENES
    watch.proc.send_signal(signal.SIGTERM)
    assert watch.proc.wait(timeout=60) == 0
    assert _root_state(watch.root) == "stopped"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_right_after_ready_ends_the_first_pass_early(watch: Watch, signum: int) -> None:
    assert wait_for(watch.ready, timeout=120), watch.log.read_text()
    watch.proc.send_signal(signum)
    assert watch.proc.wait(timeout=60) == 0
    events = watch.events()
    assert "pass_stopped" in events and "first_pass_done" not in events
    assert "daemon_stopped" in events and "reconcile_failed" not in events
    # Cut short: not every scene got its status file, and none is half-written.
    written = list(watch.root.glob("scene-*/status.json"))
    assert len(written) < SCENES
    for path in written:
        assert json.loads(path.read_text(encoding="utf-8"))["format"] == 1
    assert not list(watch.root.rglob(".kf-tmp-*"))
    assert _root_state(watch.root) == "stopped"  # not "running" with a dead pid
