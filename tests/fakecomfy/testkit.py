"""Small client-side helpers for tests that talk to a (fake) ComfyUI."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import httpx
from PIL import Image
from websockets.sync.client import ClientConnection


def png(colour: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    """A small real PNG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def multipart(
    filename: str, data: bytes, fields: Mapping[str, str] | None = None
) -> tuple[bytes, str]:
    """A multipart body with an ``image`` part named exactly ``filename`` (no re-encoding).

    Returns:
        The body and its Content-Type header value.
    """
    boundary = f"fakecomfy{uuid.uuid4().hex}"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode()
        for key, value in (fields or {}).items()
    ]
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; '
        f'filename="{filename}"\r\nContent-Type: image/png\r\n\r\n'
    )
    parts.append(head.encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(
    client: httpx.Client, filename: str, data: bytes, fields: Mapping[str, str] | None = None
) -> httpx.Response:
    """POST /upload/image with the file part named ``filename``."""
    body, content_type = multipart(filename, data, fields)
    return client.post("/upload/image", content=body, headers={"Content-Type": content_type})


def receive(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:
    """The next JSON text frame."""
    while True:
        frame = ws.recv(timeout=timeout)
        if isinstance(frame, str):
            message: dict[str, Any] = json.loads(frame)
            return message


def messages_until_done(
    ws: ClientConnection, prompt_id: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Every message up to and including ``executing {node: null}`` for ``prompt_id``."""
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        message = receive(ws, max(0.01, deadline - time.monotonic()))
        seen.append(message)
        data = message["data"]
        if (
            message["type"] == "executing"
            and data.get("node") is None
            and data.get("prompt_id") == prompt_id
        ):
            return seen


def wait_history(client: httpx.Client, prompt_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """Poll GET /history/{id} until the entry exists; return the entry.

    Raises:
        TimeoutError: No entry within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/history/{prompt_id}").json()
        if prompt_id in body:
            entry: dict[str, Any] = body[prompt_id]
            return entry
        if time.monotonic() > deadline:
            raise TimeoutError(f"no history for {prompt_id}")
        time.sleep(0.01)


def image_graph(
    prefix: str = "t/x", colour: int = 0xFF0000, size: tuple[int, int] = (64, 48)
) -> dict[str, Any]:
    """The weightless graph of comfyui-api.md §10: EmptyImage -> ImageInvert -> SaveImage."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": size[0], "height": size[1], "batch_size": 1, "color": colour},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


def qwen_edit_graph(
    image: str,
    seed: int = 1,
    text: str = "a samurai",
    size: tuple[int, int] = (96, 64),
    steps: int = 4,
) -> dict[str, Any]:
    """A Qwen-Image-Edit 2511 graph using the default fake models (LoRA, one reference image)."""
    return {
        "1": {
            "class_type": "UNETLoader",
            "inputs": {
                "unet_name": "qwen_image_edit_2511_fp8mixed.safetensors",
                "weight_dtype": "default",
            },
        },
        "2": {
            "class_type": "LoraLoaderModelOnly",
            "inputs": {
                "model": ["1", 0],
                "lora_name": "Qwen-Image-Edit-2511-Lightning-4steps-V1.0-bf16.safetensors",
                "strength_model": 1.0,
            },
        },
        "3": {
            "class_type": "CLIPLoader",
            "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image"},
        },
        "4": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "5": {"class_type": "LoadImage", "inputs": {"image": image}},
        "6": {
            "class_type": "TextEncodeQwenImageEditPlus",
            "inputs": {"clip": ["3", 0], "prompt": text, "vae": ["4", 0], "image1": ["5", 0]},
        },
        "7": {
            "class_type": "EmptySD3LatentImage",
            "inputs": {"width": size[0], "height": size[1], "batch_size": 1},
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["2", 0],
                "seed": seed,
                "steps": steps,
                "cfg": 1.0,
                "sampler_name": "euler",
                "scheduler": "simple",
                "positive": ["6", 0],
                "negative": ["6", 0],
                "latent_image": ["7", 0],
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["4", 0]}},
        "10": {
            "class_type": "SaveImage",
            "inputs": {"images": ["9", 0], "filename_prefix": "kf/edit"},
        },
    }


def video_graph(
    saver: str = "SaveVideo", size: tuple[int, int] = (64, 48), frames: int = 9
) -> dict[str, Any]:
    """Weightless frames (an EmptyImage batch) into CreateVideo/SaveVideo, or into ``saver``."""
    graph: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {
                "width": size[0],
                "height": size[1],
                "batch_size": frames,
                "color": 0x3366CC,
            },
        },
    }
    if saver == "SaveVideo":
        graph["2"] = {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 16.0}}
        graph["3"] = {
            "class_type": "SaveVideo",
            "inputs": {
                "video": ["2", 0],
                "filename_prefix": "video/kf",
                "format": "auto",
                "codec": "auto",
            },
        }
    elif saver == "SaveWEBM":
        graph["3"] = {
            "class_type": "SaveWEBM",
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "kf",
                "codec": "vp9",
                "fps": 16.0,
                "crf": 32.0,
            },
        }
    elif saver == "SaveAnimatedPNG":
        graph["3"] = {
            "class_type": saver,
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "kf",
                "fps": 6.0,
                "compress_level": 4,
            },
        }
    else:
        graph["3"] = {
            "class_type": saver,
            "inputs": {
                "images": ["1", 0],
                "filename_prefix": "kf",
                "fps": 6.0,
                "lossless": False,
                "quality": 80,
                "method": "default",
            },
        }
    return graph
