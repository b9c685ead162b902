"""The real ``comfy-api-proxy`` as a process in front of a fake ComfyUI, for the v2 tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

CLI = [sys.executable, "-m", "keyframed"]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


class ApiProxy:
    """``comfy-api-proxy run`` on a fixed port (so a restart keeps the URL)."""

    def __init__(self, comfy: FakeComfy, state_dir: Path | None = None) -> None:
        self.comfy = comfy
        self.state_dir = state_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The v2 surface's base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> ApiProxy:
        """Start the proxy and poll ``/api/v2/health`` until it answers (or fail)."""
        exe = shutil.which("comfy-api-proxy", path=os.path.dirname(sys.executable))
        assert exe, "comfy-api-proxy is not installed (pip install -e '.[test]')"
        args = [exe, "run", "--comfyui", self.comfy.url, "--port", str(self.port)]
        if self.state_dir is not None:
            args += ["--state-dir", str(self.state_dir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.proc.stderr.read() if self.proc.stderr else ""
            try:
                if httpx.get(self.url + "/api/v2/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling a starting process, bounded by the deadline
        raise AssertionError(f"comfy-api-proxy did not answer on {self.url} in {timeout}s")

    def stop(self) -> None:
        """Stop the proxy process this helper started."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def v2_project(dest: Path, url: str, *, max_in_flight: int = 2, extra: str = "",
               retry_max_s: float = 0.2) -> Path:
    """A copy of the sample whose only backend is a ``comfy-api`` surface at ``url``."""
    root = copy_sample(dest)
    lines = ['approval = "auto"', "[image]", "width = 128", "height = 72",
             "[video]", "width = 128", "height = 80",
             "[run]", "retry_initial_s = 0.05", f"retry_max_s = {retry_max_s}", "max_attempts = 8",
             "[[backends]]", 'name = "cloud"', 'kind = "comfy-api"', f'url = "{url}"',
             f"max_in_flight = {max_in_flight}", "timeout_s = 60", extra]
    (root / "keyframed.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def run_cli(root: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``keyframed ARGS`` as a real process, user config off."""
    full = {**os.environ, "KEYFRAMED_CONFIG": str(root / "no-user-config.toml"), **(env or {})}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=full,
                          timeout=timeout, check=False)
