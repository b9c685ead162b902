"""A ComfyUI 0.8.0 look-alike for tests and benchmarks (see :class:`FakeComfy`)."""

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
