"""The plan: every artifact with its state and reasons, in build order.

States: ``fresh``, ``stale`` (ready to build), ``blocked`` (an input is stale or missing),
``awaiting_approval`` and ``user_override``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keyframed.handlers.approvals import Approvals, gate_reasons
from keyframed.handlers.memo import PlanMemo
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.staleness import evaluate
from keyframed.handlers.verdict import PlanItem, PlanState, Reason, Record, Status


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
    memo: PlanMemo | None = None,
) -> list[PlanItem]:
    """Evaluate staleness and approval gates for every artifact, in dependency order.

    The ``memo`` of the last pass saves re-deciding what did not change (see :mod:`.memo`).
    """
    memo = memo if memo is not None else PlanMemo()
    statuses = evaluate(artifacts, records, hashes, template_hashes, memo)
    items = []
    kept: dict[str, tuple[Artifact, Status, tuple[object, ...], PlanItem]] = {}
    for art in artifacts:
        status = statuses[art.path]
        gates = gate_reasons(art, approvals, hashes, asset_paths) if status.state == "stale" else []
        item = memo.item(art, status, tuple(gates))
        if item is None:
            reasons = status.reasons + tuple(gates)
            item = PlanItem(artifact=art, state=_state(status, gates), reasons=reasons,
                            status=status)
        kept[art.path] = (art, status, tuple(gates), item)
        items.append(item)
    memo.items = kept
    return items
