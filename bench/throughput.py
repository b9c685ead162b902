"""Throughput against 1, 2 and 4 simulated ComfyUI servers with 200 ms jobs (DESIGN.md §9).

``python -m bench.throughput [--scenes 50] [--servers 1,2,4] [--job-ms 200]``

For each server count: fake ComfyUI servers (in this process) that take ``--job-ms`` of
wall time per prompt, a generated project (:mod:`bench.gen`, ~50 scenes, about 300 jobs,
``approval = "auto"``) wired to them, and ``python -m keyframed run DIR`` as a subprocess
building it from nothing. Measured:

* makespan: first execution start to last execution end on the servers (and the whole
  command's wall time), against the ideal bound max(jobs x job time / servers, longest
  dependency chain x job time);
* idle gaps on each server between its jobs (server-side execution start/end times), and the
  turnaround on dependency links: a job's start less the end of its last input's job;
* daemon CPU per job: the child's user+system CPU (``getrusage(RUSAGE_CHILDREN)``), less
  that of a second, no-op run (start-up and one pass), divided by the jobs;
* bytes uploaded against distinct bytes, and the most uploads of one file to one server;
* model-stack switches (consecutive jobs on a server with a different set of loader nodes:
  models and LoRAs with strengths) against the least possible for the jobs each server ran,
  and the model loads the fake counted.

Targets: makespan within 5 % of the ideal bound; CPU per job <= 5 ms; every reference image
uploaded once per server.

``--v2-workers 16`` adds a run behind a Comfy API v2 surface: the real comfy-api-proxy in
front of one fake ComfyUI running 16 prompts side by side, job times spread around 2 s
(:mod:`bench.v2_surface`); ``--servers 0`` leaves the native runs out.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.fake_farm import (
    CLI,
    daemon_env,
    fake_servers,
    percentile,
    save_results,
    scratch,
    table,
    write_config,
)
from bench.gen import generate_project
from bench.v2_surface import (
    critical_seconds,
    start_surface,
    upload_figures,
    v2_runs,
    write_v2_config,
)
from tests.comfy_project import PREFIX
from tests.fakecomfy.server import FakeComfy

LOADER_HINT = "Loader"
MAKESPAN_SLACK = 0.05
CPU_MS_TARGET = 5.0


def child_cpu() -> float:
    """User + system CPU seconds of all waited-for children so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_keyframed(root: Path, timeout: float,
                  trace: Path | None = None) -> tuple[float, float, str]:
    """``keyframed run DIR`` (traced by bench.trace_watch if ``trace``): (wall s, CPU s, output)."""
    cmd = [sys.executable, "-m", "bench.trace_watch"] if trace else CLI
    env = daemon_env(root, **({"KEYFRAMED_BENCH_TRACE": str(trace)} if trace else {}))
    cpu0, wall0 = child_cpu(), time.monotonic()
    done = subprocess.run([*cmd, "run", str(root), "--timeout", str(timeout)],
                          env=env, capture_output=True, text=True,
                          timeout=timeout + 60, check=False)
    wall, cpu = time.monotonic() - wall0, child_cpu() - cpu0
    with (root.parent / "daemon.log").open("a", encoding="utf-8") as log:
        log.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"bench: keyframed run failed ({done.returncode}):\n"
                         f"{done.stdout}{done.stderr[-4000:]}")
    return wall, cpu, done.stdout.strip()


Graph = dict[str, tuple[bool, list[str]]]  # path -> (made by a job, not a local copy; deps)


def project_graph(root: Path) -> Graph:
    """Every artifact of the project with whether a server makes it, and its inputs."""
    from keyframed.daemon.snapshot import take_snapshot
    from keyframed.daemon.store import Store
    from keyframed.inputs.config import load_settings

    store = Store.for_project(root)
    try:
        snap = take_snapshot(root, load_settings(root, env={}), store)
    finally:
        store.close()
    if not snap.ok:
        raise SystemExit(f"bench: the generated project has errors: {snap.diagnostics[:3]}")
    paths = {a.path for a in snap.artifacts}
    return {a.path: (a.recipe.step != "copy", [d for d in a.deps if d in paths])
            for a in snap.artifacts}


def critical_path(graph: Graph) -> int:
    """Jobs on the longest dependency chain."""
    depth: dict[str, int] = {}

    def chain(path: str) -> int:
        if path not in depth:
            job, deps = graph[path]
            depth[path] = int(job) + max((chain(d) for d in deps), default=0)
        return depth[path]

    return max((chain(p) for p in graph), default=0)


def link_delays(graph: Graph, runs: dict[str, tuple[float, float]]) -> list[float]:
    """For each job made from other jobs' outputs: its start less its last input's end (s).

    This is the daemon's turnaround on the dependency chain: collect the finished input,
    see what became ready, dispatch it, upload, submit. Local copies count as their source.
    """

    def made_by(path: str) -> list[str]:
        job, deps = graph[path]
        return [path] if job else [m for d in deps for m in made_by(d)]

    out = []
    for path, (job, deps) in graph.items():
        key = path.rsplit(".", 1)[0]
        ends = [runs[m.rsplit(".", 1)[0]][1] for d in deps for m in made_by(d)
                if m.rsplit(".", 1)[0] in runs]
        if job and ends and key in runs:
            out.append(runs[key][0] - max(ends))
    return out


def artifact_runs(server: FakeComfy) -> dict[str, tuple[float, float]]:
    """Artifact (path without extension) -> (start, end) of its execution on this server."""
    bodies = {p.prompt_id: p.body["prompt"] for p in server.records.prompts}
    out = {}
    for prompt_id, start, end in spans(server):
        for node in bodies.get(prompt_id, {}).values():
            prefix = node.get("inputs", {}).get("filename_prefix")
            if isinstance(prefix, str) and (match := PREFIX.match(prefix)):
                out[match.group(1)] = (start, end)
    return out


def spans(server: FakeComfy) -> list[tuple[str, float, float]]:
    """(prompt_id, start, end) of each execution, in start order (time.time() seconds)."""
    history = server.history()
    out = []
    for prompt_id, start in server.records.execution_starts:
        messages = history.get(prompt_id, {}).get("status", {}).get("messages", [])
        ends = [m[1]["timestamp"] / 1000 for m in messages
                if m[0] in ("execution_success", "execution_error", "execution_interrupted")]
        out.append((prompt_id, start, max(ends) if ends else start))
    return out


def stack_of(prompt: dict[str, Any]) -> tuple[Any, ...]:
    """The loader nodes of a prompt with their literal inputs: models, LoRAs, strengths."""
    loaders = []
    for node in prompt.values():
        if LOADER_HINT in str(node.get("class_type", "")):
            literal = sorted((k, v) for k, v in node.get("inputs", {}).items()
                             if not isinstance(v, list))
            loaders.append((node["class_type"], tuple(literal)))
    return tuple(sorted(loaders))


def server_figures(server: FakeComfy, first: float, last: float) -> dict[str, Any]:
    """Busy time, idle gaps, uploads and stack switches of one server."""
    runs = spans(server)
    bodies = {p.prompt_id: p.body["prompt"] for p in server.records.prompts}
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(runs)]
    busy = sum(end - start for _, start, end in runs)
    stacks = [stack_of(bodies[pid]) for pid, _, _ in runs if pid in bodies]
    switches = sum(1 for a, b in itertools.pairwise(stacks) if a != b)
    uploads = server.records.uploads
    per_file = Counter(u.sha256 for u in uploads)
    return {
        "jobs": len(runs), "busy_s": busy,
        "idle_s": (last - first) - busy,
        "gap_sum_s": sum(max(0.0, g) for g in gaps),
        "gap_p50_ms": percentile(gaps, 50) * 1000, "gap_p90_ms": percentile(gaps, 90) * 1000,
        "gap_max_ms": max(gaps, default=0.0) * 1000,
        "lead_s": (runs[0][1] - first) if runs else 0.0,
        "tail_s": (last - runs[-1][2]) if runs else 0.0,
        "stack_switches": switches, "stack_min": max(0, len(set(stacks)) - 1),
        "stacks": len(set(stacks)), "model_loads": len(server.records.model_loads),
        "uploads": len(uploads), "upload_bytes": sum(u.size for u in uploads),
        "distinct_bytes": sum({u.sha256: u.size for u in uploads}.values()),
        "max_uploads_per_file": max(per_file.values(), default=0),
    }


def one_setup(base: Path, count: int, scenes: int, seed: int, job_s: float,
              max_in_flight: int, profile: bool = False) -> dict[str, Any]:
    """Build a fresh project against ``count`` servers and measure."""
    with fake_servers(count, base / "servers", job_seconds=job_s) as servers:
        root = base / "project"
        generate_project(root, scenes, seed=seed, backend="comfyui",
                         comfy_urls=[s.url for s in servers])
        write_config(root, servers, approval="auto", max_in_flight=max_in_flight)
        trace = base / "trace.jsonl" if profile else None
        wall, cpu, summary = run_keyframed(root, timeout=900, trace=trace)
        noop_wall, noop_cpu, _ = run_keyframed(root, timeout=300)
        all_runs = [r for s in servers for r in spans(s)]
        first = min(r[1] for r in all_runs)
        last = max(r[2] for r in all_runs)
        per_server = {f"gpu{n}": server_figures(s, first, last) for n, s in enumerate(servers)}
        executions: Counter[str] = Counter()
        runs: dict[str, tuple[float, float]] = {}
        for server in servers:
            executions.update(server.records.executions)
            runs.update(artifact_runs(server))
    graph = project_graph(root)
    longest, planned = critical_path(graph), sum(1 for job, _ in graph.values() if job)
    links = link_delays(graph, runs)
    passes = None
    if trace is not None:
        from bench.trace_watch import pass_profile

        print(f"traced run, {count} server(s) x{max_in_flight}:")
        passes = pass_profile(trace)
    jobs = len(all_runs)
    ideal = max(jobs * job_s / count, longest * job_s)
    makespan = last - first
    return {
        "servers": count, "max_in_flight": max_in_flight, "jobs": jobs,
        "planned_jobs": planned, "critical_path_jobs": longest, "ideal_s": ideal,
        "makespan_s": makespan, "over_ideal": makespan / ideal - 1, "wall_s": wall,
        "cpu_s": cpu, "noop_cpu_s": noop_cpu, "noop_wall_s": noop_wall,
        "cpu_ms_per_job": (cpu - noop_cpu) / jobs * 1000 if jobs else float("nan"),
        "cpu_ms_per_job_gross": cpu / jobs * 1000 if jobs else float("nan"),
        "link_ms_p50": percentile(links, 50) * 1000, "link_ms_p90": percentile(links, 90) * 1000,
        "links": len(links),
        "executed_twice": sum(1 for n in executions.values() if n > 1),
        "executed_twice_ids": sorted(p for p, n in executions.items() if n > 1),
        "summary": summary, "per_server": per_server, "traced": profile, "passes": passes,
    }


def v2_setup(base: Path, workers: int, scenes: int, seed: int,
             in_flight: int = 0) -> dict[str, Any]:
    """Build a fresh project through a v2 surface with ``workers`` workers and measure
    (``in_flight`` jobs at most on it; two per worker by default)."""
    in_flight = in_flight or 2 * workers
    comfy, proxy = start_surface(base / "surface", workers)
    fake_cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    try:
        root = base / "project"
        generate_project(root, scenes, seed=seed, backend="comfyui", comfy_urls=[comfy.url])
        write_v2_config(root, proxy.url, max_in_flight=in_flight)
        wall, cpu, summary = run_keyframed(root, timeout=1200)
        noop_wall, noop_cpu, _ = run_keyframed(root, timeout=300)
        runs = spans(comfy)
        by_artifact = v2_runs(comfy, runs)
        executions = Counter(comfy.records.executions)
        uploads = upload_figures(comfy)
        fake_cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        before_proxy = child_cpu()
        proxy.stop()
        proxy_cpu = child_cpu() - before_proxy  # the proxy is waited for only now
        comfy.stop()
    # The fake servers run in this process: its CPU over the two runs is theirs (and ours).
    fake_cpu = (fake_cpu1.ru_utime + fake_cpu1.ru_stime) - (fake_cpu0.ru_utime + fake_cpu0.ru_stime)
    graph = project_graph(root)
    jobs = len(runs)
    total = sum(end - start for _, start, end in runs)
    chain = critical_seconds(graph, by_artifact)
    durations = [end - start for start, end in by_artifact.values()]
    links = link_delays(graph, by_artifact)
    first, last = min(r[1] for r in runs), max(r[2] for r in runs)
    ideal = max(total / workers, chain)
    return {
        "workers": workers, "max_in_flight": in_flight, "jobs": jobs,
        "job_s_mean": total / jobs, "job_s_min": min(durations),
        "job_s_max": max(durations), "job_s_sum": total,
        "link_ms_p50": percentile(links, 50) * 1000, "link_ms_p90": percentile(links, 90) * 1000,
        "links": len(links),
        "ideal_work_s": total / workers, "critical_path_s": chain,
        "critical_path_jobs": critical_path(graph), "ideal_s": ideal,
        "makespan_s": last - first, "over_ideal": (last - first) / ideal - 1, "wall_s": wall,
        "cpu_s": cpu, "noop_cpu_s": noop_cpu, "noop_wall_s": noop_wall,
        "cpu_ms_per_job": (cpu - noop_cpu) / jobs * 1000 if jobs else float("nan"),
        "cpu_ms_per_job_gross": cpu / jobs * 1000 if jobs else float("nan"),
        "executed_twice": sum(1 for n in executions.values() if n > 1),
        "summary": summary, "proxy_cpu_s": proxy_cpu, "fake_cpu_s": fake_cpu,
        "cpus": os.cpu_count(), **uploads,
    }


def print_v2(result: dict[str, Any]) -> None:
    """The v2 run's table."""
    r = result
    print(table(["v2 workers x in-flight", "jobs", "job s mean (min-max)", "sum/workers s",
                 "critical path s", "makespan s", "vs ideal", "link p50/p90 ms", "CPU ms/job",
                 "gross",
                 "upload B/distinct B", "max up/file", "run twice"],
                [[f"{r['workers']} x{r['max_in_flight']}", r["jobs"],
                  f"{r['job_s_mean']:.2f} ({r['job_s_min']:.1f}-{r['job_s_max']:.1f})",
                  r["ideal_work_s"], r["critical_path_s"], r["makespan_s"],
                  f"{r['over_ideal'] * 100:+.0f} %",
                  f"{r['link_ms_p50']:.0f}/{r['link_ms_p90']:.0f}", r["cpu_ms_per_job"],
                  r["cpu_ms_per_job_gross"], f"{r['upload_bytes']}/{r['distinct_bytes']}",
                  r["max_uploads_per_file"], r["executed_twice"]]]))
    print(f"CPU seconds: keyframed {r['cpu_s']:.1f}, comfy-api-proxy {r['proxy_cpu_s']:.1f}, "
          f"fake ComfyUI + bench {r['fake_cpu_s']:.1f}, in {r['wall_s']:.1f} s of wall time "
          f"on {r['cpus']} CPUs")


def print_results(results: list[dict[str, Any]]) -> None:
    """The tables."""
    rows = [[f"{r['servers']} x{r['max_in_flight']}", r["jobs"], r["critical_path_jobs"],
             r["ideal_s"], r["makespan_s"], f"{r['over_ideal'] * 100:+.0f} %", r["wall_s"],
             r["link_ms_p50"], r["link_ms_p90"], r["cpu_ms_per_job"],
             r["cpu_ms_per_job_gross"], r["executed_twice"]] for r in results]
    print(table(["servers x in-flight", "jobs", "chain", "ideal s", "makespan s", "vs ideal",
                 "wall s", "link p50 ms", "link p90 ms", "CPU ms/job", "gross", "run twice"],
                rows))
    rows = []
    for r in results:
        for name, s in r["per_server"].items():
            rows.append([f"{r['servers']} x{r['max_in_flight']} {name}", s["jobs"], s["busy_s"],
                         s["idle_s"], s["gap_p50_ms"], s["gap_p90_ms"], s["gap_max_ms"],
                         f"{s['stack_switches']}/{s['stack_min']}", s["model_loads"],
                         f"{s['upload_bytes']}/{s['distinct_bytes']}",
                         s["max_uploads_per_file"]])
    print()
    print(table(["server", "jobs", "busy s", "idle s", "gap p50 ms", "gap p90 ms", "gap max ms",
                 "switches/min", "loads", "upload B/distinct B", "max up/file"], rows))


def verdict(results: list[dict[str, Any]]) -> None:
    """Say which targets were met."""
    for r in results:
        ok_span = r["over_ideal"] <= MAKESPAN_SLACK
        ok_cpu = r["cpu_ms_per_job"] <= CPU_MS_TARGET
        ok_up = all(s["max_uploads_per_file"] <= 1 for s in r["per_server"].values())
        print(f"{r['servers']} server(s) x{r['max_in_flight']}: makespan within 5 %: "
              f"{'met' if ok_span else 'MISSED'}; CPU/job <= 5 ms: "
              f"{'met' if ok_cpu else 'MISSED'}; each file uploaded once per server: "
              f"{'met' if ok_up else 'MISSED'}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m bench.throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=50)
    parser.add_argument("--servers", default="1,2,4", help="server counts (1,2,4; 0: none)")
    parser.add_argument("--v2-workers", type=int, default=0,
                        help="also run behind a v2 surface with this many workers (16)")
    parser.add_argument("--v2-in-flight", type=int, default=0,
                        help="max_in_flight of the v2 backend (default: two per worker)")
    parser.add_argument("--in-flight", default="2",
                        help="max_in_flight values (2: one running, one queued; 1,2 compares)")
    parser.add_argument("--job-ms", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--profile", action="store_true",
                        help="run the daemon traced (bench.trace_watch): time per pass part")
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    v2 = None
    counts = [int(x) for x in args.servers.split(",") if int(x) > 0]
    with scratch("kf-bench-throughput-", args.keep) as base:
        for depth in (int(x) for x in args.in_flight.split(",")):
            for count in counts:
                print(f"{count} server(s), max_in_flight {depth} ...", flush=True)
                results.append(one_setup(base / f"s{count}-f{depth}", count, args.scenes,
                                         args.seed, args.job_ms / 1000, depth, args.profile))
        if args.v2_workers:
            print(f"v2 surface, {args.v2_workers} workers ...", flush=True)
            v2 = v2_setup(base / "v2", args.v2_workers, args.scenes, args.seed,
                          args.v2_in_flight)
    print(f"\n{args.scenes} scenes, {args.job_ms:g} ms jobs")
    if results:
        print_results(results)
        verdict(results)
    if v2 is not None:
        print()
        print_v2(v2)
    name = "throughput" if results else "throughput-v2"
    path = save_results(name, {"scenes": args.scenes, "job_ms": args.job_ms,
                               "results": results, "v2": v2,
                               "seconds": round(time.monotonic() - started, 1)})
    print(f"wrote {path} in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
