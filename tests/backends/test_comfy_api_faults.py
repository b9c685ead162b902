"""Faults on the v2 path: 429 with Retry-After, 5xx, SSE streams cut, a proxy restart, and a
crash of keyframed between the submission and recording its answer.

keyframed talks to a fault-injecting forwarder in front of the real comfy-api-proxy, which is in
front of the fake ComfyUI. Every run must end with every artifact fresh and no artifact run
twice on ComfyUI.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyframed.backends.base import NoProgress
from keyframed.backends.comfy_api import ComfyApiBackend, idempotency_key_for
from keyframed.backends.registry import project_id
from keyframed.daemon.store import Store
from keyframed.inputs.config import load_settings
from tests.backends.apiproxy import ApiProxy, run_cli, v2_project
from tests.backends.v2faults import V2Faults
from tests.comfy_project import submitted_artifacts
from tests.daemon.test_daemon_process import wait_for
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.server import FakeComfy
from tests.planning import snapshot


@pytest.fixture
def chain(fake_comfy_factory: FakeComfyFactory,
          tmp_path: Path) -> Iterator[tuple[FakeComfy, ApiProxy, V2Faults]]:
    comfy = fake_comfy_factory(job_seconds=0.05)
    proxy = ApiProxy(comfy, state_dir=tmp_path / "proxy-state").start()
    faults = V2Faults(proxy.url).start()
    yield comfy, proxy, faults
    faults.stop()
    proxy.stop()


def once_each(comfy: FakeComfy) -> list[str]:
    """The artifacts ComfyUI ran, asserting none ran twice."""
    made = [m.rsplit("-", 1)[0] for m in submitted_artifacts(comfy)]
    assert len(made) == len(set(made)), sorted(made)
    return made


def test_429_5xx_and_cut_streams_end_fresh(chain: tuple[FakeComfy, ApiProxy, V2Faults],
                                           tmp_path: Path) -> None:
    comfy, _, faults = chain
    faults.fail_next("POST /api/v2/jobs", n=2, status=429, **{"Retry-After": "1"})
    faults.fail_next("GET /api/v2/jobs/*", n=3, status=503)
    faults.fail_next("HEAD /api/v2/assets/by-hash/*", n=1, status=502)
    faults.drop_streams(6)
    root = v2_project(tmp_path / "p", faults.url)
    done = run_cli(root, "run", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout, done.stdout
    assert len(once_each(comfy)) == 18
    assert faults.hits["POST /api/v2/jobs"] >= 18 + 2  # the 429s were answered and waited out
    assert all(rule.n == 0 for rule in faults.rules), [(r.pattern, r.n) for r in faults.rules]
    assert faults.drops == 0, "no event stream was cut"


def test_a_proxy_restart_mid_run_ends_fresh(chain: tuple[FakeComfy, ApiProxy, V2Faults],
                                            tmp_path: Path) -> None:
    comfy, proxy, faults = chain
    root = v2_project(tmp_path / "p", faults.url, retry_max_s=2.0)
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.update(done=run_cli(root, "run", str(root))))
    thread.start()
    try:
        assert wait_for(lambda: len(comfy.records.prompts) >= 4, timeout=60)
        proxy.stop()  # streams and polls fail while it is gone: transient errors
        proxy.start()  # same port, same --state-dir: it still knows its jobs and keys
    finally:
        thread.join(300)
    done = result["done"]
    assert getattr(done, "returncode", None) == 0, done
    assert "19 artifacts: 18 done, 1 fresh" in getattr(done, "stdout", "")
    assert len(once_each(comfy)) == 18


def test_a_crash_between_submit_and_record_adopts_the_job(
        chain: tuple[FakeComfy, ApiProxy, V2Faults], tmp_path: Path) -> None:
    """keyframed recorded the key, sent the job and died before recording the answer: the next
    run's resend is refused as a reused key, and the job is found in the surface's list."""
    comfy, proxy, _ = chain
    root = v2_project(tmp_path / "p", proxy.url)
    settings = load_settings(root)
    store = Store.for_project(root)
    try:
        art = next(i.artifact for i in snapshot(root, store, record=False).items
                   if not i.artifact.recipe.inputs and i.artifact.recipe.step != "copy")
        backend = ComfyApiBackend(settings.backends[0], settings, root, store,
                                  project_id(root))
        try:
            idem = idempotency_key_for(backend.project_id, art, "job-1", 0)
            # the first life: key recorded, job sent, answer lost (the process died)
            store.intend_submission(backend.name, idem)
            first = backend.client.submit(backend._workflow(art, {}, idem),
                                          idempotency_key=idem)
            assert store.submission(backend.name, idem) == (True, None)
            # the next life runs the same job
            data = backend.execute("job-1", art, {}, NoProgress())
        finally:
            backend.close()
        assert data.startswith(b"\x89PNG")
        assert store.submission(backend.name, idem) == (True, first.id)
    finally:
        store.close()
    assert len(comfy.records.prompts) == 1, "the job ran twice"
