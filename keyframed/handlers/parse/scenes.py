"""Parse ``scene-breakdown.md``: lenient about Markdown, strict about meaning.

A scene starts at a ``## Scene N: Title`` heading (``###`` works too; the title may be left
out). Any other ``##`` heading (``## Overview``, ``## Notes``) starts a section that is ignored.
Inside a scene:

- A field is ``**Key**: value``, ``- **Key**: value``, ``**Key:** value`` or, without bold,
  ``Key: value`` when ``Key`` is a known field. Keys are case-insensitive; ``_``/``-`` count as
  spaces. Fields: Type, Duration, Characters (alias Character), Background, Style, Objects
  (alias Object), Start Frame (aliases Start, Start Keyframe), End Frame (End, End Keyframe),
  Motion, Camera, Seed.
- ``Start Frame`` / ``End Frame`` take free text on the same line, and/or bullets below it:
  ``- pose: x``, ``- expression: y``, ``- description: z``; a bullet without a key is free text.
  The keys also work on the field's own line: ``**Start Frame**: pose: x, expression: y``.
- A line that directly continues a text field (no blank line between) is joined to it, as
  Markdown joins a paragraph. Blank lines, ``---`` rules and prose lines are otherwise ignored.
- Names in Characters and Objects are separated by commas (``;``, ``&`` and `` and `` work too);
  ``none`` or ``-`` means no names.

Meaning is checked strictly (every problem is reported, with line and column):

- Every scene needs a Type (character, landscape or object).
- A character scene needs a Background and 1 or 2 Characters: one Qwen composite takes the
  background and at most two character layers.
- A landscape scene needs a Background and may have no Characters and no poses.
- An object scene needs 1 or 2 Objects (one edit takes the objects and the style image).
- Duration is seconds ("5 seconds", "5s", "5", "2.5 sec"), above 0; default 5.
- Seed is a whole number from 0 to 2**63 - 1.
- Scene numbers are whole numbers from 1 to 9999 and unique; scenes keep the file's order.
- Unknown fields (bold keys, or plain keys close to a known one) are errors with a suggestion.

Asset names are only collected here; :mod:`keyframed.handlers.parse.validate` looks them up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace

from keyframed.errors import Diagnostic
from keyframed.handlers.parse.assets import did_you_mean
from keyframed.handlers.project import FrameSpec, Scene

MAX_CHARACTERS = 2
MAX_OBJECTS = 2
MAX_SCENE_NUMBER = 9999
MAX_SEED = 2**63 - 1
ANY = 10**9  # no upper limit
SCENE_TYPES = ("character", "landscape", "object")

# Canonical field name -> the spelling shown to people.
FIELD_TITLES = {
    "type": "Type",
    "duration": "Duration",
    "characters": "Characters",
    "background": "Background",
    "style": "Style",
    "objects": "Objects",
    "start": "Start Frame",
    "end": "End Frame",
    "motion": "Motion",
    "camera": "Camera",
    "seed": "Seed",
}
FIELD_ALIASES = {
    **{title.lower(): key for key, title in FIELD_TITLES.items()},
    "scene type": "type",
    "character": "characters",
    "object": "objects",
    "start": "start",
    "start keyframe": "start",
    "end": "end",
    "end keyframe": "end",
}
FRAME_KEYS = {"pose": "pose", "expression": "expression", "description": "text"}
TEXT_FIELDS = ("start", "end", "motion", "camera")
NONE_WORDS = {"", "none", "-", "—", "n/a", "na"}

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SCENE_HEADING = re.compile(r"^scene\s*(\d+)\s*(?:[:.\-–—]\s*)?(.*)$", re.IGNORECASE)
_RULE = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+")
_BOLD_FIELD = re.compile(r"^\*\*\s*([^*]+?)\s*\*\*\s*(:?)\s*(.*)$")
_PLAIN_FIELD = re.compile(r"^([A-Za-z][A-Za-z _-]{0,30}?)\s*:\s*(.*)$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*(s|sec|secs|second|seconds)?\.?$", re.IGNORECASE)
_INLINE_KEY = re.compile(r"(?:^|(?<=[,;]))\s*(pose|expression|description)\s*:\s*", re.I)
_NAME_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b)\s*", re.IGNORECASE)


@dataclass
class _Value:
    """A field's raw text and where it starts."""

    text: str
    line: int
    column: int


@dataclass
class _Frame:
    """A Start/End Frame while it is being read."""

    line: int
    items: dict[str, _Value] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)


@dataclass
class _SceneDraft:
    """A scene while it is being read."""

    number: int
    title: str
    line: int
    values: dict[str, _Value] = field(default_factory=dict)
    frames: dict[str, _Frame] = field(default_factory=dict)


@dataclass
class _Line:
    """One line of the file split into an optional key and a value, with columns."""

    number: int
    raw: str
    bullet: bool
    key: str | None
    bold: bool
    value: str
    value_column: int
    key_column: int


def _split_line(number: int, raw: str) -> _Line:
    """Split ``- **Key**: value`` / ``Key: value`` / prose into parts (columns are 1-based)."""
    bullet = _BULLET.match(raw)
    start = bullet.end() if bullet else len(raw) - len(raw.lstrip())
    body = raw[start:].rstrip()
    bold = _BOLD_FIELD.match(body)
    if bold:
        key = bold.group(1)
        if bold.group(2) or key.endswith(":"):
            return _Line(
                number,
                raw,
                bool(bullet),
                key.rstrip(": "),
                True,
                bold.group(3).strip(),
                start + bold.start(3) + 1,
                start + 1,
            )
    plain = _PLAIN_FIELD.match(body)
    if plain:
        return _Line(
            number,
            raw,
            bool(bullet),
            plain.group(1),
            False,
            plain.group(2).strip(),
            start + plain.start(2) + 1,
            start + 1,
        )
    return _Line(number, raw, bool(bullet), None, False, body, start + 1, start + 1)


def field_key(key: str) -> str:
    """Normalise a field key: lower case, ``_``/``-`` as spaces, single spaces."""
    return " ".join(key.lower().replace("_", " ").replace("-", " ").split())


class _Parser:
    """A line-by-line state machine over the file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.found: list[Diagnostic] = []
        self.title = ""
        self.drafts: list[_SceneDraft] = []
        self.scene: _SceneDraft | None = None
        self.frame: _Frame | None = None
        self.continues: _Value | None = None  # the text field a next line would continue

    def error(self, line: int, column: int, message: str, suggestion: str = "") -> None:
        self.found.append(Diagnostic(self.file, line, column, message, suggestion))

    def feed(self, number: int, raw: str) -> None:
        heading = _HEADING.match(raw)
        if heading:
            self._heading(number, len(heading.group(1)), heading.group(2))
        elif _RULE.match(raw):
            self.frame = None
            self.continues = None
        elif not raw.strip():
            self.continues = None
        elif self.scene is not None:
            self._scene_line(_split_line(number, raw))

    def _heading(self, number: int, level: int, text: str) -> None:
        self.frame = None
        self.continues = None
        if level == 1:
            if not self.title:
                self.title = re.sub(r"^scene\s+breakdown\s*:?\s*", "", text, flags=re.I).strip()
            return
        if re.match(r"^scene\b", text, re.IGNORECASE) and level <= 3:
            self._scene_heading(number, text)
        elif level == 2:
            self.scene = None  # ## Overview and the like: not a scene

    def _scene_heading(self, number: int, text: str) -> None:
        match = _SCENE_HEADING.match(text)
        self.scene = None
        if not match:
            self.error(
                number,
                1,
                f"cannot read the scene number in heading '{text}'",
                "write it as '## Scene 1: Title'",
            )
            return
        value = int(match.group(1))
        if not 1 <= value <= MAX_SCENE_NUMBER:
            self.error(number, 1, f"scene number {value} is out of range (1 to {MAX_SCENE_NUMBER})")
            return
        self.scene = _SceneDraft(value, match.group(2).strip(), number)
        self.drafts.append(self.scene)

    def _scene_line(self, line: _Line) -> None:
        if self.frame is not None and line.bullet and self._frame_bullet(self.frame, line):
            return
        key = field_key(line.key) if line.key else None
        if key in FIELD_ALIASES:
            self._field(FIELD_ALIASES[key], line)
            return
        if line.key and (line.bold or did_you_mean(line.key, list(FIELD_TITLES.values()), 0.8)):
            self.error(
                line.number,
                line.key_column,
                f"unknown field '{line.key}' in scene {self._number()}",
                did_you_mean(line.key, list(FIELD_TITLES.values()))
                or f"known fields: {', '.join(FIELD_TITLES.values())}",
            )
            self.continues = None
            return
        self._prose(line)

    def _number(self) -> int:
        return self.scene.number if self.scene else 0

    def _frame_bullet(self, frame: _Frame, line: _Line) -> bool:
        """Read a bullet under Start/End Frame; False when it is a scene field instead."""
        key = field_key(line.key) if line.key else None
        if key in FRAME_KEYS:
            name = FRAME_KEYS[key]
            if name in frame.items:
                self.error(
                    line.number,
                    line.key_column,
                    f"'{line.key}' is given twice in this frame "
                    f"(first at line {frame.items[name].line})",
                )
            else:
                frame.items[name] = _Value(line.value, line.number, line.value_column)
            self.continues = frame.items[name]
            return True
        if key in FIELD_ALIASES:
            self.frame = None
            return False
        suggestion = did_you_mean(line.key, list(FRAME_KEYS), 0.75) if line.key else ""
        if suggestion:
            self.error(
                line.number,
                line.key_column,
                f"unknown frame field '{line.key}' (expected pose, expression or description)",
                suggestion,
            )
            return True
        text = line.raw[_BULLET.match(line.raw).end() :].strip()  # type: ignore[union-attr]
        frame.text.append(text)
        return True

    def _field(self, key: str, line: _Line) -> None:
        assert self.scene is not None
        self.frame = None
        self.continues = None
        previous = self.scene.values.get(key)
        if previous is not None:
            self.error(
                line.number,
                line.key_column,
                f"field '{FIELD_TITLES[key]}' is given twice in scene {self.scene.number}"
                f" (first at line {previous.line})",
            )
            return
        value = _Value(line.value, line.number, line.value_column)
        self.scene.values[key] = value
        if key in TEXT_FIELDS:
            self.continues = value
        if key in ("start", "end"):
            self.frame = _Frame(line.number)
            self.scene.frames[key] = self.frame
            self._inline_frame(self.frame, value)

    def _inline_frame(self, frame: _Frame, value: _Value) -> None:
        """Read ``**Start Frame**: pose: x, expression: y`` written on one line."""
        if not _INLINE_KEY.match(value.text):
            return
        keys = list(_INLINE_KEY.finditer(value.text))
        for match, after in zip(keys, [*keys[1:], None], strict=True):
            end = after.start() if after else len(value.text)
            text = value.text[match.end() : end].strip().rstrip(",;").strip()
            item = _Value(text, value.line, value.column + match.end())
            frame.items.setdefault(FRAME_KEYS[match.group(1).lower()], item)
            self.continues = item
        value.text = ""

    def _prose(self, line: _Line) -> None:
        text = line.raw.strip()
        if self.continues is not None:
            self.continues.text = f"{self.continues.text} {text}".strip()
        elif self.frame is not None:
            self.frame.text.append(text)


@dataclass(frozen=True)
class SceneOutline:
    """What is known of every scene section, whether or not it parsed: its number, the lines
    it spans, and the asset names it uses (type, name, line). The loader uses it to block only
    the scene an error is in, and the cross-checks to look up the names of a scene whose
    fields have errors too, so that one pass reports every error."""

    number: int
    first_line: int
    last_line: int
    kind: str | None
    background: str | None
    refs: tuple[tuple[str, str, int], ...]

    def holds(self, line: int) -> bool:
        """True when ``line`` is inside this scene's section."""
        return self.first_line <= line <= self.last_line


@dataclass(frozen=True)
class SceneFile:
    """scene-breakdown.md parsed: title, the scenes that parsed cleanly, every diagnostic,
    and an outline of every scene section (those with errors included)."""

    title: str
    scenes: list[Scene]
    diagnostics: list[Diagnostic]
    outlines: list[SceneOutline]


def parse_scenes(
    text: str, file: str = "scene-breakdown.md"
) -> tuple[str, list[Scene], list[Diagnostic]]:
    """Parse scene-breakdown.md text.

    Args:
        text: The file's text.
        file: The name used in diagnostics.

    Returns:
        The title (from ``# Scene Breakdown: X``), the scenes that parsed cleanly in file
        order, and every diagnostic of the file, sorted by position.
    """
    parsed = parse_scene_file(text, file)
    return parsed.title, parsed.scenes, parsed.diagnostics


def parse_scene_file(text: str, file: str = "scene-breakdown.md") -> SceneFile:
    """Parse scene-breakdown.md text, with the outline of every scene (see :class:`SceneFile`)."""
    if not text.strip():
        hint = "start a scene with '## Scene 1: Title'"
        return SceneFile("", [], [Diagnostic(file, 1, 1, f"{file} is empty", hint)], [])
    title, scenes, found = "", [], []
    outlines: list[SceneOutline] = []
    first_lines: dict[int, int] = {}
    memo: dict[tuple[str, str], _Section] = {}
    for first_line, chunk in _chunks(text.replace("\r\n", "\n")):
        section = _MEMO.get((file, chunk)) or _parse_section(chunk, first_line, file)
        memo[(file, chunk)] = section
        section = _shift(section, first_line - section.first_line)
        title = title or section.title
        outlines += [section.outline] if section.outline is not None else []
        if section.number is not None and section.number in first_lines:
            found.append(_duplicate(file, section, first_lines[section.number]))
            continue
        if section.number is not None:
            first_lines[section.number] = section.scene_line
        found += section.found
        scenes += [section.scene] if section.scene is not None else []
    _MEMO.clear()
    _MEMO.update(memo)  # only the sections of the latest file are kept
    if not first_lines and not found:
        found.append(
            Diagnostic(file, 1, 1, "no scenes found", "start each scene with '## Scene 1: Title'")
        )
    return SceneFile(title, scenes, sorted(found, key=lambda d: (d.line, d.column)), outlines)


@dataclass(frozen=True)
class _Section:
    """What one section (a scene heading up to the next boundary heading) parsed to."""

    first_line: int
    title: str
    number: int | None
    scene_line: int
    scene: Scene | None
    found: tuple[Diagnostic, ...]
    outline: SceneOutline | None = None


# Sections parsed by the last call, by their exact text: a one-scene edit of a 1,000-scene file
# re-parses one section, and sections that only moved get their line numbers shifted.
_MEMO: dict[tuple[str, str], _Section] = {}
_BOUNDARY = re.compile(r"^(#{2,3})[ \t]+(.*)$", re.MULTILINE)


def _chunks(text: str) -> list[tuple[int, str]]:
    """Split at the headings that start a scene or another ``##`` section.

    Parsing state never crosses such a heading, so each chunk parses on its own.
    """
    starts = [0] + [
        m.start()
        for m in _BOUNDARY.finditer(text)
        if len(m.group(1)) == 2 or re.match(r"scene\b", m.group(2), re.IGNORECASE)
    ]
    ends = [*starts[1:], len(text)]
    chunks, line = [], 1
    for start, end in zip(starts, ends, strict=True):
        if end > start:
            chunk = text[start:end]
            chunks.append((line, chunk))
            line += chunk.count("\n")
    return chunks


def _parse_section(chunk: str, first_line: int, file: str) -> _Section:
    parser = _Parser(file)
    for number, raw in enumerate(chunk.split("\n"), start=first_line):
        parser.feed(number, raw.rstrip("\r"))
    draft = parser.drafts[0] if parser.drafts else None
    scene = _build(draft, parser) if draft is not None else None
    return _Section(
        first_line=first_line,
        title=parser.title,
        number=draft.number if draft else None,
        scene_line=draft.line if draft else 0,
        scene=scene,
        found=tuple(parser.found),
        outline=_outline(draft, first_line, first_line + max(chunk.count("\n") - 1, 0))
        if draft is not None else None,
    )


def _outline(draft: _SceneDraft, first: int, last: int) -> SceneOutline:
    """The numbers and names of a draft, read without judging them (see SceneOutline)."""
    values = draft.values
    refs: list[tuple[str, str, int]] = []
    for key, type_ in (("characters", "characters"), ("background", "backgrounds"),
                       ("style", "styles"), ("objects", "objects")):
        value = values.get(key)
        refs += [(type_, name, value.line) for name in dict.fromkeys(_names(value))] \
            if value is not None else []
    for which in ("start", "end"):
        frame = draft.frames.get(which)
        pose = frame.items.get("pose") if frame is not None else None
        refs += [("poses", name, pose.line) for name in _names(pose)[:1]] if pose else []
    kind_value = values.get("type")
    kind = _clean_name(kind_value.text).lower() if kind_value is not None else None
    backgrounds = _names(values.get("background"))
    return SceneOutline(draft.number, first, last, kind,
                        backgrounds[0] if backgrounds else None, tuple(refs))


def _shift(section: _Section, delta: int) -> _Section:
    """The same section ``delta`` lines further down the file."""
    if delta == 0:
        return section
    scene = section.scene
    if scene is not None:
        frames = {
            w: f.model_copy(update={"line": f.line + delta}) if f.line else f
            for w, f in (("start", scene.start), ("end", scene.end))
        }
        lines = {k: v + delta for k, v in scene.field_lines.items()}
        scene = scene.model_copy(
            update={"line": scene.line + delta, "field_lines": lines, **frames}
        )
    return _Section(
        first_line=section.first_line + delta,
        title=section.title,
        number=section.number,
        scene_line=section.scene_line + delta if section.scene_line else 0,
        scene=scene,
        found=tuple(replace(d, line=d.line + delta) for d in section.found),
        outline=replace(
            section.outline, first_line=section.outline.first_line + delta,
            last_line=section.outline.last_line + delta,
            refs=tuple((t, n, line + delta) for t, n, line in section.outline.refs),
        ) if section.outline is not None else None,
    )


def _duplicate(file: str, section: _Section, first: int) -> Diagnostic:
    return Diagnostic(
        file,
        section.scene_line,
        1,
        f"duplicate scene number {section.number} (scene {section.number} is also at line {first})",
        "give every scene its own number",
    )


def _clean_name(text: str) -> str:
    """A name as written, without surrounding quotes, backticks or emphasis."""
    return text.strip().strip("`\"'*_").strip()


def _names(value: _Value | None) -> list[str]:
    """Comma-separated names; ``none`` gives no names."""
    if value is None or value.text.strip().lower() in NONE_WORDS:
        return []
    return [n for n in (_clean_name(p) for p in _NAME_SPLIT.split(value.text)) if n]


class _Builder:
    """Turns one draft into a :class:`Scene`, reporting every problem of its meaning."""

    def __init__(self, draft: _SceneDraft, parser: _Parser) -> None:
        self.draft = draft
        self.parser = parser
        self.ok = True
        self.label = f"scene {draft.number}"

    def error(self, at: _Value | None, message: str, suggestion: str = "") -> None:
        line, column = (at.line, at.column) if at else (self.draft.line, 1)
        self.parser.error(line, column, f"{self.label}: {message}", suggestion)
        self.ok = False

    def type_(self) -> str | None:
        value = self.draft.values.get("type")
        if value is None or not value.text:
            self.error(
                value, "missing field 'Type'", "add '**Type**: character' (or landscape, object)"
            )
            return None
        kind = _clean_name(value.text).lower()
        if kind not in SCENE_TYPES:
            self.error(
                value,
                f"unknown scene type '{value.text}' (expected character, landscape or object)",
                did_you_mean(kind, SCENE_TYPES),
            )
            return None
        return kind

    def duration(self) -> float:
        value = self.draft.values.get("duration")
        if value is None:
            return 5.0
        match = _DURATION.match(value.text.strip())
        seconds = float(match.group(1)) if match else math.nan
        if not (seconds > 0 and math.isfinite(seconds)):
            self.error(
                value,
                f"bad duration '{value.text}': expected a number of seconds above 0",
                "write it like '5 seconds' or '5s'",
            )
            return 5.0
        return seconds

    def seed(self) -> int | None:
        value = self.draft.values.get("seed")
        if value is None:
            return None
        text = value.text.strip()
        if not re.fullmatch(r"\d+", text) or int(text) > MAX_SEED:
            self.error(value, f"bad seed '{text}': expected a whole number from 0 to {MAX_SEED}")
            return None
        return int(text)

    def single(self, key: str) -> str | None:
        value = self.draft.values.get(key)
        names = _names(value)
        if len(names) > 1:
            self.error(
                value, f"'{FIELD_TITLES[key]}' takes one name, got {len(names)}: {', '.join(names)}"
            )
            return None
        return names[0] if names else None

    def many(self, key: str) -> tuple[str, ...]:
        value = self.draft.values.get(key)
        names = _names(value)
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            self.error(value, f"'{FIELD_TITLES[key]}' names {', '.join(repeated)} more than once")
        return tuple(dict.fromkeys(names))

    def frame(self, key: str) -> FrameSpec:
        frame = self.draft.frames.get(key)
        value = self.draft.values.get(key)
        if frame is None or value is None:
            return FrameSpec()
        items = frame.items
        pose = _names(items.get("pose"))
        if len(pose) > 1:
            self.error(items["pose"], f"a frame takes one pose, got {len(pose)}")
        parts = [value.text, *(v.text for k, v in items.items() if k == "text"), *frame.text]
        return FrameSpec(
            pose=pose[0] if pose else None,
            expression=items["expression"].text.strip() if "expression" in items else "",
            text=", ".join(p.strip() for p in parts if p.strip()),
            line=frame.line,
        )

    def field_lines(self) -> dict[str, int]:
        lines = {key: value.line for key, value in self.draft.values.items()}
        for which, frame in self.draft.frames.items():
            for item, value in frame.items.items():
                lines[f"{which}.{'description' if item == 'text' else item}"] = value.line
        return lines


@dataclass(frozen=True)
class _CountRule:
    """How many names a field must hold (low..high) in the scene types it applies to."""

    kinds: tuple[str, ...]
    key: str
    low: int
    high: int
    message: str  # formatted with a_kind ("an object"), n, high
    hint: str = ""


_COUNT_RULES = (
    _CountRule(("character", "landscape"), "background", 1, ANY,
               "{a_kind} scene needs a Background",
               "add '**Background**: <background name from assets.json>'"),
    _CountRule(("character",), "characters", 1, ANY,
               "a character scene needs at least one character",
               "add '**Characters**: <name>' or use '**Type**: landscape'"),
    _CountRule(("character",), "characters", 0, MAX_CHARACTERS,
               "{n} characters in one scene; at most {high} fit "
               "(the Qwen composite takes the background + 2 characters)",
               "split the scene or drop a character"),
    _CountRule(("landscape", "object"), "characters", 0, 0, "{a_kind} scene has no characters",
               "use '**Type**: character' or remove the Characters field"),
    _CountRule(("object",), "objects", 1, ANY, "an object scene needs at least one object",
               "add '**Objects**: <name from assets.json>'"),
    _CountRule(("object",), "objects", 0, MAX_OBJECTS,
               "{n} objects in one scene; at most {high} fit "
               "(one edit takes the objects and the style image)"),
)  # fmt: skip


def _a(word: str) -> str:
    return f"an {word}" if word[0] in "aeiou" else f"a {word}"


def _check_kind(b: _Builder, kind: str) -> None:
    """The rules of each scene type: what it needs and what it cannot have."""
    values = b.draft.values
    for rule in _COUNT_RULES:
        n = len(dict.fromkeys(_names(values.get(rule.key))))
        if kind in rule.kinds and not rule.low <= n <= rule.high:
            message = rule.message.format(a_kind=_a(kind), n=n, high=rule.high)
            b.error(values.get(rule.key), message, rule.hint)
    for which in ("start", "end"):
        frame = b.draft.frames.get(which)
        if kind != "character" and frame is not None and "pose" in frame.items:
            b.error(
                frame.items["pose"],
                f"{_a(kind)} scene has no character to pose",
                "describe the frame in words instead",
            )


def _build(draft: _SceneDraft, parser: _Parser) -> Scene | None:
    """Build the Scene of a draft, or None after reporting why it cannot be built."""
    b = _Builder(draft, parser)
    kind = b.type_()
    fields: dict[str, object] = {
        "duration": b.duration(),
        "characters": b.many("characters"),
        "background": b.single("background"),
        "style": b.single("style"),
        "objects": b.many("objects"),
        "start": b.frame("start"),
        "end": b.frame("end"),
        "seed": b.seed(),
    }
    if kind is not None:
        _check_kind(b, kind)
    if kind is None or not b.ok:
        return None
    texts = {k: draft.values[k].text.strip() for k in ("motion", "camera") if k in draft.values}
    return Scene.model_validate(
        {
            "number": draft.number,
            "title": draft.title,
            "type": kind,
            **fields,
            **texts,
            "line": draft.line,
            "field_lines": b.field_lines(),
        }
    )
