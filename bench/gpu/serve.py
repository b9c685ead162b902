"""Start ComfyUI's own ``main.py``, tiny-patched first when ``--tiny`` is given.

``python -m bench.gpu.serve --comfyui PATH [--tiny] -- <main.py arguments>``
"""

from __future__ import annotations

import argparse
import os
import runpy
import sys


def _log_lora_use() -> None:
    """Log how many of a LoRA file's keys ComfyUI matched, so the log shows each one applied.

    ComfyUI logs only the keys it could not map ("lora key not loaded"); a file it matched fully
    leaves no trace, so wrap its loader and say so.
    """
    import logging

    import comfy.options

    comfy.options.enable_args_parsing()
    import comfy.sd

    real = comfy.sd.load_lora_for_models

    def logged(model, clip, lora, strength_model, strength_clip):  # type: ignore[no-untyped-def]
        import comfy.lora

        key_map = comfy.lora.model_lora_keys_unet(model.model, {}) if model is not None else {}
        matched = comfy.lora.load_lora(lora, key_map, log_missing=False)
        pairs = {k.rsplit(".lora_", 1)[0] for k in lora if ".lora_" in k}
        # The file name is not passed down; LoraLoader.load_lora, the caller, holds it.
        caller = sys._getframe(1).f_locals
        name = caller.get("lora_name") or "?"
        logging.info("lora applied: %d of %d keys from %s", len(matched), len(pairs), name)
        return real(model, clip, lora, strength_model, strength_clip)

    comfy.sd.load_lora_for_models = logged


def main(argv: list[str] | None = None) -> None:
    """Put the checkout on ``sys.path``, patch if asked, then run ``main.py`` as ``__main__``."""
    parser = argparse.ArgumentParser(prog="bench.gpu.serve")
    parser.add_argument("--comfyui", required=True)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    root = os.path.abspath(args.comfyui)
    rest = [a for a in args.rest if a != "--"]
    sys.path.insert(0, root)
    os.chdir(root)
    sys.argv = [os.path.join(root, "main.py"), *rest]
    if args.tiny:
        # main.py enables argument parsing before its first comfy import; patching imports comfy
        # first, so do the same or --cpu and the rest would be ignored.
        import comfy.options

        comfy.options.enable_args_parsing()
        from bench.gpu import tiny

        tiny.apply()
    _log_lora_use()
    runpy.run_path(os.path.join(root, "main.py"), run_name="__main__")


if __name__ == "__main__":
    main()
