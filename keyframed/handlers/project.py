"""The project model: what the director wrote in assets.json, scene-breakdown.md, style.json."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

AssetType = Literal["characters", "backgrounds", "poses", "styles", "objects"]
ASSET_TYPES: tuple[AssetType, ...] = ("characters", "backgrounds", "poses", "styles", "objects")
SceneType = Literal["character", "landscape", "object"]
KeyframeName = Literal["start", "end"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Asset(_Frozen):
    """One named asset. ``image`` is the project-relative path given (identity_ref/ref_image)."""

    type: AssetType
    name: str
    description: str = ""
    image: str | None = None
    line: int = 1

    @property
    def output_path(self) -> str:
        """Where the image lives: the given path, or ``assets/<type>/<name>.png``."""
        return self.image or f"assets/{self.type}/{self.name}.png"


class AssetLibrary(_Frozen):
    """All assets by type and name."""

    assets: dict[str, Asset] = {}

    @staticmethod
    def key(type_: str, name: str) -> str:
        """The dictionary key of an asset."""
        return f"{type_}/{name}"

    def get(self, type_: AssetType, name: str) -> Asset | None:
        """Return the asset, or None."""
        return self.assets.get(self.key(type_, name))

    def names(self, type_: AssetType) -> list[str]:
        """Names of every asset of one type."""
        return [a.name for a in self.assets.values() if a.type == type_]


class FrameSpec(_Frozen):
    """A start or end frame: a pose and expression, or free text."""

    pose: str | None = None
    expression: str = ""
    text: str = ""
    line: int = 0

    @property
    def description(self) -> str:
        """The text used in prompts for this frame."""
        parts = [p for p in (self.text, self.expression) if p]
        return ", ".join(parts)


class Scene(_Frozen):
    """One ``## Scene N: Title`` section."""

    number: int
    title: str
    type: SceneType
    duration: float = 5.0
    characters: tuple[str, ...] = ()
    background: str | None = None
    style: str | None = None
    objects: tuple[str, ...] = ()
    start: FrameSpec = FrameSpec()
    end: FrameSpec = FrameSpec()
    motion: str = ""
    camera: str = ""
    seed: int | None = None
    line: int = 1
    field_lines: dict[str, int] = {}

    @property
    def folder(self) -> str:
        """``scene-XX``, zero-padded to two digits."""
        return f"scene-{self.number:02d}"

    def frame(self, which: KeyframeName) -> FrameSpec:
        """The start or end frame."""
        return self.start if which == "start" else self.end


class StyleFile(_Frozen):
    """style.json: the project's look. Every field is optional."""

    name: str = ""
    description: str = ""
    default_style: str | None = None
    palette: tuple[str, ...] = ("#2b2d42", "#8d99ae", "#edf2f4", "#ef233c", "#d90429")
    negative_prompt: str = ""


class Project(_Frozen):
    """Everything the inputs say, parsed and cross-checked."""

    title: str = ""
    assets: AssetLibrary = AssetLibrary()
    scenes: tuple[Scene, ...] = ()
    style: StyleFile = StyleFile()

    def scene(self, number: int) -> Scene | None:
        """Return the scene with this number, or None."""
        return next((s for s in self.scenes if s.number == number), None)
