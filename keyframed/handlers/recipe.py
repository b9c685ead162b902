"""Artifacts and their recipes: what each output file is made from, exactly."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict

Step = Literal[
    "asset", "background", "character", "composite", "landscape", "object", "video", "copy"
]
ArtifactKind = Literal["asset", "layer", "keyframe", "video"]
Gate = Literal["assets", "keyframes"]
ParamValue = int | float | str | bool


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InputRef(_Frozen):
    """One input file of a recipe, in image-slot order.

    ``artifact`` is True when the file is another artifact's output (so it has a recipe of its
    own), False when it is a file the user supplied.
    """

    path: str
    role: str
    artifact: bool = False


class LoraSpec(_Frozen):
    """One LoRA in the chain, in stacking order."""

    role: str
    file: str
    strength: float


class Recipe(_Frozen):
    """Everything that decides an artifact's bytes; its fingerprint is computed from this."""

    step: Step
    template: str
    mode: str
    prompt: str = ""
    negative: str = ""
    inputs: tuple[InputRef, ...] = ()
    loras: tuple[LoraSpec, ...] = ()
    models: dict[str, str] = {}
    params: dict[str, ParamValue] = {}
    seed: int = 0
    take: int = 0
    backend_kind: str = "comfyui"


class Artifact(_Frozen):
    """One output file the daemon owns."""

    path: str
    kind: ArtifactKind
    scene: int | None
    recipe: Recipe
    gate: Gate | None = None

    @cached_property
    def deps(self) -> tuple[str, ...]:
        """Paths of the artifacts this one is made from (worked out once: a pass asks often)."""
        return tuple(i.path for i in self.recipe.inputs if i.artifact)

    @property
    def name(self) -> str:
        """The short name used by retry markers: ``keyframe-start``, ``background``, ``video``."""
        stem = self.path.rsplit("/", 1)[-1].rsplit(".", 1)[0]
        return stem


TAKES_DIR = "takes"


def take_path(path: str, take: int) -> str:
    """``scene-01/keyframe-start.png`` take 2 -> ``scene-01/takes/keyframe-start.take-2.png``.

    Assets follow the same rule: ``assets/styles/ghibli.png`` -> ``assets/styles/takes/...``.
    """
    folder, _, name = path.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    kept = f"{stem}.take-{take}{dot}{ext}" if dot else f"{name}.take-{take}"
    return f"{folder}/{TAKES_DIR}/{kept}" if folder else f"{TAKES_DIR}/{kept}"


def candidates(artifacts: list[Artifact], batches: dict[str, int],
               picks: dict[str, int]) -> list[Artifact]:
    """The other takes of a retry that made several (``--takes N``), as artifacts of their own
    at their ``takes/`` paths, so each is built (and kept) like any output.

    Each is its artifact with another take and the matching seed (consecutive seeds), so its
    fingerprint is the one the live artifact has with that take: a pick of it is restored
    from the output cache. They are wanted until one take is picked; the live artifact is the
    newest take meanwhile.
    """
    out: list[Artifact] = []
    for art in artifacts:
        first = batches.get(art.path)
        if first is None or art.path in picks:
            continue
        for take in range(first, art.recipe.take):
            seed = (art.recipe.seed - art.recipe.take + take) % (2**48)
            recipe = art.recipe.model_copy(update={"take": take, "seed": seed})
            out.append(art.model_copy(update={"path": take_path(art.path, take),
                                              "recipe": recipe}))
    return out
