"""The preview backend: every artifact rendered locally with Pillow, an animatic, no GPU."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from keyframed.backends import preview_render
from keyframed.backends.base import Progress
from keyframed.handlers.project import StyleFile
from keyframed.handlers.recipe import Artifact
from keyframed.settings import BackendSettings, Settings


class PreviewBackend:
    """Renders every artifact locally with Pillow: an animatic, no GPU."""

    kind = "preview"

    def __init__(self, config: BackendSettings, settings: Settings, style: StyleFile) -> None:
        self.name = config.name
        self.max_in_flight = config.max_in_flight
        self.settings = settings
        self.style = style

    def supports(self, art: Artifact) -> bool:
        """The preview renderer makes every kind of artifact."""
        return True

    def execute(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
                on_progress: Progress) -> bytes:
        """Render the artifact."""
        video = art.kind == "video"
        width = self.settings.video.width if video else self.settings.image.width
        height = self.settings.video.height if video else self.settings.image.height
        data = preview_render.render(art, inputs, width=width, height=height,
                              palette=self.style.palette, fps=8,
                              max_seconds=self.settings.video.max_seconds,
                              max_pixels=self.settings.run.max_image_pixels)
        on_progress(1.0)
        return data

    def cancel(self, job_key: str, art: Artifact) -> None:
        """Preview jobs are short; nothing to cancel."""

    def health(self) -> dict[str, Any]:
        """Always up."""
        return {"name": self.name, "kind": self.kind, "up": True}

    def close(self) -> None:
        """Nothing to release."""
