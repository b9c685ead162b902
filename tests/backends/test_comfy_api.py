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

from keyframed.daemon.store import DB_NAME, STATE_DIR
from tests.backends.apiproxy import ApiProxy, run_cli, v2_project
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
    assert "19 artifacts: 19 fresh" in done.stdout, done.stdout
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
    assert submitted_artifacts(comfy) == made, "a fresh project submitted again"
