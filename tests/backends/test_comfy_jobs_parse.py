"""Reading the core jobs API's answers (shapes from ComfyUI's source, docs/comfyui-jobs-api.md)."""

from __future__ import annotations

from typing import Any

import pytest

from keyframed.backends.comfy.errors import ProtocolMismatch
from keyframed.backends.comfy.jobs import is_jobs_listing, jobs_ahead, parse_job
from keyframed.backends.comfy.run import pick_output
from keyframed.backends.comfy.state import Done, Failed, Queued, Running

PID = "fd664afb-14dd-4bc6-810f-fb950993424f"
SAVED = {"filename": "k_00001_.png", "subfolder": "keyframed", "type": "output"}
PREVIEW = {"filename": "p_00001_.png", "subfolder": "", "type": "temp"}


def job(status: str, **extra: Any) -> dict[str, Any]:
    return {"id": PID, "status": status, "priority": 3, "create_time": 1, **extra}


def test_states_and_the_outputs_of_a_completed_job() -> None:
    assert parse_job(job("pending"), PID) == Queued()
    assert parse_job(job("in_progress"), PID) == Running()
    done = parse_job(job("completed", outputs={"8": {"images": [PREVIEW]},
                                               "9": {"images": [SAVED]}},
                         workflow={"prompt": {}, "extra_data": {}}), PID)
    assert isinstance(done, Done) and pick_output(done, "image") == SAVED


def test_a_failed_job_names_the_node_and_a_cancelled_one_is_interrupted() -> None:
    error = {"node_id": "5", "node_type": "KSampler", "exception_message": "out of memory\n",
             "exception_type": "torch.OutOfMemoryError"}
    status = {"status_str": "error", "completed": False,
              "messages": [["execution_start", {}], ["execution_error", error]]}
    assert parse_job(job("failed", execution_status=status, execution_error=error), PID) == \
        Failed(message="out of memory", node_id="5", node_type="KSampler",
               exception_type="torch.OutOfMemoryError")
    # A listing's job carries execution_error but not the raw status.
    assert parse_job(job("failed", execution_error=error), PID).node_type == "KSampler"
    stopped = parse_job(job("cancelled"), PID)
    assert isinstance(stopped, Failed) and stopped.interrupted


@pytest.mark.parametrize("body", [
    [], {"id": "another", "status": "completed"}, job("done"), job("completed"),
])
def test_other_shapes_are_a_protocol_mismatch(body: Any) -> None:
    with pytest.raises(ProtocolMismatch):
        parse_job(body, PID)


def test_the_place_in_line_counts_running_and_earlier_pending_jobs() -> None:
    listing = {"jobs": [job("in_progress") | {"id": "r", "priority": 0},
                        job("pending") | {"id": "a", "priority": 1},
                        job("pending") | {"priority": 2},
                        job("pending") | {"id": "b", "priority": 5}],
               "pagination": {"offset": 0, "limit": None, "total": 4, "has_more": False}}
    assert is_jobs_listing(listing) and not is_jobs_listing({"jobs": []})
    assert jobs_ahead(listing, PID) == 2 and jobs_ahead(listing, "unknown") == 0
