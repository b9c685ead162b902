"""How a job's simulated duration is spread over the nodes that run.

Pauses aim at deadlines measured from the job's start, so the fake's own overhead (hashing,
rendering, sending events) is absorbed and a job lasts ``job_seconds`` in wall time, which
throughput benchmarks rely on.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

SAVER_SHARE = 0.1  # of the job, for each output node, to cover writing its file
SAVER_SHARE_MAX = 0.05  # seconds


def plan(
    work: list[str], steps: Mapping[str, int], savers: Collection[str], total: float
) -> dict[str, tuple[float, float]]:
    """Each node's time window ``(start, end)`` in seconds from the job's start.

    Output nodes get a small share (they render first and wait the rest); samplers share
    what remains by their step counts; without samplers every other node gets an equal part.

    Args:
        work: The nodes that run (not cached), in execution order.
        steps: Sampler nodes and their step counts.
        savers: Output nodes that write files.
        total: The job's duration.
    """
    if total <= 0 or not work:
        return {}
    saving = [n for n in work if n in savers]
    others = [n for n in work if n not in savers]
    reserve = min(SAVER_SHARE * total, SAVER_SHARE_MAX) * len(saving) if others else total
    shares = {n: reserve / len(saving) for n in saving}
    rest = total - reserve
    sampling = {n: s for n, s in steps.items() if n in others}
    if sampling:
        shares.update({n: rest * s / sum(sampling.values()) for n, s in sampling.items()})
    elif others:
        shares.update({n: rest / len(others) for n in others})
    windows, clock = {}, 0.0
    for node_id in work:
        share = shares.get(node_id, 0.0)
        windows[node_id] = (clock, clock + share)
        clock += share
    return windows
