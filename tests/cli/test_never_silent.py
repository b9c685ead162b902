"""Issue 12 A, "never silent", through the real CLI against the ComfyUI-compatible test server.

Each test reproduces one bullet of the issue's "Why": a run with no usable backend used to
wait silently, failed artifacts showed as ``stale`` / ``never_built``, a failed asset's error
lived only in SQLite, ``run``, ``plan`` and ``status`` counted differently, and nothing showed
progress. Every status file written is checked against the schema.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keyframed.cli.main import main
from keyframed.daemon.drive import EXIT_DONE, EXIT_FAILED, EXIT_NO_BACKEND, EXIT_TIMEOUT
from keyframed.daemon.status import STATES
from keyframed.daemon.store import JobStore, Store
from tests.comfy_project import comfy_project
from tests.fakecomfy import FakeComfy
from tests.fakecomfy.fixtures import FakeComfyFactory

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text(encoding="utf-8"))
INSTYLE = "InStyle-0.5.safetensors"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The person's own ~/.config/keyframed/config.toml must not leak into the tests."""
    monkeypatch.setenv("KEYFRAMED_CONFIG", str(tmp_path / "no-user-config.toml"))


def status_docs(root: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The root status and every scene status, each checked against the schema."""
    project = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(project, SCHEMA)
    scenes = []
    for path in sorted(root.glob("scene-*/status.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.validate(doc, SCHEMA)
        scenes.append(doc)
    return project, scenes


def all_entries(project: dict[str, Any], scenes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every artifact entry: the root's assets, then the scenes'."""
    return [*project["assets"], *(a for s in scenes for a in s["artifacts"])]


def free_port() -> int:
    """A port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_run_settings(root: Path, extra: str) -> None:
    """Add lines to the [run] table of the test project's keyframed.toml."""
    path = root / "keyframed.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("[run]\n", f"[run]\n{extra}\n", 1), encoding="utf-8")


def wait_until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy, or fail at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)  # polling a file another thread writes, with a deadline
    raise AssertionError("condition not met before the deadline")


# -- 1: no usable backend: exit at once, say which and why ---------------------------------------


def test_run_without_a_reachable_comfyui_exits_4_naming_it(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: `run` with no reachable ComfyUI waited forever. Now it waits the documented
    run.backend_start_wait_s for a server that is starting, then exits 4 naming it."""
    url = fake_comfy.url
    root = comfy_project(tmp_path / "p", [fake_comfy])
    fake_comfy.go_down()  # connections refused, as from a ComfyUI that is not running
    with_run_settings(root, "backend_start_wait_s = 0.3")
    code = main(["run", str(root)])
    err = capsys.readouterr().err
    assert code == EXIT_NO_BACKEND, err
    assert "no_backend: gpu0 cannot reach the ComfyUI server at " + url in err
    project, scenes = status_docs(root)
    assert project["ok"] is False
    kinds = {a["kind"] for a in project["attention"]}
    assert "backend_down" in kinds
    down = next(a for a in project["attention"] if a["kind"] == "backend_down")
    assert url in down["next"] and "keyframed doctor" in down["next"]
    blocked = [a for a in all_entries(project, scenes)
               if any(r.startswith("no_backend: gpu0 cannot reach") for r in a["reasons"])]
    assert blocked and all(a["state"] == "blocked" for a in blocked)


def test_run_on_a_server_without_the_lora_exits_4_at_once(
        tmp_path: Path, fake_comfy_factory: FakeComfyFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Why: a server lacking a LoRA a job needs left `run` waiting silently. Now the run ends
    with `no_backend: gpu0 lacks loras/InStyle-0.5.safetensors` in its summary, on the
    artifact in its scene status file, and in root status's attention list."""
    comfy = fake_comfy_factory()
    comfy.set_models("loras", [n for n in comfy.catalog.models("loras") if n != INSTYLE])
    root = comfy_project(tmp_path / "p", [comfy])
    # A long start wait: a server that answers but lacks a file must not be waited for.
    with_run_settings(root, "backend_start_wait_s = 600")
    code = main(["run", str(root)])
    err = capsys.readouterr().err
    assert code == EXIT_NO_BACKEND, err
    why = f"no_backend: gpu0 lacks loras/{INSTYLE}"
    assert why in err
    project, scenes = status_docs(root)
    entries = [a for s in scenes for a in s["artifacts"] if why in a["reasons"]]
    assert entries and {a["state"] for a in entries} == {"blocked"}
    lacks = [a for a in project["attention"] if a["kind"] == "no_backend"]
    assert {a["subject"] for a in lacks} == {a["path"] for a in entries}
    assert all(f"gpu0 lacks loras/{INSTYLE}" in a["message"] for a in lacks)
    assert project["counts"]["blocked"] >= len(entries)
    # `keyframed status` prints the attention list first.
    assert main(["status", str(root)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("! ") and f"gpu0 lacks loras/{INSTYLE}" in out.splitlines()[0]


# -- 2: failed is failed everywhere, with ComfyUI's message --------------------------------------


def test_failed_shows_everywhere_and_a_failed_asset_can_be_retried(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: failed jobs were counted `stale` by run, shown `never_built` by status, root
    status said ok, and a failed Phase 2.5 asset's error was only in SQLite."""
    fake_comfy.faults.fail_next_prompts(n=1000, exception_message="CUDA out of memory")
    root = comfy_project(tmp_path / "p", [fake_comfy])
    code = main(["run", str(root)])
    captured = capsys.readouterr()
    assert code == EXIT_FAILED, captured.err
    summary = captured.err
    counts = next(line for line in summary.splitlines() if " artifacts: " in line)
    assert " failed" in counts and "stale" not in counts
    assert "CUDA out of memory" in summary
    project, _scenes = status_docs(root)
    assert project["ok"] is False
    failed_assets = [a for a in project["assets"] if a["state"] == "failed"]
    assert failed_assets, project["assets"]
    asset = failed_assets[0]
    assert asset["reasons"][0].startswith("failed: ") and "CUDA out of memory" in asset["error"]
    # ComfyUI's message names the node that failed.
    assert "node" in asset["error"].lower()
    notes = {a["subject"]: a for a in project["attention"] if a["kind"] == "failed"}
    name = Path(asset["path"]).stem
    assert notes[asset["path"]]["next"] == f"keyframed retry {root} asset {name}"
    assert project["counts"]["failed"] == len(notes)
    # keyframed status shows the rows as failed, never as never_built.
    assert main(["status", str(root)]) == 0
    table = capsys.readouterr().out
    row = next(line for line in table.splitlines() if line.strip().startswith(asset["path"]))
    assert "failed" in row and "never_built" not in row
    # The fault is gone; retrying the asset (the command attention gave) builds it.
    fake_comfy.faults.reset()
    assert main(["retry", str(root), "asset", name]) == 0
    capsys.readouterr()
    main(["run", str(root)])
    project, _ = status_docs(root)
    again = next(a for a in project["assets"] if a["path"] == asset["path"])
    assert again["state"] in ("done", "fresh"), again
    assert (root / asset["path"]).is_file()


def test_retry_asset_refuses_an_asset_that_did_not_fail(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """Retrying names the failed assets when the one asked for did not fail."""
    root = comfy_project(tmp_path / "p", [fake_comfy])
    assert main(["run", str(root)]) == EXIT_DONE
    capsys.readouterr()
    assert main(["retry", str(root), "asset", "ghibli"]) == 1
    assert "no failed asset named 'ghibli'; failed assets: none" in capsys.readouterr().err


# -- 3: one vocabulary, one set of counts --------------------------------------------------------


def test_run_plan_and_status_count_the_same(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """Why: run, plan and status gave different counts for the example's artifacts."""
    fake_comfy.faults.fail_next_prompts(n=1, exception_message="boom")
    root = comfy_project(tmp_path / "p", [fake_comfy], approval="manual")
    main(["run", str(root)])
    out = capsys.readouterr()
    first = (out.out + out.err).splitlines()
    run_line = next(line for line in first if line.startswith("keyframed: ")
                    and " artifacts: " in line)
    run_counts = {s: int(n) for n, s in
                  (part.split(" ") for part in run_line.split(" artifacts: ", 1)[1].split(", "))}
    project, scenes = status_docs(root)
    assert project["counts"] == run_counts
    assert main(["plan", str(root), "--json", "--all"]) in (0, 1)
    plan = json.loads(capsys.readouterr().out)
    assert plan["counts"] == run_counts
    assert main(["status", str(root)]) == 0
    headline = next(line for line in capsys.readouterr().out.splitlines()
                    if line.startswith("daemon:"))
    assert ", ".join(f"{n} {s}" for s, n in run_counts.items()) in headline
    assert set(run_counts) <= set(STATES)
    assert sum(run_counts.values()) == len(all_entries(project, scenes))
    assert set(SCHEMA["$defs"]["state"]["enum"]) == set(STATES)


def test_every_job_start_is_logged_with_its_reasons(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """Each dispatched job's log line carries the plan's reasons (``never_built`` here)."""
    root = comfy_project(tmp_path / "p", [fake_comfy])
    assert main(["run", str(root)]) == EXIT_DONE
    err = capsys.readouterr().err
    starts = [line for line in err.splitlines() if "job_dispatched" in line]
    assert starts and all("never_built" in line for line in starts)


# -- 4: attention --------------------------------------------------------------------------------


def test_a_marker_nothing_consumes_is_in_attention(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """A pending ``*.retry`` file that names no artifact waits forever: attention says so."""
    root = comfy_project(tmp_path / "p", [fake_comfy])
    (root / "scene-01").mkdir(exist_ok=True)
    (root / "scene-01" / "keyframe-99.retry").write_text("", encoding="utf-8")
    main(["run", str(root)])
    capsys.readouterr()
    project, _ = status_docs(root)
    notes = [a for a in project["attention"] if a["kind"] == "unused_marker"]
    assert [a["subject"] for a in notes] == ["scene-01/keyframe-99.retry"]
    assert "delete scene-01/keyframe-99.retry" in notes[0]["next"]


# -- 6: progress ---------------------------------------------------------------------------------


def test_progress_fields_and_eta_from_measured_durations(
        tmp_path: Path, fake_comfy_factory: FakeComfyFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A first run measures each template's duration on its backend (stored in state.db); a
    second run's running artifact shows started_at, elapsed, its queue place and an ETA, and
    root status an ETA for all that is queued. Not a terminal: run prints plain lines."""
    comfy = fake_comfy_factory(job_seconds=0.3)
    root = comfy_project(tmp_path / "p", [comfy])
    assert main(["run", str(root)]) == EXIT_DONE
    plain = capsys.readouterr().out
    # Plain lines are drawn from the status files between slices: a 0.3 s job may be seen
    # queued or running (under load, not always both), and is always seen done.
    assert (": queued on gpu0" in plain or ": running on gpu0" in plain) \
        and ": done on gpu0" in plain, plain
    store = Store.for_project(root)
    try:
        measured = JobStore(store).durations()
    finally:
        store.close()
    assert measured and all(b == "gpu0" and s > 0 for (_, b), s in measured.items())
    # Change every prompt (a new style line), so all of it is built again, slowly.
    breakdown = root / "scene-breakdown.md"
    breakdown.write_text(breakdown.read_text(encoding="utf-8").replace(
        "\n", "\n", 1) + "\n", encoding="utf-8")
    # A new seed salt: every recipe is new, so nothing comes from the output cache either.
    toml = root / "keyframed.toml"
    toml.write_text('seed_salt = "second"\n' + toml.read_text(encoding="utf-8"), encoding="utf-8")
    comfy.faults.job_seconds = 0.8
    done = threading.Event()
    codes: list[int] = []

    def work() -> None:
        codes.append(main(["run", str(root)]))
        done.set()

    thread = threading.Thread(target=work)
    thread.start()
    try:
        def running_entry() -> dict[str, Any] | None:
            try:
                project, scenes = status_docs(root)
            except (OSError, ValueError):
                return None
            for art in all_entries(project, scenes):
                # The root file is rewritten at most so often (its clock and ETA aside), so
                # the two files are read until both show the running job.
                if art["state"] == "running" and art["eta_s"] is not None \
                        and art["started_at"] is not None and project["eta_s"] is not None:
                    return {"art": art, "eta": project["eta_s"]}
            return None
        seen = wait_until(running_entry, timeout=60)
        art = seen["art"]
        assert art["elapsed_s"] >= 0 and art["eta_s"] >= 0
        # Known only while keyframed polls the server's queue (not with one job a server).
        assert art["queue_position"] is None or art["queue_position"] >= 0
        assert seen["eta"] is not None and seen["eta"] >= 0
    finally:
        thread.join(timeout=120)
    assert codes == [EXIT_DONE]


@pytest.mark.timeout(90)
def test_a_refused_config_reload_is_in_attention(tmp_path: Path) -> None:
    """A failed SIGHUP reload used to be only in the log."""
    import os
    import signal
    import subprocess
    import sys

    from tests.daemon.test_daemon_process import wait_for
    from tests.planning import copy_sample

    root = copy_sample(tmp_path / "p")
    (root / "keyframed.toml").write_text('approval = "auto"\n[[backends]]\nname = "p"\n'
                                         'kind = "preview"\n', encoding="utf-8")
    env = {**os.environ, "KEYFRAMED_LOG_FORMAT": "json",
           "KEYFRAMED_CONFIG": str(tmp_path / "none")}
    with (tmp_path / "log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "keyframed", "watch", str(root)],
                                stdout=log, stderr=log, env=env)
        try:
            assert wait_for(lambda: (root / "status.json").exists(), timeout=30)
            (root / "keyframed.toml").write_text('approval = "sometimes"\n', encoding="utf-8")
            proc.send_signal(signal.SIGHUP)

            def refused() -> bool:
                try:
                    doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
                except ValueError:
                    return False
                return any(a["kind"] == "config_reload" for a in doc["attention"])
            assert wait_for(refused, timeout=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    doc, _ = status_docs(root)
    note = next(a for a in doc["attention"] if a["kind"] == "config_reload")
    assert note["subject"].startswith("keyframed.toml") and "kill -HUP" in note["next"]
    assert doc["ok"] is False


def test_run_that_runs_out_of_time_exits_5_naming_what_is_left(
        tmp_path: Path, fake_comfy: FakeComfy, capsys: pytest.CaptureFixture[str]) -> None:
    """``--timeout`` with work still on the server: exit 5 (gave up), distinct from failures
    (3) and no backend (4), naming what is still queued or running."""
    fake_comfy.faults.hold_jobs()  # the server takes the prompt and never finishes it
    root = comfy_project(tmp_path / "p", [fake_comfy])
    try:
        code = main(["run", str(root), "--timeout", "1"])
    finally:
        fake_comfy.faults.reset()
    err = capsys.readouterr().err
    assert code == EXIT_TIMEOUT, err
    assert "gave up after --timeout 1 s; still queued or running" in err
    project, _ = status_docs(root)
    assert project["ok"] is True and not project["attention"]
