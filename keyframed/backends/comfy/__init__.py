"""The ComfyUI backend: a client for one server and idempotent job execution.

- :mod:`.errors`: :func:`mapped`, the one place HTTP failures become keyframed errors.
- :mod:`.client`: :class:`ComfyClient` (preflight, upload, submit, lookup, wait, download, cancel).
- :mod:`.state` and :mod:`.jobs`: where a prompt stands, read from ``/history`` + ``/queue``
  or, on servers that have it, from ComfyUI's core jobs API (``/api/jobs``).
- :mod:`.run`: :func:`run_job`, lookup-before-submit execution of one job.
- :mod:`.prompt_ids`: :func:`prompt_id_for`, deterministic prompt ids.
"""

from keyframed.backends.comfy.client import ComfyClient
from keyframed.backends.comfy.errors import mapped
from keyframed.backends.comfy.files import upload_name
from keyframed.backends.comfy.info import Device, ServerInfo
from keyframed.backends.comfy.prompt_ids import prompt_id_for
from keyframed.backends.comfy.retry import RetryPolicy
from keyframed.backends.comfy.run import JobOutcome, pick_output, run_job
from keyframed.backends.comfy.state import Done, Failed, Lost, PromptState, Queued, Running

__all__ = [
    "ComfyClient",
    "Device",
    "Done",
    "Failed",
    "JobOutcome",
    "Lost",
    "PromptState",
    "Queued",
    "RetryPolicy",
    "Running",
    "ServerInfo",
    "mapped",
    "pick_output",
    "prompt_id_for",
    "run_job",
    "upload_name",
]
