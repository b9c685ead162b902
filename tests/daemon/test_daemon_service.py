"""The daemon as systemd runs it: READY=1 and watchdog pings over $NOTIFY_SOCKET, STOPPING=1 on
SIGTERM, SIGHUP reloads the configuration, JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from tests.daemon.test_daemon_process import wait_for
from tests.planning import copy_sample


def _listen(path: Path) -> tuple[socket.socket, list[str]]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(0.2)
    got: list[str] = []

    def pump() -> None:
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    threading.Thread(target=pump, daemon=True).start()
    return sock, got


def test_notify_watchdog_reload_and_stop(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "p")
    sock, got = _listen(tmp_path / "notify.sock")
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"),
           "WATCHDOG_USEC": "400000", "KEYFRAMED_LOG_FORMAT": "json",
           "KEYFRAMED_CONFIG": str(tmp_path / "none")}
    log = (tmp_path / "log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "keyframed", "watch", str(root)],
                            stdout=log, stderr=log, env=env)
    try:
        assert wait_for(lambda: any("READY=1" in m for m in got), timeout=30)
        assert wait_for(lambda: sum("WATCHDOG=1" in m for m in got) >= 2, timeout=10)
        text = (root / "keyframed.toml").read_text(encoding="utf-8")
        (root / "keyframed.toml").write_text(text.replace('approval = "auto"',
                                                          'approval = "manual"'))
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: any("RELOADING=1" in m for m in got), timeout=10)
        assert wait_for(lambda: b"config_reloaded" in (tmp_path / "log").read_bytes(),
                        timeout=10)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert wait_for(lambda: any("STOPPING=1" in m for m in got), timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()
        log.close()
    lines = (tmp_path / "log").read_text(encoding="utf-8").splitlines()
    events = [json.loads(line)["event"] for line in lines if line.startswith("{")]
    assert "daemon_started" in events and "daemon_stopped" in events
    status = json.loads((root / "status.json").read_text(encoding="utf-8"))
    assert status["daemon"]["state"] == "stopped"
