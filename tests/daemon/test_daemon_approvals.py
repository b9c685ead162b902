"""The reconcile loop on the sample project with the preview backend: phases, approvals, retries,
and status files valid against the schema at every step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from keyframed.daemon.loop import Reconciler
from keyframed.daemon.store import JobStore, Store
from keyframed.inputs.config import load_settings
from tests.planning import copy_sample

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text(encoding="utf-8")
)


def check_status_files(root: Path) -> dict[str, Any]:
    """Validate every status file; return the root document."""
    root_doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(root_doc, SCHEMA)
    for path in root.glob("scene-*/status.json"):
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), SCHEMA)
    return root_doc  # type: ignore[no-any-return]


def reconciler(root: Path, **overrides: Any) -> Reconciler:
    small = {"image": {"width": 256, "height": 144}, "video": {"width": 128, "height": 80}}
    settings = load_settings(root, env={}, overrides={"approval": "manual", **small, **overrides})
    rec = Reconciler(root, settings)
    rec.start()
    return rec


def states(rec: Reconciler) -> dict[str, str]:
    assert rec.snapshot is not None
    return {i.path: i.state for i in rec.snapshot.items}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_sample(tmp_path / "samurai")


def test_phases_wait_for_approvals(project: Path) -> None:
    rec = reconciler(project)
    try:
        rec.run_until_idle(timeout=60)
        doc = check_status_files(project)
        # Phase 2.5 ran: the three described assets exist; nothing else did.
        for rel in ("assets/backgrounds/temple_courtyard.png",
                    "assets/backgrounds/mountain_sunset.png", "assets/styles/ghibli.png"):
            assert (project / rel).is_file()
        assert not list(project.glob("scene-*/keyframe-*.png"))
        assert "assets.approved" in doc["waiting_for_approval"]
        assert set(states(rec).values()) == {"fresh", "awaiting_approval", "blocked"}

        (project / "assets.approved").write_text("")
        rec.run_until_idle(timeout=60)
        doc = check_status_files(project)
        assert len(list(project.glob("scene-*/keyframe-*.png"))) == 6
        assert not list(project.glob("scene-*/video*"))
        assert set(doc["waiting_for_approval"]) == {
            f"scene-0{n}/keyframes.approved" for n in (1, 2, 3)}

        (project / "scene-02" / "keyframes.approved").write_text("ok")
        rec.run_until_idle(timeout=60)
        check_status_files(project)
        assert [p.parent.name for p in project.glob("scene-*/video-preview.webp")] == ["scene-02"]
    finally:
        rec.close()


def test_keyframe_approval_goes_stale_after_an_edit(project: Path) -> None:
    rec = reconciler(project)
    try:
        rec.run_until_idle(timeout=60)
        (project / "assets.approved").write_text("")
        rec.run_until_idle(timeout=60)
        (project / "scene-03" / "keyframes.approved").write_text("")
        rec.run_until_idle(timeout=60)
        video = project / "scene-03" / "video-preview.webp"
        assert video.is_file()
        first_video = video.read_bytes()
        first_record = rec.store.record("scene-03/video-preview.webp")

        text = (project / "scene-breakdown.md").read_text(encoding="utf-8")
        (project / "scene-breakdown.md").write_text(
            text.replace("eyes open, alert", "eyes wide open, startled"), encoding="utf-8")
        rec.run_until_idle(timeout=60)
        item = rec.snapshot.item("scene-03/video-preview.webp") if rec.snapshot else None
        assert item is not None and item.state == "awaiting_approval"
        assert "approval_stale: scene-03/keyframe-end.png" in [str(r) for r in item.reasons]
        assert video.read_bytes() == first_video  # no new video until approved again
        doc = check_status_files(project)
        assert "scene-03/keyframes.approved" in doc["waiting_for_approval"]

        (project / "scene-03" / "keyframes.approved").write_text("again")
        rec.run_until_idle(timeout=60)
        record = rec.store.record("scene-03/video-preview.webp")
        assert first_record is not None and record is not None
        assert record.fingerprint != first_record.fingerprint
    finally:
        rec.close()


def test_retry_marker_gives_exactly_one_take_across_restarts(project: Path) -> None:
    rec = reconciler(project, approval="auto")
    rec.run_until_idle(timeout=60)
    rec.close()
    marker = project / "scene-01" / "keyframe-start.retry"
    marker.write_text("warmer light")
    # A daemon that sees the marker and dies at once, several times over.
    for _ in range(3):
        rec = reconciler(project, approval="auto")
        rec.reconcile_once()
        rec.close(wait=True)
    rec = reconciler(project, approval="auto")
    try:
        rec.run_until_idle(timeout=60)
        store = rec.store
        takes, notes = store.takes()
        assert takes["scene-01/keyframe-start.png"] == 1
        assert notes["scene-01/keyframe-start.png"] == "warmer light"
        record = store.record("scene-01/keyframe-start.png")
        assert record is not None and record.take == 1
        assert not marker.exists()  # removed once the new take was recorded
        item = rec.snapshot.item("scene-01/keyframe-start.png") if rec.snapshot else None
        assert item is not None and item.state == "fresh"
        assert "warmer light" in item.artifact.recipe.prompt
    finally:
        rec.close()


def test_no_change_pass_submits_nothing(project: Path) -> None:
    rec = reconciler(project, approval="auto")
    try:
        rec.run_until_idle(timeout=60)
        jobs_before = len(JobStore(rec.store).latest())
        result = rec.reconcile_once()
        assert not result.changed
        (project / "scene-breakdown.md").touch()
        assert not rec.reconcile_once().changed
        assert len(JobStore(rec.store).latest()) == jobs_before
    finally:
        rec.close()


def test_bad_input_keeps_the_last_good_plan_and_outputs(project: Path) -> None:
    rec = reconciler(project, approval="auto")
    try:
        rec.run_until_idle(timeout=60)
        before = {p: p.read_bytes() for p in project.glob("scene-*/*.png")}
        (project / "assets.json").write_text('{"characters": {', encoding="utf-8")
        result = rec.reconcile_once()
        assert not result.ok and not result.changed
        doc = check_status_files(project)
        assert doc["ok"] is False and doc["errors"][0]["file"] == "assets.json"
        assert {p: p.read_bytes() for p in project.glob("scene-*/*.png")} == before
        # Scene status files still describe the last good plan.
        scene = json.loads((project / "scene-01" / "status.json").read_text(encoding="utf-8"))
        assert scene["artifacts"]
    finally:
        rec.close()


def test_approval_dropped_before_assets_exist_is_stale(project: Path) -> None:
    """An approval binds to the assets as they were when it was dropped."""
    (project / "assets.approved").write_text("")
    rec = reconciler(project)
    try:
        rec.run_until_idle(timeout=60)
        item = rec.snapshot.item("scene-01/layers/background.png") if rec.snapshot else None
        assert item is not None and item.state == "awaiting_approval"
        assert "approval_stale: assets/styles/ghibli.png" in [str(r) for r in item.reasons]
    finally:
        rec.close()


def test_store_integrity(project: Path) -> None:
    rec = reconciler(project, approval="auto")
    rec.run_until_idle(timeout=60)
    rec.close()
    store = Store.for_project(project)
    try:
        assert store.integrity_check() == "ok"
    finally:
        store.close()
