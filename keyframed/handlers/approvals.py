"""Approval gates (DESIGN §5): ``assets.approved`` and ``scene-XX/keyframes.approved``.

An approval binds to the hashes of what it approved, taken when keyframed first saw the
marker. If one of those files changes later, the approval is stale and the gated work waits.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.recipe import Artifact
from keyframed.handlers.verdict import Reason

ASSETS_MARKER = "assets.approved"


def keyframes_marker(scene: int) -> str:
    """``scene-XX/keyframes.approved``."""
    return f"scene-{scene:02d}/keyframes.approved"


class Approvals(BaseModel):
    """What has been approved, as hash snapshots (path → sha256)."""

    model_config = ConfigDict(frozen=True)

    mode: Literal["manual", "auto"] = "manual"
    assets: dict[str, str] | None = None
    scenes: dict[int, dict[str, str]] = {}


def _compare(
    snapshot: Mapping[str, str], paths: list[str], hashes: Mapping[str, str | None]
) -> list[Reason]:
    return [
        Reason(code="approval_stale", detail=p)
        for p in paths
        if snapshot.get(p) != hashes.get(p)
    ]


def gate_reasons(
    art: Artifact,
    approvals: Approvals,
    hashes: Mapping[str, str | None],
    asset_paths: frozenset[str],
) -> list[Reason]:
    """Why a gated artifact may not be built yet (empty when it may)."""
    if approvals.mode == "auto" or art.gate is None:
        return []
    if art.gate == "assets":
        if approvals.assets is None:
            return [Reason(code="approval_missing", detail=ASSETS_MARKER)]
        used = [i.path for i in art.recipe.inputs if i.path in asset_paths]
        return _compare(approvals.assets, used, hashes)
    assert art.scene is not None
    snapshot = approvals.scenes.get(art.scene)
    if snapshot is None:
        return [Reason(code="approval_missing", detail=keyframes_marker(art.scene))]
    return _compare(snapshot, [i.path for i in art.recipe.inputs], hashes)


GateKind = Literal["assets", "keyframes"]
