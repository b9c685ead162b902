"""``keyframed status --follow`` on a real terminal (issue 12): while ``keyframed run`` works
against the ComfyUI-compatible test server, the live view shows the daemon running, a
progress bar for the running job with its place on the server, an ETA that says which jobs
it cannot time yet, and, once the run ends, the idle state and the film; Ctrl-C ends it with
exit 0 and no traceback. Both are real processes; the view is read from a pseudo-terminal, as
a person's terminal would show it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.follow_capture import follow_on_a_terminal, frames, read_until
from tests.comfy_project import comfy_project
from tests.fakecomfy.fixtures import FakeComfyFactory


def wait_for_frame(fd: int, chunks: list[tuple[float, bytes]], start: float,
                   wanted: tuple[str, ...], timeout: float) -> str | None:
    """The first frame drawn that holds every one of ``wanted`` (None after ``timeout``)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        read_until(fd, min(end, time.monotonic() + 0.5), chunks, start)
        for _, text in frames(chunks):
            if all(w in text for w in wanted):
                return text
    return None


def test_follow_shows_progress_while_run_works_and_the_end(
        fake_comfy_factory: FakeComfyFactory, tmp_path: Path) -> None:
    server = fake_comfy_factory(job_seconds=0.8)
    root = comfy_project(tmp_path / "p", [server])
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "none")}
    with (tmp_path / "run.log").open("wb") as log:
        run = subprocess.Popen([sys.executable, "-m", "keyframed", "run", str(root)],
                               stdout=log, stderr=log, env=env)
    start = time.monotonic()
    pid, fd = follow_on_a_terminal(root)
    chunks: list[tuple[float, bytes]] = []
    try:
        # A first run: until a template's first job ends, its jobs have no measured duration,
        # and the headline says the ETA leaves them out.
        busy = wait_for_frame(fd, chunks, start, ("daemon: running", "running", "━", "%",
                                                  "on GPU", "never_built", "not yet timed)"),
                              timeout=90)
        assert busy is not None, frames(chunks)[-1:] or "nothing drawn"
        assert "backend gpu0 (comfyui): up" in busy
        assert run.wait(timeout=120) == 0, (tmp_path / "run.log").read_text()
        # A frame is read as it arrives: wait for one drawn down to its last row.
        idle = wait_for_frame(fd, chunks, start,
                              ("daemon: idle", "film: film.mp4", "scene-03/video.mp4"), timeout=30)
        assert idle is not None, frames(chunks)[-1:]
        assert "18 done, 1 fresh" in idle and "scene-03/video.mp4" in idle
        assert "ETA" not in idle.splitlines()[0], idle
        os.kill(pid, signal.SIGINT)
        read_until(fd, time.monotonic() + 5, chunks, start)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert "Traceback" not in b"".join(c for _, c in chunks).decode(errors="replace")
    finally:
        if run.poll() is None:
            run.kill()
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)
