"""An independent reference for the minimality benchmark: which artifacts must an edit rebuild?

Two oracles, both small and written without keyframed's planner (no staleness, fingerprint,
hash cache, store or plan code):

- **recipes** (:func:`recipe_nodes`): the artifacts and recipes keyframed derives from the
  files (its parser and recipe builders are the only product code used), each recipe reduced
  to canonical JSON plus the sha256 of its template file, read here.
- **spec** (:func:`spec_nodes`): the same graph rebuilt from the generator's
  :class:`~bench.gen.ProjectSpec` by the rules of DESIGN.md section 4 and the docs (what each
  step takes as inputs, and which words and settings go into it). It shares no code with
  keyframed at all, so it catches a recipe that depends on more (or less) than it should.

Both give :class:`Node` s, and :func:`verdicts` decides each artifact from the nodes before and
after the edit and the file hashes before and after it:

- ``pinned``: its output file holds bytes keyframed did not write (a user override): never
  rebuilt; what uses it sees the new bytes;
- ``new``: its recipe (step, inputs, words, settings, template bytes, take) changed, an input
  file's bytes changed, an input will be rebuilt with new bytes, or it did not exist before:
  rebuilt, with new bytes (the benchmark backend's bytes follow the fingerprint);
- ``same``: only its output is missing: rebuilt to the very same bytes, so what uses it stays
  fresh (early cutoff) -- unless the backend gave other bytes (checked after the run);
- ``fresh``: nothing to do.

The expected GPU jobs are the ``new`` and ``same`` artifacts that are not local copies.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.gen import AssetSpec, FrameSpec, ProjectSpec, SceneSpec

REPO = Path(__file__).resolve().parent.parent
PACKAGED_WORKFLOWS = REPO / "keyframed" / "workflows"
DEFAULTS = REPO / "config.toml"
IGNORED_DIRS = {".keyframed"}

Verdict = str  # "fresh" | "new" | "same" | "pinned"


@dataclass(frozen=True)
class Node:
    """One artifact as an oracle sees it: inputs (path, is-artifact) and everything else."""

    path: str
    step: str
    inputs: tuple[tuple[str, bool], ...]
    fields: str


def canonical(value: Any) -> str:
    """Sorted-key compact JSON."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256(path: Path) -> str | None:
    """The file's sha256, or None when it is absent."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return None


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` but ``.keyframed/``, by relative POSIX path."""
    out: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in IGNORED_DIRS]
        for name in files:
            full = Path(folder) / name
            digest = sha256(full)
            if digest is not None:
                out[full.relative_to(root).as_posix()] = digest
    return out


def template_hash(root: Path, name: str) -> str | None:
    """sha256 of a workflow template: the project's override, else the packaged file."""
    if not name:
        return None
    override = root / "workflows" / name
    return sha256(override if override.is_file() else PACKAGED_WORKFLOWS / name)


# -- the verdicts --------------------------------------------------------------------------------


def verdicts(
    before: Mapping[str, Node], after: Mapping[str, Node], built: Mapping[str, str],
    files_before: Mapping[str, str], files_now: Mapping[str, str],
    different: frozenset[str] = frozenset(),
) -> dict[str, Verdict]:
    """Decide every artifact of ``after`` (see the module docstring).

    Args:
        before: Nodes of the fully built project, before the edit.
        after: Nodes after the edit.
        built: Output hash of every artifact keyframed built, before the edit.
        files_before: Hashes of the project's files before the edit.
        files_now: Hashes after the edit (before keyframed runs).
        different: Artifacts that were only missing but came back with other bytes (a backend
            that is not bit-for-bit deterministic, like a GPU): what uses them is rebuilt too.
    """
    out: dict[str, Verdict] = {}

    def decide(path: str) -> Verdict:
        if path in out:
            return out[path]
        node = after[path]
        now = files_now.get(path)
        if now is not None and built.get(path) != now:
            out[path] = "pinned"
            return "pinned"
        changed = before.get(path) != node
        for ref, is_artifact in node.inputs:
            upstream = decide(ref) if is_artifact and ref in after else None
            # An input rebuilt to the same bytes counts as unchanged (early cutoff).
            bytes_changed = upstream != "same" and files_now.get(ref) != files_before.get(ref)
            changed = changed or upstream == "new" or bytes_changed
        verdict = "new" if changed else ("same" if now is None else "fresh")
        if verdict == "same" and path in different:
            verdict = "new"
        out[path] = verdict
        return verdict

    for path in after:
        decide(path)
    return out


def expected_jobs(after: Mapping[str, Node], decided: Mapping[str, Verdict]) -> set[str]:
    """The GPU jobs: rebuilt artifacts that are not local copies.

    An output that is only missing (``same``: its recipe and inputs unchanged) was built
    before, so it comes back from the output cache with no job (issue 13).
    """
    return {p for p, v in decided.items() if v == "new" and after[p].step != "copy"}


# -- oracle 1: keyframed's recipes ---------------------------------------------------------------


def recipe_nodes(root: Path, owned: frozenset[str], takes: Mapping[str, int],
                 notes: Mapping[str, str]) -> dict[str, Node]:
    """Nodes from the recipes keyframed derives for ``root`` (parser + recipe builders only)."""
    from keyframed.handlers.context import PlanContext
    from keyframed.handlers.graph import desired_artifacts
    from keyframed.inputs.config import load_settings
    from keyframed.inputs.loader import load_project

    settings = load_settings(root, env={})
    loaded = load_project(root, settings.run.max_image_pixels)
    if loaded.project is None or loaded.diagnostics:
        raise ValueError(f"{root}: the generated project does not load: {loaded.diagnostics}")
    project = loaded.project
    existing = frozenset(a.output_path for a in project.assets.assets.values()
                         if (root / a.output_path).is_file())
    ctx = PlanContext(settings=settings, existing=existing, owned=owned, takes=dict(takes),
                      notes=dict(notes))
    nodes: dict[str, Node] = {}
    for art in desired_artifacts(project, ctx):
        data = art.recipe.model_dump(mode="json")
        inputs = tuple((i["path"], bool(i["artifact"])) for i in data.pop("inputs"))
        roles = [i.role for i in art.recipe.inputs]
        data["template_sha256"] = template_hash(root, art.recipe.template)
        nodes[art.path] = Node(art.path, art.recipe.step, inputs, canonical([data, roles]))
    return nodes


# -- oracle 2: the spec ------------------------------------------------------------------------

EDIT_KEYS = ("image.width", "image.height", "image.steps", "image.cfg", "image.sampler",
             "image.scheduler", "image.shift", "models.edit_unet", "models.clip", "models.vae")
T2I_KEYS = ("image.width", "image.height", "image.t2i_steps", "image.t2i_cfg", "image.sampler",
            "image.scheduler", "image.t2i_shift", "models.t2i_unet", "models.clip", "models.vae")
VIDEO_KEYS = ("video.width", "video.height", "video.fps", "video.steps", "video.split_step",
              "video.cfg", "video.shift", "video.max_seconds", "models.wan_high", "models.wan_low",
              "models.wan_clip", "models.wan_vae", "image.sampler", "image.scheduler")


class Config:
    """The documented defaults (config.toml) with the project's keyframed.toml over them.

    Tables merge key by key, except that a LoRA table in the project replaces the default one
    (docs/configuration.md: each LoRA table has ``file`` (required), ``strength`` and
    ``stacked_strength``, which falls back to ``strength`` when absent or 0).
    """

    def __init__(self, root: Path) -> None:
        with DEFAULTS.open("rb") as handle:
            self.data = tomllib.load(handle)
        with (root / "keyframed.toml").open("rb") as handle:
            project = tomllib.load(handle)
        for name, table in project.get("loras", {}).items():
            if isinstance(table, dict):
                self.data["loras"][name] = dict(table)
        self._merge(self.data, project)

    def _merge(self, base: dict[str, Any], over: Mapping[str, Any]) -> None:
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                self._merge(base[key], value)
            else:
                base[key] = value

    def get(self, key: str) -> Any:
        """A dotted key's value (None when absent)."""
        node: Any = self.data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    def pick(self, *groups: tuple[str, ...]) -> dict[str, Any]:
        """The values of several key groups."""
        return {k: self.get(k) for group in groups for k in group}

    def lora(self, name: str, stacked: bool = False) -> tuple[Any, Any]:
        """(file, strength) of one LoRA; ``stacked`` when AnyPose and InStyle go together."""
        table = self.data["loras"][name]
        strength = table.get("strength")
        if stacked and table.get("stacked_strength"):
            strength = table["stacked_strength"]
        return table.get("file"), strength

    def loras(self, *, pose: bool, style: bool) -> list[tuple[Any, Any]]:
        """The Qwen LoRA stack: Lightning, AnyPose + helper with a pose, InStyle with a style."""
        both = pose and style
        stack = [self.lora("lightning")]
        if pose:
            stack += [self.lora("anypose", both), self.lora("anypose_helper", both)]
        if style:
            stack.append(self.lora("instyle", both))
        return stack

    @property
    def backend_kind(self) -> str:
        """Every recipe carries the first backend's kind."""
        backends = self.data.get("backends") or [{}]
        return str(backends[0].get("kind", "comfyui"))


@dataclass
class SpecGraph:
    """Builds the spec nodes of one project state."""

    spec: ProjectSpec
    root: Path
    cfg: Config
    takes: Mapping[str, int]
    notes: Mapping[str, str]

    def node(self, path: str, step: str, template: str, inputs: list[tuple[str, bool]],
             scene: SceneSpec | None, **fields: Any) -> Node:
        """A node with what every generation step carries."""
        fields.update(
            template=template_hash(self.root, template), template_name=template, step=step,
            negative=self.spec.negative_prompt or self.cfg.get("prompts.negative"),
            backend_kind=self.cfg.backend_kind, take=self.takes.get(path, 0),
            note=self.notes.get(path, ""),
            seed=(scene.seed if scene is not None and scene.seed is not None
                  else ("salt", self.cfg.get("seed_salt"))),
        )
        return Node(path, step, tuple(inputs), canonical(fields))

    def asset_ref(self, asset: AssetSpec) -> tuple[str, bool]:
        """An asset image as an input: an artifact when keyframed generates it."""
        return (asset.path, not asset.image)

    def style_of(self, scene: SceneSpec) -> AssetSpec:
        """The scene's style asset."""
        return self.spec.asset("styles", self.spec.scene_style(scene))

    def assets(self) -> list[Node]:
        """Phase 2.5: every used asset with a description and no image."""
        out = []
        for type_, name in sorted(self.spec.used()):
            asset = self.spec.asset(type_, name)
            if asset.image:
                continue
            style = type_ == "styles"
            out.append(self.node(
                asset.path, "asset", "qwen_t2i.json", [], None,
                description=asset.description,
                project_style=None if style else self.spec.style_description,
                prompt=self.cfg.get("prompts.style_asset" if style else "prompts.asset"),
                settings=self.cfg.pick(T2I_KEYS)))
        return out

    def character_scene(self, s: SceneSpec, bg_ref: tuple[str, bool]) -> list[Node]:
        """Background layer, character layers, composites."""
        style = self.asset_ref(self.style_of(s))
        bg_path = f"{s.folder}/layers/background.png"
        bg = self.spec.asset("backgrounds", s.background or "")
        out = [self.node(bg_path, "background", "qwen_background.json", [bg_ref, style], s,
                         description=bg.description, prompt=self.cfg.get("prompts.background"),
                         settings=self.cfg.pick(EDIT_KEYS),
                         loras=self.cfg.loras(pose=False, style=True))]
        for which, frame in (("start", s.start), ("end", s.end)):
            layers = [self.character_layer(s, which, frame, c, style) for c in s.characters]
            out += layers
            out.append(self.node(
                f"{s.folder}/keyframe-{which}.png", "composite", "qwen_composite.json",
                [(bg_path, True), *((n.path, True) for n in layers)], s,
                frame=[frame.text, frame.expression], camera=s.camera,
                prompt=self.cfg.get("prompts.composite"), settings=self.cfg.pick(EDIT_KEYS),
                loras=self.cfg.loras(pose=False, style=False)))
        return out

    def character_layer(self, s: SceneSpec, which: str, frame: FrameSpec, name: str,
                        style: tuple[str, bool]) -> Node:
        """One character layer: identity (+ pose) + style."""
        path = (f"{s.folder}/layers/character-{name}-{which}.png" if len(s.characters) > 1
                else f"{s.folder}/layers/character-{which}.png")
        identity = self.spec.asset("characters", name)
        inputs = [self.asset_ref(identity)]
        if frame.pose:
            inputs.append(self.asset_ref(self.spec.asset("poses", frame.pose)))
        template = "qwen_anypose.json" if frame.pose else "qwen_instyle.json"
        prompt = self.cfg.get("prompts.anypose" if frame.pose else "prompts.character")
        return self.node(path, "character", template, [*inputs, style], s,
                         description=identity.description, prompt=prompt,
                         settings=self.cfg.pick(EDIT_KEYS),
                         loras=self.cfg.loras(pose=frame.pose is not None, style=True))

    def landscape_scene(self, s: SceneSpec, bg_ref: tuple[str, bool]) -> list[Node]:
        """keyframe-start from the background, its copy as the layer, keyframe-end from it."""
        style = self.asset_ref(self.style_of(s))
        start = f"{s.folder}/keyframe-start.png"
        settings = {**self.cfg.pick(EDIT_KEYS), "loras": self.cfg.loras(pose=False, style=True)}
        return [
            self.node(start, "landscape", "qwen_background.json", [bg_ref, style], s,
                      frame=[s.start.text, s.start.expression], settings=settings,
                      prompt=self.cfg.get("prompts.landscape")),
            Node(f"{s.folder}/layers/background.png", "copy", ((start, True),), ""),
            self.node(f"{s.folder}/keyframe-end.png", "landscape", "qwen_background.json",
                      [(start, True), style], s, frame=[s.end.text, s.end.expression],
                      settings=settings, prompt=self.cfg.get("prompts.landscape_end")),
        ]

    def object_scene(self, s: SceneSpec) -> list[Node]:
        """InStyle only: the object(s) + style, and an edit of the start for the end."""
        style = self.asset_ref(self.style_of(s))
        refs = [self.asset_ref(self.spec.asset("objects", o)) for o in s.objects][:2]
        start = f"{s.folder}/keyframe-start.png"
        settings = {**self.cfg.pick(EDIT_KEYS), "loras": self.cfg.loras(pose=False, style=True)}
        prompt = self.cfg.get("prompts.object")
        return [
            self.node(start, "object", "qwen_instyle.json", [*refs, style], s,
                      frame=[s.start.text, s.start.expression], settings=settings, prompt=prompt),
            self.node(f"{s.folder}/keyframe-end.png", "object", "qwen_instyle.json",
                      [(start, True), style], s, frame=[s.end.text, s.end.expression],
                      settings=settings, prompt=prompt),
        ]

    def video(self, s: SceneSpec) -> Node:
        """Phase 4: the scene's video from its keyframes."""
        name = "video-preview.webp" if self.cfg.backend_kind == "preview" else "video.mp4"
        return self.node(f"{s.folder}/{name}", "video", "wan_flf2v.json",
                         [(f"{s.folder}/keyframe-start.png", True),
                          (f"{s.folder}/keyframe-end.png", True)], s,
                         motion=s.motion, camera=s.camera, duration=s.duration,
                         prompt=self.cfg.get("prompts.video"), settings=self.cfg.pick(VIDEO_KEYS),
                         loras=[self.cfg.lora("wan_high"), self.cfg.lora("wan_low")])

    def build(self) -> dict[str, Node]:
        """Every node, with background chaining."""
        nodes = self.assets()
        last: dict[str, str] = {}
        for s in sorted(self.spec.scenes, key=lambda x: x.number):
            bg_ref: tuple[str, bool] = ("", False)
            if s.type != "object" and s.background:
                chained = last.get(s.background)
                asset = self.spec.asset("backgrounds", s.background)
                bg_ref = (chained, True) if chained else self.asset_ref(asset)
                last[s.background] = f"{s.folder}/layers/background.png"
            if s.type == "character":
                nodes += self.character_scene(s, bg_ref)
            elif s.type == "landscape":
                nodes += self.landscape_scene(s, bg_ref)
            else:
                nodes += self.object_scene(s)
            nodes.append(self.video(s))
        return {n.path: n for n in nodes}


def spec_nodes(spec: ProjectSpec, root: Path, takes: Mapping[str, int],
               notes: Mapping[str, str]) -> dict[str, Node]:
    """Nodes from the generator's spec by the design's rules (no keyframed code)."""
    return SpecGraph(spec, root, Config(root), takes, notes).build()
