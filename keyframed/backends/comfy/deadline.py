"""A deadline on the whole of each HTTP request, body included.

httpx's timeouts bound each network operation (connect, one read, one write), not a request:
a server that sends one byte every 50 ms never trips a 60 s read timeout, and a 30 KB answer
then takes 25 minutes. :class:`DeadlineTransport` wraps any httpx transport and raises
:class:`httpx.ReadTimeout` (a transient error for the client) as soon as the body is still
arriving after the request's deadline.

The deadline is the transport's default, or ``extensions={"kf_deadline": seconds}`` on one
request (downloads of large videos get the job's remaining time). It is checked between the
chunks of the body; waiting for the status line and headers is bounded by httpx's own read
timeout per read.

The transport bounds the size of every body too: at most :data:`MAX_ANSWER_BYTES` (JSON
answers, error pages), or ``extensions={"kf_max_bytes": n}`` on one request (``/view``
downloads pass their output's own cap). A body over the bound stops being read at once
(:class:`AnswerTooLarge`, a permanent error for the client): a server answering several GB is
never held in memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx

__all__ = ["DEADLINE_EXTENSION", "MAX_BYTES_EXTENSION", "AnswerTooLarge", "DeadlineTransport"]

DEADLINE_EXTENSION = "kf_deadline"
MAX_BYTES_EXTENSION = "kf_max_bytes"
# object_info of a ComfyUI with every core node is about 0.6 MB, with many custom nodes a few
# MB; no JSON answer keyframed reads comes near this.
MAX_ANSWER_BYTES = 64 << 20


class AnswerTooLarge(httpx.DecodingError):
    """A response body longer than the request's size bound."""


class DeadlineTransport(httpx.BaseTransport):
    """Wraps a transport so that no response body arrives after the request's deadline.

    Args:
        inner: the transport that does the work.
        seconds: the default deadline of one request, from sending it to the body's last byte.
        clock: a monotonic clock (tests may inject one).
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if seconds <= 0:
            raise ValueError("the request deadline must be positive")
        self.inner = inner
        self.seconds = seconds
        self.clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request through the inner transport; bound the reading of its body."""
        seconds = float(request.extensions.get(DEADLINE_EXTENSION, self.seconds))
        limit = int(request.extensions.get(MAX_BYTES_EXTENSION, MAX_ANSWER_BYTES))
        deadline = self.clock() + seconds
        response = self.inner.handle_request(request)
        stream = response.stream
        if isinstance(stream, httpx.SyncByteStream):
            response.stream = _DeadlineStream(stream, request, (deadline, seconds, limit),
                                              self.clock)
        return response

    def close(self) -> None:
        """Close the inner transport."""
        self.inner.close()


class _DeadlineStream(httpx.SyncByteStream):
    def __init__(
        self,
        inner: httpx.SyncByteStream,
        request: httpx.Request,
        bounds: tuple[float, float, int],
        clock: Callable[[], float],
    ) -> None:
        self._inner = inner
        self._request = request
        self._deadline, self._seconds, self._limit = bounds
        self._clock = clock

    def __iter__(self) -> Iterator[bytes]:
        count = 0
        for chunk in self._inner:
            if self._clock() > self._deadline:
                raise httpx.ReadTimeout(
                    f"the answer was still arriving after {self._seconds:g} s (deadline)",
                    request=self._request,
                )
            count += len(chunk)
            if count > self._limit:
                raise AnswerTooLarge(f"the answer is over the {self._limit} bytes keyframed "
                                     "reads", request=self._request)
            yield chunk

    def close(self) -> None:
        self._inner.close()
