"""Soak: the real daemon under random edits and random ComfyUI faults, then a clean comparison.

``python -m bench.soak [--duration 3600] [--edit-every 1.0] [--scenes N] [--seed S]``

A fake ComfyUI runs in this process; ``python -m keyframed watch DIR`` runs as a subprocess on
a copy of the sample project (or a :mod:`bench.gen` project with ``--scenes``). For the whole
duration a driver makes a random edit about every ``--edit-every`` seconds (expression text,
asset descriptions, reference image bytes, retry markers, touches that change nothing) and an
injector makes the server misbehave every few seconds (5xx answers, dropped connections,
answers lost after the work was done, a restart that forgets the queue, an execution error);
every fault is transient, so the end state must be fully fresh. Meanwhile the daemon's RSS and
open file descriptors are sampled (``/proc``) and the status files are checked against
``keyframed/schemas/status.schema.json``.

Then the edits stop, the faults are cleared, and the daemon is waited for until idle. Measured
and checked:

* idle CPU: the daemon's user+system CPU over 5 s of idle (target < 1 %);
* leaks: RSS and fd count in the second half of the run against the first (+20 MB, +20 fds);
* status files: every sample valid against the schema;
* the end state: a fresh copy of the final inputs, at the same path, built from scratch (with
  each retried keyframe taken to the same take) gives the same artifacts, all fresh, with the
  same fingerprints and the same output bytes.

Results go to ``bench/results/soak.json`` (series included). :func:`run_soak` is what
``tests/daemon/test_soak.py`` runs, for a minute.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import os
import random
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
from PIL import Image, ImageDraw

from bench.fake_farm import CLI, cpu_seconds, daemon_env, wait_for
from keyframed.daemon.loop import Reconciler
from keyframed.inputs.config import load_settings
from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((REPO / "keyframed" / "schemas" / "status.schema.json").read_text("utf-8"))
MB = 1 << 20
SCENE_DIR = re.compile(r"scene-[0-9]+")
EXPRESSIONS = ("calm", "stern, focused", "smiling", "eyes closed", "surprised", "tired",
               "determined, jaw set", "peaceful")
DESCRIPTIONS = ("weathered", "in the rain", "at dawn", "with red accents", "minimal",
                "richly detailed", "")
EDIT_WEIGHTS = {"expression": 3, "description": 2, "image": 2, "retry": 1, "touch": 2}
FAULT_WEIGHTS = {"5xx": 4, "drop": 2, "lost_answer": 1, "exec_error": 1, "restart": 0.5}


@dataclass
class SoakOptions:
    """How long and how hard.

    Attributes:
        duration: seconds of edits and faults.
        edit_every: mean seconds between edits (each wait is 0.5x to 1.5x this).
        fault_every: mean seconds between faults.
        job_seconds: wall time of each fake ComfyUI job.
        sample_every: seconds between RSS/fd samples.
        status_every: seconds between status-file checks.
        settle_timeout: the most seconds to wait for the daemon to be idle at the end.
        idle_window: seconds over which idle CPU is measured.
        seed: the random edits and faults follow from it.
    """

    duration: float = 3600.0
    edit_every: float = 1.0
    fault_every: float = 4.0
    job_seconds: float = 0.05
    sample_every: float = 1.0
    status_every: float = 3.0
    settle_timeout: float = 180.0
    idle_window: float = 5.0
    seed: int = 0


@dataclass
class Series:
    """Samples taken while the soak runs (seconds since its start)."""

    rss: list[tuple[float, int]] = field(default_factory=list)
    fds: list[tuple[float, int]] = field(default_factory=list)
    status_checks: int = 0
    status_errors: list[str] = field(default_factory=list)


# -- the project ----------------------------------------------------------------------------------


def prepare_project(root: Path, server: FakeComfy, *, scenes: int | None = None,
                    seed: int = 0) -> Path:
    """The sample (or a generated project) wired to ``server``; every fault stays transient."""
    if scenes is None:
        copy_sample(root)
    else:
        from bench.gen import generate_project

        generate_project(root, scenes, seed=seed)
    lines = ['approval = "auto"', "", "[image]", "width = 128", "height = 72", "",
             "[video]", "width = 128", "height = 80", "",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.5", "max_attempts = 50",
             "lost_resubmits = 50", "",
             "[[backends]]", 'name = "gpu0"', 'kind = "comfyui"', f'url = "{server.url}"',
             "max_in_flight = 2", "timeout_s = 60", ""]
    (root / "keyframed.toml").write_text("\n".join(lines), encoding="utf-8")
    return root


def plan_json(root: Path) -> dict[str, Any]:
    """``keyframed plan DIR --json --all`` (it changes nothing)."""
    done = subprocess.run([*CLI, "plan", str(root), "--json", "--all"], capture_output=True,
                          text=True, env=daemon_env(root), timeout=120, check=False)
    if done.returncode not in (0, 1) or not done.stdout.strip():
        raise RuntimeError(f"plan failed: {done.stderr[-2000:]}")
    plan: dict[str, Any] = json.loads(done.stdout)
    return plan


def user_images(root: Path, artifacts: set[str]) -> list[Path]:
    """Reference images the user supplied (under assets/, not made by the daemon)."""
    return sorted(p for p in (root / "assets").rglob("*.png")
                  if p.relative_to(root).as_posix() not in artifacts)


# -- edits ----------------------------------------------------------------------------------------


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.soak-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _png(rng: random.Random, size: tuple[int, int]) -> bytes:
    colour = tuple(rng.randrange(256) for _ in range(3))
    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    x, y = rng.randrange(size[0] // 2), rng.randrange(size[1] // 2)
    draw.ellipse((x, y, x + size[0] // 3, y + size[1] // 3), fill=(255 - colour[0], 90, 40))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class Driver:
    """Random edits of the kinds a person makes, all to user-owned files."""

    def __init__(self, root: Path, plan: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        artifacts = {a["path"] for a in plan["artifacts"]}
        self.images = user_images(root, artifacts)
        self.keyframes = [a["path"] for a in plan["artifacts"] if a["kind"] == "keyframe"]
        self.done: Counter[str] = Counter()

    def step(self) -> str:
        """Make one random edit; return its kind."""
        kinds = list(EDIT_WEIGHTS)
        kind = self.rng.choices(kinds, weights=[EDIT_WEIGHTS[k] for k in kinds])[0]
        made = getattr(self, f"_{kind}")()
        kind = kind if made else "touch"
        if not made:
            self._touch()
        self.done[kind] += 1
        return kind

    def _expression(self) -> bool:
        path = self.root / "scene-breakdown.md"
        text = path.read_text(encoding="utf-8")
        spots = list(re.finditer(r"(?m)^(- expression:[ \t]*)(.*)$", text))
        if not spots:
            return False
        spot = self.rng.choice(spots)
        text = text[: spot.start(2)] + self.rng.choice(EXPRESSIONS) + text[spot.end(2):]
        if self.rng.random() < 0.5:
            path.write_text(text, encoding="utf-8")  # in place, as many editors save
        else:
            _atomic(path, text.encode("utf-8"))
        return True

    def _description(self) -> bool:
        path = self.root / "assets.json"
        doc = json.loads(path.read_text(encoding="utf-8"))
        entries = [e for group in doc.values() if isinstance(group, dict)
                   for e in group.values() if isinstance(e, dict) and "description" in e]
        if not entries:
            return False
        entry = self.rng.choice(entries)
        base = entry["description"].split(" — ")[0]
        extra = self.rng.choice(DESCRIPTIONS)
        entry["description"] = f"{base} — {extra}" if extra else base
        _atomic(path, (json.dumps(doc, indent=2) + "\n").encode("utf-8"))
        return True

    def _image(self) -> bool:
        if not self.images:
            return False
        path = self.rng.choice(self.images)
        with Image.open(path) as image:
            size = image.size
        _atomic(path, _png(self.rng, size))
        return True

    def _retry(self) -> bool:
        if not self.keyframes:
            return False
        target = Path(self.rng.choice(self.keyframes))
        marker = self.root / target.parent / f"{target.stem}.retry"
        if marker.exists():
            return False  # one pending retry is one take; rewriting it would count again
        marker.write_bytes(b"")
        return True

    def _touch(self) -> bool:
        files = [self.root / "scene-breakdown.md", self.root / "assets.json", *self.images]
        os.utime(self.rng.choice(files))
        return True


# -- faults ---------------------------------------------------------------------------------------


class Injector:
    """Random transient faults on the fake server."""

    def __init__(self, server: FakeComfy, rng: random.Random) -> None:
        self.server = server
        self.rng = rng
        self.done: Counter[str] = Counter()
        self._last_exec_error = 0.0
        # Every kind once, in a random order, before the weighted draws: short runs see all.
        self._first = rng.sample(list(FAULT_WEIGHTS), len(FAULT_WEIGHTS))

    def step(self) -> str:
        """Inject one fault (each kind once first, then at random); return its kind."""
        kinds = list(FAULT_WEIGHTS)
        kind = (self._first.pop() if self._first
                else self.rng.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0])
        faults = self.server.faults
        if kind == "exec_error" and time.monotonic() - self._last_exec_error < 8.0:
            kind = "5xx"  # two in a row could hit one job twice, which is final by design
        if kind == "5xx":
            faults.fail_next("*", n=self.rng.randint(1, 4), status=self.rng.choice([500, 502, 503]))
        elif kind == "drop":
            faults.drop_next("*", n=self.rng.randint(1, 2))
        elif kind == "lost_answer":
            route = self.rng.choice(["POST /prompt", "POST /upload/image", "GET /history/*"])
            faults.drop_next(route, after_handling=True)
        elif kind == "exec_error":
            faults.fail_next_prompts(1)
            self._last_exec_error = time.monotonic()
        else:
            self.server.restart(clear_uploads=self.rng.random() < 0.5)
        self.done[kind] += 1
        return kind


# -- measuring ------------------------------------------------------------------------------------


def rss_bytes(pid: int) -> int | None:
    """Resident set size of a live process (Linux /proc), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def fd_count(pid: int) -> int | None:
    """Open file descriptors of a live process (Linux /proc), or None."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def check_status_files(root: Path) -> list[str]:
    """Schema errors of the root and scene status files (missing files are not errors)."""
    errors = []
    for path in [root / "status.json", *sorted(root.glob("scene-*/status.json"))]:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError) as exc:
            errors.append(f"{path.relative_to(root)}: unreadable: {exc}")
            continue
        try:
            jsonschema.validate(doc, SCHEMA)
        except jsonschema.ValidationError as exc:
            errors.append(f"{path.relative_to(root)}: {exc.message}")
    return errors


def sample(pid: int, series: Series, started: float) -> None:
    """Take one RSS and fd sample."""
    rss, fds = rss_bytes(pid), fd_count(pid)
    if rss is not None and fds is not None:
        elapsed = round(time.monotonic() - started, 2)
        series.rss.append((elapsed, rss))
        series.fds.append((elapsed, fds))


def idle_cpu_percent(pid: int, window: float) -> float | None:
    """The process's CPU use over ``window`` seconds, in percent of one core."""
    before = cpu_seconds(pid)
    threading.Event().wait(window)
    after = cpu_seconds(pid)
    if before is None or after is None:
        return None
    return 100.0 * (after - before) / window


def growth(points: list[tuple[float, int]], split: float) -> tuple[int, int] | None:
    """(max of the first half, max of the second half) of a series split at ``split``."""
    first = [v for t, v in points if t < split]
    second = [v for t, v in points if t >= split]
    return (max(first), max(second)) if first and second else None


# -- the daemon -----------------------------------------------------------------------------------


@contextmanager
def watch_daemon(root: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m keyframed watch DIR``, stopped with SIGTERM afterwards."""
    with log.open("ab") as handle:
        proc = subprocess.Popen([*CLI, "watch", str(root)], stdout=handle, stderr=handle,
                                env=daemon_env(root))
    try:
        started = wait_for(lambda: f'"pid": {proc.pid}' in _read(root / "status.json"), 60)
        if not started:
            raise RuntimeError(f"the daemon did not start; see {log}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return ""


def is_idle(root: Path) -> bool:
    """Everything fresh in status.json, no input error and no retry marker pending."""
    try:
        doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    counts = doc.get("counts", {})
    # "done" is fresh, made by a job of this daemon.
    only_fresh = bool(counts) and set(counts) <= {"fresh", "done"}
    return bool(doc.get("ok")) and only_fresh and not list(root.glob("scene-*/*.retry"))


def settle(pid: int, root: Path, timeout: float) -> bool:
    """Wait until the daemon is idle (twice, a moment apart, using no CPU in between)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while time.monotonic() < deadline:
        if is_idle(root):
            before = cpu_seconds(pid)
            pause.wait(1.0)
            after = cpu_seconds(pid)
            quiet = before is None or after is None or after - before < 0.05
            if quiet and is_idle(root):
                return True
        pause.wait(0.2)
    return False


# -- the clean build to compare with -------------------------------------------------------------


def copy_inputs(source: Path, dest: Path, artifacts: set[str]) -> None:
    """Copy the user's files only: no outputs, status, sheets, markers or state."""
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        name = rel.as_posix()
        daemon_owned = (name in artifacts or rel.parts[0] == ".keyframed"
                        or SCENE_DIR.fullmatch(rel.parts[0]) is not None
                        or name in ("status.json", "storyboard.png", "asset-sheet.png"))
        if daemon_owned or not path.is_file() or path.name.endswith(".soak-tmp"):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest / rel)


def output_hashes(root: Path, artifacts: set[str]) -> dict[str, str | None]:
    """sha256 of each artifact's file (None when missing)."""
    out: dict[str, str | None] = {}
    for rel in sorted(artifacts):
        path = root / rel
        out[rel] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return out


def clean_build(root: Path, server: FakeComfy, takes: dict[str, int], timeout: float) -> None:
    """Build ``root`` from nothing, then retake each keyframe up to its take in ``takes``."""
    server.restart(clear_uploads=True)  # nothing the soak left on the server is reused
    rec = Reconciler(root, load_settings(root, env={}))
    rec.start()
    try:
        rec.run_until_idle(timeout=timeout)
        for path, take in takes.items():
            marker = root / Path(path).parent / f"{Path(path).stem}.retry"
            for _ in range(take):
                marker.write_bytes(b"")
                rec.run_until_idle(timeout=timeout)
    finally:
        rec.close()


def compare_with_clean_build(root: Path, server: FakeComfy, timeout: float) -> dict[str, Any]:
    """Move the soaked project aside, rebuild its inputs at the same path, compare the two."""
    soaked_plan = plan_json(root)
    artifacts = {a["path"] for a in soaked_plan["artifacts"]}
    soaked = root.with_name(root.name + ".soaked")
    os.replace(root, soaked)
    root.mkdir()
    copy_inputs(soaked, root, artifacts)
    takes = {a["path"]: a["recipe"]["take"] for a in soaked_plan["artifacts"]
             if a["recipe"]["take"] > 0}
    clean_build(root, server, takes, timeout)
    clean_plan = plan_json(root)
    mismatches = _differences(soaked_plan, clean_plan)
    soaked_bytes, clean_bytes = output_hashes(soaked, artifacts), output_hashes(root, artifacts)
    mismatches += [f"{p}: output bytes differ" for p in sorted(artifacts)
                   if soaked_bytes[p] != clean_bytes[p]]
    return {"matched": not mismatches, "mismatches": mismatches[:50],
            "artifacts": len(artifacts), "retaken": takes,
            "soaked_states": dict(Counter(a["state"] for a in soaked_plan["artifacts"]))}


def _differences(soaked: dict[str, Any], clean: dict[str, Any]) -> list[str]:
    one = {a["path"]: a for a in soaked["artifacts"]}
    two = {a["path"]: a for a in clean["artifacts"]}
    out = [f"{p}: only in the soaked project" for p in sorted(set(one) - set(two))]
    out += [f"{p}: only in the clean build" for p in sorted(set(two) - set(one))]
    for path in sorted(set(one) & set(two)):
        a, b = one[path], two[path]
        if a["state"] not in ("fresh", "done") or b["state"] not in ("fresh", "done"):
            out.append(f"{path}: {a['state']} after the soak, {b['state']} when built clean")
        if a["fingerprint"] != b["fingerprint"]:
            out.append(f"{path}: fingerprints differ (take {a['recipe']['take']} vs "
                       f"{b['recipe']['take']})")
    return out


# -- the whole soak -------------------------------------------------------------------------------


def _every(stop: threading.Event, rng: random.Random, mean: float,
           action: Callable[[], object]) -> None:
    while not stop.wait(rng.uniform(0.5 * mean, 1.5 * mean)):
        action()


def _sampler(stop: threading.Event, pid: int, root: Path, series: Series, started: float,
             options: SoakOptions) -> None:
    next_status = time.monotonic()
    while not stop.wait(options.sample_every):
        sample(pid, series, started)
        if time.monotonic() >= next_status:
            series.status_checks += 1
            series.status_errors += check_status_files(root)[:5]
            next_status = time.monotonic() + options.status_every


def run_soak(base: Path, server: FakeComfy, options: SoakOptions, *,
             scenes: int | None = None, progress: Callable[[str], None] = lambda _: None,
             ) -> dict[str, Any]:
    """Run the soak in ``base`` against ``server`` and return every figure (see module doc).

    Args:
        base: an empty folder; the project is ``base/project``, the daemon log
            ``base/daemon.log``.
        server: the fake ComfyUI the project is wired to (its faults are switched here).
        options: duration, rates, seed.
        scenes: a generated project of so many scenes instead of the sample.
        progress: called with a line now and then.
    """
    server.faults.job_seconds = options.job_seconds
    root = prepare_project(base / "project", server, scenes=scenes, seed=options.seed)
    rng = random.Random(options.seed)
    plan = plan_json(root)
    driver, injector, series = Driver(root, plan, rng), Injector(server, random.Random(
        options.seed + 1)), Series()
    result: dict[str, Any] = {"options": options.__dict__, "artifacts": len(plan["artifacts"])}
    with watch_daemon(root, base / "daemon.log") as proc:
        first_build = settle(proc.pid, root, options.settle_timeout)
        progress(f"first build {'done' if first_build else 'NOT done'}; soaking "
                 f"{options.duration:g} s")
        started = time.monotonic()
        stop = threading.Event()
        threads = [
            threading.Thread(target=_every, args=(stop, rng, options.edit_every, driver.step)),
            threading.Thread(target=_every, args=(stop, random.Random(options.seed + 2),
                                                  options.fault_every, injector.step)),
            threading.Thread(target=_sampler, args=(stop, proc.pid, root, series, started,
                                                    options)),
        ]
        for thread in threads:
            thread.start()
        _wait_duration(stop, options.duration, started, driver, injector, series, progress)
        for thread in threads:
            thread.join()
        server.faults.reset()
        server.come_up()  # in case a restart was cut short
        settle_start = time.monotonic()
        settled = settle(proc.pid, root, options.settle_timeout)
        result["settle_s"] = round(time.monotonic() - settle_start, 2)
        result["settled"] = settled
        result["idle_cpu_percent"] = idle_cpu_percent(proc.pid, options.idle_window)
        result["alive_at_end"] = proc.poll() is None
        series.status_checks += 1
        series.status_errors += check_status_files(root)
    result["exit_code"] = proc.returncode
    result.update(_figures(server, driver, injector, series, options.duration))
    progress("comparing with a clean build of the final inputs")
    result["end_state"] = compare_with_clean_build(root, server, options.settle_timeout)
    return result


def _wait_duration(stop: threading.Event, duration: float, started: float, driver: Driver,
                   injector: Injector, series: Series, progress: Callable[[str], None]) -> None:
    report_every = max(10.0, duration / 20)
    while not stop.wait(min(report_every, max(0.0, started + duration - time.monotonic()))):
        elapsed = time.monotonic() - started
        if elapsed >= duration:
            stop.set()
            break
        rss = series.rss[-1][1] / MB if series.rss else float("nan")
        fds = series.fds[-1][1] if series.fds else -1
        progress(f"{elapsed:6.0f} s  edits {sum(driver.done.values()):5d}  faults "
                 f"{sum(injector.done.values()):4d}  rss {rss:6.1f} MB  fds {fds}")


def _figures(server: FakeComfy, driver: Driver, injector: Injector, series: Series,
             duration: float) -> dict[str, Any]:
    rss, fds = growth(series.rss, duration / 2), growth(series.fds, duration / 2)
    return {
        "edits": dict(driver.done), "edits_total": sum(driver.done.values()),
        "faults": dict(injector.done), "faults_total": sum(injector.done.values()),
        "jobs_submitted": len(server.records.prompts),
        "jobs_executed": sum(server.records.executions.values()),
        "rss_mb_first_half_max": rss and round(rss[0] / MB, 1),
        "rss_mb_second_half_max": rss and round(rss[1] / MB, 1),
        "fds_first_half_max": fds and fds[0], "fds_second_half_max": fds and fds[1],
        "status_checks": series.status_checks, "status_errors": series.status_errors[:20],
        "series": {"rss_bytes": series.rss, "fds": series.fds},
    }


def verdict(result: dict[str, Any]) -> dict[str, bool]:
    """Each target met or not."""
    rss_ok = (result["rss_mb_second_half_max"] or 0) <= (result["rss_mb_first_half_max"]
                                                          or 0) + 20
    fds_ok = (result["fds_second_half_max"] or 0) <= (result["fds_first_half_max"] or 0) + 20
    cpu = result["idle_cpu_percent"]
    return {
        "settled": bool(result["settled"]),
        "status_files_valid": not result["status_errors"],
        "rss_flat": rss_ok, "fds_flat": fds_ok,
        "idle_cpu_under_1_percent": cpu is not None and cpu < 1.0,
        "end_state_matched": bool(result["end_state"]["matched"]),
        "daemon_alive_until_stopped": bool(result["alive_at_end"]) and result["exit_code"] == 0,
    }


def main() -> None:
    """Run the soak and write bench/results/soak.json."""
    from bench.fake_farm import need_object_info, save_results, scratch

    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="seconds of soak")
    parser.add_argument("--edit-every", type=float, default=1.0, help="mean seconds per edit")
    parser.add_argument("--fault-every", type=float, default=4.0, help="mean seconds per fault")
    parser.add_argument("--scenes", type=int, default=None, help="a generated project")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    import structlog

    # The clean build runs in this process: only its errors are worth printing.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    options = SoakOptions(duration=args.duration, edit_every=args.edit_every,
                          fault_every=args.fault_every, seed=args.seed)
    with scratch("kf-soak-", keep=args.keep) as base:
        server = FakeComfy(need_object_info(), base / "comfy").start()
        try:
            result = run_soak(base, server, options, scenes=args.scenes,
                              progress=lambda line: print(f"soak: {line}", flush=True))
        finally:
            server.stop()
    result["verdict"] = verdict(result)
    path = save_results("soak", result)
    shown = {k: v for k, v in result.items() if k != "series"}
    print(json.dumps(shown, indent=2))
    print(f"soak: wrote {path}")
    sys.exit(0 if all(result["verdict"].values()) else 1)


if __name__ == "__main__":
    main()
