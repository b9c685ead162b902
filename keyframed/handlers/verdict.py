"""The vocabulary of verdicts: why an artifact is what it is, and what the plan says of it.

Plain data shared by :mod:`.staleness` (fresh or stale, and why), :mod:`.approvals` (the gates),
:mod:`.plan` (the verdict with its gates) and :mod:`.memo` (what a pass keeps for the next).
Kept apart from the logic so that each of those imports the words without importing the
others.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.fingerprint import Components
from keyframed.handlers.recipe import Artifact

State = Literal["fresh", "stale", "user_override"]


class Reason(BaseModel):
    """One reason an artifact is stale or waiting."""

    model_config = ConfigDict(frozen=True)

    code: str
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code


class Record(BaseModel):
    """What the store remembers of an artifact's last successful build."""

    model_config = ConfigDict(frozen=True)

    path: str
    fingerprint: str
    output_hash: str
    components: Components
    take: int = 0


class Status(BaseModel):
    """The verdict on one artifact."""

    model_config = ConfigDict(frozen=True)

    path: str
    state: State
    reasons: tuple[Reason, ...] = ()
    fingerprint: str | None = None
    components: Components | None = None

    @property
    def usable(self) -> bool:
        """True when dependents may use the file as it is."""
        return self.state in ("fresh", "user_override")


PlanState = Literal["fresh", "stale", "blocked", "awaiting_approval", "user_override"]


class PlanItem(BaseModel):
    """One artifact's verdict, with the artifact itself."""

    model_config = ConfigDict(frozen=True)

    artifact: Artifact
    state: PlanState
    reasons: tuple[Reason, ...]
    status: Status

    @property
    def path(self) -> str:
        """The artifact's project-relative path."""
        return self.artifact.path
