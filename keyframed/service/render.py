"""Render the systemd unit and launchd agent from the templates shipped in ``files/``.

Pure text work, no side effects: :mod:`keyframed.service.install` decides where the results go.
"""

from __future__ import annotations

import hashlib
import os
import re
import string
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

UNIT_TEMPLATE = "keyframed@.service"
PLIST_TEMPLATE = "com.keyframed.agent.plist"
PLACEHOLDER = "@KEYFRAMED@"
UNIT_PREFIX = "keyframed@"
LABEL_PREFIX = "com.keyframed."
# systemd's UNIT_NAME_MAX is 256 including the terminating NUL.
UNIT_NAME_MAX = 255

_ESCAPE_SAFE = frozenset((string.ascii_letters + string.digits + ":_.").encode("ascii"))
_PLIST_SLOT = re.compile(r"^(?P<indent>[ \t]*)<string>@(?P<name>[A-Z]+)@</string>$", re.MULTILINE)
_NEEDS_QUOTES = re.compile(r"""[\s"'\\;]|^$""")
# systemd refuses these in an executable's path ("Executable name contains special characters").
_EXEC_REFUSED = re.compile(r"""["'\\\x00-\x1f\x7f]""")


def template_text(name: str) -> str:
    """Return a template shipped as package data in ``keyframed/service/files``."""
    return resources.files("keyframed.service").joinpath("files", name).read_text("utf-8")


def systemd_escape_path(path: str) -> str:
    """Escape a path exactly as ``systemd-escape --path`` does.

    Duplicate slashes and ``.`` components are dropped, the leading and trailing slashes are
    stripped, ``/`` becomes ``-``, and every byte outside ``[A-Za-z0-9:_.]`` (and a leading
    ``.``) becomes ``\\xNN``. The root directory is ``-``.

    Raises:
        ValueError: the path has a ``..`` component (systemd refuses it too).
    """
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path is not normalized (contains '..'): {path}")
    if not parts:
        return "-"
    out: list[str] = []
    for index, byte in enumerate(os.fsencode("/".join(parts))):
        if byte == ord("/"):
            out.append("-")
        elif byte in _ESCAPE_SAFE and not (index == 0 and byte == ord(".")):
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def unit_name(project: Path) -> str:
    """The instance unit for a project, e.g. ``keyframed@home-me-film.service``.

    Raises:
        ValueError: the name would exceed systemd's limit of 255 characters.
    """
    name = f"{UNIT_PREFIX}{systemd_escape_path(str(project))}.service"
    if len(name) > UNIT_NAME_MAX:
        raise ValueError(
            f"the systemd unit name for {project} would be {len(name)} characters "
            f"(limit {UNIT_NAME_MAX}); move the project to a shorter path"
        )
    return name


def _exec_word(word: str, *, first: bool) -> str:
    # Specifiers expand everywhere; "$" is variable expansion in arguments only.
    word = word.replace("%", "%%")
    if not first:
        word = word.replace("$", "$$")
    if not _NEEDS_QUOTES.search(word):
        return word
    body = "".join(
        "\\" + ch if ch in '"\\' else (f"\\x{ord(ch):02x}" if ord(ch) < 0x20 else ch) for ch in word
    )
    return f'"{body}"'


def exec_command_line(command: Sequence[str]) -> str:
    """Quote a command for an ``ExecStart=`` line so systemd passes each word unchanged.

    Raises:
        ValueError: the executable is not absolute or has characters systemd refuses.
    """
    if not command or not command[0].startswith("/"):
        raise ValueError(f"systemd needs an absolute executable path, not {command[:1]}")
    if _EXEC_REFUSED.search(command[0]):
        raise ValueError(
            f"systemd refuses executable paths with quotes, backslashes or control characters: "
            f"{command[0]!r}; install keyframed under a plainer path"
        )
    return " ".join(_exec_word(word, first=i == 0) for i, word in enumerate(command))


def render_unit(command: Sequence[str]) -> str:
    """Return the unit template with ``command`` in place of the ExecStart placeholder.

    Args:
        command: absolute executable and leading arguments that start keyframed, e.g.
            ``["/home/me/.local/bin/keyframed"]`` or ``[python, "-m", "keyframed"]``.

    Raises:
        ValueError: see :func:`exec_command_line`.
    """
    lines = template_text(UNIT_TEMPLATE).splitlines(keepends=True)
    quoted = exec_command_line(command)
    return "".join(
        line.replace(PLACEHOLDER, quoted) if line.startswith("ExecStart=") else line
        for line in lines
    )


def launchd_slug(project: Path) -> str:
    """A label-safe name for a project: its folder name plus a short hash of the full path.

    The hash keeps two projects with the same folder name apart.
    """
    base = re.sub(r"[^a-z0-9]+", "-", project.name.lower()).strip("-")[:40] or "project"
    digest = hashlib.sha256(os.fsencode(str(project))).hexdigest()[:8]
    return f"{base}-{digest}"


def render_plist(command: Sequence[str], values: Mapping[str, str]) -> str:
    """Fill the launchd template.

    A ``<string>@KEYFRAMED@</string>`` element becomes one element per word of ``command``;
    every other ``<string>@NAME@</string>`` element takes ``values[NAME]``. Values are
    XML-escaped, and the template's comments are kept for the person reading the file.

    Raises:
        KeyError: the template names a placeholder that ``values`` lacks.
    """

    def fill(match: re.Match[str]) -> str:
        indent, name = match["indent"], match["name"]
        words = list(command) if name == PLACEHOLDER.strip("@") else [values[name]]
        return "\n".join(f"{indent}<string>{xml_escape(word)}</string>" for word in words)

    return _PLIST_SLOT.sub(fill, template_text(PLIST_TEMPLATE))
