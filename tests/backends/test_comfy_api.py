"""The ``comfy-api`` backend through the real comfy-api-proxy in front of the fake ComfyUI.

The done criterion of issue 15: ``keyframed run`` on a copy of the sample with a Comfy API v2
backend ends with every artifact fresh; each reference image goes up once; a second run
submits nothing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.backends.doctor import check_backend
from keyframed.daemon.store import DB_NAME, STATE_DIR
from keyframed.inputs.config import load_settings
from tests.backends.apiproxy import ApiProxy, free_port, run_cli, v2_project
from tests.comfy_project import submitted_artifacts
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.server import FakeComfy


@pytest.fixture
def surface(fake_comfy_factory: FakeComfyFactory,
            tmp_path: Path) -> Iterator[tuple[FakeComfy, ApiProxy]]:
    comfy = fake_comfy_factory()
    proxy = ApiProxy(comfy, state_dir=tmp_path / "proxy-state").start()
    yield comfy, proxy
    proxy.stop()


def test_the_sample_builds_fresh_through_the_v2_surface(
        surface: tuple[FakeComfy, ApiProxy], tmp_path: Path) -> None:
    comfy, proxy = surface
    root = v2_project(tmp_path / "p", proxy.url)
    done = run_cli(root, "run", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout, done.stdout
    # every artifact but the local copy of scene 2's keyframe ran on ComfyUI, once
    made = submitted_artifacts(comfy)
    artifacts = {m.rsplit("-", 1)[0] for m in made}  # the prefix ends in the key's tail
    assert len(made) == len(artifacts) == 18, sorted(made)
    # every reference image reached ComfyUI once: uploads are deduplicated by content hash
    uploads = comfy.records.uploads
    digests = [u.sha256 for u in uploads]
    assert len(digests) == len(set(digests)), digests
    with sqlite3.connect(root / STATE_DIR / DB_NAME) as db:
        rows = db.execute("SELECT job_id FROM v2_submissions").fetchall()
    assert len(rows) == len(made) and all(job_id for (job_id,) in rows)
    again = run_cli(root, "run", str(root))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "19 artifacts: 18 done, 1 fresh" in again.stdout, again.stdout
    assert submitted_artifacts(comfy) == made, "a fresh project submitted again"


def test_doctor_says_what_it_verified_on_a_v2_surface_and_what_not(
        surface: tuple[FakeComfy, ApiProxy], tmp_path: Path) -> None:
    _, proxy = surface
    root = v2_project(tmp_path / "p", proxy.url)
    settings = load_settings(root)
    report = check_backend(settings.backends[0], settings, root, {}, "keyframed.toml")
    text = "\n".join(line for _, line in report.lines)
    assert not report.problems, text
    assert "reachable: Comfy API v2" in text and "not verifiable on a v2 surface" in text
    dead = v2_project(tmp_path / "q", f"http://127.0.0.1:{free_port()}")
    settings = load_settings(dead)
    report = check_backend(settings.backends[0], settings, dead, {}, "keyframed.toml")
    assert [p.where for p in report.problems] == ["cloud"]
