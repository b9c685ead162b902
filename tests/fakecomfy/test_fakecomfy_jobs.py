"""The fake's core jobs API against the shapes of ComfyUI's own source (docs/comfyui-jobs-api.md).

There is no recording of a newer ComfyUI: the keys and values below are the ones
``comfy_execution/jobs.py`` and ``server.py`` of the commits read build, for the same prompts.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.fakecomfy import FakeComfy
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.testkit import image_graph, wait_history

QUEUED_KEYS = {"id", "status", "priority", "create_time", "outputs_count",
               "previewable_outputs_count"}
FINISHED_KEYS = QUEUED_KEYS | {"execution_start_time", "execution_end_time", "has_errors",
                               "execution_error_count"}
FULL_KEYS = {"outputs", "execution_status", "execution_errors", "workflow"}


@pytest.fixture
def jobs_comfy(fake_comfy_factory: FakeComfyFactory) -> FakeComfy:
    return fake_comfy_factory(jobs_api=True)


@pytest.fixture
def client(jobs_comfy: FakeComfy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=jobs_comfy.url, timeout=10) as http:
        yield http


def submit(client: httpx.Client, prompt: dict[str, Any], prompt_id: str | None = None) -> str:
    body: dict[str, Any] = {"prompt": prompt}
    if prompt_id is not None:
        body["prompt_id"] = prompt_id
    r = client.post("/prompt", json=body)
    assert r.status_code == 200, r.text
    return str(r.json()["prompt_id"])


def test_a_finished_job_has_its_outputs_status_and_workflow(client: httpx.Client) -> None:
    graph = image_graph()
    pid = submit(client, graph)
    wait_history(client, pid)
    job = client.get(f"/api/jobs/{pid}").json()
    assert set(job) == FINISHED_KEYS | FULL_KEYS | {"completion_status", "preview_output"}
    assert (job["id"], job["status"], job["completion_status"]) == (pid, "completed", "success")
    assert (job["has_errors"], job["execution_error_count"], job["outputs_count"]) == (False, 0, 1)
    assert job["workflow"]["prompt"] == graph and "client_id" not in job["workflow"]["extra_data"]
    saved = job["outputs"]["3"]["images"][0]
    assert job["preview_output"] == {**saved, "nodeId": "3", "mediaType": "images"}
    assert job["execution_status"]["status_str"] == "success"
    assert job["execution_end_time"] >= job["execution_start_time"]
    # The same route under ComfyUI's doubled /api prefix.
    assert client.get(f"/api/api/jobs/{pid}").json() == job


def test_pending_running_and_unknown_jobs(jobs_comfy: FakeComfy, client: httpx.Client) -> None:
    jobs_comfy.faults.hold_jobs()
    first, second = submit(client, image_graph(colour=1)), submit(client, image_graph(colour=2))
    jobs_comfy.faults.wait_held()
    running, pending = (client.get(f"/api/jobs/{p}").json() for p in (first, second))
    assert set(running) == set(pending) == QUEUED_KEYS
    assert (running["status"], pending["status"]) == ("in_progress", "pending")
    assert pending["priority"] > running["priority"]
    missing = client.get(f"/api/jobs/{uuid.uuid4()}")
    assert (missing.status_code, missing.json()) == (404, {"error": "Job not found"})
    listing = client.get("/api/jobs", params={"status": "pending,in_progress"}).json()
    assert {j["id"]: j["status"] for j in listing["jobs"]} == {
        first: "in_progress", second: "pending"}
    assert listing["pagination"] == {"offset": 0, "limit": None, "total": 2, "has_more": False}
    jobs_comfy.faults.release_jobs()


def test_cancel_dequeues_interrupts_and_is_a_no_op_after(
    jobs_comfy: FakeComfy, client: httpx.Client
) -> None:
    jobs_comfy.faults.hold_jobs()
    first, second = submit(client, image_graph(colour=1)), submit(client, image_graph(colour=2))
    jobs_comfy.faults.wait_held()
    assert client.post(f"/api/jobs/{second}/cancel").json() == {"cancelled": True}
    assert client.get(f"/api/jobs/{second}").status_code == 404
    assert client.post(f"/api/jobs/{first}/cancel").json() == {"cancelled": True}
    jobs_comfy.faults.release_jobs()
    wait_history(client, first)
    job = client.get(f"/api/jobs/{first}").json()
    assert job["status"] == "cancelled" and "completion_status" not in job
    assert client.post(f"/api/jobs/{first}/cancel").json() == {"cancelled": False}
    batch = client.post("/api/jobs/cancel", json={"job_ids": [first, "not-a-uuid"]})
    assert (batch.status_code, batch.json()["invalid_ids"]) == (400, ["not-a-uuid"])
    assert client.post("/api/jobs/cancel", json={"job_ids": [first]}).json() == {
        "cancelled": False}


def test_a_failed_job_carries_the_execution_error(
    jobs_comfy: FakeComfy, client: httpx.Client
) -> None:
    jobs_comfy.faults.fail_next_prompts(1, node_type="ImageInvert")
    pid = submit(client, image_graph())
    wait_history(client, pid)
    job = client.get(f"/api/jobs/{pid}").json()
    assert (job["status"], job["has_errors"], job["execution_error_count"]) == ("failed", True, 1)
    assert job["execution_error"]["node_type"] == "ImageInvert"
    assert job["execution_error"]["exception_message"]


def test_listing_sorts_pages_and_checks_its_query(client: httpx.Client) -> None:
    ids = [submit(client, image_graph(colour=c)) for c in (1, 2, 3)]
    for pid in ids:
        wait_history(client, pid)
    page = client.get("/api/jobs", params={"limit": 2, "sort_order": "asc"}).json()
    assert [j["id"] for j in page["jobs"]] == ids[:2]
    assert page["pagination"] == {"offset": 0, "limit": 2, "total": 3, "has_more": True}
    assert "outputs" not in page["jobs"][0]
    rest = client.get("/api/jobs", params={"offset": 2, "sort_order": "asc"}).json()
    assert [j["id"] for j in rest["jobs"]] == ids[2:]
    for bad in ({"status": "done"}, {"limit": 0}, {"limit": "x"}, {"sort_by": "name"}):
        assert client.get("/api/jobs", params=bad).status_code == 400


def test_prompt_ids_must_be_canonical_and_not_queued_twice(
    jobs_comfy: FakeComfy, client: httpx.Client
) -> None:
    jobs_comfy.faults.hold_jobs()
    pid = str(uuid.uuid4())
    submit(client, image_graph(), pid)
    again = client.post("/prompt", json={"prompt": image_graph(), "prompt_id": pid})
    assert (again.status_code, again.json()) == (409, {"error": "prompt_id already exists"})
    upper = client.post("/prompt", json={"prompt": image_graph(), "prompt_id": pid.upper()})
    assert upper.status_code == 400 and upper.json()["error"]["type"] == "invalid_prompt_id"
    jobs_comfy.faults.release_jobs()
    assert client.get("/system_stats").json()["system"]["comfyui_version"] == "0.38.1"


def test_without_the_flag_there_is_no_jobs_api(fake_comfy: FakeComfy) -> None:
    with httpx.Client(base_url=fake_comfy.url, timeout=10) as http:
        assert http.get("/api/jobs").status_code == 404
        assert http.get(f"/api/jobs/{uuid.uuid4()}").status_code == 404
        assert http.get("/system_stats").json()["system"]["comfyui_version"] == "0.8.0"


def test_several_workers_run_prompts_side_by_side(fake_comfy_factory: FakeComfyFactory) -> None:
    fake = fake_comfy_factory(jobs_api=True, workers=2)
    fake.faults.hold_jobs()
    with httpx.Client(base_url=fake.url, timeout=10) as http:
        ids = [submit(http, image_graph(colour=c)) for c in (1, 2, 3)]

        def statuses() -> list[str]:
            return [http.get(f"/api/jobs/{p}").json()["status"] for p in ids]

        pause = threading.Event()
        for _ in range(500):  # bounded: the workers pick prompts up on the server's thread
            if statuses() == ["in_progress", "in_progress", "pending"]:
                break
            pause.wait(0.01)
        assert statuses() == ["in_progress", "in_progress", "pending"]
        queue = http.get("/queue").json()
        assert (len(queue["queue_running"]), len(queue["queue_pending"])) == (2, 1)
        fake.faults.release_jobs()
        for pid in ids:
            wait_history(http, pid)
    assert sorted(fake.records.executions) == sorted(ids)


def test_a_job_time_per_prompt_replaces_the_fixed_one(fake_comfy: FakeComfy) -> None:
    fake_comfy.faults.job_seconds = 5.0
    fake_comfy.faults.job_time = lambda prompt: 0.01 * len(prompt)
    assert fake_comfy.faults.seconds_for(image_graph()) == 0.03
    fake_comfy.faults.job_time = None
    assert fake_comfy.faults.seconds_for(image_graph()) == 5.0
