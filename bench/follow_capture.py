"""A terminal capture of ``keyframed status --follow`` while ``keyframed run`` works (issue 12).

``python -m bench.follow_capture [--job-seconds 4] [--out docs/status-follow.txt]``

One fake ComfyUI (``tests/fakecomfy``, slow jobs) in this process; ``keyframed run DIR`` and
``keyframed status --follow DIR`` as separate processes, exactly as a person starts them, the
second on a pseudo-terminal (so ``rich`` draws its live view, progress bars included). The
frames it drew are cut apart at rich's cursor moves, stripped of ANSI codes, and every few
seconds' frame is kept, each headed with the time since the run started.
"""

from __future__ import annotations

import argparse
import codecs
import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path

from bench.fake_farm import CLI, daemon_env, fake_servers, scratch, start_daemon, write_config
from tests.fakecomfy.render import h264_bytes
from tests.planning import copy_sample

COLUMNS, ROWS = 180, 60
# rich's Live moves the cursor back up over the last frame before drawing the next one.
_FRAME_START = re.compile(r"(?:\x1b\[2K\x1b\[1A)+\x1b\[2K|\r\x1b\[2K")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def follow_on_a_terminal(root: Path) -> tuple[int, int]:
    """Start ``keyframed status --follow DIR`` on a pseudo-terminal: (pid, master fd)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the pty is its terminal
        env = {**daemon_env(root), "COLUMNS": str(COLUMNS), "LINES": str(ROWS),
               "TERM": "xterm-256color"}
        os.execvpe(CLI[0], [*CLI, "status", "--follow", str(root)], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    return pid, fd


def read_until(fd: int, done: float, chunks: list[tuple[float, bytes]], start: float) -> None:
    """Read what the terminal shows until the monotonic time ``done`` (or its end)."""
    while time.monotonic() < done:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        chunks.append((time.monotonic() - start, data))


def _plain(drawn: str) -> str:
    """A frame as plain text: no ANSI codes, no trailing blanks."""
    lines = _ANSI.sub("", drawn).replace("\r", "").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


def frames(chunks: list[tuple[float, bytes]]) -> list[tuple[float, str]]:
    """(seconds, plain text) of every frame drawn, consecutive repeats dropped."""
    out: list[tuple[float, str]] = []
    pending, at = "", 0.0
    # One decoder across reads: a character may be split between two of them.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for when, data in chunks:
        pending += decoder.decode(data)
        parts = _FRAME_START.split(pending)
        for part in parts[:-1]:
            text = _plain(part)
            if text and (not out or out[-1][1] != text):
                out.append((at, text))
        pending, at = parts[-1], when
    text = _plain(pending)
    if text and (not out or out[-1][1] != text):
        out.append((at, text))
    return out


_PERCENT = re.compile(r"━ *([0-9]{1,3})%")


def _midway(text: str) -> bool:
    """True when a running job's bar is neither empty nor full (the bar is worth showing)."""
    return any(10 <= int(m.group(1)) <= 90 for m in _PERCENT.finditer(text))


def pick(drawn: list[tuple[float, str]], every: float) -> list[tuple[float, str]]:
    """About one frame per ``every`` seconds (one with a bar midway where the window has one),
    and the last one."""
    kept: list[tuple[float, str]] = []
    window: list[tuple[float, str]] = []
    for when, text in drawn:
        if window and when - window[0][0] >= every:
            kept.append(next((f for f in window if _midway(f[1])), window[0]))
            window = []
        window.append((when, text))
    if window:
        kept.append(next((f for f in window if _midway(f[1])), window[0]))
    if drawn and kept[-1] != drawn[-1]:
        kept.append(drawn[-1])
    return kept


def main(argv: list[str] | None = None) -> int:
    """Run the capture and write it."""
    parser = argparse.ArgumentParser(prog="python -m bench.follow_capture", description=__doc__)
    parser.add_argument("--job-seconds", type=float, default=4.0)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between frames kept")
    parser.add_argument("--out", type=Path, default=Path("docs/status-follow.txt"))
    args = parser.parse_args(argv)
    with scratch("kf-follow-") as base, fake_servers(1, base, job_seconds=args.job_seconds) \
            as servers:
        # A real h264 clip as every scene video (the fake's own MP4s are only shaped like
        # one), so the film at the end is made of videos, not of stills.
        servers[0].faults.video_bytes = h264_bytes(
            [(40 * (n % 6), 90, 200 - 20 * (n % 8)) for n in range(40)])
        root = copy_sample(base / "samurai")
        write_config(root, servers)
        start = time.monotonic()
        run = start_daemon(root, base / "run.log", "run")
        pid, fd = follow_on_a_terminal(root)
        chunks: list[tuple[float, bytes]] = []
        while run.poll() is None:
            read_until(fd, time.monotonic() + 1.0, chunks, start)
        read_until(fd, time.monotonic() + 2.0, chunks, start)  # the finished state, drawn
        os.kill(pid, signal.SIGINT)
        read_until(fd, time.monotonic() + 3.0, chunks, start)
        os.waitpid(pid, 0)
        os.close(fd)
        summary = (base / "run.log").read_text(encoding="utf-8", errors="replace")
    kept = pick(frames(chunks), args.every)
    lines = [f"$ keyframed run DIR &   # one fake ComfyUI, {args.job_seconds} s a job",
             "$ keyframed status --follow DIR", ""]
    for when, text in kept:
        lines += [f"--- {when:5.1f} s after the run started ---", text.replace(str(root), "DIR"),
                  ""]
    last = [line for line in summary.splitlines()
            if line.startswith(("keyframed:", "  film:"))]
    lines += [f"$ # keyframed run ended (exit {run.returncode}):", *last[-2:]]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {len(kept)} frames of {len(frames(chunks))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
