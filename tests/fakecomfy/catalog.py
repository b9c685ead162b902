"""Node schemas from a recorded ``object_info.json``, with model and input-file lists filled in.

ComfyUI rebuilds COMBO option lists on every request (``INPUT_TYPES()``): model lists from
``models/<folder>`` and LoadImage's list from the input directory. The catalog does the same
from the fake server's installed-model set and its input directory.
"""

from __future__ import annotations

import json
import mimetypes
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from .models import EXTRA_OPTIONS, MODEL_INPUTS, normalise_models

JSON = Any
# Nodes whose input-folder listing ComfyUI puts in the COMBO (top-level image files only).
INPUT_IMAGE_LISTS: frozenset[tuple[str, str]] = frozenset(
    {("LoadImage", "image"), ("LoadImageMask", "image")}
)


@dataclass(frozen=True)
class InputSpec:
    """One declared input of a node class.

    Attributes:
        name: The input name.
        category: ``required`` or ``optional``.
        type: A type name (``"INT"``, ``"IMAGE"``, ``"COMBO"``...) or, for V1 COMBOs, the options.
        extra: The options dict (``min``, ``max``, ``options``, ...); ``{}`` when absent.
    """

    name: str
    category: Literal["required", "optional"]
    type: Any
    extra: dict[str, Any]

    @property
    def config(self) -> list[Any]:
        """The ``input_config`` that validation errors report: ``[type, extra]``."""
        return [self.type, self.extra]

    def options(self) -> list[Any] | None:
        """The COMBO options, for either encoding; ``None`` when the input is not a COMBO."""
        if isinstance(self.type, list):
            return self.type
        if self.type == "COMBO":
            return list(self.extra.get("options", []))
        return None


@lru_cache(maxsize=4)
def _load_object_info(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


def load_object_info(path: Path) -> dict[str, Any]:
    """Read an ``object_info.json`` (parsed once per path and shared: treat it as read-only)."""
    return _load_object_info(str(path))


def _with_options(spec: list[Any], options: list[str]) -> list[Any]:
    """Return ``spec`` (either COMBO encoding) with its options replaced."""
    if spec and spec[0] == "COMBO":
        extra = dict(spec[1]) if len(spec) > 1 else {}
        extra["options"] = options
        return ["COMBO", extra, *spec[2:]]
    return [options, *spec[1:]]


def list_input_images(input_dir: Path) -> list[str]:
    """Top-level files of ``input_dir`` whose MIME type is an image, sorted (LoadImage's list)."""
    if not input_dir.is_dir():
        return []
    names = [p.name for p in input_dir.iterdir() if p.is_file()]
    return sorted(n for n in names if (mimetypes.guess_type(n)[0] or "").startswith("image/"))


class NodeCatalog:
    """Thread-safe view of the node classes a fake server offers."""

    def __init__(
        self,
        object_info: dict[str, Any],
        models: dict[str, Iterable[str]] | None,
        input_images: Callable[[], list[str]],
    ) -> None:
        """Build a catalog.

        Args:
            object_info: The recorded ``GET /object_info`` body (not modified).
            models: Installed files per model folder; ``None`` for the default set.
            input_images: Returns the current LoadImage options (the input directory).
        """
        self._info = object_info
        self._lock = threading.Lock()
        self._models = normalise_models(models)
        self._input_images = input_images

    # -- models ---------------------------------------------------------------------------
    def models(self, folder: str) -> list[str]:
        """The installed file names of ``folder`` (sorted; empty when none)."""
        with self._lock:
            return list(self._models.get(folder, []))

    def set_models(self, folder: str, names: Iterable[str]) -> None:
        """Replace the installed files of one folder (like copying files into models/<folder>)."""
        updated = normalise_models({folder: names})
        with self._lock:
            self._models = {**self._models, **updated}

    # -- classes --------------------------------------------------------------------------
    def has(self, class_type: Any) -> bool:
        """Whether the class exists (an unhashable name raises TypeError, as in ComfyUI)."""
        return class_type in self._info

    def is_output(self, class_type: str) -> bool:
        """Whether the class is an OUTPUT_NODE."""
        return bool(self._info[class_type].get("output_node"))

    def output_types(self, class_type: str) -> tuple[str, ...]:
        """The class's RETURN_TYPES, as a tuple so a bad slot raises like ComfyUI's."""
        return tuple(self._info[class_type].get("output", []))

    def hidden(self, class_type: str) -> dict[str, Any]:
        """The hidden inputs (``PROMPT``, ``UNIQUE_ID``...) of the class."""
        hidden: dict[str, Any] = self._info[class_type]["input"].get("hidden", {})
        return hidden

    def takes_unique_id(self, class_type: str) -> bool:
        """Whether the class has a hidden UNIQUE_ID input (its node id joins its cache key)."""
        return any(v in ("UNIQUE_ID", ["UNIQUE_ID"]) for v in self.hidden(class_type).values())

    def inputs(self, class_type: str) -> list[InputSpec]:
        """Declared inputs, required first, with current model and image lists."""
        info = self.class_info(class_type)
        specs: list[InputSpec] = []
        for category in ("required", "optional"):
            for name, spec in info["input"].get(category, {}).items():
                extra = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                specs.append(InputSpec(name, category, spec[0], extra))
        return specs

    def class_info(self, class_type: str) -> dict[str, Any]:
        """One class's schema as ``GET /object_info/{class}`` shows it now."""
        info: dict[str, Any] = self._info[class_type]
        patches = self._option_patches(class_type)
        if not patches:
            return info
        patched = dict(info)
        patched["input"] = {k: dict(v) for k, v in info["input"].items()}
        for (category, name), options in patches.items():
            spec = info["input"][category][name]
            patched["input"][category][name] = _with_options(spec, options)
        return patched

    def object_info(self) -> dict[str, Any]:
        """All classes as ``GET /object_info`` shows them now."""
        return {name: self.class_info(name) for name in self._info}

    def _option_patches(self, class_type: str) -> dict[tuple[str, str], list[str]]:
        patches: dict[tuple[str, str], list[str]] = {}
        inputs = self._info[class_type]["input"]
        for category in ("required", "optional"):
            for name in inputs.get(category, {}):
                options = self._dynamic_options(class_type, name)
                if options is not None:
                    patches[(category, name)] = options
        return patches

    def _dynamic_options(self, class_type: str, name: str) -> list[str] | None:
        key = (class_type, name)
        if key in INPUT_IMAGE_LISTS:
            return self._input_images()
        folder = MODEL_INPUTS.get(key)
        if folder is None:
            return None
        return self.models(folder) + list(EXTRA_OPTIONS.get(key, ()))
