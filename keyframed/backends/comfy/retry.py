"""How the ComfyUI client retries: only :class:`ComfyTransientError`, with capped backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
import tenacity

from keyframed.errors import ComfyTransientError

__all__ = ["RetryPolicy"]

log = structlog.get_logger(__name__)


def _no_sleep(_seconds: float) -> None:
    return None


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, capped in attempts and in delay.

    The n-th wait is ``initial * 2**(n-1) + uniform(0, jitter)``, at most ``max_delay``.

    Attributes:
        attempts: tries in all, the first included (1 = no retry).
        initial: the first wait, in seconds.
        max_delay: no wait is longer than this.
        jitter: up to this many seconds are added at random, so that several workers that
            failed together do not retry in lockstep.
        sleep: how to wait; tests pass a no-op.
    """

    attempts: int = 3
    initial: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.5
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if min(self.initial, self.max_delay, self.jitter) < 0:
            raise ValueError("RetryPolicy delays must not be negative")

    @classmethod
    def immediate(cls, attempts: int = 3) -> RetryPolicy:
        """A policy that retries without waiting (for tests)."""
        return cls(attempts=attempts, initial=0.0, max_delay=0.0, jitter=0.0, sleep=_no_sleep)

    def delay(self, state: tenacity.RetryCallState) -> float:
        """The wait before the next attempt (a tenacity wait function)."""
        exponential = self.initial * 2.0 ** (state.attempt_number - 1)
        return min(self.max_delay, exponential + random.uniform(0, self.jitter))

    def retrying(self, *, server: str, job: str, what: str) -> tenacity.Retrying:
        """A tenacity ``Retrying`` that retries ComfyTransientError and re-raises the last one."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "comfy_retry",
                job=job,
                server=server,
                what=what,
                attempt=state.attempt_number,
                of=self.attempts,
                wait_s=round(state.upcoming_sleep, 3),
                error=str(exc),
            )

        return tenacity.Retrying(
            sleep=self.sleep,
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self.delay,
            retry=tenacity.retry_if_exception_type(ComfyTransientError),
            before_sleep=before_sleep,
            reraise=True,
        )
