"""The plan: every artifact with its state and reasons, in build order.

States: ``fresh``, ``stale`` (ready to build), ``blocked`` (an input is stale or missing),
``awaiting_approval`` and ``user_override``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.approvals import Approvals, gate_reasons
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.staleness import Reason, Record, Status, evaluate

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


def _state(status: Status, gates: list[Reason]) -> PlanState:
    if status.state != "stale":
        return status.state
    if any(r.code in ("upstream_stale", "missing_input") for r in status.reasons):
        return "blocked"
    return "awaiting_approval" if gates else "stale"


def make_plan(
    artifacts: Sequence[Artifact],
    records: Mapping[str, Record],
    hashes: Mapping[str, str | None],
    template_hashes: Mapping[str, str],
    approvals: Approvals,
    asset_paths: frozenset[str],
) -> list[PlanItem]:
    """Evaluate staleness and approval gates for every artifact, in dependency order."""
    statuses = evaluate(artifacts, records, hashes, template_hashes)
    items = []
    for art in artifacts:
        status = statuses[art.path]
        gates = gate_reasons(art, approvals, hashes, asset_paths) if status.state == "stale" else []
        state = _state(status, gates)
        reasons = status.reasons + tuple(gates)
        items.append(PlanItem(artifact=art, state=state, reasons=reasons, status=status))
    return items
