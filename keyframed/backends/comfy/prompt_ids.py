"""Deterministic ComfyUI prompt ids.

ComfyUI accepts a client-chosen ``prompt_id`` and does not check that it is new. keyframed
derives it from the job's fingerprint, so the same job always has the same id, also after a
crash or a restart of the daemon. Before submitting, the daemon asks the server about that id
(``/history/{id}``, ``/queue``): done means fetch the outputs, queued or running means wait,
absent means submit. A job is therefore never executed twice because an answer was lost or the
daemon died between ``POST /prompt`` and recording it (DESIGN §6, idempotent submission).

The ``take`` (a user's retry, a new seed) and the ``attempt`` (the daemon running the same take
again after an ``execution_error``) are part of the id: a failed prompt stays failed in the
server's history, so running it again needs a new id, and that id is again deterministic.
"""

from __future__ import annotations

import uuid

__all__ = ["PROMPT_ID_NAMESPACE", "prompt_id_for"]

# Fixed forever: changing it would give every job a new id and run everything again.
PROMPT_ID_NAMESPACE = uuid.UUID("6b1f0d2e-3c4a-5e8f-9a7b-0c1d2e3f4a5b")


def prompt_id_for(fingerprint: str, take: int, attempt: int = 0) -> str:
    """The prompt id of one attempt of one take of a job (a UUID5 string).

    Args:
        fingerprint: the job's recipe fingerprint (sha256 hex).
        take: the take number (0 for the first).
        attempt: the execution attempt of that take (0 for the first).

    Raises:
        ValueError: empty fingerprint or negative take/attempt.
    """
    if not fingerprint:
        raise ValueError("a fingerprint is needed")
    if take < 0 or attempt < 0:
        raise ValueError("take and attempt must not be negative")
    return str(uuid.uuid5(PROMPT_ID_NAMESPACE, f"{fingerprint}/take={take}/attempt={attempt}"))
