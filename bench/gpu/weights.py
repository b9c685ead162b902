"""Make the weight files from ComfyUI's own model classes, with few layers and random values.

Run with the Python that runs ComfyUI (it needs torch and safetensors, not keyframed):
``python -m bench.gpu.weights --comfyui PATH --models DIR --spec SPEC.json [--tiny] [--device D]``.
SPEC.json maps ``<folder>/<file name>`` to one of :data:`KINDS`; :mod:`bench.gpu.__main__` writes
it from keyframed's settings so the names are exactly the ones the templates ask for.

ComfyUI infers the DiTs' depth (and Wan's width) from the keys, so one block is enough. The
values are N(0, 0.02) with norms at 1 and biases at 0: the outputs are noise, but every tensor
has the shape the real checkpoint has, which is what executing the templates checks. LoRAs are
rank 4 in the generic ``diffusion_model.<module>.lora_up/lora_down`` format that ComfyUI's key
map (``comfy/lora.py``: ``model_lora_keys_unet``) matches for every weight of either DiT.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

KINDS = ("qwen_dit", "qwen_te", "vae", "wan_dit", "umt5", "lora_qwen", "lora_wan")
RANK = 4
_SENTENCES = [
    "A samurai stands in a temple courtyard, calm and contemplative.",
    "The sun sets behind the mountains in warm golden light.",
    "Camera: static, wide shot. Slow motion, gentle wind, falling leaves.",
    "Make an image in the style of image 2 of this scene from image 1.",
]


def _fill(model: Any) -> dict[str, Any]:
    """Give every parameter a value and return the state dict (norms 1, biases 0, rest noise)."""
    import torch

    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            leaf = name.rsplit(".", 2)
            if name.endswith("bias"):
                tensor.zero_()
            elif "norm" in name or leaf[-1] in ("gamma", "scale"):
                tensor.fill_(1.0)
            elif tensor.is_floating_point():
                tensor.normal_(0.0, 0.02)
    return {k: v.detach().contiguous() for k, v in model.state_dict().items()}


def _build(kind: str, tiny: bool, device: str) -> Any:
    """One of ComfyUI's own model classes, at the size the run needs."""
    import comfy.ldm.qwen_image.model as qwen_dit
    import comfy.ldm.wan.model as wan_dit
    import comfy.ldm.wan.vae as wan_vae
    import comfy.ops
    import comfy.text_encoders.llama as llama
    import comfy.text_encoders.t5 as t5
    import torch

    ops = comfy.ops.disable_weight_init
    dt = torch.bfloat16
    if kind == "qwen_dit":
        return qwen_dit.QwenImageTransformer2DModel(num_layers=1, dtype=dt, device=device,
                                                    operations=ops)
    if kind == "qwen_te":
        return llama.Qwen25_7BVLI({}, dt, device, ops)
    if kind == "vae":
        # The Qwen-Image VAE and the Wan 2.1 VAE are the same architecture (ComfyUI's sd.py).
        vae = wan_vae.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2,
                             attn_scales=[], temperal_downsample=[False, True, True])
        return vae.to(device, dt)
    if kind == "wan_dit":
        dim, ffn = (128, 256) if tiny else (5120, 13824)
        # 36 input channels and no image embedding: ComfyUI detects Wan 2.2 i2v 14B this way.
        return wan_dit.WanModel(model_type="t2v", in_dim=36, dim=dim, ffn_dim=ffn,
                                num_heads=dim // 128, num_layers=1, out_dim=16, text_dim=4096,
                                freq_dim=256, dtype=dt, device=device, operations=ops)
    if kind == "umt5":
        config_path = os.path.join(os.path.dirname(t5.__file__), "umt5_config_xxl.json")
        with open(config_path, encoding="utf-8") as fh:
            config = json.load(fh)
        return t5.T5(config, dt, device, ops)
    raise ValueError(f"unknown model kind {kind!r}; one of {', '.join(KINDS)}")


def _spiece_model(tiny: bool) -> Any:
    """A SentencePiece model trained on a few sentences, as the uint8 tensor ComfyUI reads."""
    import io

    import sentencepiece as spm
    import torch

    buf = io.BytesIO()
    # UMT5's ids: pad 0, eos 1, unk 2, no bos (comfy/text_encoders/wan.py special tokens).
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_SENTENCES * 4), model_writer=buf, vocab_size=120,
        hard_vocab_limit=False, pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
        model_type="unigram")
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _lora(dit: dict[str, Any], block_prefix: str) -> dict[str, Any]:
    """Rank-4 up/down pairs for every 2-D weight of the DiT's blocks."""
    import torch

    out: dict[str, Any] = {}
    for key, tensor in dit.items():
        if not key.startswith(block_prefix) or not key.endswith(".weight") or tensor.dim() != 2:
            continue
        module = "diffusion_model." + key[: -len(".weight")]
        rows, cols = tensor.shape
        out[module + ".lora_up.weight"] = torch.randn(rows, RANK, dtype=tensor.dtype) * 0.01
        out[module + ".lora_down.weight"] = torch.randn(RANK, cols, dtype=tensor.dtype) * 0.01
    return out


def make(models: str, spec: dict[str, str], tiny: bool, device: str) -> dict[str, float]:
    """Write every file of ``spec`` under ``models``; returns seconds spent per file."""
    from safetensors.torch import save_file

    cache: dict[str, dict[str, Any]] = {}
    seconds: dict[str, float] = {}
    for rel, kind in spec.items():
        started = time.perf_counter()
        if kind.startswith("lora_"):
            base = "qwen_dit" if kind == "lora_qwen" else "wan_dit"
            if base not in cache:
                cache[base] = _fill(_build(base, tiny, device))
            prefix = "transformer_blocks." if base == "qwen_dit" else "blocks."
            sd = _lora(cache[base], prefix)
        else:
            if kind not in cache:
                cache[kind] = _fill(_build(kind, tiny, device))
            sd = dict(cache[kind])
            if kind == "umt5":
                sd["spiece_model"] = _spiece_model(tiny)
        path = os.path.join(models, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        save_file({k: v.cpu() for k, v in sd.items()}, path)
        seconds[rel] = round(time.perf_counter() - started, 2)
        print(f"made {rel} ({kind}, {os.path.getsize(path) / 1e6:.1f} MB)", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="bench.gpu.weights")
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--models", required=True)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    sys.path.insert(0, os.path.abspath(args.comfyui))
    import comfy.options

    # comfy.model_management picks its device at import from ComfyUI's own flags.
    sys.argv = [sys.argv[0], *(["--cpu"] if args.device == "cpu" else [])]
    comfy.options.enable_args_parsing()
    if args.tiny:
        from bench.gpu import tiny

        tiny.apply()
    with open(args.spec, encoding="utf-8") as fh:
        spec = json.load(fh)
    make(args.models, spec, args.tiny, args.device)


if __name__ == "__main__":
    main()
