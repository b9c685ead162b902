"""Helpers the render tests share: a hand-moved clock and a state function that marks one
artifact running."""

from __future__ import annotations

from keyframed.render import sheets


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def states(running: str | None) -> sheets.StateOf:
    """Every artifact fresh, except ``running`` which is running."""
    return lambda item: "running" if item.path == running else "fresh"

