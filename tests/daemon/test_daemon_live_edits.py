"""The edit scenarios of the plan table, made with editor save patterns on a running daemon
process against the ComfyUI-compatible server: exactly the stale set is submitted, once each;
no-change saves, touches and the daemon's own writes submit nothing."""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest

from tests.comfy_project import comfy_project, submission_counts, submitted_artifacts
from tests.daemon.test_daemon_process import start_watch, wait_for
from tests.daemon.test_watcher_editors import SAVES
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.handlers.test_edit_scenarios import SCENARIOS, Scenario

INPUTS = (
    "assets.json",
    "scene-breakdown.md",
    "style.json",
    "keyframed.toml",
    "assets",
    "workflows",
)
# Outputs the server is not asked for again: a local copy, a user's file, and an output that
# was deleted (it is fetched again from ComfyUI's history, not regenerated, and being the same
# bytes its users stay fresh).
NOT_SUBMITTED = ("user_override", "missing_output")
SKIP = {"output deleted", "output replaced by the user"}  # edits of outputs, not of inputs


def save_like_sed(path: Path, data: bytes) -> None:
    """GNU sed -i's steps (temp ``sedXXXXXX`` beside the file, renamed over it) with given bytes."""
    tmp = path.with_name("sedK3xQ9a")
    tmp.write_bytes(data)
    os.replace(tmp, path)


EDITORS = {**SAVES, "sed": save_like_sed}


def idle(root: Path) -> bool:
    try:
        doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    counts = doc.get("counts", {})
    return not any(counts.get(s) for s in ("stale", "queued", "running"))


def new_bytes(root: Path, scenario: Scenario, scratch: Path) -> dict[str, bytes | None]:
    """What the scenario's edit does to the inputs, as file → new bytes (None: deleted)."""
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for name in INPUTS:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, scratch / name)
        elif src.is_file():
            shutil.copy2(src, scratch / name)
    for folder in root.glob("scene-[0-9]*"):
        if folder.is_dir():
            (scratch / folder.name).mkdir()
    before = {
        p.relative_to(scratch).as_posix(): p.read_bytes() for p in scratch.rglob("*") if p.is_file()
    }
    scenario.edit(scratch)
    after = {
        p.relative_to(scratch).as_posix(): p.read_bytes() for p in scratch.rglob("*") if p.is_file()
    }
    changes: dict[str, bytes | None] = {k: v for k, v in after.items() if before.get(k) != v}
    changes.update({k: None for k in before if k not in after})
    return changes


def expected_submissions(scenario: Scenario, direct_only: bool = False) -> set[str]:
    """The scenario's stale set as submissions (or only what is stale for its own reasons)."""
    out = set()
    for path, reasons in scenario.expected.items():
        if any(r.startswith(NOT_SUBMITTED) for r in reasons):
            continue
        if direct_only and all(r.startswith("upstream_stale") for r in reasons):
            continue
        if path == "scene-02/layers/background.png":
            continue  # a local copy of keyframe-start
        out.add(path.replace("video-preview.webp", "video.mp4").rsplit(".", 1)[0])
    return out


@pytest.mark.slow
def test_edits_by_editor_patterns_on_a_running_daemon(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    server = fake_comfy_factory()
    root = comfy_project(tmp_path / "p", [server])
    proc = start_watch(root, tmp_path / "watch.log")
    pause = threading.Event()
    editors = sorted(EDITORS)
    try:
        assert wait_for(lambda: idle(root) and len(server.records.prompts) >= 17, timeout=60)
        cases = [s for s in SCENARIOS if s.name not in SKIP]
        for n, scenario in enumerate(cases):
            editor = editors[n % len(editors)]
            before = len(server.records.prompts)
            for rel, data in new_bytes(root, scenario, tmp_path / "scratch").items():
                target = root / rel
                if data is None:
                    target.unlink()
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    # A new file is simply written; editors' patterns are for saving over one.
                    EDITORS[editor if target.exists() else "temp_replace"](target, data)
            want = expected_submissions(scenario)
            # Wait for the submissions we expect, then a little longer for any we don't.
            target_count = before + len(want)
            wait_for(lambda n=target_count: len(server.records.prompts) >= n, timeout=30)
            pause.wait(0.6)
            assert wait_for(lambda: idle(root), timeout=30), scenario.name
            got = submitted_artifacts(server)[before:]
            what = f"{scenario.name} by {editor}"
            assert len(got) == len(set(got)), what
            # Exactly the stale set; an upstream rebuilt to the same bytes may spare its users
            # (early cutoff), so what is stale only through an upstream may be left out.
            assert expected_submissions(scenario, direct_only=True) <= set(got) <= want, what
        assert max(submission_counts(server).values()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
