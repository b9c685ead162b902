"""The soak, short form: the real daemon for half a minute of random edits and ComfyUI faults.

``bench/soak.py`` is the long form (an hour by default) and holds the machinery; see its module
docstring for what is edited, which faults are injected and how the end state is compared
with a clean build of the final inputs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import SoakOptions, run_soak, verdict
from tests.fakecomfy.fixtures import FakeComfyFactory

OPTIONS = SoakOptions(duration=30.0, edit_every=0.7, fault_every=2.5, job_seconds=0.05,
                      sample_every=0.5, status_every=2.0, settle_timeout=90.0,
                      idle_window=5.0, seed=20261124)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_soak_under_random_edits_and_faults_ends_equal_to_a_clean_build(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    server = fake_comfy_factory()
    result = run_soak(tmp_path, server, OPTIONS)
    shown = {k: v for k, v in result.items() if k != "series"}
    # It was a soak: edits of every kind, every kind of fault, and rebuilds beyond the first.
    assert result["edits_total"] >= 25, shown
    assert set(result["edits"]) >= {"expression", "description", "image", "touch"}, shown
    assert set(result["faults"]) == {"5xx", "drop", "lost_answer", "exec_error", "restart"}
    assert result["jobs_submitted"] > 2 * result["artifacts"], shown
    assert result["status_checks"] >= 10, shown
    # The targets: settled, status always valid, no leak, idle when idle, same as clean.
    failed = [name for name, ok in verdict(result).items() if not ok]
    assert not failed, (failed, shown)
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "reconcile_failed" not in log and "Traceback" not in log
