"""POST /prompt validation with ComfyUI 0.8.0's rules and error shapes (comfyui-api.md §1).

Behaviour kept on purpose, because clients see it:
- every node's class is checked; everything else only for output nodes and their ancestors;
- only declared inputs are checked, and coerced values are written back into the prompt;
- min/max and COMBO checks are skipped for inputs a node validates itself (LoadImage.image,
  which instead must name an existing input file);
- a malformed graph (not a dict, a node that is a number...) raises, which the route turns into
  aiohttp's plain 500, exactly like ComfyUI's unhandled exception;
- a link to a missing node or slot raises inside validation and is reported as
  ``exception_during_validation`` (output node) or ``exception_during_inner_validation``.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .catalog import InputSpec, NodeCatalog

Error = dict[str, Any]
# A node's own validator: gets the constant value, returns True or a reason string.
CustomCheck = Callable[[Any], "bool | str"]


@dataclass
class ValidationResult:
    """The outcome ComfyUI's ``validate_prompt`` returns."""

    ok: bool
    error: Error | None
    outputs: list[str]
    node_errors: dict[str, Any]


def _error(kind: str, message: str, details: str, extra: dict[str, Any] | None = None) -> Error:
    return {"type": kind, "message": message, "details": details, "extra_info": extra or {}}


def _type_name(ex: BaseException) -> str:
    cls = type(ex)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )


def types_match(received: Any, expected: Any) -> bool:
    """ComfyUI's link type rule: equal, ``*`` on either side, or comma-separated sets overlap."""
    if received == expected:
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _coerce(type_name: Any, value: Any) -> Any:
    converters: dict[str, Callable[[Any], Any]] = {
        "INT": int,
        "FLOAT": float,
        "STRING": str,
        "BOOLEAN": bool,
    }
    if isinstance(type_name, str) and type_name in converters:
        return converters[type_name](value)
    return value


@dataclass
class _Validator:
    prompt: dict[str, Any]
    catalog: NodeCatalog
    custom: dict[str, dict[str, CustomCheck]]
    validated: dict[Any, tuple[bool, list[Error]]] = field(default_factory=dict)

    def node(self, node_id: Any) -> tuple[bool, list[Error]]:
        if node_id in self.validated:
            return self.validated[node_id]
        node = self.prompt[node_id]
        inputs = node["inputs"]
        class_type = node["class_type"]
        own_checks = self.custom.get(class_type, {})
        errors: list[Error] = []
        upstream_ok = True
        for spec in self.catalog.inputs(class_type):
            if spec.name not in inputs:
                if spec.category == "required":
                    errors.append(
                        _error(
                            "required_input_missing",
                            "Required input is missing",
                            spec.name,
                            {"input_name": spec.name},
                        )
                    )
                continue
            if isinstance(inputs[spec.name], list):
                error, ok = self._link(spec, inputs[spec.name])
                upstream_ok = upstream_ok and ok
            else:
                error = self._value(spec, inputs, spec.name in own_checks)
            if error is not None:
                errors.append(error)
        errors.extend(self._custom(inputs, own_checks))
        result = (not errors and upstream_ok, errors)
        self.validated[node_id] = result
        return result

    def _link(self, spec: InputSpec, link: list[Any]) -> tuple[Error | None, bool]:
        extra_base = {"input_name": spec.name, "input_config": spec.config}
        if len(link) != 2:
            message = "Bad linked input, must be a length-2 list of [node_id, slot_index]"
            return (
                _error(
                    "bad_linked_input", message, spec.name, {**extra_base, "received_value": link}
                ),
                True,
            )
        source_id, slot = link
        # Missing node or slot raises here, outside the inner try, like ComfyUI.
        received = self.catalog.output_types(self.prompt[source_id]["class_type"])[slot]
        if not types_match(received, spec.type):
            details = f"{spec.name}, received_type({received}) mismatch input_type({spec.type})"
            extra = {**extra_base, "received_type": received, "linked_node": link}
            return (
                _error(
                    "return_type_mismatch",
                    "Return type mismatch between linked nodes",
                    details,
                    extra,
                ),
                True,
            )
        try:
            ok, _ = self.node(source_id)
        except Exception as ex:
            reason = _error(
                "exception_during_inner_validation",
                "Exception when validating inner node",
                str(ex),
                {
                    **extra_base,
                    "exception_message": str(ex),
                    "exception_type": _type_name(ex),
                    "traceback": traceback.format_tb(ex.__traceback__),
                    "linked_node": link,
                },
            )
            self.validated[source_id] = (False, [reason])
            return None, False
        return None, ok

    def _value(self, spec: InputSpec, inputs: dict[str, Any], self_checked: bool) -> Error | None:
        value = inputs[spec.name]
        if isinstance(value, dict) and "__value__" in value:
            value = inputs[spec.name] = value["__value__"]
        try:
            value = _coerce(spec.type, value)
        except Exception as ex:
            return _error(
                "invalid_input_type",
                f"Failed to convert an input value to a {spec.type} value",
                f"{spec.name}, {value}, {ex}",
                {
                    "input_name": spec.name,
                    "input_config": spec.config,
                    "received_value": value,
                    "exception_message": str(ex),
                },
            )
        inputs[spec.name] = value
        if self_checked:
            return None
        return _range_error(spec, value) or _list_error(spec, value)

    @staticmethod
    def _custom(inputs: dict[str, Any], checks: dict[str, CustomCheck]) -> list[Error]:
        errors = []
        for name, check in checks.items():
            if name not in inputs or isinstance(inputs[name], list):
                continue
            verdict = check(inputs[name])
            if verdict is not True:
                details = name if verdict is False else f"{name} - {verdict}"
                errors.append(
                    _error(
                        "custom_validation_failed",
                        "Custom validation failed for node",
                        details,
                        {"input_name": name},
                    )
                )
        return errors


def _range_error(spec: InputSpec, value: Any) -> Error | None:
    extra = {"input_name": spec.name, "input_config": spec.config, "received_value": value}
    if "min" in spec.extra and value < spec.extra["min"]:
        message = f"Value {value} smaller than min of {spec.extra['min']}"
        return _error("value_smaller_than_min", message, spec.name, extra)
    if "max" in spec.extra and value > spec.extra["max"]:
        message = f"Value {value} bigger than max of {spec.extra['max']}"
        return _error("value_bigger_than_max", message, spec.name, extra)
    return None


def _list_error(spec: InputSpec, value: Any) -> Error | None:
    options = spec.options()
    if options is None:
        return None
    multiselect = bool(spec.extra.get("multiselect")) and isinstance(value, list)
    bad = [v for v in (value if multiselect else [value]) if v not in options]
    if not bad:
        return None
    # ComfyUI does not echo gigantic lists (scanned model folders).
    long_list = len(options) > 20
    shown = f"(list of length {len(options)})" if long_list else str(options)
    details = f"{spec.name}: {', '.join(repr(v) for v in bad)} not in {shown}"
    extra = {
        "input_name": spec.name,
        "input_config": None if long_list else spec.config,
        "received_value": value,
    }
    return _error("value_not_in_list", "Value not in list", details, extra)


def _invalid_prompt(message: str, node_id: Any) -> ValidationResult:
    return ValidationResult(
        False, _error("invalid_prompt", message, f"Node ID '#{node_id}'"), [], {}
    )


def _find_outputs(
    prompt: Any, catalog: NodeCatalog, targets: Iterable[Any] | None
) -> list[Any] | ValidationResult:
    """Check every node's class; return the output node ids (or the invalid_prompt result)."""
    wanted = None if targets is None else list(targets)
    outputs = []
    for node_id in prompt:
        node = prompt[node_id]
        if "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return _invalid_prompt(message, node_id)
        class_type = node["class_type"]
        if not catalog.has(class_type):
            return _invalid_prompt(
                f"Cannot execute because node {class_type} does not exist.", node_id
            )
        if catalog.is_output(class_type) and (wanted is None or node_id in wanted):
            outputs.append(node_id)
    return outputs


def validate_prompt(
    prompt: Any,
    catalog: NodeCatalog,
    custom: dict[str, dict[str, CustomCheck]],
    partial_targets: Iterable[Any] | None = None,
) -> ValidationResult:
    """Validate an API-format prompt; coerced values are written back into ``prompt``.

    Args:
        prompt: The ``prompt`` value of the request body, as parsed.
        catalog: The node classes on offer.
        custom: Per class, the inputs the node validates itself and how.
        partial_targets: ``partial_execution_targets``: only these output nodes run.

    Raises:
        Exception: Whatever a malformed graph raises (the route answers 500 then).
    """
    outputs = _find_outputs(prompt, catalog, partial_targets)
    if isinstance(outputs, ValidationResult):
        return outputs
    if not outputs:
        no_outputs = _error("prompt_no_outputs", "Prompt has no outputs", "")
        return ValidationResult(False, no_outputs, [], {})
    validator = _Validator(prompt, catalog, custom)
    good: list[str] = []
    failed: list[tuple[Any, list[Error]]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            ok, reasons = validator.node(output)
        except Exception as ex:
            ok = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {
                        "exception_type": _type_name(ex),
                        "traceback": traceback.format_tb(ex.__traceback__),
                    },
                )
            ]
            validator.validated[output] = (False, reasons)
        if ok:
            good.append(output)
            continue
        failed.append((output, reasons))
        _collect_node_errors(prompt, validator.validated, output, node_errors)
    if good:
        return ValidationResult(True, None, good, node_errors)
    lines = [f"{e['message']}: {e['details']}" for _, reasons in failed for e in reasons]
    error = _error(
        "prompt_outputs_failed_validation", "Prompt outputs failed validation", "\n".join(lines)
    )
    return ValidationResult(False, error, [], node_errors)


def _collect_node_errors(
    prompt: dict[str, Any],
    validated: dict[Any, tuple[bool, list[Error]]],
    output: Any,
    node_errors: dict[str, Any],
) -> None:
    # Like ComfyUI: every failed node seen so far gets this output as a dependent, and nodes
    # that are invalid only because of an upstream node (no reasons of their own) are left out.
    for node_id, (ok, reasons) in validated.items():
        if ok or not reasons:
            continue
        entry = node_errors.setdefault(
            node_id,
            {
                "errors": reasons,
                "dependent_outputs": [],
                "class_type": prompt[node_id]["class_type"],
            },
        )
        entry["dependent_outputs"].append(output)
