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


def test_v2_job_times_spread_around_their_medians_and_chains_add_up() -> None:
    from bench import v2_surface as v2

    def graph_of(prefix: str, cls: str = "SaveImage") -> dict[str, object]:
        return {"9": {"class_type": cls, "inputs": {"filename_prefix": prefix}}}

    images = [v2.job_time(graph_of(f"keyframed/p/scene-{n:02}/keyframe")) for n in range(400)]
    videos = [v2.job_time(graph_of(f"keyframed/p/scene-{n:02}/video", "SaveVideo"))
              for n in range(400)]
    assert images == [v2.job_time(graph_of(f"keyframed/p/scene-{n:02}/keyframe"))
                      for n in range(400)]  # the same job always gets the same time
    assert all(v2.SHORTEST_S <= t <= v2.LONGEST_S for t in images + videos)
    assert 1.5 < sorted(images)[200] < 2.1 and 2.6 < sorted(videos)[200] < 3.4
    assert len({round(t, 2) for t in images}) > 100  # a spread, not one value
    graph = {"a.png": (True, []), "b.png": (False, ["a.png"]), "c.mp4": (True, ["b.png"]),
             "d.png": (True, [])}
    runs = {"a": (0.0, 2.0), "c": (2.5, 5.5), "d": (0.0, 4.5), "b": (0.0, 99.0)}  # b: a copy
    assert v2.critical_seconds(graph, runs) == 5.0
