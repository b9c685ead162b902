"""The Debouncer on a simulated clock: one burst, one wake; nonstop activity wakes at the cap."""

from __future__ import annotations

import pytest

from keyframed.daemon.watcher import Debouncer

QUIET = 0.1
CAP = 2.0
TICK = 0.005  # the simulated scheduler looks at the debouncer every 5 ms


def run(debouncer: Debouncer, events: list[float], until: float) -> list[float]:
    """Replay event times on a simulated clock; return the times at which a burst fired."""
    fired: list[float] = []
    pending = sorted(events)
    steps = round(until / TICK)
    for step in range(steps + 1):
        now = step * TICK
        while pending and pending[0] <= now:
            debouncer.note(pending.pop(0))
        if debouncer.due(now):
            fired.append(now)
            debouncer.reset()
    return fired


def test_nothing_noted_is_never_due() -> None:
    debouncer = Debouncer(QUIET, CAP)
    assert debouncer.next_deadline() is None
    assert not debouncer.pending
    assert not debouncer.due(1e9)


def test_one_burst_gives_one_due_after_the_quiet_window() -> None:
    # A vim save: a dozen events within 2 ms.
    burst = [1.0 + i * 0.0002 for i in range(12)]
    fired = run(Debouncer(QUIET, CAP), burst, until=3.0)
    assert len(fired) == 1
    assert fired[0] == pytest.approx(burst[-1] + QUIET, abs=TICK)


def test_due_moves_with_each_event_trailing_edge() -> None:
    debouncer = Debouncer(QUIET, CAP)
    debouncer.note(1.0)
    assert debouncer.next_deadline() == pytest.approx(1.1)
    debouncer.note(1.05)
    assert debouncer.next_deadline() == pytest.approx(1.15)
    assert not debouncer.due(1.12)
    assert debouncer.due(1.16)


def test_continuous_events_are_due_at_the_cap() -> None:
    # An event every 50 ms for 5 s never leaves a quiet window of 100 ms.
    stream = [i * 0.05 for i in range(101)]
    fired = run(Debouncer(QUIET, CAP), stream, until=5.0)
    assert fired[0] == pytest.approx(CAP, abs=TICK)
    # The next burst starts with the first event after that wake (2.05 s).
    assert fired[1] == pytest.approx(2.05 + CAP, abs=2 * TICK)


def test_quiet_after_continuous_activity_gives_one_more_due() -> None:
    stream = [i * 0.05 for i in range(101)]  # last event at 5.0
    fired = run(Debouncer(QUIET, CAP), stream, until=10.0)
    assert len(fired) == 3  # at the cap twice, then once after the stream stops
    assert fired[-1] == pytest.approx(5.0 + QUIET, abs=TICK)


def test_two_bursts_apart_give_two_dues() -> None:
    fired = run(Debouncer(QUIET, CAP), [1.0, 1.001, 3.0, 3.002], until=5.0)
    assert len(fired) == 2


def test_two_saves_inside_one_quiet_window_are_one_due() -> None:
    fired = run(Debouncer(QUIET, CAP), [1.0, 1.06], until=3.0)
    assert len(fired) == 1


def test_reset_ends_the_burst_and_a_new_note_starts_fresh() -> None:
    debouncer = Debouncer(QUIET, CAP)
    debouncer.note(1.0)
    debouncer.reset()
    assert not debouncer.pending
    assert debouncer.next_deadline() is None
    debouncer.note(5.0)
    # The cap counts from the new burst's first event, not from the old one.
    assert debouncer.next_deadline() == pytest.approx(5.1)


def test_out_of_order_note_does_not_pull_the_deadline_back() -> None:
    debouncer = Debouncer(QUIET, CAP)
    debouncer.note(1.0)
    debouncer.note(1.08)
    debouncer.note(1.02)  # a timestamp taken earlier on another thread
    assert debouncer.next_deadline() == pytest.approx(1.18)


@pytest.mark.parametrize(("quiet", "cap"), [(0.0, 1.0), (-1.0, 1.0), (0.5, 0.1)])
def test_rejects_impossible_windows(quiet: float, cap: float) -> None:
    with pytest.raises(ValueError):
        Debouncer(quiet, cap)
