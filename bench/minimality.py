"""Minimality: after each edit, does keyframed run exactly the jobs the edit calls for?

For each scenario of a corpus (>= 40) on a generated project (30 scenes by default):

1. the project is built once by keyframed itself (the reconcile loop with a stand-in backend
   whose bytes follow the job fingerprint, or the ComfyUI-compatible test server), and copied;
2. the edit is applied to the copy (a person's save: text, JSON, images, config, markers);
3. the expected jobs are computed by :mod:`bench.reference`, independently of keyframed's
   planner, twice: from keyframed's recipes, and from the generator's spec by the design's
   rules (the ``spec`` column says whether the two agree);
4. keyframed runs until idle and every job it actually submits is counted.

Reported per scenario: expected jobs, submitted jobs, a full rebuild's jobs, precision, recall
and GPU jobs saved against a full rebuild. Run::

    .venv/bin/python -m bench.minimality [--scenes 30] [--seed 0] [--backend standin|comfyui]
"""

from __future__ import annotations

import argparse
import copy
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from bench import gen, sessions
from bench.common import StandInBackend, settings_for, table, write_results
from bench.gen import ProjectSpec, SceneSpec
from bench.reference import (
    Node,
    expected_jobs,
    hash_tree,
    recipe_nodes,
    sha256,
    spec_nodes,
    verdicts,
)

REPO = Path(__file__).resolve().parent.parent


# -- running keyframed ---------------------------------------------------------------------------


def quiet_logs() -> None:
    """Only warnings and errors from keyframed's structlog (the benchmark prints its table)."""
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


class Runner:
    """Runs keyframed on a project until idle and says which jobs it submitted."""

    def __init__(self, backend: str = "standin", sheets: bool = False) -> None:
        self.backend = backend
        self.sheets = sheets
        self.server: Any = None
        if backend == "comfyui":
            self._start_server()

    def _start_server(self) -> None:
        from tests.fakecomfy import FakeComfy

        info = REPO / ".." / "shared" / "comfyui" / "object_info.json"
        if not info.is_file():
            raise SystemExit(f"--backend comfyui needs {info} (the recorded object_info)")
        self._server_dir = Path(tempfile.mkdtemp(prefix="kf-bench-comfy-"))
        self.server = FakeComfy(info, self._server_dir, job_seconds=0.0).start()

    @property
    def urls(self) -> list[str]:
        """The ComfyUI URLs projects should use."""
        return [self.server.url] if self.server is not None else []

    def run(self, root: Path, timeout: float = 300.0) -> tuple[list[str], int, list[str]]:
        """(submitted artifact paths, passes, artifacts not settled afterwards)."""
        from keyframed.daemon.loop import Reconciler

        settings = settings_for(root)
        standin = StandInBackend(kind=settings.backend_kind)
        backends = [standin] if self.server is None else None
        before = len(self.server.records.prompts) if self.server is not None else 0
        rec = Reconciler(root, settings, backends=backends)  # type: ignore[arg-type]
        if not self.sheets:
            # Contact sheets are pictures for people; they never change which jobs run, and
            # drawing them all again in every scenario's fresh daemon dominates the run time.
            rec.sheets.write = lambda snap, state_of: []  # type: ignore[method-assign]
        try:
            rec.start()
            snap = rec.run_until_idle(timeout=timeout)
            passes = rec.passes
        finally:
            rec.close(wait=True)
        unsettled = [i.path for i in (snap.items if snap else [])
                     if i.state not in ("fresh", "user_override")]
        if snap is None or not snap.ok:
            unsettled.append("(inputs did not load)")
        if self.server is None:
            return standin.executed, passes, unsettled
        return self._submitted(before), passes, unsettled

    def _submitted(self, since: int) -> list[str]:
        from tests.comfy_project import PREFIX

        out = []
        for record in self.server.records.prompts[since:]:
            for node in record.body["prompt"].values():
                prefix = node.get("inputs", {}).get("filename_prefix")
                if isinstance(prefix, str) and (match := PREFIX.match(prefix)):
                    out.append(match.group(1))
        # The server names outputs without extension; map back to the artifact's file.
        return out

    def between_scenarios(self) -> None:
        """A ComfyUI restart: history is in memory only, uploaded files stay on disk."""
        if self.server is not None:
            self.server.restart()

    def close(self) -> None:
        """Stop the server, if any."""
        if self.server is not None:
            self.server.stop()
            shutil.rmtree(self._server_dir, ignore_errors=True)


# -- the built baseline --------------------------------------------------------------------------


@dataclass
class Baseline:
    """A fully built project, and what the reference needs to know about it."""

    root: Path
    spec: ProjectSpec
    recipes: dict[str, Node]
    spec_graph: dict[str, Node]
    built: dict[str, str]
    files: dict[str, str]
    full_jobs: int
    build_seconds: float


def build_baseline(root: Path, spec: ProjectSpec, runner: Runner) -> Baseline:
    """Build the project with keyframed and take the reference's picture of it."""
    recipes = recipe_nodes(root, frozenset(), {}, {})
    started = time.perf_counter()
    executed, _, unsettled = runner.run(root)
    seconds = time.perf_counter() - started
    if unsettled:
        raise SystemExit(f"the baseline build did not settle: {unsettled[:5]}")
    files = hash_tree(root)
    built = {p: files[p] for p in recipes if p in files}
    missing = set(recipes) - set(built)
    if missing:
        raise SystemExit(f"the baseline build left outputs missing: {sorted(missing)[:5]}")
    after = recipe_nodes(root, frozenset(built), {}, {})
    if after != recipes:
        raise SystemExit("the recipes changed by building (the reference's premise fails)")
    return Baseline(root=root, spec=spec, recipes=recipes,
                    spec_graph=spec_nodes(spec, root, {}, {}), built=built, files=files,
                    full_jobs=len(executed), build_seconds=seconds)


# -- the scenarios -------------------------------------------------------------------------------


@dataclass
class Edit:
    """What an edit tells the reference beyond the files: retry takes and notes."""

    takes: dict[str, int] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)


Apply = Callable[[Path, ProjectSpec], Edit | None]


@dataclass
class Scenario:
    """One edit of the corpus."""

    name: str
    apply: Apply


def _breakdown(change: Callable[[ProjectSpec], None]) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        change(spec)
        gen.write_breakdown(root, spec)
    return apply


def _scene(number: int, change: Callable[[SceneSpec], None]) -> Apply:
    return _breakdown(lambda spec: change(spec.scene(number)))


def _assets(change: Callable[[ProjectSpec], None]) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        change(spec)
        gen.write_assets(root, spec)
    return apply


def _describe(type_: str, name: str, text: str) -> Apply:
    return _assets(lambda spec: setattr(spec.asset(type_, name), "description", text))


def _new_image(type_: str, name: str) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        asset = spec.asset(type_, name)
        asset.variant += 1
        gen.write_image(root, asset)
    return apply


def _config(extra: str, *, first: bool = False) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        if first:
            # Top-level keys must precede the tables; rewrite with the key at the top.
            text = (root / "keyframed.toml").read_text(encoding="utf-8")
            (root / "keyframed.toml").write_text(extra + "\n" + text, encoding="utf-8")
        else:
            spec.config_extra += "\n" + extra + "\n"
            gen.write_config(root, spec)
    return apply


def _style(change: Callable[[ProjectSpec], None]) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        change(spec)
        gen.write_style(root, spec)
    return apply


def _touch(*rels: str) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        import os

        for rel in rels:
            st = os.stat(root / rel)
            os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns + 3_000_000_000))
    return apply


def _resave(root: Path, spec: ProjectSpec) -> None:
    """Save every input file with the very same bytes (a new mtime, inode kept)."""
    for rel in ("scene-breakdown.md", "assets.json", "style.json", "keyframed.toml"):
        path = root / rel
        path.write_bytes(path.read_bytes())


def _reformat(root: Path, spec: ProjectSpec) -> None:
    """The same scenes written differently: bullet fields, extra blank lines, trailing spaces."""
    path = root / "scene-breakdown.md"
    text = path.read_text(encoding="utf-8")
    text = text.replace("\n**Type**:", "\n- **Type**:").replace("\n---\n", "\n\n\n---\n\n")
    path.write_text(text.replace("\n**Camera**:", "   \n**Camera**:"), encoding="utf-8")


def _retry(scene: SceneSpec, name: str, target: str, note: str = "") -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> Edit:
        (root / scene.folder / f"{name}.retry").write_text(note, encoding="utf-8")
        return Edit(takes={target: 1}, notes={target: note} if note else {})
    return apply


def _template_override(name: str, reformat: bool) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        import json

        source = (REPO / "keyframed" / "workflows" / name).read_bytes()
        data = json.dumps(json.loads(source), indent=1).encode() if reformat else source
        (root / "workflows").mkdir(exist_ok=True)
        (root / "workflows" / name).write_bytes(data)
    return apply


def _write_bytes(rel: str, data: bytes) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        (root / rel).write_bytes(data)
    return apply


def _delete(rel: str) -> Apply:
    def apply(root: Path, spec: ProjectSpec) -> None:
        (root / rel).unlink()
    return apply


def _add_scene(template: SceneSpec) -> Apply:
    def change(spec: ProjectSpec) -> None:
        scene = copy.deepcopy(template)
        scene.number = max(s.number for s in spec.scenes) + 1
        scene.title = "An added scene"
        scene.motion = "added motion"
        spec.scenes.append(scene)
    return _breakdown(change)


def _remove_scene(number: int) -> Apply:
    return _breakdown(lambda spec: spec.scenes.remove(spec.scene(number)))


def _rename_asset(type_: str, old: str, new: str) -> Apply:
    """Rename an asset (its image path kept) and every reference to it."""
    def apply(root: Path, spec: ProjectSpec) -> None:
        group = spec.assets[type_]
        asset = group.pop(old)
        asset.file = asset.path
        asset.name = new
        group[new] = asset
        for s in spec.scenes:
            s.characters = [new if c == old else c for c in s.characters]
            s.objects = [new if o == old else o for o in s.objects]
            s.background = new if s.background == old else s.background
            s.style = new if s.style == old else s.style
            for frame in (s.start, s.end):
                frame.pose = new if frame.pose == old else frame.pose
        gen.write_assets(root, spec)
        gen.write_breakdown(root, spec)
    return apply


class Picks:
    """Scenes and assets of the base project that the scenarios edit."""

    def __init__(self, spec: ProjectSpec) -> None:
        self.spec = spec
        scenes = sorted(spec.scenes, key=lambda s: s.number)
        self.character = [s for s in scenes if s.type == "character"]
        self.landscape = [s for s in scenes if s.type == "landscape"]
        self.object = [s for s in scenes if s.type == "object"]
        self.used = spec.used()

    def uses(self, type_: str, name: str) -> int:
        """How many scenes use an asset."""
        return sum(1 for s in self.spec.scenes if (type_, name) in self.spec.scene_assets(s))

    def asset(self, type_: str, *, image: bool | None = None, used: bool = True) -> str | None:
        """The most used (or an unused) asset of a type, optionally with/without an image."""
        names = [n for n, a in self.spec.assets[type_].items()
                 if (image is None or a.image == image) and ((type_, n) in self.used) == used]
        return max(names, key=lambda n: self.uses(type_, n), default=None)

    def chain(self, *, image: bool) -> tuple[str, list[SceneSpec]] | None:
        """A background used by three or more chained scenes, and those scenes."""
        for name, asset in self.spec.assets["backgrounds"].items():
            if asset.image != image:
                continue
            link = [s for s in sorted(self.spec.scenes, key=lambda s: s.number)
                    if s.background == name and s.type != "object"]
            if len(link) >= 3:
                return name, link
        return None

    def scene(self, scenes: list[SceneSpec], test: Callable[[SceneSpec], bool]) -> SceneSpec | None:
        """The first scene that passes a test."""
        return next((s for s in scenes if test(s)), None)


def _video(spec: ProjectSpec, s: SceneSpec) -> str:
    name = "video-preview.webp" if spec.backend == "preview" else "video.mp4"
    return f"{s.folder}/{name}"


class Corpus:
    """Collects scenarios; a scenario whose candidate is missing is listed as skipped."""

    def __init__(self) -> None:
        self.scenarios: list[Scenario] = []
        self.skipped: list[str] = []

    def add(self, name: str, apply: object) -> None:
        """Add a scenario; anything but an edit (``None``, ``""``: no candidate) skips it."""
        if callable(apply):
            self.scenarios.append(Scenario(name, cast(Apply, apply)))
        else:
            self.skipped.append(name)


def _set(number: int, attr: str, value: object, frame: str | None = None) -> Apply:
    """Set one field of one scene (of its start or end frame with ``frame``)."""
    def change(s: SceneSpec) -> None:
        setattr(getattr(s, frame) if frame else s, attr, value)
    return _scene(number, change)


def _other(names: Sequence[str], current: str | None) -> str | None:
    return next((n for n in names if n != current), None)


def _library_scenarios(c: Corpus, spec: ProjectSpec, p: Picks) -> None:
    char = p.asset("characters")
    unused = p.asset("characters", used=False)
    pose = p.asset("poses")
    c.add("character description", char and _describe(
        "characters", char, "A new look: grey armour, scar over one eye"))
    c.add("character reference image replaced", char and _new_image("characters", char))
    c.add("unused character described", unused and _describe(
        "characters", unused, "Nobody uses this one"))
    c.add("unused character renamed", unused and _rename_asset(
        "characters", unused, "renamed_extra"))
    c.add("used character renamed (image kept)", char and _rename_asset(
        "characters", char, "hero_renamed"))
    c.add("touch a reference image", char and _touch(spec.asset("characters", char).path))
    c.add("pose image replaced", pose and _new_image("poses", pose))
    c.add("pose description (not in any prompt)", pose and _describe(
        "poses", pose, "A different wording of the pose"))
    bg_img = (p.chain(image=True) or (p.asset("backgrounds", image=True), []))[0]
    bg_gen = (p.chain(image=False) or (p.asset("backgrounds", image=False), []))[0]
    c.add("background description (image, chained)", bg_img and _describe(
        "backgrounds", bg_img, "The same place after a storm"))
    c.add("background image replaced (chained)", bg_img and _new_image("backgrounds", bg_img))
    c.add("generated background's description", bg_gen and _describe(
        "backgrounds", bg_gen, "A generated place, now at night"))
    mine = gen.reference_png(gen.AssetSpec("backgrounds", "user", "", True))
    c.add("generated background replaced by the user",
          bg_gen and _write_bytes(f"assets/backgrounds/{bg_gen}.png", mine))
    style_img = p.asset("styles", image=True)
    style_gen = p.asset("styles", image=False)
    c.add("style image replaced (shared style)", style_img and _new_image("styles", style_img))
    c.add("generated style's description", style_gen and _describe(
        "styles", style_gen, "Bold comic inks, flat colours"))
    obj_img = p.asset("objects", image=True)
    obj_gen = p.asset("objects", image=False)
    c.add("object image replaced", obj_img and _new_image("objects", obj_img))
    c.add("object description (image given: not in any prompt)", obj_img and _describe(
        "objects", obj_img, "Reworded object"))
    c.add("generated object's description", obj_gen and _describe(
        "objects", obj_gen, "An object, now golden"))


def _character_scenarios(c: Corpus, spec: ProjectSpec, p: Picks) -> None:
    poses = sorted(n for t, n in p.used if t == "poses")
    posed = p.scene(p.character, lambda s: s.start.pose is not None)
    unposed = p.scene(p.character, lambda s: s.end.pose is None)
    two = p.scene(p.character, lambda s: len(s.characters) == 2)
    one = p.scene(p.character, lambda s: len(s.characters) == 1)
    first = p.character[0] if p.character else None
    unseeded = p.scene(p.character, lambda s: s.seed is None)
    swap = _other(poses, posed.start.pose) if posed else None
    c.add("swap a pose", posed and swap and _set(posed.number, "pose", swap, "start"))
    c.add("remove a pose (AnyPose to InStyle)", posed and _set(posed.number, "pose", None, "start"))
    c.add("add a pose (InStyle to AnyPose)",
          unposed and poses and _set(unposed.number, "pose", poses[0], "end"))
    c.add("expression edited", one and _set(one.number, "expression", "wide-eyed", "end"))
    c.add("expression edited (two characters)",
          two and _set(two.number, "expression", "laughing together", "start"))
    c.add("seed added to a scene", unseeded and _set(unseeded.number, "seed", 4242))
    chars = sorted(n for t, n in p.used if t == "characters")
    extra = next((n for n in chars if one and n not in one.characters), None)
    c.add("second character added to a scene",
          one and extra and _set(one.number, "characters", [*one.characters, extra]))
    if first is None:
        for name in ("camera (character scene)", "motion", "duration", "scene style changed",
                     "scene style set to the one it had", "scene background changed",
                     "scene added at the end", "retry marker (keyframe)",
                     "retry marker with a note (video)", "output deleted",
                     "output replaced by the user"):
            c.add(name, None)
        return
    n, folder = first.number, first.folder
    style = spec.scene_style(first)
    backgrounds = sorted(b for t, b in p.used if t == "backgrounds")
    c.add("camera (character scene)", _set(n, "camera", "dolly zoom"))
    c.add("motion", _set(n, "motion", "spins around twice"))
    c.add("duration", _set(n, "duration", first.duration + 2))
    c.add("scene style changed", (o := _other(list(spec.assets["styles"]), style))
          and _set(n, "style", o))
    c.add("scene style set to the one it had", _set(n, "style", style))
    c.add("scene background changed", (b := _other(backgrounds, first.background))
          and _set(n, "background", b))
    c.add("scene added at the end", _add_scene(first))
    c.add("retry marker (keyframe)",
          _retry(first, "keyframe-start", f"{folder}/keyframe-start.png"))
    c.add("retry marker with a note (video)",
          _retry(first, "video", _video(spec, first), "slower, please"))
    c.add("output deleted", _delete(f"{folder}/keyframe-start.png"))
    mine = gen.reference_png(gen.AssetSpec("backgrounds", "mine", "", True))
    c.add("output replaced by the user", _write_bytes(f"{folder}/layers/background.png", mine))


def _other_scene_scenarios(c: Corpus, spec: ProjectSpec, p: Picks) -> None:
    land = p.landscape[0] if p.landscape else None
    obj = p.object[0] if p.object else None
    chain = p.chain(image=True)
    last = max(spec.scenes, key=lambda s: s.number)
    c.add("camera (landscape scene)", land and _set(land.number, "camera", "aerial sweep"))
    c.add("landscape start text",
          land and _set(land.number, "text", "thick fog rolls in", "start"))
    c.add("landscape end text", land and _set(land.number, "text", "stars come out", "end"))
    c.add("retry of a landscape background (retakes its source)",
          land and _retry(land, "background", f"{land.folder}/keyframe-start.png"))
    c.add("object start text", obj and _set(obj.number, "text", "on a lacquered tray", "start"))
    c.add("object end text", obj and _set(obj.number, "text", "wrapped in silk", "end"))
    c.add("last scene removed", _remove_scene(last.number))
    c.add("chain link scene removed", chain and _remove_scene(chain[1][1].number))


def _project_scenarios(c: Corpus, spec: ProjectSpec) -> None:
    c.add("project style description", _style(
        lambda s: setattr(s, "style_description", "Crisp digital painting")))
    c.add("negative prompt", _style(
        lambda s: setattr(s, "negative_prompt", "blurry, text, watermark, extra fingers")))
    second = _other(list(spec.assets["styles"]), spec.default_style)
    c.add("default style changed", second and _style(
        lambda s: setattr(s, "default_style", second)))
    instyle = '[loras.instyle]\nfile = "InStyle-0.5.safetensors"\nstrength = 0.4'
    anypose = '[loras.anypose]\nfile = "2511-AnyPose-base-000006250.safetensors"\n'
    c.add("InStyle strength (stacked strength kept)",
          _config(instyle + "\nstacked_strength = 0.45"))
    c.add("InStyle table without stacked_strength (falls back)", _config(instyle))
    c.add("AnyPose stacked strength",
          _config(anypose + "strength = 0.7\nstacked_strength = 0.6"))
    c.add("AnyPose plain strength (every pose layer is stacked)",
          _config(anypose + "strength = 0.8\nstacked_strength = 0.55"))
    c.add("image steps", _config("[image]\nsteps = 8"))
    c.add("video steps", _config("[video]\nsteps = 6"))
    c.add("seed salt changed", _config('seed_salt = "another"', first=True))
    c.add("config value set to its default", _config('seed_salt = "keyframed"', first=True))
    c.add("template override (composite, reformatted)",
          _template_override("qwen_composite.json", reformat=True))
    c.add("template override (identical bytes)",
          _template_override("qwen_anypose.json", reformat=False))
    c.add("touch inputs", _touch("scene-breakdown.md", "assets.json"))
    c.add("save without changes", _resave)
    c.add("reformat the breakdown", _reformat)
    c.add("philosophy.md edited", _write_bytes("philosophy.md", b"# New thoughts\n"))


def build_scenarios(spec: ProjectSpec) -> tuple[list[Scenario], list[str]]:
    """The corpus for this project, and the names of scenarios it has no candidate for."""
    picks = Picks(spec)
    corpus = Corpus()
    _library_scenarios(corpus, spec, picks)
    _character_scenarios(corpus, spec, picks)
    _other_scene_scenarios(corpus, spec, picks)
    _project_scenarios(corpus, spec)
    return corpus.scenarios, corpus.skipped


# -- one scenario --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What happened in one scenario."""

    name: str
    expected: list[str]
    submitted: list[str]
    full: int
    spec_agrees: bool
    spec_only: list[str]
    recipes_only: list[str]
    unsettled: list[str]
    other_bytes: list[str]
    seconds: float

    @property
    def precision(self) -> float:
        """Share of submitted jobs that were expected (1 when none were submitted)."""
        if not self.submitted:
            return 1.0
        hits = len(set(self.submitted) & set(self.expected))
        return hits / len(self.submitted)

    @property
    def recall(self) -> float:
        """Share of expected jobs that were submitted (1 when none were expected)."""
        if not self.expected:
            return 1.0
        return len(set(self.submitted) & set(self.expected)) / len(self.expected)

    @property
    def exact(self) -> bool:
        """Each expected job submitted exactly once, nothing else."""
        return sorted(self.submitted) == sorted(self.expected)

    @property
    def saved(self) -> float:
        """GPU jobs saved against a full rebuild, in percent."""
        return 100.0 * (self.full - len(self.submitted)) / self.full if self.full else 0.0

    def as_json(self) -> dict[str, Any]:
        """The JSON record."""
        return {"name": self.name, "expected": sorted(self.expected),
                "submitted": sorted(self.submitted), "full_rebuild_jobs": self.full,
                "precision": self.precision, "recall": self.recall, "exact": self.exact,
                "gpu_jobs_saved_pct": round(self.saved, 2), "spec_agrees": self.spec_agrees,
                "only_in_spec": self.spec_only, "only_in_recipes": self.recipes_only,
                "unsettled": self.unsettled, "regenerated_with_other_bytes": self.other_bytes,
                "seconds": round(self.seconds, 3)}


def run_scenario(base: Baseline, scenario: Scenario, work: Path, runner: Runner) -> Outcome:
    """Copy the built project, apply the edit, compute the expected jobs, run keyframed."""
    started = time.perf_counter()
    root = work / "scenario"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(base.root, root, symlinks=True)
    spec = copy.deepcopy(base.spec)
    edit = scenario.apply(root, spec) or Edit()
    files_now = hash_tree(root)
    after_r = recipe_nodes(root, frozenset(base.built), edit.takes, edit.notes)
    after_s = spec_nodes(spec, root, edit.takes, edit.notes)
    runner.between_scenarios()
    submitted, _, unsettled = runner.run(root)
    # The ComfyUI server only sees output prefixes (paths without their extension).
    stems = {p.rsplit(".", 1)[0]: p for p in after_r}
    submitted = [stems.get(p, p) for p in submitted]
    # An output that was only missing and came back with other bytes (the fake ComfyUI, like a
    # GPU, need not be bit-for-bit deterministic) rightly makes its users stale. The stand-in
    # backend's bytes follow the fingerprint, so there this would be a bug and is not excused.
    different = frozenset(p for p in after_r if runner.server is not None and p not in files_now
                          and p in base.built and sha256(root / p) != base.built[p])
    expected = expected_jobs(after_r, verdicts(base.recipes, after_r, base.built, base.files,
                                               files_now, different))
    by_spec = expected_jobs(after_s, verdicts(base.spec_graph, after_s, base.built, base.files,
                                              files_now, different))
    full = sum(1 for n in after_r.values() if n.step != "copy")
    return Outcome(
        name=scenario.name, expected=sorted(expected), submitted=submitted, full=full,
        spec_agrees=expected == by_spec, spec_only=sorted(by_spec - expected),
        recipes_only=sorted(expected - by_spec), unsettled=unsettled,
        other_bytes=sorted(different), seconds=time.perf_counter() - started)


# -- the whole benchmark -------------------------------------------------------------------------


def run(scenes: int = 30, seed: int = 0, backend: str = "standin",
        only: Sequence[str] | None = None, limit: int | None = None,
        work: Path | None = None, progress: bool = False,
        sheets: bool = False) -> dict[str, Any]:
    """Run the corpus; return the results (also the JSON written by :func:`main`)."""
    quiet_logs()
    runner = Runner(backend, sheets)
    own_work = work is None
    work = work or Path(tempfile.mkdtemp(prefix="kf-bench-min-"))
    try:
        kind = "comfyui" if backend == "comfyui" else "preview"
        root = work / "base"
        spec = gen.generate_project(root, scenes, seed=seed, backend=kind,
                                    comfy_urls=runner.urls)
        base = build_baseline(root, spec, runner)
        if progress:
            print(f"built {len(base.recipes)} artifacts in {base.build_seconds:.1f} s",
                  file=sys.stderr, flush=True)
        corpus, skipped = build_scenarios(spec)
        if only:
            corpus = [s for s in corpus if s.name in only]
        corpus = corpus[:limit] if limit else corpus
        outcomes = []
        session_outcomes = []
        if not only:
            for session in sessions.sessions(spec)[:limit]:
                for cache in (True, False):
                    session_outcomes.append(
                        sessions.run_session(base, session, work, runner, cache))
                    if progress:
                        o = session_outcomes[-1]
                        print(f"  session {o.name} (cache {'on' if cache else 'off'}): "
                              f"{sum(map(len, o.submitted))} jobs", file=sys.stderr, flush=True)
        for scenario in corpus:
            outcomes.append(run_scenario(base, scenario, work, runner))
            if progress:
                o = outcomes[-1]
                print(f"  {o.name}: expected {len(o.expected)}, submitted {len(o.submitted)}"
                      f" ({o.seconds:.1f} s)", file=sys.stderr, flush=True)
    finally:
        runner.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
    data = summarise(outcomes, skipped, scenes, seed, backend, base)
    data["edit_sessions"] = sessions.summary(session_outcomes)
    return data


def summarise(outcomes: list[Outcome], skipped: list[str], scenes: int, seed: int,
              backend: str, base: Baseline) -> dict[str, Any]:
    """Totals and per-scenario records."""
    expected = sum(len(o.expected) for o in outcomes)
    submitted = sum(len(o.submitted) for o in outcomes)
    hits = sum(len(set(o.submitted) & set(o.expected)) for o in outcomes)
    full = sum(o.full for o in outcomes)
    return {
        "project": {"scenes": scenes, "seed": seed, "artifacts": len(base.recipes),
                    "gpu_artifacts": sum(1 for n in base.recipes.values() if n.step != "copy"),
                    "build_jobs": base.full_jobs, "build_seconds": round(base.build_seconds, 2)},
        "backend": backend,
        "scenarios": len(outcomes),
        "skipped": skipped,
        "exact": sum(1 for o in outcomes if o.exact),
        "spec_agrees": sum(1 for o in outcomes if o.spec_agrees),
        "precision": hits / submitted if submitted else 1.0,
        "recall": hits / expected if expected else 1.0,
        "jobs_expected": expected,
        "jobs_submitted": submitted,
        "jobs_full_rebuild": full,
        "gpu_jobs_saved_pct": round(100.0 * (full - submitted) / full, 2) if full else 0.0,
        "results": [o.as_json() for o in outcomes],
    }


HEADERS = ["scenario", "expected", "submitted", "full", "precision", "recall", "saved %",
           "spec", ""]


def report(data: dict[str, Any]) -> str:
    """The table and the totals."""
    rows = [[r["name"], len(r["expected"]), len(r["submitted"]), r["full_rebuild_jobs"],
             r["precision"], r["recall"], r["gpu_jobs_saved_pct"],
             "yes" if r["spec_agrees"] else "NO", "" if r["exact"] else "MISMATCH"]
            for r in data["results"]]
    rows.append(["TOTAL", data["jobs_expected"], data["jobs_submitted"],
                 data["jobs_full_rebuild"], data["precision"], data["recall"],
                 data["gpu_jobs_saved_pct"], f"{data['spec_agrees']}/{data['scenarios']}",
                 f"{data['exact']}/{data['scenarios']} exact"])
    proj = data["project"]
    head = (f"minimality: {data['scenarios']} scenarios on a {proj['scenes']}-scene project "
            f"({proj['artifacts']} artifacts, {proj['gpu_artifacts']} GPU jobs for a full build; "
            f"backend {data['backend']})")
    lines = [head, "", table(HEADERS, rows), "", session_report(data["edit_sessions"])]
    if data["skipped"]:
        lines.append(f"\nskipped (no candidate in this project): {', '.join(data['skipped'])}")
    for r in data["results"]:
        if not r["exact"] or not r["spec_agrees"] or r["unsettled"]:
            extra = sorted(set(r["submitted"]) - set(r["expected"]))
            missing = sorted(set(r["expected"]) - set(r["submitted"]))
            lines.append(f"\n{r['name']}: extra {extra[:8]} missing {missing[:8]} "
                         f"spec-only {r['only_in_spec'][:8]} recipes-only "
                         f"{r['only_in_recipes'][:8]} unsettled {r['unsettled'][:8]}")
    return "\n".join(lines)


def session_report(data: dict[str, Any]) -> str:
    """The edit sessions: GPU jobs with the output cache and without."""
    rows = [[r["name"], "on" if r["cache"] else "off",
             " ".join(str(len(s)) for s in r["submitted"]),
             r["jobs_expected"], r["jobs_submitted"], r["precision"], r["recall"],
             "" if r["exact"] else "MISMATCH"] for r in data["sessions"]]
    head = (f"edit sessions: {data['jobs_with_cache']} GPU jobs with the cache, "
            f"{data['jobs_without_cache']} without ({data['gpu_jobs_saved_by_cache_pct']} % "
            f"saved); precision {data['precision']}, recall {data['recall']}")
    return head + "\n\n" + table(["session", "cache", "jobs per step", "expected",
                                    "submitted", "precision", "recall", ""], rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: run, print the table, write bench/results/minimality.json."""
    parser = argparse.ArgumentParser(prog="python -m bench.minimality", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("standin", "comfyui"), default="standin",
                        help="stand-in backend in process, or the ComfyUI-compatible test "
                             "server (needs ../shared/comfyui/object_info.json)")
    parser.add_argument("--only", action="append", help="run only this scenario (repeatable)")
    parser.add_argument("--sheets", action="store_true",
                        help="let the daemon draw contact sheets too (slower, same jobs)")
    args = parser.parse_args(argv)
    data = run(args.scenes, args.seed, args.backend, only=args.only, progress=True,
               sheets=args.sheets)
    print(report(data))
    name = "minimality" if args.backend == "standin" else f"minimality-{args.backend}"
    print(f"\nwritten: {write_results(name, data)}")
    exact = data["exact"] == data["scenarios"] and data["edit_sessions"]["all_exact"]
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
