"""One project, two kinds of backend: a native ComfyUI and a Comfy API v2 surface (issue 15).

The native server is a newer ComfyUI (core jobs API) without the AnyPose LoRAs; the v2
surface is the real comfy-api-proxy in front of a recorded-0.8.0 fake that has every model.
The native side's ``object_info`` says what it lacks, so every job that needs AnyPose must go
to the v2 surface, and the rest may go to either; each artifact is made exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.apiproxy import ApiProxy, run_cli
from tests.comfy_project import submitted_artifacts
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.models import DEFAULT_MODELS
from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

MISSING = "AnyPose"


@pytest.fixture
def farm(fake_comfy_factory: FakeComfyFactory,
         tmp_path: Path) -> Iterator[tuple[FakeComfy, FakeComfy, ApiProxy]]:
    poor = {k: [n for n in v if MISSING not in n] for k, v in DEFAULT_MODELS.items()}
    native = fake_comfy_factory(models=poor, jobs_api=True, job_seconds=0.05)
    behind = fake_comfy_factory(job_seconds=0.05)
    proxy = ApiProxy(behind, state_dir=tmp_path / "proxy-state").start()
    yield native, behind, proxy
    proxy.stop()


def mixed_project(dest: Path, native: FakeComfy, proxy: ApiProxy) -> Path:
    root = copy_sample(dest)
    lines = ['approval = "auto"', "[image]", "width = 128", "height = 72",
             "[video]", "width = 128", "height = 80",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.2", "max_attempts = 8",
             "[[backends]]", 'name = "gpu0"', 'kind = "comfyui"', f'url = "{native.url}"',
             "max_in_flight = 1", "timeout_s = 60",
             "[[backends]]", 'name = "cloud"', 'kind = "comfy-api"', f'url = "{proxy.url}"',
             "max_in_flight = 2", "timeout_s = 60"]
    (root / "keyframed.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def needs_missing_lora(server: FakeComfy) -> list[bool]:
    """For each prompt the server accepted: does it load a LoRA of the missing family?"""
    return [MISSING in json.dumps(r.body["prompt"]) for r in server.records.prompts]


def test_each_job_goes_to_a_backend_that_can_take_it(
        farm: tuple[FakeComfy, FakeComfy, ApiProxy], tmp_path: Path) -> None:
    native, behind, proxy = farm
    root = mixed_project(tmp_path / "p", native, proxy)
    done = run_cli(root, "run", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "19 artifacts: 18 done, 1 fresh" in done.stdout, done.stdout
    on_native = submitted_artifacts(native)
    on_v2 = [m.rsplit("-", 1)[0] for m in submitted_artifacts(behind)]  # less the key's tail
    made = Counter(on_native + on_v2)
    assert len(made) == 18 and set(made.values()) == {1}, made
    # Nothing that needs the missing LoRA reached the server without it; it all went to v2.
    assert needs_missing_lora(native) and not any(needs_missing_lora(native))
    assert any(needs_missing_lora(behind))
    assert on_native and on_v2, "both backends took work"
    # The native server was read through its jobs API, never through /history.
    paths = [p for _, p in native.records.requests]
    assert any(p.startswith("/api/jobs/") for p in paths)
    assert not any(p.startswith("/history") for p in paths)
    states = json.loads((root / "status.json").read_text(encoding="utf-8"))
    assert {b["name"]: b["up"] for b in states["backends"]} == {"gpu0": True, "cloud": True}
