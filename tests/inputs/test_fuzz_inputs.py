"""Property-based fuzzing of the project's inputs (issue 14): whatever a director's editor, a
script or a hostile folder puts in ``scene-breakdown.md``, ``assets.json``, ``style.json`` or
``keyframed.toml``, ``validate``, ``plan`` and one reconcile pass end in diagnostics, never in
a traceback, and write nothing outside the project.

CI runs a fixed, derandomized set of examples (well under a minute); set
``KEYFRAMED_FUZZ_EXAMPLES=2000`` (and ``KEYFRAMED_FUZZ_SEED`` for other draws) to search longer.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from keyframed.cli.main import main
from keyframed.daemon.loop import Reconciler
from keyframed.errors import KeyframedError
from keyframed.inputs.config import load_settings
from tests.planning import copy_sample

FILES = ("scene-breakdown.md", "assets.json", "style.json", "keyframed.toml")
EXAMPLES = int(os.environ.get("KEYFRAMED_FUZZ_EXAMPLES", "40"))
SEED = int(os.environ.get("KEYFRAMED_FUZZ_SEED", "20261203"))
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                  max_size=4),
    max_leaves=12,
)
NUMBERS = st.sampled_from(["0", "-1", "1e309", "nan", "inf", "99999999999999999999", "3.5",
                           "-0", "1_000", "0x10", ""])


@st.composite
def mutation(draw: st.DrawFn, original: dict[str, bytes]) -> tuple[str, bytes]:
    """One input file and new bytes for it."""
    name = draw(st.sampled_from(FILES))
    data = original[name]
    how = draw(st.sampled_from(["flip", "splice", "truncate", "number", "encoding", "json",
                                "lines"]))
    if how == "flip" and data:
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1:]
    elif how == "splice":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(max_size=64)) + data[at:]
    elif how == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif how == "number":
        numbers = list(re.finditer(rb"\d+(?:\.\d+)?", data))
        if numbers:
            hit = numbers[draw(st.integers(0, len(numbers) - 1))]
            data = data[:hit.start()] + draw(NUMBERS).encode() + data[hit.end():]
    elif how == "encoding":
        codec = draw(st.sampled_from(["utf-16", "utf-32", "latin-1", "utf-8-sig", "cp1252"]))
        data = data.decode("utf-8").encode(codec, errors="replace")
    elif how == "json" and name.endswith(".json"):
        data = _json_mutation(draw, data)
    elif how == "lines":
        lines = data.split(b"\n")
        i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
        lines[i], lines[j] = lines[j], lines[i]
        data = b"\n".join(lines * draw(st.integers(1, 3)))
    return name, data


def _json_mutation(draw: st.DrawFn, data: bytes) -> bytes:
    doc: Any = json.loads(data)
    node = doc
    while isinstance(node, dict) and node and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(node)))
        if not isinstance(node[key], dict):
            node[key] = draw(JSON_VALUES)
            break
        node = node[key]
    else:
        if isinstance(node, dict):
            node[draw(st.text(max_size=12))] = draw(JSON_VALUES)
    return json.dumps(doc).encode()


def _outside(base: Path, root: Path) -> set[str]:
    """Every path under ``base`` that is not inside ``root``."""
    return {str(p.relative_to(base)) for p in base.rglob("*") if not p.is_relative_to(root)}


def _one_pass(root: Path) -> None:
    """One reconcile pass as the daemon makes it; bad input may refuse to start, never crash."""
    try:
        settings_ = load_settings(root, env={})
        rec = Reconciler(root, settings_)
    except KeyframedError:
        return
    try:
        rec.start()
        rec.reconcile_once()
    finally:
        rec.close(wait=True)


with tempfile.TemporaryDirectory() as _sample_dir:
    _SAMPLE = copy_sample(Path(_sample_dir) / "sample")
    ORIGINAL = {name: (_SAMPLE / name).read_bytes() for name in FILES}


@seed(SEED)
@settings(max_examples=EXAMPLES, deadline=None, derandomize="KEYFRAMED_FUZZ_SEED" not in
          os.environ, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation(ORIGINAL), min_size=1, max_size=3))
def test_mutated_inputs_end_in_diagnostics(changes: list[tuple[str, bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        root = copy_sample(base / "p")
        for name, data in changes:
            (root / name).write_bytes(data)
        before = _outside(base, root)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            codes = [main(["validate", str(root)]), main(["plan", str(root)])]
            _one_pass(root)
        assert all(code in (0, 1) for code in codes), (codes, out.getvalue()[-2000:])
        assert "Traceback" not in out.getvalue()
        assert _outside(base, root) == before
