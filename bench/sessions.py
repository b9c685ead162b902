"""Edit sessions that go back and forth (issue 13): GPU jobs with the output cache and without.

Part of :mod:`bench.minimality`'s corpus. Each session is a few steps applied one after the
other to a copy of the built project (undo, A/B flip-flops, retry then pick the old take), with
a ComfyUI restart between steps on ``--backend comfyui`` (so its history cannot help). Each
session runs twice: with the output cache as configured, and with ``[cache] max_mb = 0``
(only the live builds kept: what keyframed did before the cache).

The expected jobs of each step come from :mod:`bench.reference`, step by step against the
state before it: without the cache, every artifact the reference finds rebuilt; with it, only
those whose recipe and input bytes were never seen before in the session (every revisited
recipe restored, none rebuilt: DESIGN section 9's target).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import gen
from bench.gen import ProjectSpec
from bench.reference import Node, hash_tree, recipe_nodes, verdicts

if TYPE_CHECKING:
    from bench.minimality import Baseline, Runner

# (root, spec, takes, notes): one step of a session; takes and notes are what the reference
# needs beyond the files (the live take of each artifact, retry notes).
Step = Callable[[Path, ProjectSpec, dict[str, int], dict[str, str]], None]
Key = tuple[Node, tuple[str | None, ...]]


@dataclass
class Session:
    """A named list of steps."""

    name: str
    steps: list[tuple[str, Step]]


@dataclass
class SessionOutcome:
    """What one run of a session did, step by step."""

    name: str
    cache: bool
    expected: list[list[str]] = field(default_factory=list)
    submitted: list[list[str]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        hits = sum(len(set(s) & set(e)) for s, e in zip(self.submitted, self.expected, strict=True))
        sent = sum(len(s) for s in self.submitted)
        wanted = sum(len(e) for e in self.expected)
        return {"name": self.name, "cache": self.cache, "expected": self.expected,
                "submitted": self.submitted, "jobs_expected": wanted, "jobs_submitted": sent,
                "precision": hits / sent if sent else 1.0,
                "recall": hits / wanted if wanted else 1.0,
                "exact": all(sorted(s) == sorted(e)
                             for s, e in zip(self.submitted, self.expected, strict=True))}


def _expression(number: int, value: str) -> Step:
    def step(root: Path, spec: ProjectSpec, takes: dict[str, int], notes: dict[str, str]) -> None:
        scene = next(s for s in spec.scenes if s.number == number)
        scene.end.expression = value
        gen.write_breakdown(root, spec)
    return step


def _description(type_: str, name: str, text: str) -> Step:
    def step(root: Path, spec: ProjectSpec, takes: dict[str, int], notes: dict[str, str]) -> None:
        spec.asset(type_, name).description = text
        gen.write_assets(root, spec)
    return step


def _retry(folder: str, name: str, target: str) -> Step:
    def step(root: Path, spec: ProjectSpec, takes: dict[str, int], notes: dict[str, str]) -> None:
        (root / folder / f"{name}.retry").write_text("", encoding="utf-8")
        takes[target] = takes.get(target, 0) + 1
    return step


def _pick(folder: str, name: str, target: str, take: int | None, newest: int) -> Step:
    def step(root: Path, spec: ProjectSpec, takes: dict[str, int], notes: dict[str, str]) -> None:
        marker = root / folder / f"{name}.pick"
        if take is None:
            marker.unlink()
            takes[target] = newest
        else:
            marker.write_text(f"{take}\n", encoding="utf-8")
            takes[target] = take
    return step


def sessions(spec: ProjectSpec) -> list[Session]:
    """The back-and-forth sessions for the first character scene of the project."""
    first = next((s for s in spec.scenes if s.type == "character"), None)
    if first is None:
        return []
    n, folder, old = first.number, first.folder, first.end.expression or ""
    kf = f"{folder}/keyframe-start.png"
    generated = sorted(a.name for a in spec.assets.get("backgrounds", {}).values()
                       if not a.image)
    found = [s for s in spec.scenes if s.background in generated]
    wide: list[Session] = []
    if found and found[0].background is not None:
        bg = found[0].background
        was = spec.asset("backgrounds", bg).description
        wide.append(Session("generated background described anew, then back", [
            ("edit", _description("backgrounds", bg, "A stormy harbour at night")),
            ("undo", _description("backgrounds", bg, was))]))
    return [
        *wide,
        Session("undo (edit, then back)", [("edit", _expression(n, "wide-eyed")),
                                          ("undo", _expression(n, old))]),
        Session("A/B flip-flop x2", [("B", _expression(n, "laughing")),
                                     ("A", _expression(n, old)),
                                     ("B", _expression(n, "laughing")),
                                     ("A", _expression(n, old))]),
        Session("retry, pick take 0, unpick", [
            ("retry", _retry(folder, "keyframe-start", kf)),
            ("pick 0", _pick(folder, "keyframe-start", kf, 0, 1)),
            ("unpick", _pick(folder, "keyframe-start", kf, None, 1))]),
    ]


def _built(root: Path, nodes: dict[str, Node]) -> dict[str, str]:
    files = hash_tree(root)
    return {p: files[p] for p in nodes if p in files}


def run_session(base: Baseline, session: Session, work: Path, runner: Runner,
                cache: bool) -> SessionOutcome:
    """Copy the built project, then apply and run each step; compare with the reference."""
    import copy

    root = work / "session"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(base.root, root, symlinks=True)
    spec = copy.deepcopy(base.spec)
    if not cache:
        spec.config_extra += "\n[cache]\nmax_mb = 0\n"
        gen.write_config(root, spec)
    takes: dict[str, int] = {}
    notes: dict[str, str] = {}
    owned = frozenset(base.built)
    nodes = recipe_nodes(root, owned, takes, notes)
    files = hash_tree(root)
    seen: set[tuple[str, Key]] = {(p, _key(nodes[p], files)) for p in nodes}
    out = SessionOutcome(session.name, cache)
    for _, step in session.steps:
        built = _built(root, nodes)
        step(root, spec, takes, notes)
        files_now = hash_tree(root)
        after = recipe_nodes(root, owned, takes, notes)
        decided = verdicts(nodes, after, built, files, files_now)
        rebuilt = {p for p, v in decided.items() if v in ("new", "same")
                   and after[p].step != "copy"}
        runner.between_scenarios()
        submitted, _, _ = runner.run(root)
        stems = {p.rsplit(".", 1)[0]: p for p in after}
        submitted = [stems.get(p, p) for p in submitted]
        files = hash_tree(root)
        keys = {p: _key(after[p], files) for p in after}
        new = {p for p in rebuilt if (p, keys[p]) not in seen}
        seen |= {(p, k) for p, k in keys.items()}
        out.expected.append(sorted(new if cache else rebuilt))
        out.submitted.append(sorted(submitted))
        nodes = after
    return out


def _key(node: Node, files: dict[str, str]) -> Key:
    """What decides an artifact's bytes: its recipe node and the bytes of its inputs."""
    return node, tuple(files.get(ref) for ref, _ in node.inputs)


def summary(outcomes: list[SessionOutcome]) -> dict[str, Any]:
    """Jobs with the cache against without it, precision and recall of each."""
    rows = [o.as_json() for o in outcomes]
    def total(cache: bool, key: str) -> int:
        return sum(r[key] for r in rows if r["cache"] is cache)
    with_cache, without = total(True, "jobs_submitted"), total(False, "jobs_submitted")
    return {
        "sessions": rows,
        "jobs_with_cache": with_cache,
        "jobs_without_cache": without,
        "jobs_expected_with_cache": total(True, "jobs_expected"),
        "jobs_expected_without_cache": total(False, "jobs_expected"),
        "all_exact": all(r["exact"] for r in rows),
        "precision": min((r["precision"] for r in rows), default=1.0),
        "recall": min((r["recall"] for r in rows), default=1.0),
        "gpu_jobs_saved_by_cache_pct": round(100.0 * (without - with_cache) / without, 2)
        if without else 0.0,
    }
