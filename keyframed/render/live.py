"""The status files as a live terminal view (``status --follow``, ``run`` on a terminal).

Drawn with ``rich`` (a table, and a progress bar per running job), from the same documents
``keyframed status --json`` prints, so the live view, the table and the files never disagree.
Without a terminal, :func:`changes` gives plain lines instead: one per artifact whose state
moved since the last look.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

# States a person has to look at, drawn in a colour that stands out.
_STYLE = {"failed": "bold red", "input_error": "bold red", "blocked": "yellow",
          "running": "cyan", "queued": "blue", "awaiting_approval": "magenta",
          "done": "green", "fresh": "green"}


def artifacts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every artifact entry of a collected document: Phase 2.5 assets, then the scenes'."""
    project = doc.get("project") or {}
    listed = list(project.get("assets", []))
    for scene in doc.get("scenes", []):
        listed += scene.get("artifacts", [])
    return listed


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


def headline(doc: dict[str, Any]) -> str:
    """``daemon: running  ok: no  2 done, 5 queued, ...  ETA 0:42 (+3 not yet timed)``."""
    project = doc.get("project") or {}
    state = project.get("daemon", {}).get("state", "unknown")
    counts = ", ".join(f"{n} {s}" for s, n in project.get("counts", {}).items())
    eta, untimed = project.get("eta_s"), project.get("eta_untimed", 0)
    tail = "" if eta is None and not untimed else f"    ETA {_clock(eta) or '?'}"
    if untimed:  # the ETA leaves these out: say so rather than look finished sooner
        tail += f" (+{untimed} not yet timed)"
    ok = "yes" if project.get("ok", True) else "NO"
    return f"daemon: {state}    ok: {ok}    {counts}{tail}"


def attention_lines(doc: dict[str, Any]) -> list[str]:
    """The root's attention list, each with its next step."""
    project = doc.get("project") or {}
    return [f"! {a['kind']}: {a['subject']}: {a['message']}\n    next: {a['next']}"
            for a in project.get("attention", [])]


def film_line(film: dict[str, Any] | None) -> str | None:
    """``film: film-preview.mp4, 15.0 s, scene 3 holds a still in place of its video``."""
    if not film:
        return None
    parts = [f"film: {film['path']}"]
    if "seconds" in film:
        parts.append(f"{film['seconds']:.1f} s")
    held = film.get("placeholders") or []
    if held:
        scenes = ", ".join(str(n) for n in held)
        parts.append(f"scenes {scenes} hold a still in place of their video" if len(held) > 1
                     else f"scene {scenes} holds a still in place of its video")
    if film.get("warning"):
        parts.append(f"warning: {film['warning']}")
    return ", ".join(parts)


def view(doc: dict[str, Any]) -> RenderableType:
    """The whole live view: headline, attention, backends, the film, then a row per artifact."""
    project = doc.get("project") or {}
    parts: list[RenderableType] = [Text(headline(doc), style="bold")]
    for line in attention_lines(doc):
        parts.append(Text(line, style="red"))
    for b in project.get("backends", []):
        up = "up" if b.get("up") else f"DOWN ({b.get('error') or 'no answer'})"
        parts.append(Text(f"backend {b['name']} ({b['kind']}): {up}"))
    film = film_line(project.get("film"))
    if film:
        parts.append(Text(film))
    table = Table(box=None, pad_edge=False, show_edge=False)
    for column in ("artifact", "state", "progress", "", "elapsed", "ETA", "queue", "why"):
        table.add_column(column, no_wrap=column != "why")
    for art in artifacts(doc):
        state = art["state"]
        done = float(art.get("progress", 0))
        running = state == "running"
        bar: RenderableType = ProgressBar(total=1.0, completed=done, width=20) if running \
            else Text("")
        place = art.get("queue_position")
        table.add_row(art["path"], Text(state, style=_STYLE.get(state, "")), bar,
                      f"{done:.0%}" if running else "",
                      _clock(art.get("elapsed_s")), _clock(art.get("eta_s")),
                      "" if place is None else ("on GPU" if place == 0 else f"#{place}"),
                      "; ".join(art.get("reasons", [])))
    parts.append(table)
    return Group(*parts)


def changes(doc: dict[str, Any], seen: dict[str, str]) -> list[str]:
    """Plain lines for artifacts whose state changed since ``seen`` (updated in place)."""
    out = []
    stamp = time.strftime("%H:%M:%S")
    for art in artifacts(doc):
        state = art["state"]
        if seen.get(art["path"]) == state:
            continue
        seen[art["path"]] = state
        where = f" on {art['backend']}" if art.get("backend") else ""
        why = "; ".join(art.get("reasons", []))
        out.append(f"{stamp} {art['path']}: {state}{where}" + (f" ({why})" if why else ""))
    return out
