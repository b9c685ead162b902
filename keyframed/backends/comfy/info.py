"""What a ComfyUI server offers: node classes, model files, version and devices."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keyframed.backends.comfy.errors import ProtocolMismatch

__all__ = ["MODEL_FOLDERS", "Device", "ServerInfo", "parse_devices", "parse_name_list"]

# The folders keyframed's templates load from (``/models`` lists these names; the legacy
# ``unet`` and ``clip`` are served as ``diffusion_models`` and ``text_encoders``).
MODEL_FOLDERS: tuple[str, ...] = (
    "diffusion_models",
    "text_encoders",
    "vae",
    "loras",
    "clip_vision",
    "checkpoints",
)


@dataclass(frozen=True)
class Device:
    """One compute device from ``/system_stats`` (sizes in bytes)."""

    name: str
    type: str
    vram_total: int
    vram_free: int


@dataclass(frozen=True)
class ServerInfo:
    """The answer of :meth:`ComfyClient.preflight`.

    Attributes:
        name: the backend name from the configuration.
        version: ``comfyui_version`` from ``/system_stats`` ("" when absent).
        devices: the compute devices; with ``--cpu`` a single ``cpu`` device.
        node_classes: every class name in ``/object_info``.
        models: file names per model folder, as ComfyUI lists them (relative paths).
        object_info: the full ``/object_info`` answer, for schema checks of templates.
        jobs_api: the server has ComfyUI's core jobs API (``/api/jobs``); prompts are then
            looked up and cancelled through it rather than ``/history`` and ``/queue``.
    """

    name: str
    version: str
    devices: tuple[Device, ...]
    node_classes: frozenset[str]
    models: Mapping[str, frozenset[str]]
    object_info: Mapping[str, Any] = field(repr=False)
    jobs_api: bool = False

    @property
    def vram_free(self) -> int:
        """The most free memory on any one device, in bytes (0 without devices)."""
        return max((d.vram_free for d in self.devices), default=0)

    def has_model(self, folder: str, name: str) -> bool:
        """True when ``name`` is listed in ``folder`` (either path separator)."""
        listed = self.models.get(folder, frozenset())
        return name in listed or name.replace("/", "\\") in listed

    def missing(
        self, *, nodes: Iterable[str] = (), models: Iterable[tuple[str, str]] = ()
    ) -> list[str]:
        """What a job needs that this server lacks, as readable lines (empty: nothing).

        Args:
            nodes: node class names.
            models: (folder, file name) pairs, e.g. ``("loras", "InStyle-0.5.safetensors")``.
        """
        lacks = [f"node {n}" for n in sorted(set(nodes)) if n not in self.node_classes]
        lacks += [f"{f}/{m}" for f, m in sorted(set(models)) if not self.has_model(f, m)]
        return lacks


def parse_name_list(body: Any, what: str) -> list[str]:
    """Check that a ``/models`` or ``/models/{folder}`` answer is a list of strings."""
    if not isinstance(body, list) or not all(isinstance(n, str) for n in body):
        raise ProtocolMismatch(f"{what} is not a list of names")
    return body


def parse_devices(stats: Any) -> tuple[str, tuple[Device, ...]]:
    """Return (comfyui_version, devices) from a ``/system_stats`` answer."""
    if not isinstance(stats, Mapping):
        raise ProtocolMismatch("/system_stats is not an object")
    system = stats.get("system") or {}
    devices = stats.get("devices") or []
    if not isinstance(system, Mapping) or not isinstance(devices, list):
        raise ProtocolMismatch("/system_stats has no system object or devices list")
    return str(system.get("comfyui_version") or ""), tuple(
        Device(
            name=str(d.get("name", "")),
            type=str(d.get("type", "")),
            vram_total=_bytes(d.get("vram_total")),
            vram_free=_bytes(d.get("vram_free")),
        )
        for d in devices
        if isinstance(d, Mapping)
    )


def _bytes(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
