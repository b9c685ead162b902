"""Logging: JSON lines under systemd (journald) or when asked, readable lines in a terminal."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

import structlog

from keyframed.redact import redact_event


def wants_json(env: Mapping[str, str], tty: bool) -> bool:
    """JSON when ``KEYFRAMED_LOG_FORMAT=json``, or under journald, or when not on a terminal."""
    fmt = env.get("KEYFRAMED_LOG_FORMAT", "").lower()
    if fmt in ("json", "console"):
        return fmt == "json"
    return bool(env.get("JOURNAL_STREAM")) or not tty


def _stderr_logger(*args: object) -> structlog.PrintLogger:
    return structlog.PrintLogger(file=sys.stderr)


def setup_logging(verbose: bool = False, env: Mapping[str, str] | None = None) -> None:
    """Configure structlog once for the process; logs go to stderr."""
    env = os.environ if env is None else env
    as_json = wants_json(env, sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,  # no secret in any line, even one a server echoed back
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.DEBUG if verbose else logging.INFO
        ),
        # Resolve sys.stderr at each use, not now: it may be replaced (tests, redirection).
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
