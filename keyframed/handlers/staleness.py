"""Fresh or stale, and why: compare desired recipes with what was recorded when built.

Like doit and Dagster, every stale artifact carries reasons, each a short code and a detail:
``never_built``, ``missing_output``, ``input_changed: assets/characters/samurai.png``,
``recipe_changed: prompt``, ``template_changed: qwen_anypose.json``, ``retry_requested: take 1``,
``upstream_stale: scene-01/layers/background.png``, ``missing_input: …``.

Early cutoff falls out of the fingerprint: it uses the *content hash* of each upstream file, so
an upstream rebuilt to the very same bytes leaves its users fresh.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from keyframed.handlers.fingerprint import Components, components, fingerprint, recipe_fields
from keyframed.handlers.memo import PlanMemo, VerdictKey
from keyframed.handlers.recipe import Artifact
from keyframed.handlers.verdict import Reason, Record, State, Status


def explain(old: Components, new: Components, template: str) -> list[Reason]:
    """Name what changed between two sets of fingerprint components."""
    reasons = [
        Reason(code="input_changed", detail=path)
        for path, digest in new.inputs.items()
        if path in old.inputs and old.inputs[path] != digest
    ]
    if old.template != new.template:
        reasons.append(Reason(code="template_changed", detail=template))
    for name in sorted(set(old.fields) | set(new.fields)):
        if old.fields.get(name) != new.fields.get(name):
            code = "retry_requested" if name == "take" else "recipe_changed"
            reasons.append(Reason(code=code, detail=name))
    return reasons or [Reason(code="recipe_changed", detail="fingerprint_version")]


def _upstream(art: Artifact, done: Mapping[str, Status]) -> list[Reason]:
    return [
        Reason(code="upstream_stale", detail=dep)
        for dep in art.deps
        if dep in done and not done[dep].usable
    ]


def _own(record: Record | None, on_disk: str | None, path: str) -> list[Reason]:
    if record is None:
        return [Reason(code="never_built")]
    if on_disk is None:
        return [Reason(code="missing_output", detail=path)]
    return []


def evaluate_one(
    art: Artifact,
    record: Record | None,
    hashes: Mapping[str, str | None],
    template_hash: str,
    done: Mapping[str, Status],
) -> Status:
    """Decide one artifact, given the verdicts on everything before it."""
    on_disk = hashes.get(art.path)
    if on_disk is not None and (record is None or on_disk != record.output_hash):
        # A file keyframed did not write (or the user replaced ours) is pinned, never rebuilt.
        return Status(path=art.path, state="user_override",
                      reasons=(Reason(code="user_override", detail=art.path),))
    upstream = _upstream(art, done)
    missing = [i.path for i in art.recipe.inputs if hashes.get(i.path) is None]
    if upstream or missing:
        extra = [Reason(code="missing_input", detail=p) for p in missing if p not in art.deps]
        own = _own(record, on_disk, art.path)
        if record is not None and not own:
            # The fingerprint needs the upstream bytes, but recipe edits can be named already.
            partial = Components(inputs={}, template=template_hash,
                                 fields=recipe_fields(art.recipe))
            old = Components(inputs={}, template=record.components.template,
                             fields=record.components.fields)
            own = [r for r in explain(old, partial, art.recipe.template)
                   if r.detail != "fingerprint_version"]
        return Status(path=art.path, state="stale", reasons=tuple(own + upstream + extra))
    known = {i.path: hashes[i.path] or "" for i in art.recipe.inputs}
    parts = components(art.recipe, known, template_hash)
    digest = fingerprint(parts)
    if record is not None and record.fingerprint == digest:
        parts = record.components  # equal; sharing it keeps one copy per artifact in memory
    reasons = _own(record, on_disk, art.path)
    if not reasons and record is not None and record.fingerprint != digest:
        reasons = explain(record.components, parts, art.recipe.template)
    state: State = "stale" if reasons else "fresh"
    return Status(path=art.path, state=state, reasons=tuple(reasons),
                  fingerprint=digest, components=parts)


def evaluate(
    artifacts: Sequence[Artifact],
    records: Mapping[str, Record],
    hashes: Mapping[str, str | None],
    template_hashes: Mapping[str, str],
    memo: PlanMemo | None = None,
) -> dict[str, Status]:
    """Decide every artifact; ``artifacts`` must be in dependency order.

    With the ``memo`` of the last pass, an artifact whose verdict depends on nothing that
    changed keeps that verdict (see :mod:`.memo`); the result is the same without it.
    """
    memo = memo if memo is not None else PlanMemo()
    done: dict[str, Status] = {}
    kept: dict[str, tuple[VerdictKey, Status]] = {}
    for art in artifacts:
        template_hash = template_hashes.get(art.recipe.template, "")
        record = records.get(art.path)
        key = _verdict_key(art, record, hashes, template_hash, done)
        status = memo.verdict(art.path, key)
        if status is None:
            status = evaluate_one(art, record, hashes, template_hash, done)
        done[art.path] = status
        kept[art.path] = (key, status)
    memo.verdicts = kept
    return done


def _verdict_key(
    art: Artifact, record: Record | None, hashes: Mapping[str, str | None],
    template_hash: str, done: Mapping[str, Status],
) -> VerdictKey:
    """Everything :func:`evaluate_one` reads, as one comparable value."""
    deps = tuple(done[d].usable if d in done else None for d in art.deps)
    inputs = tuple(hashes.get(i.path) for i in art.recipe.inputs)
    return (art, record, template_hash, hashes.get(art.path), inputs, deps)
