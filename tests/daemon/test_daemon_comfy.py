"""The reconcile loop against the ComfyUI-compatible test server, over real HTTP.

The whole-sample build and the mid-run restart run twice: against the recorded ComfyUI 0.8.0
(/history, /queue) and against a newer ComfyUI with the core jobs API (/api/jobs).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

import pytest

from keyframed.daemon.loop import Reconciler
from keyframed.inputs.config import load_settings
from tests.comfy_project import comfy_project, submission_counts, submitted_artifacts
from tests.fakecomfy.fixtures import FakeComfyFactory


def reconciler(root: Path) -> Reconciler:
    rec = Reconciler(root, load_settings(root, env={}))
    rec.start()
    return rec


SURFACES = pytest.mark.parametrize("jobs_api", [False, True], ids=["comfyui-0.8.0", "jobs-api"])


@SURFACES
def test_sample_builds_once_with_each_image_uploaded_once(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, jobs_api: bool
) -> None:
    server = fake_comfy_factory(jobs_api=jobs_api)
    root = comfy_project(tmp_path / "p", [server])
    rec = reconciler(root)
    try:
        snap = rec.run_until_idle(timeout=120)
        assert snap is not None and snap.ok
        not_fresh = [(i.path, i.state, [str(r) for r in i.reasons])
                     for i in snap.items if i.state != "fresh"]
        assert not not_fresh
        submitted = submitted_artifacts(server)
        # Every artifact but the local copy of scene 2's keyframe went to the GPU, once.
        expected = {i.path.rsplit(".", 1)[0] for i in snap.items
                    if i.artifact.recipe.step != "copy"}
        assert Counter(submitted) == Counter(expected)
        assert all(n == 1 for n in submission_counts(server).values())
        shas = [u.sha256 for u in server.records.uploads]
        assert len(shas) == len(set(shas)), "an image was uploaded twice"
        # Each scene's status.json names the prompt each artifact was made by.
        shown = {e["path"]: e["prompt_id"] for f in sorted(root.glob("scene-*/status.json"))
                 for e in json.loads(f.read_text(encoding="utf-8"))["artifacts"]
                 if e["step"] != "copy"}
        assert shown and set(shown.values()) <= set(server.records.prompt_ids), shown
        assert len(set(shown.values())) == len(shown)
        # A second run with nothing changed sends nothing.
        before = len(server.records.prompts)
        rec.run_until_idle(timeout=30)
        assert len(server.records.prompts) == before
    finally:
        rec.close()


@SURFACES
def test_restart_of_comfyui_mid_run_resubmits_lost_jobs_once(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, jobs_api: bool
) -> None:
    server = fake_comfy_factory(job_seconds=0.15, jobs_api=jobs_api)
    root = comfy_project(tmp_path / "p", [server], max_in_flight=2)
    rec = reconciler(root)
    done = threading.Event()
    try:
        worker = threading.Thread(target=lambda: (rec.run_until_idle(timeout=120), done.set()))
        worker.start()
        # Restart once three prompts were accepted: queue and history are forgotten.
        deadline = threading.Event()
        for _ in range(400):
            if len(server.records.prompts) >= 3:
                break
            deadline.wait(0.05)
        lost_candidates = set(server.records.prompt_ids)
        server.restart(clear_uploads=True)
        worker.join(timeout=150)
        assert done.is_set()
        snap = rec.snapshot
        assert snap is not None and {i.state for i in snap.items} == {"fresh"}
        counts = submission_counts(server)
        assert max(counts.values()) <= 2
        resubmitted = {pid for pid, n in counts.items() if n == 2}
        assert resubmitted and resubmitted <= lost_candidates
    finally:
        rec.close()


def test_execution_error_fails_the_job_with_comfy_message(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    server = fake_comfy_factory()
    server.faults.fail_next_prompts(100)
    root = comfy_project(tmp_path / "p", [server])
    rec = reconciler(root)
    try:
        rec.run_until_idle(timeout=60)
        failed = [j for j in rec.jobs.latest().values() if j.state == "failed"]
        assert failed
        assert all(j.error for j in failed)
        # A permanent error is not retried: one submission per failed job.
        assert all(n == 1 for n in submission_counts(server).values())
        scene = (root / "status.json").read_text(encoding="utf-8")
        assert '"failed"' in scene
    finally:
        rec.close()


def test_two_servers_share_the_work(fake_comfy_factory: FakeComfyFactory, tmp_path: Path) -> None:
    a = fake_comfy_factory(job_seconds=0.05)
    b = fake_comfy_factory(job_seconds=0.05)
    root = comfy_project(tmp_path / "p", [a, b])
    rec = reconciler(root)
    try:
        snap = rec.run_until_idle(timeout=120)
        assert snap is not None and {i.state for i in snap.items} == {"fresh"}
        assert a.records.prompts and b.records.prompts
        both = Counter(submitted_artifacts(a) + submitted_artifacts(b))
        assert all(n == 1 for n in both.values())
    finally:
        rec.close()


def test_server_without_a_lora_gets_no_jobs_that_need_it(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    from tests.fakecomfy.models import DEFAULT_MODELS

    models = {k: [n for n in v if "AnyPose" not in n] for k, v in DEFAULT_MODELS.items()}
    poor = fake_comfy_factory(models=models)
    rich = fake_comfy_factory()
    root = comfy_project(tmp_path / "p", [poor, rich])
    rec = reconciler(root)
    try:
        rec.run_until_idle(timeout=120)
        on_poor = submitted_artifacts(poor)
        assert not any("character" in p for p in on_poor)
        assert any("character" in p for p in submitted_artifacts(rich))
    finally:
        rec.close()
