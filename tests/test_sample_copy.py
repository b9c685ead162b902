"""A copy of the example is its inputs only, whether or not `keyframed run examples/samurai`
(README command 1) has been run in this clone before the tests (README command 2)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from keyframed.daemon.loop import Reconciler
from tests.planning import copy_sample, settings_for


def _files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_copy_of_a_built_example_holds_only_its_inputs(tmp_path: Path) -> None:
    clean = copy_sample(tmp_path / "clean")
    built = copy_sample(tmp_path / "built")
    rec = Reconciler(built, settings_for(built))
    rec.start()
    try:
        snap = rec.run_until_idle(timeout=120)
    finally:
        rec.close()
    assert snap is not None and all(i.state == "fresh" for i in snap.items)
    made = set(_files(built)) - set(_files(clean))
    assert any(p.startswith("assets/") for p in made)  # generated asset images among them
    assert _files(copy_sample(tmp_path / "again", source=built)) == _files(clean)
