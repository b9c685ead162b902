"""What the planner needs to know besides the project: settings, takes, notes, ownership."""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, ConfigDict

from keyframed.settings import Settings


class PlanContext(BaseModel):
    """Facts from the store and the disk that shape the desired artifacts.

    ``existing`` holds the asset image paths present on disk; ``owned`` the paths keyframed
    wrote. An asset image that exists and is not owned is the user's, so it is an input rather
    than an artifact. ``takes`` and ``notes`` come from consumed retry markers.
    """

    model_config = ConfigDict(frozen=True)

    settings: Settings = Settings()
    existing: frozenset[str] = frozenset()
    owned: frozenset[str] = frozenset()
    takes: dict[str, int] = {}
    notes: dict[str, str] = {}

    def take(self, path: str) -> int:
        """The current take of an artifact (0 until a retry)."""
        return self.takes.get(path, 0)

    def seed(self, path: str, scene_seed: int | None) -> int:
        """A deterministic seed: the scene's Seed, else derived from salt and path; plus take."""
        if scene_seed is not None:
            base = scene_seed
        else:
            digest = hashlib.sha256(f"{self.settings.seed_salt}:{path}".encode()).hexdigest()
            base = int(digest[:12], 16)
        return (base + self.take(path)) % (2**48)

    def with_note(self, path: str, prompt: str) -> str:
        """Append a retry note to a prompt."""
        note = self.notes.get(path, "").strip()
        return f"{prompt} {note}".strip() if note else prompt
