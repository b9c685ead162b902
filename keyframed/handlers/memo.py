"""What one pass worked out, kept so the next pass re-derives only what changed.

A pass re-derives the whole desired state from the files (level-triggered), but most of it
is the same as last time: after one scene's edit, or one finished job, the other scenes'
recipes and verdicts are what they were. The daemon keeps one :class:`PlanMemo` across
passes and hands it to :func:`~keyframed.handlers.graph.desired_artifacts` and
:func:`~keyframed.handlers.plan.make_plan`; with or without it they return equal results
(``tests/handlers/test_plan_memo.py`` checks that over a run of edits).

Each entry is reused only when everything its computation reads is the same:

- a scene's artifacts: the same scene (as parsed, line numbers included), the same chained
  layer, and the same asset library, style file and :class:`PlanContext` (the parse of an
  unchanged file is the very same object, so these are identity checks in the usual case);
- an artifact's verdict: the same artifact, build record and template hash, the same hashes
  of its output and inputs, and the same usability of each dependency;
- a plan item: the same artifact, verdict and approval-gate reasons.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from keyframed.handlers.context import PlanContext
from keyframed.handlers.project import Project, Scene
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.verdict import PlanItem, Status

VerdictKey = tuple[object, ...]


@dataclass
class PlanMemo:
    """Memo tables owned by the caller (the reconcile loop), one per project."""

    base: tuple[object, object, PlanContext] | None = None
    scenes: dict[int, tuple[Scene, str | None, list[Artifact]]] = field(default_factory=dict)
    verdicts: dict[str, tuple[VerdictKey, Status]] = field(default_factory=dict)
    items: dict[str, tuple[Artifact, Status, tuple[object, ...], PlanItem]] = field(
        default_factory=dict)
    hits: int = 0  # reused entries, for tests and benchmarks

    def scene_artifacts(
        self, project: Project, ctx: PlanContext, scene: Scene, chained: str | None,
        derive: Callable[[], list[Artifact]],
    ) -> list[Artifact]:
        """The scene's artifacts from the last pass, or ``derive()`` when anything differs."""
        base = self.base
        if base is None or base[0] is not project.assets or base[1] is not project.style \
                or not (base[2] is ctx or base[2] == ctx):
            self.base = (project.assets, project.style, ctx)
            self.scenes = {}
        known = self.scenes.get(scene.number)
        if known is not None and known[1] == chained and (known[0] is scene or known[0] == scene):
            self.hits += 1
            return known[2]
        made = derive()
        self.scenes[scene.number] = (scene, chained, made)
        return made

    def keep_scenes(self, numbers: set[int]) -> None:
        """Forget the scenes the project no longer has."""
        self.scenes = {n: v for n, v in self.scenes.items() if n in numbers}

    def verdict(self, path: str, key: VerdictKey) -> Status | None:
        """The verdict of the last pass on this artifact if ``key`` is unchanged."""
        known = self.verdicts.get(path)
        if known is not None and known[0] == key:
            self.hits += 1
            return known[1]
        return None

    def item(self, art: Artifact, status: Status, gates: tuple[object, ...]) -> PlanItem | None:
        """The plan item of the last pass if its artifact, verdict and gates are unchanged."""
        known = self.items.get(art.path)
        if known is not None and known[0] is art and known[1] is status and known[2] == gates:
            return known[3]
        return None
