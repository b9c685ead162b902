"""Shrink the fixed-size parts of ComfyUI's models for CPU runs (``--tiny``).

ComfyUI infers the depth and width of the Qwen-Image and Wan DiTs from the state dict, but its
Qwen2.5-VL and UMT5-XXL text encoders have fixed configs (7.7 B and 5.7 B parameters), and the
Qwen-Image DiT's head count and text width are fixed too. A 2-core CPU cannot make or run those,
so ``apply()`` swaps in subclasses of ComfyUI's own classes with smaller defaults: the same code
runs, only narrower. It must be applied identically where the weights are made
(:mod:`bench.gpu.weights`) and in the server (:mod:`bench.gpu.serve`), else the shapes differ.
On a GPU the runner leaves everything at ComfyUI's real sizes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

TEXT_WIDTH = 64
"""Width of the tiny Qwen2.5-VL, and so of the Qwen-Image DiT's text input (UMT5 keeps 4096)."""
UMT5_VOCAB = 512
"""The tiny UMT5's vocabulary: the SentencePiece model the weights carry is smaller."""


def apply() -> None:
    """Patch ComfyUI's module attributes so every later construction is tiny (idempotent)."""
    import comfy.ldm.qwen_image.model as qwen_dit
    import comfy.ldm.wan.vae as wan_vae
    import comfy.text_encoders.llama as llama
    import comfy.text_encoders.qwen_vl as qwen_vl
    import comfy.text_encoders.t5 as t5

    if getattr(llama, "_keyframed_tiny", False):
        return
    llama._keyframed_tiny = True  # type: ignore[attr-defined]

    @dataclasses.dataclass
    class TinyQwenConfig(llama.Qwen25_7BVLI_Config):  # type: ignore[misc,name-defined]
        hidden_size: int = TEXT_WIDTH
        intermediate_size: int = 64
        num_hidden_layers: int = 1
        # ComfyUI's sd.py detects Qwen2.5-VL 7B by k_proj's bias of 512 = 4 heads x 128.
        num_attention_heads: int = 4
        num_key_value_heads: int = 4

    llama.Qwen25_7BVLI_Config = TinyQwenConfig  # type: ignore[misc]

    real_vision = qwen_vl.Qwen2VLVisionTransformer

    class TinyVision(real_vision):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # head_dim stays 80 as in the real tower (its rotary embedding depends on it).
            kwargs.update(hidden_size=160, num_heads=2, intermediate_size=64, num_layers=1)
            super().__init__(*args, **kwargs)

    qwen_vl.Qwen2VLVisionTransformer = TinyVision  # type: ignore[misc]

    real_t5 = t5.T5

    class TinyT5(real_t5):  # type: ignore[misc,valid-type]
        def __init__(self, config_dict: dict[str, Any], *args: Any, **kwargs: Any) -> None:
            # sd.py detects UMT5-XXL by block 23's wi_1 taking 4096 inputs: keep the depth
            # and the width, shrink the rest (about 30 M parameters instead of 5.7 B).
            config_dict = dict(config_dict, d_ff=16, num_heads=1, d_kv=64, vocab_size=UMT5_VOCAB)
            super().__init__(config_dict, *args, **kwargs)

    t5.T5 = TinyT5  # type: ignore[misc]

    real_qwen_dit = qwen_dit.QwenImageTransformer2DModel

    class TinyQwenDiT(real_qwen_dit):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(num_attention_heads=1, joint_attention_dim=TEXT_WIDTH)
            super().__init__(*args, **kwargs)

    qwen_dit.QwenImageTransformer2DModel = TinyQwenDiT  # type: ignore[misc]

    real_vae = wan_vae.WanVAE

    class TinyVAE(real_vae):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # sd.py passes dim=96; the edit node VAE-encodes each reference at ~1024x1024, far
            # too slow on 2 cores at full width. z_dim (the latent channels) is kept.
            kwargs.update(dim=8)
            super().__init__(*args, **kwargs)

    wan_vae.WanVAE = TinyVAE  # type: ignore[misc]
