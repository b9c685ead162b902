"""Edit-to-``POST /prompt`` latency for each editor save pattern (DESIGN.md section 9).

``python -m bench.latency [--reps 30] [--profile]``

The real daemon (``python -m keyframed watch``) runs against a fake ComfyUI server in this
process, on a copy of the sample project, built first with ``keyframed run``, then set to
``approval = "manual"`` with the assets approved (so a keyframe change does not go on to a
video). Then,
each repetition rewrites scene 1's end-frame expression with a new text, using one editor's
exact save pattern (in-place, temp + rename, vim, emacs, JetBrains, gedit, sed, cp), which
makes exactly one keyframe stale. The latency of a save is from ``t0``, taken just before
the save's first file operation, to the server's receipt of the ``POST /prompt`` for that
keyframe (``time.time()`` in the server, same process, same clock). Every text is new: a
text used before would give a prompt id ComfyUI already has in its history, and the daemon
would fetch the old result instead of posting.

With ``--profile`` a second, shorter round runs the daemon through :mod:`bench.trace_watch`,
which timestamps the stages inside the daemon (first file event, wake, pass start, snapshot,
dispatch, worker start, POST) and prints where the time goes.

Targets: p50 <= 150 ms, p99 <= 500 ms.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.fake_farm import (
    CLI,
    daemon_env,
    fake_servers,
    idle,
    percentile,
    save_results,
    scratch,
    start_daemon,
    stop_daemon,
    table,
    wait_at_rest,
    wait_for,
    write_config,
)
from tests.comfy_project import PREFIX
from tests.daemon.test_daemon_live_edits import save_like_sed
from tests.daemon.test_watcher_editors import SAVES
from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

Save = Callable[[Path, bytes], None]
# The sed of test_watcher_editors runs a fixed substitution; this benchmark needs the bytes.
EDITORS: dict[str, Save] = {**SAVES, "sed": save_like_sed}
TARGET = "scene-01/keyframe-end"
P50_MS, P99_MS = 150.0, 500.0


def edited(text: str, expression: str) -> str:
    """The breakdown with scene 1's end-frame expression replaced."""
    lines = text.split("\n")
    scene = next(n for n, line in enumerate(lines) if line.startswith("## Scene 1:"))
    end = next(n for n in range(scene, len(lines)) if lines[n].startswith("**End Frame**"))
    for n in range(end, len(lines)):
        if lines[n].startswith("- expression: "):
            lines[n] = f"- expression: {expression}"
            return "\n".join(lines)
    raise SystemExit("bench: scene 1's end-frame expression not found in the breakdown")


class Rig:
    """A project, its server and a running daemon."""

    def __init__(self, root: Path, server: FakeComfy, proc: subprocess.Popen[bytes]) -> None:
        self.root = root
        self.server = server
        self.proc = proc
        self.breakdown = root / "scene-breakdown.md"
        self.serial = 0

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the daemon is idle and the server has nothing queued."""
        if not wait_for(lambda: idle(self.root) and self.server.queue_remaining() == 0, timeout):
            raise SystemExit("bench: the daemon did not settle; see the daemon log")
        wait_at_rest(self.proc.pid, timeout)

    def one_save(self, editor: str) -> dict[str, Any]:
        """Save a new expression with ``editor``; return the timings of that save."""
        self.serial += 1
        data = edited(self.breakdown.read_text(encoding="utf-8"),
                      f"pensive, take {self.serial}").encode()
        before = len(self.server.records.prompts)
        t0 = time.time()
        EDITORS[editor](self.breakdown, data)
        t1 = time.time()
        if not wait_for(lambda: len(self.server.records.prompts) > before, 10.0, step=0.002):
            return {"editor": editor, "t0": t0, "save_ms": (t1 - t0) * 1000, "latency_ms": None}
        first = self.server.records.prompts[before]
        what = artifact_of(first.body)
        self.settle()
        return {"editor": editor, "t0": t0, "save_ms": (t1 - t0) * 1000,
                "latency_ms": (first.received_at - t0) * 1000,
                "artifact": what.removesuffix(".png")}


def artifact_of(body: dict[str, Any]) -> str:
    """The artifact a prompt body is for (from its SaveImage filename_prefix)."""
    for node in body["prompt"].values():
        prefix = node.get("inputs", {}).get("filename_prefix")
        if isinstance(prefix, str) and (match := PREFIX.match(prefix)):
            return match.group(1)
    return "?"


def build_first(root: Path, servers: list[FakeComfy], quiet: int | None = None) -> None:
    """Build everything with ``keyframed run``, then switch to manual approval.

    With the assets approved as built and no scene approvals, a keyframe change does not go
    on to a video, so each repetition costs exactly one job.
    """
    write_config(root, servers)
    for args in (["run", str(root), "--timeout", "120"], ["approve", str(root), "assets"]):
        done = subprocess.run([*CLI, *args], env=daemon_env(root), capture_output=True,
                              text=True, timeout=180, check=False)
        if done.returncode != 0:
            raise SystemExit(f"bench: keyframed {args[0]} failed:\n{done.stdout}{done.stderr}")
        extra = ["[watch]", f"quiet_ms = {quiet}"] if quiet is not None else []
        write_config(root, servers, approval="manual", extra=extra)


def run_round(base: Path, reps: int, seed: int, *, profile: bool,
              quiet: int | None = None) -> tuple[list[dict[str, Any]], Path]:
    """Start a server and a daemon, build, then time ``reps`` saves per editor."""
    with fake_servers(1, base / "servers") as servers:
        server = servers[0]
        root = copy_sample(base / "project")
        build_first(root, servers, quiet)
        log = base / "daemon.log"
        env = daemon_env(root)
        trace = base / "trace.jsonl"
        if profile:
            env["KEYFRAMED_BENCH_TRACE"] = str(trace)
        module = ("bench.trace_watch",) if profile else ()
        proc = start_daemon(root, log, "watch", module=module, env=env)
        rig = Rig(root, server, proc)
        try:
            rig.settle()
            order = [e for e in EDITORS for _ in range(reps)]
            random.Random(seed).shuffle(order)  # no pattern always follows another
            pause = threading.Event()
            samples = []
            for n, editor in enumerate(order):
                pause.wait(random.Random(seed + n).uniform(0.0, 0.3))  # off any daemon rhythm
                samples.append(rig.one_save(editor))
                if proc.poll() is not None:
                    raise SystemExit(f"bench: the daemon exited; see {log}")
        finally:
            stop_daemon(proc)
    return samples, trace


def summarise(samples: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """p50/p90/p99/max per editor (and over all), in ms."""
    out = {}
    for editor in [*EDITORS, "all"]:
        got = [s["latency_ms"] for s in samples
               if s["latency_ms"] is not None and editor in (s["editor"], "all")]
        missed = sum(1 for s in samples
                     if s["latency_ms"] is None and editor in (s["editor"], "all"))
        other = sum(1 for s in samples if s.get("artifact", TARGET) != TARGET
                    and editor in (s["editor"], "all"))
        out[editor] = {"n": len(got), "missed": missed, "other": other, "p50": percentile(got, 50),
                       "p90": percentile(got, 90), "p99": percentile(got, 99),
                       "max": max(got, default=float("nan"))}
    return out


def print_summary(summary: dict[str, dict[str, float]]) -> None:
    """The per-editor table."""
    rows = [[e, int(s["n"]), int(s["missed"]), int(s["other"]), s["p50"], s["p90"], s["p99"],
             s["max"]] for e, s in summary.items()]
    print(table(["save pattern", "n", "no POST", "other job", "p50 ms", "p90 ms", "p99 ms",
                 "max ms"], rows))
    overall = summary["all"]
    print(f"targets: p50 <= {P50_MS:g} ms: {'met' if overall['p50'] <= P50_MS else 'MISSED'}; "
          f"p99 <= {P99_MS:g} ms: {'met' if overall['p99'] <= P99_MS else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=30, help="saves per pattern (30)")
    parser.add_argument("--profile", action="store_true",
                        help="also run a traced round and show where the time goes")
    parser.add_argument("--profile-reps", type=int, default=8, help="saves per pattern traced")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quiet-ms", type=int, default=None,
                        help="the project's [watch] quiet_ms (default: keyframed's own)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with scratch("kf-bench-latency-", args.keep) as base:
        samples, _ = run_round(base / "plain", args.reps, args.seed, profile=False,
                               quiet=args.quiet_ms)
        summary = summarise(samples)
        print(f"edit -> POST /prompt, real daemon, {args.reps} saves per pattern "
              f"(quiet window {args.quiet_ms or quiet_ms()} ms)")
        print_summary(summary)
        result: dict[str, Any] = {"reps": args.reps, "quiet_ms": args.quiet_ms or quiet_ms(),
                                  "summary": summary, "samples": samples,
                                  "targets_ms": {"p50": P50_MS, "p99": P99_MS}}
        if args.profile:
            from bench.trace_watch import stage_table

            traced, trace = run_round(base / "traced", args.profile_reps, args.seed + 1,
                                      profile=True, quiet=args.quiet_ms)
            stages = stage_table(traced, trace)
            result["profile"] = stages
    result["seconds"] = round(time.monotonic() - started, 1)
    path = save_results("latency", result)
    print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path} "
          f"in {result['seconds']} s")
    return 0


def quiet_ms() -> int:
    """The daemon's default debounce window."""
    from keyframed.settings import Settings

    return Settings().watch.quiet_ms


if __name__ == "__main__":
    sys.exit(main())
