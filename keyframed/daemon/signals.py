"""Turn SIGTERM, SIGINT and SIGHUP into flags the daemon's loop checks.

The handlers do as little as possible: each writes one byte to a non-blocking self-pipe.
A small helper thread reads the pipe, sets :attr:`Signals.stop` or :attr:`Signals.reload`
and calls the ``wake`` hook. Setting a ``threading.Event`` directly inside a handler could
deadlock: Python runs handlers in the main thread between bytecodes, possibly while that same
thread holds the event's internal (non-reentrant) lock inside ``wait()``. The pipe also means
``wake`` may take locks, log, or call ``loop.call_soon_threadsafe``.

A second SIGINT while a stop is already pending raises ``KeyboardInterrupt`` as Python
normally does, so a person pressing Ctrl-C twice is never stuck behind a slow shutdown.
SIGTERM only ever asks for a graceful stop (systemd follows up with SIGKILL on its own).
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

import structlog

_log = structlog.get_logger(__name__)

_STOP = b"S"
_RELOAD = b"R"
_QUIT = b"Q"  # close() asks the reader thread to end

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class Signals:
    """Install stop/reload handlers; restore the previous ones on :meth:`close`.

    Must be created in the main thread (a Python rule for ``signal.signal``). Usable as a
    context manager.

    Attributes:
        stop: set by SIGTERM or SIGINT; the loop finishes its step and exits.
        reload: set by SIGHUP; the loop re-reads its configuration and clears it.
    """

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        """Install the handlers.

        Args:
            wake: called (from a helper thread, never from the handler) after a flag is set,
                so a loop blocked in a wait can wake at once.
        """
        self.stop = threading.Event()
        self.reload = threading.Event()
        self._wake = wake
        self._stop_requested = False  # plain attribute: the handler may not touch locks
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._reader = threading.Thread(
            target=self._dispatch, name="keyframed-signals", daemon=True
        )
        self._reader.start()
        self._previous: dict[int, _Handler] = {}
        try:
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                self._previous[signum] = signal.signal(signum, self._handle)
        except BaseException:
            self.close()
            raise

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Runs in the main thread at an arbitrary point: no locks, no logging, one write.
        if signum == signal.SIGHUP:
            self._post(_RELOAD)
            return
        if signum == signal.SIGINT and self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True
        self._post(_STOP)

    def _post(self, code: bytes) -> None:
        # A full pipe already holds a pending byte of each kind that matters; dropping is fine.
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._write_fd, code)

    def _dispatch(self) -> None:
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except OSError:
                return
            if not data or _QUIT in data:
                return
            if _STOP in data:
                self.stop.set()
            if _RELOAD in data:
                self.reload.set()
            self._call_wake()

    def _call_wake(self) -> None:
        if self._wake is None:
            return
        try:
            self._wake()
        except Exception:
            # The reader thread must survive, or later signals would be lost.
            _log.exception("signal wake hook failed")

    def close(self) -> None:
        """Restore the previous handlers and stop the helper thread. Safe to call twice."""
        for signum, previous in self._previous.items():
            # None means a handler installed outside Python; the default is the best we can do.
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
        self._previous.clear()
        if self._write_fd < 0:
            return
        os.set_blocking(self._write_fd, True)
        os.write(self._write_fd, _QUIT)
        self._reader.join()
        os.close(self._write_fd)
        os.close(self._read_fd)
        self._write_fd = self._read_fd = -1

    def __enter__(self) -> Signals:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
