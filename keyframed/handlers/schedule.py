"""Which ready job goes to which backend: pure, so it can be tested without servers.

Rules, in order: a job goes only to a backend that is up, has a free slot and has every node
class, model and LoRA the job needs; among those, a backend whose last job used the same model
and LoRA stack comes first (ComfyUI's classic cache keeps only what the previous prompt used,
so switching stacks reloads weights); then the backend with the most free slots.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from keyframed.handlers.fingerprint import short_hash
from keyframed.handlers.recipe import Recipe


class Want(BaseModel):
    """A ready job, as the scheduler sees it."""

    model_config = ConfigDict(frozen=True)

    job_id: int
    stack: str
    order: int = 0


class Slot(BaseModel):
    """A backend, as the scheduler sees it."""

    model_config = ConfigDict(frozen=True)

    name: str
    free: int
    last_stack: str = ""
    can_run: frozenset[int] = frozenset()


def stack_key(recipe: Recipe) -> str:
    """Jobs with equal keys share models and LoRAs, so they run best back to back."""
    loras = [(lo.file, lo.strength) for lo in recipe.loras]
    return short_hash([recipe.template, recipe.models, loras])


def assign(wants: Sequence[Want], slots: Sequence[Slot]) -> list[tuple[int, str]]:
    """Pair ready jobs with backends; returns (job_id, backend name) in dispatch order.

    Jobs are taken in plan order, but a backend prefers the next job of its current stack
    when one is waiting, which keeps model switches near the minimum.
    """
    free = {s.name: s.free for s in slots}
    last = {s.name: s.last_stack for s in slots}
    pending = sorted(wants, key=lambda w: w.order)
    out: list[tuple[int, str]] = []
    progress = True
    while progress and pending:
        progress = False
        for slot in sorted(slots, key=lambda s: -free[s.name]):
            if free[slot.name] <= 0:
                continue
            runnable = [w for w in pending if w.job_id in slot.can_run]
            if not runnable:
                continue
            same = [w for w in runnable if w.stack == last[slot.name]]
            pick = (same or runnable)[0]
            out.append((pick.job_id, slot.name))
            pending.remove(pick)
            free[slot.name] -= 1
            last[slot.name] = pick.stack
            progress = True
    return out
