"""Which paths under a project root can matter to a reconcile pass.

The watcher asks :func:`ignored_path` about every path an event names. A path is ignored when
no pass could ever act on it: keyframed's private folder and temp files, the status files and
contact sheets the daemon derives from its own state, version-control and IDE folders, and the
side files editors make while saving (vim swap files and its ``4913`` probe, ``~`` backups,
emacs lock links and autosaves, JetBrains safe-write files, gedit's temp streams, Finder's
``.DS_Store``). Everything else, including names this module has never heard of, counts: a
missed wake costs a stale output until the next timed pass, an extra wake costs one cheap pass.
"""

from __future__ import annotations

import re

# Folders whose contents never feed a plan. `.keyframed` holds the state database, which the
# daemon rewrites on every pass; the others are VCS and IDE metadata that churn on their own
# (a `git status` rewrites .git/index).
IGNORED_DIRS = frozenset({".keyframed", ".git", ".hg", ".svn", ".idea", ".vscode"})

# Prefix of keyframed's own temp files (keyframed.fsio.TEMP_PREFIX; repeated here so
# this module stays import-free and cannot drift silently: tests compare the two).
KF_TEMP_PREFIX = ".kf-tmp-"

# Files the daemon derives from its own state; a change to them never changes a plan.
STATUS_NAME = "status.json"
SHEET_NAMES = frozenset({"contact-sheet.png", "storyboard.png", "asset-sheet.png"})
# The film (keyframed.render.film_plan), drawn at the root only.
FILM_NAMES = frozenset({"film.mp4", "film-preview.mp4"})
_SCENE_DIR = re.compile(r"scene-\d{2,}")

# Editor side files, matched on the base name.
_EXACT_NAMES = frozenset({".DS_Store", "Thumbs.db"})
_VIM_SWAP = re.compile(r"\..*\.s[a-w][a-z]")  # .name.swp, .swo ... .swa, .svz ...; .swx probe
_VIM_PROBE_FIRST = 4913  # vim probes 4913, then 5036, 5159, ... until a name is free
_VIM_PROBE_STEP = 123


def _is_vim_probe(name: str) -> bool:
    if not name.isdigit():
        return False
    number = int(name)
    return number >= _VIM_PROBE_FIRST and (number - _VIM_PROBE_FIRST) % _VIM_PROBE_STEP == 0


def is_editor_artefact(name: str) -> bool:
    """Tell whether a base name is a side file an editor makes while saving.

    Args:
        name: The file's base name (no folder).

    Returns:
        True for vim swap/probe files, ``~`` backups, emacs ``.#lock`` and ``#autosave#``,
        JetBrains ``___jb_tmp___``/``___jb_old___``, gedit ``.goutputstream-*``, kate
        ``.kate-swp``, ``.DS_Store`` and ``Thumbs.db``.
    """
    return (
        name in _EXACT_NAMES
        or name.endswith("~")
        or name.startswith(".#")
        or (len(name) > 1 and name.startswith("#") and name.endswith("#"))
        or "___jb_" in name
        or name.startswith(".goutputstream-")
        or name.endswith(".kate-swp")
        or _VIM_SWAP.fullmatch(name) is not None
        or _is_vim_probe(name)
    )


def _is_derived(parts: list[str]) -> bool:
    """Status files and contact sheets at the root or directly in a scene folder; the film
    at the root."""
    name = parts[-1]
    if len(parts) == 1 and name in FILM_NAMES:
        return True
    if name != STATUS_NAME and name not in SHEET_NAMES:
        return False
    return len(parts) == 1 or (len(parts) == 2 and _SCENE_DIR.fullmatch(parts[0]) is not None)


def ignored_path(rel: str) -> bool:
    """Tell whether an event on this project-relative path can never matter to a pass.

    Args:
        rel: Path relative to the project root, with ``/`` separators. The root itself
            (``""``) is not ignored; the caller decides what a root event means.

    Returns:
        True when the path is keyframed's own (``.keyframed/``, ``.kf-tmp-*``, status files,
        contact sheets), inside a VCS/IDE folder, or an editor's side file.
    """
    if not rel:
        return False
    parts = rel.split("/")
    if any(part in IGNORED_DIRS for part in parts):
        return True
    name = parts[-1]
    return name.startswith(KF_TEMP_PREFIX) or is_editor_artefact(name) or _is_derived(parts)
