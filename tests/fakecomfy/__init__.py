"""A ComfyUI 0.8.0 look-alike for tests and benchmarks.

Start one with the pytest fixtures in :mod:`tests.fakecomfy.fixtures` (``fake_comfy``,
``fake_comfy_factory``), with :class:`FakeComfy` directly, or standalone::

    python -m tests.fakecomfy --port 8188 --object-info ../shared/comfyui/object_info.json \\
        --output-dir /tmp/out --job-seconds 0.2

What it does (the recorded transcripts in ../shared/comfyui are its conformance suite):

- every route of comfyui-api.md, also under ``/api``; POST /prompt validated against the
  recorded ``object_info.json`` with ComfyUI's rules and error shapes; model COMBOs filled from
  the "installed" files (``models=``, default :data:`DEFAULT_MODELS`, changeable at run time);
- a worker running the queue by priority, one prompt at a time, with ComfyUI's execution order,
  node-output cache (classic by default) and WebSocket events, writing real files: PNGs whose
  pixels follow the inputs (uploaded bytes, seed, text...), MP4-, WebM-, WebP- and APNG-shaped
  videos; each job lasts ``job_seconds`` of wall time;
- with ``jobs_api=True`` (``--jobs-api``), newer ComfyUI's core jobs API as well
  (``GET /api/jobs``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/cancel``,
  ``POST /api/jobs/cancel``; :mod:`.jobs`), its version in ``/system_stats``, and its
  ``POST /prompt`` rules (a client's id must be a canonical UUID; one already queued is a 409);
- :attr:`FakeComfy.faults` (:class:`Faults`): 5xx, dropped connections, hung routes, failing
  prompts, held jobs, silent sockets, hostile outputs and bodies; :meth:`FakeComfy.restart`;
- :attr:`FakeComfy.records` (:class:`Records`): accepted prompts, uploads, executions, requests.
"""

from .faults import Faults, PromptFailure
from .models import DEFAULT_MODELS, MODEL_FOLDERS, MODEL_INPUTS
from .records import AcceptedPrompt, Records, UploadRecord
from .server import FakeComfy

__all__ = [
    "DEFAULT_MODELS",
    "MODEL_FOLDERS",
    "MODEL_INPUTS",
    "AcceptedPrompt",
    "FakeComfy",
    "Faults",
    "PromptFailure",
    "Records",
    "UploadRecord",
]
