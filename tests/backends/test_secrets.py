"""The ComfyUI bearer token (read from the variable ``token_env`` names) is sent to the server
and shown nowhere else: not in logs (also while errors are being logged), not in status files,
not in error messages, not in ``repr`` of the client or the backends, and not in the state
database's bytes.

The server is reached through a small recording TCP proxy, so the test also sees that the
``Authorization`` header really went out (on HTTP requests and on the WebSocket handshake).
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.backends.comfy.client import ComfyClient
from keyframed.backends.comfy.retry import RetryPolicy
from keyframed.backends.native import ComfyBackend
from keyframed.backends.registry import make_backends
from keyframed.daemon.store import Store
from keyframed.errors import ComfyError
from keyframed.handlers.project import StyleFile
from keyframed.inputs.config import load_settings
from keyframed.settings import BackendSettings
from tests.daemon.test_daemon_process import wait_for
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

CLI = [sys.executable, "-m", "keyframed"]
TOKEN_ENV = "KEYFRAMED_COMFYUI_TOKEN"


class RecordingProxy:
    """Forwards TCP connections to a server and keeps every byte the client sent."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sent = bytearray()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    with self._lock:
                        self.sent += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def received(self) -> bytes:
        with self._lock:
            return bytes(self.sent)

    def close(self) -> None:
        self._closed.set()
        self.listener.close()
        with self._lock:
            for sock in self._sockets:
                sock.close()


@pytest.fixture
def token() -> str:
    return f"kf-token-{uuid.uuid4().hex}"


@pytest.fixture
def proxied(fake_comfy_factory: FakeComfyFactory) -> Iterator[tuple[FakeComfy, RecordingProxy]]:
    server = fake_comfy_factory()
    proxy = RecordingProxy(server.port)
    yield server, proxy
    proxy.close()


def forms(token: str) -> list[bytes]:
    """The token as it could end up in bytes: plain, UTF-16 (SQLite can), base64 of it."""
    raw = token.encode()
    return [raw, token.encode("utf-16-le"), base64.b64encode(raw),
            base64.b64encode(b"Bearer " + raw)]


def assert_nowhere(token: str, *texts: str | bytes) -> None:
    for text in texts:
        data = text.encode() if isinstance(text, str) else text
        for form in forms(token):
            assert form not in data


def project(tmp_path: Path, url: str) -> Path:
    """The sample on a ComfyUI reached through the proxy."""
    root = copy_sample(tmp_path / "p")
    lines = ['approval = "auto"', "[image]", "width = 128", "height = 72",
             "[video]", "width = 128", "height = 80",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.2", "max_attempts = 4",
             "[[backends]]", 'name = "gpu0"', 'kind = "comfyui"', f'url = "{url}"',
             "max_in_flight = 2", "timeout_s = 60"]
    (root / "keyframed.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The user's own config names the server too: only then may it be sent the token.
    (root.parent / "user-config.toml").write_text(
        "[[backends]]\n" f'name = "gpu0"\nurl = "{url}"\n', encoding="utf-8")
    return root


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port: int = sock.getsockname()[1]
        return port


def faults_that_log_errors(server: FakeComfy, token: str) -> None:
    """Transient 5xx, a dropped connection, an execution error, and an error page that echoes
    the request's Authorization header (as a misconfigured reverse proxy does)."""
    echo = f"upstream rejected request with header Authorization: Bearer {token}"
    server.faults.fail_next("POST /prompt", n=1, status=502, body=echo)
    server.faults.fail_next("/history/*", n=2, status=503, body={"error": {"message": echo}})
    server.faults.drop_next("GET /object_info", n=1)
    server.faults.fail_next_prompts(1)


def run(root: Path, token: str, *args: str,
        user_config: str = "user-config.toml") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, TOKEN_ENV: token, "KEYFRAMED_LOG_FORMAT": "json",
           "KEYFRAMED_CONFIG": str(root.parent / user_config)}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=180,
                          check=False)


def test_the_token_is_sent_and_shown_nowhere(
    proxied: tuple[FakeComfy, RecordingProxy], tmp_path: Path, token: str
) -> None:
    server, proxy = proxied
    root = project(tmp_path, proxy.url)
    faults_that_log_errors(server, token)
    done = run(root, token, "run", str(root), "--timeout", "150", "-v")
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout, done.stdout + done.stderr[-3000:]
    # Errors were logged (so the check below means something), and none carries the token.
    for event in ("comfy_retry", "job_retry"):
        assert event in done.stderr, event
    status = run(root, token, "status", str(root), "--json")
    plan = run(root, token, "plan", str(root), "--json")
    doctor = run(root, token, "doctor", str(root))
    assert status.returncode == 0 and plan.returncode == 0
    assert_nowhere(token, done.stdout, done.stderr, status.stdout, status.stderr, plan.stdout,
                   plan.stderr, doctor.stdout, doctor.stderr)
    for path in root.rglob("*"):  # status files, outputs, .keyframed/state.db, -wal, -shm
        if path.is_file():
            assert_nowhere(token, path.read_bytes())
    assert "[redacted]" in done.stderr  # the echoed header was scrubbed, not just absent
    # The server did get it, on every request and on the WebSocket handshake.
    sent = proxy.received()
    header = f"Authorization: Bearer {token}".encode().lower()
    requests = [block for block in sent.split(b"\r\n\r\n") if b" HTTP/1.1\r\n" in block]
    assert requests and all(header in block.lower() for block in requests)
    assert any(block.startswith(b"GET /ws") for block in requests)
    assert any(block.startswith(b"POST /prompt") for block in requests)


def test_no_token_sends_no_header(proxied: tuple[FakeComfy, RecordingProxy]) -> None:
    """The header check above can fail: without a token there is no Authorization header."""
    _, proxy = proxied
    with ComfyClient(proxy.url, name="gpu", token=None) as client:
        client.start_listening()
        client.preflight()
        assert wait_for(lambda: client.listening, 10)
    sent = proxy.received().lower()
    assert b"get /object_info" in sent and b"get /ws" in sent
    assert b"authorization:" not in sent


def test_errors_and_reprs_in_process_carry_no_token(
    proxied: tuple[FakeComfy, RecordingProxy], tmp_path: Path, token: str
) -> None:
    server, proxy = proxied
    echo = f"no: Bearer {token}"
    texts: list[str] = []
    # A server that is down, one that echoes the header in a 401 page and in ComfyUI's error
    # shape, and one that answers 500 with it.
    for url, status, body in ((f"http://127.0.0.1:{free_port()}", None, None),
                              (proxy.url, 401, echo),
                              (proxy.url, 400, {"error": {"message": echo, "details": echo}}),
                              (proxy.url, 500, echo)):
        if status is not None:
            server.faults.fail_next("GET /object_info", n=5, status=status, body=body)
        client = ComfyClient(url, name="gpu", token=token, websocket=True,
                             retry=RetryPolicy(attempts=2, sleep=lambda _: None))
        try:
            texts += [repr(client), str(client), repr(vars(client))]
            with pytest.raises(ComfyError) as caught:
                client.preflight()
            error: BaseException | None = caught.value
            while error is not None:  # the whole chain, as a traceback would print it
                texts += [str(error), repr(error), repr(error.args)]
                error = error.__cause__ or error.__context__
        finally:
            client.close()
        server.faults.reset()
    settings = load_settings(tmp_path, env={}, overrides={"backends": [
        {"name": "gpu", "kind": "comfyui", "url": proxy.url}]})
    store = Store(tmp_path / "state.db")
    try:
        backend = ComfyBackend(BackendSettings(name="gpu", kind="comfyui", url=proxy.url),
                               settings, tmp_path, store, "p1", env={TOKEN_ENV: token})
        made = make_backends(settings, tmp_path, store, StyleFile())
        texts += [repr(backend), repr(vars(backend)), str(backend.health()), repr(made)]
        backend.close()
        for other in made:
            other.close()
    finally:
        store.close()
    assert texts
    assert_nowhere(token, *texts)
    assert any("[redacted]" in t for t in texts)


def test_a_server_only_the_project_names_gets_no_token(
    proxied: tuple[FakeComfy, RecordingProxy], tmp_path: Path, token: str
) -> None:
    # A project folder received from someone else names its own server: the user's token
    # from the environment must not go there (issue 14).
    _, proxy = proxied
    root = project(tmp_path, proxy.url)
    done = run(root, token, "run", str(root), "--timeout", "150",
               user_config="no-such-user-config.toml")
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout, done.stdout + done.stderr[-3000:]
    assert b"Authorization" not in proxy.received()
    assert_nowhere(token, proxy.received(), done.stdout, done.stderr)
    assert "token_withheld" in done.stderr
