"""Pieces the benchmarks share: a stand-in backend, settings, result files, tables."""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from keyframed.handlers.recipe import Artifact
from keyframed.inputs.config import load_settings
from keyframed.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results"


def stand_in_png(key: str) -> bytes:
    """A tiny real PNG whose colour follows ``key`` (a job fingerprint).

    Different fingerprints give different bytes, so a rebuilt upstream always changes what
    depends on it (no accidental early cutoff in the benchmarks).
    """
    digest = hashlib.sha256(key.encode()).digest()
    buf = io.BytesIO()
    image = Image.new("RGB", (8, 8), tuple(digest[:3]))
    image.putpixel((0, 0), tuple(digest[3:6]))
    image.putpixel((7, 7), tuple(digest[6:9]))
    image.save(buf, format="PNG")
    return buf.getvalue()


class StandInBackend:
    """A backend that "generates" instantly and records every job it was given.

    It follows the loop's Backend protocol: one ``execute`` per submitted job.
    """

    def __init__(self, name: str = "standin", kind: str = "preview",
                 max_in_flight: int = 4) -> None:
        self.name = name
        self.kind = kind
        self.max_in_flight = max_in_flight
        self.executed: list[str] = []
        self._lock = threading.Lock()

    def supports(self, art: Artifact) -> bool:
        """Everything is supported."""
        return True

    def execute(self, job_key: str, art: Artifact, inputs: Mapping[str, Path],
                on_progress: Any) -> bytes:
        """Return stand-in bytes for the job and remember that it ran."""
        for path in inputs.values():
            # A real backend reads (uploads) every input; a missing one must fail here too.
            path.stat()
        with self._lock:
            self.executed.append(art.path)
        on_progress(1.0)
        return stand_in_png(job_key)

    def cancel(self, job_key: str, art: Artifact) -> None:
        """Jobs finish at once; nothing to cancel."""

    def health(self) -> dict[str, Any]:
        """Always up."""
        return {"name": self.name, "kind": self.kind, "up": True}

    def close(self) -> None:
        """Nothing to release."""


def settings_for(root: Path) -> Settings:
    """The project's own settings, ignoring the user's config and environment."""
    return load_settings(root, env={})


def machine() -> dict[str, Any]:
    """Where the figures were measured."""
    import os

    return {"date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0],
            "platform": platform.platform(), "cpus": os.cpu_count(),
            # Other work on the machine inflates wall times; CPU times are the steadier figure.
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def write_results(name: str, data: Mapping[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    return path


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = []
    for n, row in enumerate(cells):
        parts = []
        for i, cell in enumerate(row):
            numeric = n > 0 and _is_number(rows[n - 1][i])
            parts.append(cell.rjust(widths[i]) if numeric else cell.ljust(widths[i]))
        out.append("  ".join(parts).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)
