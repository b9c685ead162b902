"""Graph helpers for execution: links, cache signatures and ComfyUI's execution order."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from typing import Any


def is_link(value: Any) -> bool:
    """Whether an input value is a link ``[node_id, slot]``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
    )


def links(node: dict[str, Any]) -> list[tuple[str, str, int]]:
    """The ``(input name, source node, slot)`` links of a node, in input order."""
    return [(k, v[0], v[1]) for k, v in node["inputs"].items() if is_link(v)]


def ancestors(prompt: dict[str, Any], roots: Iterable[str]) -> list[str]:
    """The roots and every node they depend on (each once, roots first)."""
    seen: dict[str, None] = {}
    stack = list(roots)
    while stack:
        node_id = stack.pop()
        if node_id in seen or node_id not in prompt:
            continue
        seen[node_id] = None
        stack.extend(src for _, src, _ in links(prompt[node_id]))
    return list(seen)


def signatures(
    prompt: dict[str, Any],
    node_ids: Iterable[str],
    is_changed: Callable[[str], Any],
    uses_node_id: Callable[[str], bool],
) -> dict[str, str]:
    """Cache keys of nodes, like ComfyUI's input signature.

    A key covers the class, the node's ``IS_CHANGED`` value, its sorted constant inputs and,
    recursively, the keys of its ancestors with the slot used; node ids only for classes that
    take a UNIQUE_ID. So renumbered identical graphs share keys.
    """
    memo: dict[str, str] = {}

    def key(node_id: str) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt[node_id]
        parts: list[Any] = [node["class_type"], is_changed(node_id)]
        if uses_node_id(node["class_type"]):
            parts.append(node_id)
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            if is_link(value) and value[0] in prompt:
                parts.append([name, "link", key(value[0]), value[1]])
            else:
                parts.append([name, value])
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
        memo[node_id] = digest
        return digest

    return {node_id: key(node_id) for node_id in node_ids}


class CycleError(Exception):
    """The nodes to run depend on each other in a circle."""


def execution_order(
    prompt: dict[str, Any],
    outputs: Iterable[str],
    cached: set[str],
    is_output: Callable[[str], bool],
) -> list[str]:
    """The order ComfyUI 0.8.0 runs nodes in (its ExecutionList, without lazy inputs).

    Nodes are collected depth-first from each output, skipping cached ancestors (a cached
    output node itself stays: it replays its stored UI). Among the nodes whose inputs are
    ready, an output node goes first, then a node feeding an output, then a node two steps
    from one, otherwise the earliest collected.

    Raises:
        CycleError: No node is ready although some are pending.
    """
    pending: dict[str, None] = {}
    blocking: dict[str, dict[str, None]] = {}
    waits: dict[str, int] = {}
    for output in outputs:
        _collect(prompt, output, cached, pending, blocking, waits)
    order = []
    while pending:
        ready = [n for n in pending if waits[n] == 0]
        if not ready:
            raise CycleError(f"Dependency cycle detected among nodes {sorted(pending)}")
        chosen = _pick(ready, blocking, lambda n: is_output(prompt[n]["class_type"]))
        order.append(chosen)
        del pending[chosen]
        for downstream in blocking[chosen]:
            waits[downstream] -= 1
    return order


def _collect(
    prompt: dict[str, Any],
    start: str,
    cached: set[str],
    pending: dict[str, None],
    blocking: dict[str, dict[str, None]],
    waits: dict[str, int],
) -> None:
    stack = [start]
    found: list[tuple[str, str]] = []
    while stack:
        node_id = stack.pop()
        if node_id in pending:
            continue
        pending[node_id] = None
        blocking.setdefault(node_id, {})
        waits.setdefault(node_id, 0)
        for _, src, _ in links(prompt[node_id]):
            if src not in cached:
                stack.append(src)
            found.append((src, node_id))
    for src, dst in found:
        if src in cached or dst in blocking.setdefault(src, {}):
            continue
        blocking[src][dst] = None
        waits[dst] = waits.get(dst, 0) + 1


def _pick(
    ready: list[str], blocking: dict[str, dict[str, None]], is_output: Callable[[str], bool]
) -> str:
    for node_id in ready:
        if is_output(node_id):
            return node_id
    for node_id in ready:
        if any(is_output(d) for d in blocking[node_id]):
            return node_id
    for node_id in ready:
        if any(is_output(d2) for d in blocking[node_id] for d2 in blocking[d]):
            return node_id
    return ready[0]
