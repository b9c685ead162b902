"""Progress from a running job wakes the loop (a pass refreshes status.json), but not for
every 5 % of every job: those passes kept the loop from collecting and dispatching."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from keyframed.backends.preview import PreviewBackend
from keyframed.daemon.loop import Reconciler
from keyframed.handlers.project import StyleFile
from keyframed.settings import BackendSettings, Settings
from tests.planning import copy_sample, settings_for

STEPS = 20


class ProgressPreview(PreviewBackend):
    """The preview renderer, reporting progress in 5 % steps and noting which woke the loop."""

    def __init__(self, settings: Settings, wake: threading.Event) -> None:
        super().__init__(BackendSettings(name="progress", kind="preview", max_in_flight=1),
                         settings, StyleFile())
        self.wake = wake
        self.woke: list[bool] = []

    def execute(self, job_key: str, art: Any, inputs: Any, on_progress: Any) -> bytes:
        for step in range(1, STEPS + 1):
            self.wake.clear()
            on_progress(step / STEPS)
            self.woke.append(self.wake.is_set())
        return super().execute(job_key, art, inputs, lambda value: None)


def test_a_burst_of_progress_wakes_the_loop_once(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "project")
    settings = settings_for(root)
    wake = threading.Event()
    backend = ProgressPreview(settings, wake)
    rec = Reconciler(root, settings, backends=[backend], wake=wake)
    rec.start()
    try:
        assert rec.reconcile_once().dispatched
        first = min(rec.inflight)  # the one worker runs the jobs in order
        rec.inflight[first].future.result(timeout=30)
    finally:
        rec.close(wait=True)
    woke = backend.woke[:STEPS]
    assert len(woke) == STEPS
    assert woke[0], "the first progress of a job did not wake the loop"
    # The steps come within milliseconds: one wake (two if a second passed in between).
    assert sum(woke) <= 2, woke
