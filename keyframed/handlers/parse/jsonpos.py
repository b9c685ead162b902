"""JSON parsing that remembers where every key and value is, and which keys repeat.

``json.loads`` reports syntax errors with a line and column but forgets positions once the text
is valid, and silently keeps the last of two duplicate keys. The input files are edited by hand,
so every semantic error must point at a line too: this module re-reads text that ``json.loads``
already accepted and builds a small tree of :class:`JNode` with 1-based line and column numbers.

Strings whose escapes make a NUL character (``\\u0000``) or an unpaired surrogate
(``\\ud800``) are errors too: JSON allows them, but such text cannot become a file name or be
encoded as UTF-8 (for hashing, the store, a prompt), and nobody types them on purpose.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass, field

from keyframed.errors import Diagnostic

_WS = re.compile(r"[ \t\n\r]*")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}
_CONSTANTS = ("NaN", "Infinity", "-Infinity")
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


@dataclass
class JNode:
    """One JSON value with its position; objects keep their members in file order."""

    kind: str  # "object" | "array" | "string" | "number" | "bool" | "null"
    value: object
    line: int
    column: int
    members: list[JMember] = field(default_factory=list)
    items: list[JNode] = field(default_factory=list)


@dataclass
class JMember:
    """One ``"key": value`` pair of an object, located at its key."""

    key: str
    line: int
    column: int
    node: JNode


class _Positions:
    """Turns a character offset into a 1-based (line, column)."""

    def __init__(self, text: str) -> None:
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, pos: int) -> tuple[int, int]:
        index = bisect.bisect_right(self._starts, pos) - 1
        return index + 1, pos - self._starts[index] + 1


class _Reader:
    """A recursive-descent reader for text already known to be valid JSON."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.where = _Positions(text)
        self.bad_strings: list[tuple[int, str]] = []  # (offset, the character)

    def skip(self, pos: int) -> int:
        match = _WS.match(self.text, pos)
        return match.end() if match else pos

    def string(self, pos: int) -> tuple[str, int]:
        match = _STRING.match(self.text, pos)
        assert match, "text was validated by json.loads"
        decoded: str = json.loads(match.group())
        bad = _BAD_CHAR.search(decoded) if "\\u" in match.group() else None
        if bad is not None:
            self.bad_strings.append((pos, bad.group()))
        return decoded, match.end()

    def value(self, pos: int) -> tuple[JNode, int]:
        line, col = self.where.at(pos)
        char = self.text[pos]
        if char == "{":
            return self._object(pos, line, col)
        if char == "[":
            return self._array(pos, line, col)
        if char == '"':
            text, end = self.string(pos)
            return JNode("string", text, line, col), end
        return self._scalar(pos, line, col)

    def _scalar(self, pos: int, line: int, col: int) -> tuple[JNode, int]:
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, pos):
                kind = "null" if literal is None else "bool"
                return JNode(kind, literal, line, col), pos + len(word)
        for word in _CONSTANTS:
            if self.text.startswith(word, pos):
                constant = float(word.replace("Infinity", "inf"))
                return JNode("number", constant, line, col), pos + len(word)
        match = _NUMBER.match(self.text, pos)
        assert match, "text was validated by json.loads"
        number: object = json.loads(match.group())
        return JNode("number", number, line, col), match.end()

    def _object(self, pos: int, line: int, col: int) -> tuple[JNode, int]:
        node = JNode("object", None, line, col)
        pos = self.skip(pos + 1)
        while self.text[pos] != "}":
            key_line, key_col = self.where.at(pos)
            key, pos = self.string(pos)
            pos = self.skip(self.skip(pos) + 1)  # past the ':'
            child, pos = self.value(pos)
            node.members.append(JMember(key, key_line, key_col, child))
            pos = self.skip(pos)
            if self.text[pos] == ",":
                pos = self.skip(pos + 1)
        return node, pos + 1

    def _array(self, pos: int, line: int, col: int) -> tuple[JNode, int]:
        node = JNode("array", None, line, col)
        pos = self.skip(pos + 1)
        while self.text[pos] != "]":
            child, pos = self.value(pos)
            node.items.append(child)
            pos = self.skip(pos)
            if self.text[pos] == ",":
                pos = self.skip(pos + 1)
        return node, pos + 1


def parse_json(text: str, file: str) -> tuple[JNode | None, list[Diagnostic]]:
    """Parse JSON text into a located tree.

    Args:
        text: The file's text.
        file: The file name used in diagnostics.

    Returns:
        The root node (None on a syntax error) and the diagnostics: a syntax error, or one
        error per duplicate key (naming the line of the first occurrence).
    """
    if not text.strip():
        return None, [Diagnostic(file, 1, 1, f"{file} is empty", "expected a JSON object")]
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        hint = _syntax_hint(text, exc)
        return None, [Diagnostic(file, exc.lineno, exc.colno, f"invalid JSON: {exc.msg}", hint)]
    except RecursionError:
        pass  # reported below, where the located reader hits the same limit
    reader = _Reader(text)
    try:
        root, _ = reader.value(reader.skip(0))
        return root, _bad_strings(reader, file) + duplicate_keys(root, file)
    except RecursionError:
        return None, [Diagnostic(file, 1, 1, "invalid JSON: nested too deeply")]


def _bad_strings(reader: _Reader, file: str) -> list[Diagnostic]:
    found = []
    for pos, char in reader.bad_strings:
        line, column = reader.where.at(pos)
        what = ("a NUL character (\\u0000)" if char == "\x00"
                else f"an unpaired surrogate (\\u{ord(char):04x})")
        found.append(Diagnostic(file, line, column, f"this string contains {what}",
                                "remove the escape"))
    return found


def _syntax_hint(text: str, exc: json.JSONDecodeError) -> str:
    """A suggestion for the mistakes people make most when editing JSON by hand."""
    before = text[: exc.pos].rstrip()
    if before.endswith(",") and text[exc.pos : exc.pos + 1] in ("}", "]"):
        return "remove the trailing comma"
    if exc.msg.startswith("Expecting property name") and text[exc.pos : exc.pos + 1] == "'":
        return "JSON needs double quotes"
    if exc.msg.startswith("Expecting ',' delimiter"):
        return "a ',' is missing between two entries"
    return ""


def duplicate_keys(node: JNode, file: str) -> list[Diagnostic]:
    """Return one diagnostic for every key that repeats inside the same object."""
    found: list[Diagnostic] = []
    seen: dict[str, JMember] = {}
    for member in node.members:
        first = seen.setdefault(member.key, member)
        if first is not member:
            found.append(
                Diagnostic(
                    file,
                    member.line,
                    member.column,
                    f"duplicate key '{member.key}' (first defined at line {first.line})",
                    "remove or rename one of them",
                )
            )
    for child in [m.node for m in node.members] + node.items:
        found.extend(duplicate_keys(child, file))
    return found


def type_name(node: JNode) -> str:
    """A JSON type name for messages: object, array, string, number, boolean, null."""
    return {"bool": "boolean"}.get(node.kind, node.kind)
