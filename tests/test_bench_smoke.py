"""The benchmark harness keeps working: a tiny generated project and a few minimality scenarios.

A correctness check, not a timing one: keyframed must submit exactly the jobs the independent
reference expects, and the two reference oracles (recipes, spec) must agree.
"""

from __future__ import annotations

from pathlib import Path

from bench import gen, minimality
from bench.reference import hash_tree

SCENARIOS = [
    "character description",
    "camera (character scene)",
    "landscape start text",
    "touch inputs",
    "retry marker (keyframe)",
]


def test_generated_project_is_deterministic_and_loads(tmp_path: Path) -> None:
    from keyframed.inputs.config import load_settings
    from keyframed.inputs.loader import load_project

    spec = gen.generate_project(tmp_path / "a", 12, seed=3)
    gen.generate_project(tmp_path / "b", 12, seed=3)
    assert hash_tree(tmp_path / "a") == hash_tree(tmp_path / "b")
    assert {s.type for s in spec.scenes} == {"character", "landscape", "object"}
    settings = load_settings(tmp_path / "a", env={})
    loaded = load_project(tmp_path / "a", settings.run.max_image_pixels)
    assert loaded.project is not None and not loaded.diagnostics, loaded.diagnostics
    assert len(loaded.project.scenes) == 12
    generated = [a for g in spec.assets.values() for a in g.values() if not a.image]
    assert generated, "some assets are description-only (Phase 2.5)"


def test_minimality_on_a_small_project(tmp_path: Path) -> None:
    data = minimality.run(scenes=6, seed=0, only=SCENARIOS, work=tmp_path)
    names = [r["name"] for r in data["results"]]
    assert sorted(names) == sorted(SCENARIOS)
    assert data["precision"] == 1.0 and data["recall"] == 1.0
    assert data["exact"] == len(SCENARIOS)
    assert data["spec_agrees"] == len(SCENARIOS)
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name["touch inputs"]["expected"] == []
    assert by_name["camera (character scene)"]["expected"], "an edit that must rebuild something"
    assert all(not r["unsettled"] for r in data["results"])
