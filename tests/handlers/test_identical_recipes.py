"""Two artifacts with the very same recipe (a scene with a fixed Seed whose start and end
frames share a pose: its two character layers) are two jobs with two prompt ids. With one id
for both, a server ran the prompt twice, or one artifact waited on the other's prompt."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from keyframed.daemon.loop import Reconciler
from keyframed.inputs.config import load_settings
from tests.comfy_project import comfy_project, submission_counts, submitted_artifacts
from tests.fakecomfy.fixtures import FakeComfyFactory

LAYERS = ("scene-01/layers/character-start", "scene-01/layers/character-end")


def same_layers_twice(root: Path) -> None:
    """Scene 1: a fixed Seed, and the end frame in the start frame's pose."""
    path = root / "scene-breakdown.md"
    text = path.read_text(encoding="utf-8")
    text = text.replace("- pose: meditation\n- expression: peaceful", "- pose: standing\n"
                        "- expression: peaceful", 1)
    text = text.replace("**Camera**: static, wide shot\n", "**Camera**: static, wide shot\n\n"
                        "**Seed**: 4242\n", 1)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("servers,in_flight", [(2, 1), (1, 2)])
def test_identical_recipes_run_once_each_under_their_own_ids(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, servers: int, in_flight: int
) -> None:
    farm = [fake_comfy_factory(job_seconds=0.05) for _ in range(servers)]
    root = comfy_project(tmp_path / "p", farm, max_in_flight=in_flight)
    same_layers_twice(root)
    rec = Reconciler(root, load_settings(root, env={}))
    rec.start()
    try:
        snap = rec.run_until_idle(timeout=120)
    finally:
        rec.close()
    assert snap is not None and {i.state for i in snap.items} == {"fresh"}
    recipes = {i.path: i.artifact.recipe for i in snap.items}
    start, end = (recipes[f"{p}.png"] for p in LAYERS)
    assert start == end  # the case under test: one recipe, two artifacts
    submitted = Counter(a for server in farm for a in submitted_artifacts(server))
    # Each at most once; when one finished before the other was dispatched, the other is
    # restored from the output cache (the same recipe) instead of running again.
    assert all(submitted[p] <= 1 for p in LAYERS) and sum(submitted[p] for p in LAYERS) >= 1, \
        submitted
    ids: Counter[str] = Counter()
    for server in farm:
        ids.update(submission_counts(server))
        assert max(server.records.executions.values()) == 1, server.records.executions
    assert max(ids.values()) == 1, "one prompt id was submitted twice"
