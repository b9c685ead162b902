"""Generate realistic keyframed projects of any size, deterministically.

A project is described by a :class:`ProjectSpec` (plain dataclasses) and rendered into the
files a person would write: ``scene-breakdown.md``, ``assets.json``, ``style.json``,
``philosophy.md``, ``keyframed.toml`` and small real reference PNGs. Benchmarks edit the spec
and re-render single files, so the spec always says what the project holds.

What a generated project looks like:

- mostly character scenes (~70 %), some landscape (~18 %) and object (~12 %) scenes;
- about ``assets_per_scene`` shared assets per scene (characters, poses, backgrounds, styles,
  objects), used with a skew (a few protagonists and locations appear often), so background
  chains form (a scene chains from the last earlier scene with the same background);
- characters and poses always have a reference PNG (32x32, drawn with Pillow); backgrounds,
  styles and objects have one about half of the time, otherwise only a description, which
  keyframed generates in Phase 2.5;
- a few deliberately unused assets; a ``default_style`` in style.json plus some explicit
  ``Style`` fields; an occasional ``Seed``;
- ``keyframed.toml`` with ``approval = "auto"`` and either the preview backend or one
  ComfyUI backend per URL.

Usage::

    from bench.gen import generate_project
    spec = generate_project(Path("/tmp/p"), 100, seed=0, backend="preview")
"""

from __future__ import annotations

import hashlib
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

ASSET_TYPES = ("characters", "backgrounds", "poses", "styles", "objects")
# Share of the asset budget per type, and the least of each a project has.
SHARES = {"characters": 0.25, "backgrounds": 0.3, "poses": 0.2, "styles": 0.05, "objects": 0.2}
MINIMUM = {"characters": 4, "backgrounds": 4, "poses": 4, "styles": 3, "objects": 3}
# Share of the assets of a type that have a reference image (else: description only).
IMAGE_CHANCE = {"characters": 1.0, "poses": 1.0, "backgrounds": 0.5, "styles": 0.5,
                "objects": 0.5}
SCENE_TYPES = (("character", 0.70), ("landscape", 0.18), ("object", 0.12))
PNG_SIZE = 32

WORDS = {
    "characters": ["warrior", "monk", "archer", "merchant", "ronin", "healer", "scout", "smith"],
    "backgrounds": ["temple", "forest", "harbour", "village", "cliff", "market", "bamboo grove",
                    "snowfield"],
    "poses": ["standing", "kneeling", "running", "sitting", "bowing", "pointing", "leaning",
              "crouching"],
    "styles": ["ink wash", "watercolour", "anime cel", "oil paint", "woodblock", "pastel"],
    "objects": ["katana", "lantern", "teapot", "scroll", "bell", "fan", "bow", "mask"],
}
EXPRESSIONS = ["calm", "determined", "surprised", "smiling", "eyes closed", "angry", "tired",
               "curious", "sad", "alert"]
CAMERAS = ["static, wide shot", "slow push in", "tracking right", "close-up on face",
           "low angle", "medium shot", "overhead", "handheld"]
MOTIONS = ["walks forward", "turns around", "raises a hand", "sits down", "looks up",
           "draws a blade", "steps back", "bows slowly"]
LANDSCAPE = ["dawn mist over the hills", "sun high, clear sky", "clouds gather",
             "golden hour light", "rain begins", "night falls, lanterns lit"]
OBJECT_TEXT = ["resting on a wooden table", "in soft window light", "close detail",
               "glinting in sunlight", "covered in dust", "on a silk cloth"]


@dataclass
class AssetSpec:
    """One asset: its reference image (when ``image``) is drawn from ``variant``."""

    type: str
    name: str
    description: str
    image: bool
    variant: int = 0
    file: str | None = None  # an explicit image path (kept when the asset is renamed)

    @property
    def path(self) -> str:
        """The project-relative image path (given, or where Phase 2.5 writes it)."""
        return self.file or f"assets/{self.type}/{self.name}.png"


@dataclass
class FrameSpec:
    """A start or end frame."""

    pose: str | None = None
    expression: str = ""
    text: str = ""


@dataclass
class SceneSpec:
    """One scene of scene-breakdown.md."""

    number: int
    title: str
    type: str
    duration: float
    characters: list[str] = field(default_factory=list)
    background: str | None = None
    style: str | None = None
    objects: list[str] = field(default_factory=list)
    start: FrameSpec = field(default_factory=FrameSpec)
    end: FrameSpec = field(default_factory=FrameSpec)
    motion: str = ""
    camera: str = ""
    seed: int | None = None

    @property
    def folder(self) -> str:
        """``scene-XX``, zero-padded to two digits."""
        return f"scene-{self.number:02d}"


@dataclass
class ProjectSpec:
    """Everything a generated project holds."""

    title: str
    assets: dict[str, dict[str, AssetSpec]]
    scenes: list[SceneSpec]
    default_style: str
    style_description: str
    negative_prompt: str
    backend: str = "preview"
    comfy_urls: list[str] = field(default_factory=list)
    config_extra: str = ""

    def asset(self, type_: str, name: str) -> AssetSpec:
        """One asset by type and name."""
        return self.assets[type_][name]

    def scene(self, number: int) -> SceneSpec:
        """One scene by number."""
        return next(s for s in self.scenes if s.number == number)

    def scene_style(self, scene: SceneSpec) -> str:
        """The style a scene uses: its own, else the default."""
        return scene.style or self.default_style

    def used(self) -> set[tuple[str, str]]:
        """(type, name) of every asset some scene references."""
        return {ref for s in self.scenes for ref in self.scene_assets(s)}

    def scene_assets(self, s: SceneSpec) -> set[tuple[str, str]]:
        """(type, name) of every asset one scene references."""
        out = {("styles", self.scene_style(s))}
        out.update(("characters", c) for c in s.characters)
        out.update(("objects", o) for o in s.objects)
        out.update(("poses", f.pose) for f in (s.start, s.end) if f.pose)
        if s.background:
            out.add(("backgrounds", s.background))
        return out


# -- building the spec -------------------------------------------------------------------------


def _asset_counts(scenes: int, per_scene: float) -> dict[str, int]:
    total = round(scenes * per_scene)
    return {t: max(MINIMUM[t], round(total * SHARES[t])) for t in ASSET_TYPES}


def _make_assets(rng: random.Random, counts: dict[str, int]) -> dict[str, dict[str, AssetSpec]]:
    out: dict[str, dict[str, AssetSpec]] = {}
    for type_ in ASSET_TYPES:
        group: dict[str, AssetSpec] = {}
        words = WORDS[type_]
        for i in range(counts[type_]):
            word = words[i % len(words)]
            name = f"{word.replace(' ', '_')}_{i + 1:03d}"
            # Alternate for the half-and-half types, so every project has both kinds.
            chance = IMAGE_CHANCE[type_]
            image = chance >= 1.0 or (chance > 0.0 and i % 2 == 0)
            desc = f"{word.capitalize()} number {i + 1}, {rng.choice(EXPRESSIONS)} mood"
            group[name] = AssetSpec(type=type_, name=name, description=desc, image=image)
        out[type_] = group
    return out


def _weighted(rng: random.Random, names: Sequence[str], k: int = 1) -> list[str]:
    """``k`` distinct names, skewed towards the first ones (main characters, main places)."""
    weights = [1.0 / (i + 1) ** 0.9 for i in range(len(names))]
    chosen: list[str] = []
    while len(chosen) < min(k, len(names)):
        pick = rng.choices(names, weights=weights)[0]
        if pick not in chosen:
            chosen.append(pick)
    return chosen


def _scene_type(rng: random.Random, number: int) -> str:
    if number <= 3:
        return ("character", "landscape", "object")[number - 1]
    roll, acc = rng.random(), 0.0
    for name, share in SCENE_TYPES:
        acc += share
        if roll < acc:
            return name
    return "character"


def _frame(rng: random.Random, poses: Sequence[str], with_pose: bool) -> FrameSpec:
    pose = _weighted(rng, poses)[0] if with_pose else None
    return FrameSpec(pose=pose, expression=rng.choice(EXPRESSIONS))


def _make_scene(rng: random.Random, number: int, assets: dict[str, dict[str, AssetSpec]],
                used_names: dict[str, list[str]]) -> SceneSpec:
    kind = _scene_type(rng, number)
    scene = SceneSpec(number=number, title=f"Scene {number} title", type=kind,
                      duration=float(rng.choice([3, 4, 5, 5, 6, 8])),
                      motion=f"{rng.choice(MOTIONS)} (shot {number})",
                      camera=rng.choice(CAMERAS))
    if rng.random() < 0.3:
        scene.style = rng.choice(used_names["styles"])
    if rng.random() < 0.05:
        scene.seed = rng.randrange(1, 10**9)
    if kind == "character":
        scene.characters = _weighted(rng, used_names["characters"], 2 if rng.random() < 0.2 else 1)
        scene.background = _weighted(rng, used_names["backgrounds"])[0]
        scene.start = _frame(rng, used_names["poses"], rng.random() < 0.75)
        scene.end = _frame(rng, used_names["poses"], rng.random() < 0.75)
    elif kind == "landscape":
        scene.background = _weighted(rng, used_names["backgrounds"])[0]
        scene.start = FrameSpec(text=rng.choice(LANDSCAPE))
        scene.end = FrameSpec(text=rng.choice(LANDSCAPE))
    else:
        scene.objects = _weighted(rng, used_names["objects"], 2 if rng.random() < 0.25 else 1)
        scene.start = FrameSpec(text=rng.choice(OBJECT_TEXT))
        scene.end = FrameSpec(text=rng.choice(OBJECT_TEXT))
    return scene


def make_spec(scenes: int, *, seed: int = 0, assets_per_scene: float = 0.3,
              backend: str = "preview", comfy_urls: Sequence[str] = ()) -> ProjectSpec:
    """Describe a project of ``scenes`` scenes (no files written)."""
    rng = random.Random(seed)
    assets = _make_assets(rng, _asset_counts(scenes, assets_per_scene))
    # The last asset of each type (but styles) stays unused: edits to it must cost nothing.
    used_names = {t: list(g)[:-1] if t != "styles" else list(g) for t, g in assets.items()}
    default_style = next(iter(assets["styles"]))
    spec_scenes = [_make_scene(rng, n, assets, used_names) for n in range(1, scenes + 1)]
    return ProjectSpec(
        title=f"Generated project ({scenes} scenes, seed {seed})",
        assets=assets, scenes=spec_scenes, default_style=default_style,
        style_description="Hand-painted look, soft light, muted palette",
        negative_prompt="blurry, text, watermark",
        backend=backend, comfy_urls=list(comfy_urls),
    )


# -- rendering ---------------------------------------------------------------------------------


def _fmt_seconds(value: float) -> str:
    return f"{int(value)}" if value == int(value) else f"{value}"


def _frame_lines(title: str, frame: FrameSpec) -> list[str]:
    if frame.pose is None and not frame.expression:
        return [f"**{title}**: {frame.text}"]
    lines = [f"**{title}**:"]
    if frame.pose:
        lines.append(f"- pose: {frame.pose}")
    if frame.expression:
        lines.append(f"- expression: {frame.expression}")
    if frame.text:
        lines.append(f"- description: {frame.text}")
    return lines


def render_scene(scene: SceneSpec) -> str:
    """One ``## Scene N`` section."""
    lines = [f"## Scene {scene.number}: {scene.title}", "", f"**Type**: {scene.type}",
             f"**Duration**: {_fmt_seconds(scene.duration)} seconds"]
    if scene.characters:
        lines.append(f"**Characters**: {', '.join(scene.characters)}")
    if scene.background:
        lines.append(f"**Background**: {scene.background}")
    if scene.objects:
        lines.append(f"**Objects**: {', '.join(scene.objects)}")
    if scene.style:
        lines.append(f"**Style**: {scene.style}")
    lines += ["", *_frame_lines("Start Frame", scene.start), "",
              *_frame_lines("End Frame", scene.end), ""]
    if scene.motion:
        lines += [f"**Motion**: {scene.motion}", ""]
    if scene.camera:
        lines += [f"**Camera**: {scene.camera}", ""]
    if scene.seed is not None:
        lines += [f"**Seed**: {scene.seed}", ""]
    return "\n".join(lines)


def render_breakdown(spec: ProjectSpec) -> str:
    """The whole scene-breakdown.md."""
    total = sum(s.duration for s in spec.scenes)
    head = [f"# Scene Breakdown: {spec.title}", "", "## Overview",
            f"- **Total Duration**: {_fmt_seconds(total)} seconds",
            f"- **Number of Scenes**: {len(spec.scenes)}", "- **Video Type**: narrative", ""]
    body = [render_scene(s) for s in spec.scenes]
    return "\n".join(head) + "\n---\n\n" + "\n---\n\n".join(body)


def render_assets(spec: ProjectSpec) -> str:
    """assets.json, in the plan's format."""
    data: dict[str, dict[str, dict[str, str]]] = {}
    for type_, group in spec.assets.items():
        out: dict[str, dict[str, str]] = {}
        for name, asset in group.items():
            entry = {"description": asset.description}
            if asset.image:
                entry["identity_ref" if type_ == "characters" else "ref_image"] = asset.path
            out[name] = entry
        data[type_] = out
    return json.dumps(data, indent=2) + "\n"


def render_style(spec: ProjectSpec) -> str:
    """style.json."""
    data = {"name": spec.title, "description": spec.style_description,
            "default_style": spec.default_style,
            "palette": ["#2e4a3f", "#8fb996", "#f4e9d8", "#e9a6a6", "#b3261e"],
            "negative_prompt": spec.negative_prompt}
    return json.dumps(data, indent=2) + "\n"


def render_config(spec: ProjectSpec) -> str:
    """keyframed.toml: auto approval and the chosen backend(s)."""
    lines = ['approval = "auto"', ""]
    if spec.backend == "preview":
        lines += ["[[backends]]", 'name = "preview"', 'kind = "preview"', "max_in_flight = 2", ""]
    else:
        for n, url in enumerate(spec.comfy_urls or ["http://127.0.0.1:8188"], start=1):
            lines += ["[[backends]]", f'name = "gpu{n}"', 'kind = "comfyui"', f'url = "{url}"',
                      "max_in_flight = 1", ""]
    if spec.config_extra:
        # Tables must come after the top-level keys; extra text is written last.
        lines.append(spec.config_extra)
    return "\n".join(lines) + "\n"


def reference_png(asset: AssetSpec) -> bytes:
    """A small real PNG whose colours and shape follow the asset and its variant."""
    digest = hashlib.sha256(f"{asset.type}/{asset.name}/{asset.variant}".encode()).digest()
    image = Image.new("RGB", (PNG_SIZE, PNG_SIZE), (digest[0], digest[1], digest[2]))
    draw = ImageDraw.Draw(image)
    x, y = digest[3] % 12, digest[4] % 12
    draw.rectangle((x, y, x + 12 + digest[5] % 8, y + 12 + digest[6] % 8),
                   fill=(digest[7], digest[8], digest[9]))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


# -- writing -----------------------------------------------------------------------------------


def write_text(root: Path, rel: str, text: str) -> None:
    """Write one text file (a plain save, as an editor without safe-write does)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def write_image(root: Path, asset: AssetSpec) -> None:
    """Write an asset's reference PNG."""
    path = root / asset.path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(reference_png(asset))


def write_breakdown(root: Path, spec: ProjectSpec) -> None:
    """(Re)write scene-breakdown.md."""
    write_text(root, "scene-breakdown.md", render_breakdown(spec))


def write_assets(root: Path, spec: ProjectSpec) -> None:
    """(Re)write assets.json."""
    write_text(root, "assets.json", render_assets(spec))


def write_config(root: Path, spec: ProjectSpec) -> None:
    """(Re)write keyframed.toml."""
    write_text(root, "keyframed.toml", render_config(spec))


def write_style(root: Path, spec: ProjectSpec) -> None:
    """(Re)write style.json."""
    write_text(root, "style.json", render_style(spec))


def write_project(root: Path, spec: ProjectSpec) -> None:
    """Write every input file of the project into ``root`` (created if needed)."""
    root.mkdir(parents=True, exist_ok=True)
    write_breakdown(root, spec)
    write_assets(root, spec)
    write_style(root, spec)
    write_config(root, spec)
    write_text(root, "philosophy.md", f"# {spec.title}\n\nGenerated for benchmarks.\n")
    for group in spec.assets.values():
        for asset in group.values():
            if asset.image:
                write_image(root, asset)


def generate_project(root: Path, scenes: int, *, seed: int = 0, assets_per_scene: float = 0.3,
                     backend: str = "preview", comfy_urls: Sequence[str] = ()) -> ProjectSpec:
    """Write a realistic project of ``scenes`` scenes into ``root`` and return its spec.

    Args:
        root: The project folder (created; existing input files are overwritten).
        scenes: How many scenes.
        seed: Everything (types, names, texts, images) follows from it.
        assets_per_scene: Size of the shared asset library relative to the scene count.
        backend: ``"preview"`` or ``"comfyui"`` (one backend per URL in ``comfy_urls``).
        comfy_urls: ComfyUI server URLs for the ``"comfyui"`` backend.
    """
    spec = make_spec(scenes, seed=seed, assets_per_scene=assets_per_scene, backend=backend,
                     comfy_urls=comfy_urls)
    write_project(root, spec)
    return spec


def main() -> None:
    """``python -m bench.gen DIR SCENES [SEED]``: write a project and say what it holds."""
    import sys

    root, scenes = Path(sys.argv[1]), int(sys.argv[2])
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    spec = generate_project(root, scenes, seed=seed)
    kinds = {k: sum(1 for s in spec.scenes if s.type == k) for k, _ in SCENE_TYPES}
    counts = {t: len(g) for t, g in spec.assets.items()}
    print(f"{root}: {scenes} scenes {kinds}, assets {counts}")


if __name__ == "__main__":
    main()
