"""Scale: how planning and reconciling grow with the project (DESIGN.md section 9).

For generated projects of 10, 100, 1,000 and 5,000 scenes (about 0.3 assets per scene, so
1,000 scenes have 300 assets), each size measured in fresh subprocesses:

- **cold plan**: ``take_snapshot`` on a never-built project with a fresh store: parse, derive
  every artifact, hash every input file, plan. Also ``keyframed plan DIR`` end to end (process
  start, imports, printing), for what a person waits for.
- **restart plan**: the first snapshot of a built project after a restart (hash cache loaded
  from the store; every file is stat'ed, none re-read).
- **no-change reconcile**: a reconcile pass when nothing changed (median of several), as the
  snapshot alone and as a whole ``Reconciler.reconcile_once``.
- **one-scene edit**: scene-breakdown.md saved with one scene's camera changed, then one pass:
  the snapshot alone, and the whole pass that creates and dispatches the jobs (median over
  several scenes).
- **contact sheets**: the reconcile pass draws contact sheets and the storyboard; their cost is
  measured separately (first drawing after a start, a no-change pass, a one-scene edit), up to
  ``--sheets-max`` scenes, because drawing thousands of sheets takes minutes.
- **memory**: peak RSS (VmHWM) of the subprocess that does the daemon's work on the built
  project, and of the cold-plan subprocess.
- **store size**: bytes of ``.keyframed/state.db*`` after the daemon run.

The "built" state is a stand-in: every artifact is written with small PNG bytes that follow its
fingerprint and recorded as built, as keyframed would have done, in one transaction (building
5,000 scenes through the loop with an fsync per file would take far longer than the benchmark
is worth). Outputs are dated a minute back, as if built earlier, so the hash cache may keep
them (files younger than 2 s are re-hashed on purpose, like git's racy-index rule).

Run::

    .venv/bin/python -m bench.scale [--sizes 10,100,1000,5000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from bench import gen
from bench.common import StandInBackend, settings_for, stand_in_png, table, write_results

REPO = Path(__file__).resolve().parent.parent
TARGET_SIZE = 1000
TARGETS = {"cold_plan_s": 2.0, "no_change_s": 0.050, "one_scene_edit_s": 0.100,
           "rss_mb": 150.0}


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> None:
    """Start counting this process's peak RSS (VmHWM) afresh (Linux; elsewhere a no-op)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    wall, _, result = clocked(fn)
    return wall, result


def clocked(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of one call.

    CPU time is what the figures should be judged by on a shared machine: wall time also
    counts the time other processes had the CPU.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def quiet_logs() -> None:
    """Only warnings and errors from keyframed."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


# -- prepare: generate, build a stand-in state ---------------------------------------------------


def bulk_build(root: Path) -> int:
    """Write every artifact with stand-in bytes and record it as built; return the count."""
    from keyframed.daemon.store import Store
    from keyframed.fsio import sha256_file
    from keyframed.handlers.context import PlanContext
    from keyframed.handlers.fingerprint import components, fingerprint
    from keyframed.handlers.graph import desired_artifacts
    from keyframed.handlers.verdict import Record
    from keyframed.inputs.loader import load_project
    from keyframed.workflows import templates

    settings = settings_for(root)
    project = load_project(root, settings.run.max_image_pixels).project
    assert project is not None, "the generated project loads"
    existing = frozenset(a.output_path for a in project.assets.assets.values()
                         if (root / a.output_path).is_file())
    artifacts = desired_artifacts(project, PlanContext(settings=settings, existing=existing))
    hashes: dict[str, str] = {}
    records = []
    for art in artifacts:  # inputs come before their users
        known = {i.path: hashes.get(i.path) or sha256_file(root / i.path)
                 for i in art.recipe.inputs}
        template = templates.load_template(art.recipe.template, root)[1] \
            if art.recipe.template else ""
        parts = components(art.recipe, known, template)
        digest = fingerprint(parts)
        data = ((root / art.recipe.inputs[0].path).read_bytes() if art.recipe.step == "copy"
                else stand_in_png(digest))
        (root / art.path).parent.mkdir(parents=True, exist_ok=True)
        (root / art.path).write_bytes(data)
        hashes[art.path] = sha256_file(root / art.path)
        records.append(Record(path=art.path, fingerprint=digest, output_hash=hashes[art.path],
                              components=parts, take=art.recipe.take))
    store = Store.for_project(root)
    try:
        with store.transaction() as db:
            for record in records:
                store.record_built(record, "standin", db)
    finally:
        store.close()
    return len(records)


def backdate(root: Path, seconds: float = 60.0) -> None:
    """Date every project file ``seconds`` back, as if written a while ago."""
    when = time.time_ns() - int(seconds * 1e9)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".keyframed"]
        for name in files:
            os.utime(Path(folder) / name, ns=(when, when))


def prepare(size: int, base: Path, seed: int) -> dict[str, Any]:
    """Generate the cold and the built project of one size; warm the built one's hash cache."""
    from keyframed.daemon.snapshot import take_snapshot
    from keyframed.daemon.store import Store

    spec = gen.generate_project(base / "cold", size, seed=seed)
    gen.generate_project(base / "built", size, seed=seed)
    backdate(base / "cold")
    seconds, count = timed(lambda: bulk_build(base / "built"))
    backdate(base / "built")
    store = Store.for_project(base / "built")
    try:
        snap = take_snapshot(base / "built", settings_for(base / "built"), store, record=True)
    finally:
        store.close()
    stale = [i.path for i in snap.items if i.state != "fresh"]
    if stale or not snap.ok:
        raise SystemExit(f"the stand-in build is not fresh: {stale[:5]} {snap.diagnostics[:3]}")
    return {"scenes": size, "assets": sum(len(g) for g in spec.assets.values()),
            "artifacts": count, "build_seconds": round(seconds, 2),
            "character_scenes": [s.number for s in spec.scenes if s.type == "character"]}


# -- measure: cold -------------------------------------------------------------------------------


def measure_cold(root: Path) -> dict[str, Any]:
    """The first plan of a never-built project, with a fresh store."""
    from keyframed.daemon.snapshot import take_snapshot
    from keyframed.daemon.store import Store

    settings = settings_for(root)
    store = Store.for_project(root)
    try:
        wall, cpu, snap = clocked(lambda: take_snapshot(root, settings, store, record=False))
    finally:
        store.close()
    return {"cold_plan_s": wall, "cold_plan_cpu_s": cpu, "cold_items": len(snap.items),
            "cold_rss_mb": peak_rss_mb()}


def cold_cli(root: Path) -> float:
    """Wall time of ``keyframed plan --json DIR`` in a new process (state removed first)."""
    shutil.rmtree(root / ".keyframed", ignore_errors=True)
    env = {**os.environ, "KEYFRAMED_CONFIG": str(root / "no-user-config.toml")}
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "keyframed", "plan", "--json", str(root)],
                   check=True, stdout=subprocess.DEVNULL, env=env, cwd=REPO)
    return time.perf_counter() - started


# -- measure: the daemon on a built project ------------------------------------------------------


class Daemon:
    """A Reconciler on the built project with a stand-in backend, sheets switchable."""

    def __init__(self, root: Path, spec: gen.ProjectSpec) -> None:
        from keyframed.daemon.loop import Reconciler

        self.root = root
        self.spec = spec
        self.settings = settings_for(root)
        self.backend = StandInBackend(kind=self.settings.backend_kind)
        self.rec = Reconciler(root, self.settings, backends=[self.backend])
        self._sheets = self.rec.sheets.write

    def sheets(self, on: bool) -> None:
        """Draw contact sheets in passes, or not."""
        self.rec.sheets.write = self._sheets if on else (lambda snap, state_of: [])  # type: ignore[method-assign]

    def snapshot_s(self) -> tuple[float, float]:
        """(wall, CPU) seconds of one snapshot (what a pass does first), changing nothing."""
        from keyframed.daemon.snapshot import take_snapshot

        wall, cpu, _ = clocked(lambda: take_snapshot(self.root, self.settings, self.rec.store,
                                                     record=True))
        return wall, cpu

    def pass_s(self) -> tuple[float, float]:
        """(wall, CPU) seconds of one whole reconcile pass."""
        self.rec.wake.clear()
        wall, cpu, _ = clocked(self.rec.reconcile_once)
        return wall, cpu

    def full_pass_s(self) -> tuple[float, float]:
        """(wall, CPU) seconds of a no-change pass that does not take the stat-only shortcut
        (what every pass costs while jobs run, or when a file is too new to trust its stat)."""
        self.rec._quiet = None
        return self.pass_s()

    def settle(self) -> float:
        """Run until idle; seconds."""
        return timed(lambda: self.rec.run_until_idle(timeout=600))[0]

    def edit_camera(self, number: int, text: str) -> None:
        """Save scene-breakdown.md with one scene's camera changed."""
        self.spec.scene(number).camera = text
        gen.write_breakdown(self.root, self.spec)


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _medians(out: dict[str, Any], key: str, samples: Sequence[tuple[float, float]]) -> None:
    """Store the median wall time as ``key`` and the median CPU time as ``key_cpu``."""
    out[key] = _median([w for w, _ in samples])
    out[key.removesuffix("_s") + "_cpu_s"] = _median([c for _, c in samples])


def measure_daemon(root: Path, size: int, seed: int, scenes: list[int], repeat: int,
                   sheets: bool) -> dict[str, Any]:
    """Restart, no-change and one-scene-edit timings on the built project."""
    from keyframed.daemon.snapshot import take_snapshot

    d = Daemon(root, gen.make_spec(size, seed=seed))
    out: dict[str, Any] = {}
    wall, cpu, snap = clocked(lambda: take_snapshot(root, d.settings, d.rec.store,
                                                    record=True))
    out.update(restart_plan_s=wall, restart_plan_cpu_s=cpu)
    out["restart_not_fresh"] = sum(1 for i in snap.items if i.state != "fresh")
    _medians(out, "no_change_snapshot_s", [d.snapshot_s() for _ in range(repeat)])
    # The snapshots above are the benchmark's, not the daemon's: let them go, and count the
    # peak memory from here on.
    del snap
    gc.collect()
    reset_peak_rss()
    d.rec.start()
    d.sheets(False)
    _medians(out, "first_pass_s", [d.pass_s()])
    _medians(out, "no_change_s", [d.pass_s() for _ in range(repeat)])
    _medians(out, "no_change_full_s", [d.full_pass_s() for _ in range(repeat)])
    # One-scene edits: each a save of scene-breakdown.md with another scene's camera changed,
    # then one timed pass (it notices the edit and creates and dispatches the jobs), then the
    # loop runs until idle (timed too) so the next edit starts from a settled project.
    edits, settles, jobs = [], [], []
    picks = [scenes[(k * len(scenes)) // (repeat + 1)] for k in range(1, repeat + 1)]
    for n, number in enumerate(picks):
        d.edit_camera(number, f"edited camera {n}")
        before = len(d.backend.executed)
        edits.append(d.pass_s())
        if n + 1 < len(picks) or sheets:
            settles.append(d.settle())
            jobs.append(len(d.backend.executed) - before)
    _medians(out, "one_scene_edit_s", edits)
    out["one_scene_edit_settled_s"] = _median(settles)
    out["one_scene_edit_jobs"] = _median(jobs)
    out["rss_no_sheets_mb"] = peak_rss_mb()
    if sheets:
        out.update(measure_sheets(d, picks[-1]))
    d.rec.close(wait=True)
    out["rss_mb"] = peak_rss_mb()
    return out


def measure_sheets(d: Daemon, number: int) -> dict[str, Any]:
    """What drawing contact sheets adds to a pass."""
    d.sheets(True)
    out: dict[str, Any] = {}
    _medians(out, "sheets_first_pass_s", [d.pass_s()])
    _medians(out, "sheets_no_change_s", [d.pass_s()])
    d.edit_camera(number, "edited camera for sheets")
    _medians(out, "sheets_one_scene_edit_s", [d.pass_s()])
    out["sheets_one_scene_edit_settled_s"] = d.settle()
    return out


def profile(size: int, seed: int, work: Path) -> str:
    """cProfile of a no-change pass (no shortcut) and a one-scene edit pass, top entries."""
    import cProfile
    import io
    import pstats

    info = prepare(size, work, seed)
    d = Daemon(work / "built", gen.make_spec(size, seed=seed))
    d.rec.start()
    d.sheets(False)
    d.pass_s()
    out = io.StringIO()
    middle = info["character_scenes"][len(info["character_scenes"]) // 2]
    for name in ("no-change pass, no shortcut", "one-scene edit pass"):
        if name.startswith("one-scene"):
            d.edit_camera(middle, "edited camera for the profile")
        d.rec._quiet = None
        prof = cProfile.Profile()
        wall, cpu, _ = clocked(partial(prof.runcall, d.rec.reconcile_once))
        out.write(f"== {name} at {size} scenes: {wall:.3f} s wall, {cpu:.3f} s CPU "
                  "(with the profiler's overhead)\n")
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("cumulative").print_stats(r"keyframed", 30)
    d.rec.close(wait=True)
    return out.getvalue()


# -- the parent ----------------------------------------------------------------------------------


def _child(args: list[str]) -> dict[str, Any]:
    """Run this module in a subprocess and read the JSON it prints last."""
    proc = subprocess.run([sys.executable, "-m", "bench.scale", *args], cwd=REPO,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"bench.scale {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def store_bytes(root: Path) -> int:
    """Bytes of the state database and its WAL/SHM files."""
    return sum(p.stat().st_size for p in (root / ".keyframed").glob("state.db*"))


def measure_size(size: int, seed: int, repeat: int, sheets_max: int, work: Path) -> dict[str, Any]:
    """Every figure of one size, each part in its own subprocess."""
    base = work / f"s{size}"
    base.mkdir(parents=True, exist_ok=True)
    prep = _child(["--prepare", str(size), "--dir", str(base), "--seed", str(seed)])
    scenes = prep.pop("character_scenes")
    row: dict[str, Any] = {**prep}
    row.update(_child(["--cold", str(base / "cold")]))
    row["cold_plan_cli_s"] = cold_cli(base / "cold")
    row.update(_child(["--daemon", str(base / "built"), "--size", str(size), "--seed", str(seed),
                       "--repeat", str(repeat), "--scenes", ",".join(map(str, scenes)),
                       *(["--sheets"] if size <= sheets_max else [])]))
    row["store_bytes"] = store_bytes(base / "built")
    shutil.rmtree(base, ignore_errors=True)
    return row


METRICS = [
    ("cold_plan_s", "cold plan (s)"),
    ("cold_plan_cpu_s", "  CPU (s)"),
    ("cold_plan_cli_s", "keyframed plan, new process (s)"),
    ("restart_plan_s", "restart plan (s)"),
    ("restart_plan_cpu_s", "  CPU (s)"),
    ("no_change_snapshot_s", "no-change snapshot (s)"),
    ("no_change_snapshot_cpu_s", "  CPU (s)"),
    ("no_change_s", "no-change pass (s)"),
    ("no_change_cpu_s", "  CPU (s)"),
    ("no_change_full_s", "no-change pass, no shortcut (s)"),
    ("no_change_full_cpu_s", "  CPU (s)"),
    ("one_scene_edit_s", "one-scene edit pass (s)"),
    ("one_scene_edit_cpu_s", "  CPU (s)"),
    ("one_scene_edit_settled_s", "one-scene edit, until settled (s)"),
    ("one_scene_edit_jobs", "  jobs run"),
    ("sheets_first_pass_s", "pass drawing all sheets (s)"),
    ("sheets_no_change_s", "no-change pass with sheets (s)"),
    ("sheets_one_scene_edit_s", "one-scene edit pass with sheets (s)"),
    ("sheets_one_scene_edit_cpu_s", "  CPU (s)"),
    ("rss_no_sheets_mb", "peak RSS, daemon work without sheets (MB)"),
    ("rss_mb", "peak RSS, daemon work (MB)"),
    ("cold_rss_mb", "peak RSS, cold plan (MB)"),
    ("store_bytes", "store size (bytes)"),
]


def _cell(value: Any) -> Any:
    """A table cell: '-' for a figure not measured, whole numbers without decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1:
        return int(value)
    return round(value, 4) if isinstance(value, float) else value


def growth(rows: list[dict[str, Any]], key: str) -> list[str]:
    """Growth per 10x scenes between consecutive sizes: (m2/m1) ** (1 / log10(s2/s1))."""
    out = []
    for a, b in itertools.pairwise(rows):
        m1, m2 = a.get(key), b.get(key)
        if not m1 or not m2 or math.isnan(m1) or math.isnan(m2):
            out.append("-")
            continue
        out.append(f"x{(m2 / m1) ** (1 / math.log10(b['scenes'] / a['scenes'])):.1f}")
    return out


def report(rows: list[dict[str, Any]]) -> str:
    """The per-size table with growth factors, and the targets at 1,000 scenes."""
    sizes = [r["scenes"] for r in rows]
    headers = ["metric", *(f"{s} scenes" for s in sizes),
               *(f"/10x {a}->{b}" for a, b in itertools.pairwise(sizes))]
    body: list[list[Any]] = [
        ["assets", *(r["assets"] for r in rows), *([""] * (len(rows) - 1))],
        ["artifacts", *(r["artifacts"] for r in rows), *([""] * (len(rows) - 1))],
    ]
    for key, label in METRICS:
        values = [_cell(r.get(key)) for r in rows]
        body.append([label, *values, *growth(rows, key)])
    lines = [table(headers, body), ""]
    at = next((r for r in rows if r["scenes"] == TARGET_SIZE), None)
    if at is not None:
        checks = [("cold plan", at["cold_plan_s"], TARGETS["cold_plan_s"], "s"),
                  ("no-change reconcile pass", at["no_change_s"], TARGETS["no_change_s"], "s"),
                  ("one-scene edit pass", at["one_scene_edit_s"], TARGETS["one_scene_edit_s"],
                   "s"),
                  ("peak RSS", at["rss_mb"], TARGETS["rss_mb"], "MB")]
        lines.append(f"targets at {TARGET_SIZE} scenes ({at['assets']} assets):")
        for name, value, target, unit in checks:
            verdict = "met" if value <= target else "MISSED"
            lines.append(f"  {name}: {value:.3f} {unit} (target <= {target} {unit}): {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parent mode runs every size; the other modes are the subprocesses."""
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10,100,1000,5000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3,
                        help="samples per timing (medians); sizes above --large take 1")
    parser.add_argument("--large", type=int, default=1000,
                        help="sizes above this are measured once per timing (a pass takes s)")
    parser.add_argument("--sheets-max", type=int, default=100,
                        help="measure contact sheets up to this many scenes (slow: ~0.1 s "
                             "of drawing per scene)")
    parser.add_argument("--profile", type=int, metavar="SCENES",
                        help="profile one no-change pass (no shortcut) and one one-scene edit "
                             "pass at this size with cProfile, and print where the time goes")
    parser.add_argument("--prepare", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cold", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--daemon", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--scenes", help=argparse.SUPPRESS)
    parser.add_argument("--sheets", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile:
        quiet_logs()
        with tempfile.TemporaryDirectory(prefix="kf-scale-") as tmp:
            print(profile(args.profile, args.seed, Path(tmp)))
        return 0
    if args.prepare or args.cold or args.daemon:
        quiet_logs()
        if args.prepare:
            result = prepare(args.prepare, args.dir, args.seed)
        elif args.cold:
            result = measure_cold(args.cold)
        else:
            numbers = [int(n) for n in args.scenes.split(",")]
            result = measure_daemon(args.daemon, args.size, args.seed, numbers, args.repeat,
                                    args.sheets)
        print(json.dumps(result))
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="kf-bench-scale-") as tmp:
        for size in sizes:
            started = time.perf_counter()
            repeat = args.repeat if size <= args.large else 1
            rows.append(measure_size(size, args.seed, repeat, args.sheets_max, Path(tmp)))
            print(f"  {size} scenes measured in {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    print(report(rows))
    path = write_results("scale", {"sizes": sizes, "repeat": args.repeat, "large": args.large,
                                   "targets_at_1000": TARGETS, "rows": rows})
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
