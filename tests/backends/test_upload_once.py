"""Two jobs on one server that need the same image at the same moment send it once.

With ``max_in_flight = 2`` two worker threads upload side by side; both used to find the
image not yet sent, and both sent it (bench/throughput.py saw it). Real HTTP to the fake.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
from PIL import Image

from keyframed.backends.comfy.client import ComfyClient
from keyframed.backends.comfy.retry import RetryPolicy
from tests.daemon.test_watcher_editors import wait_until
from tests.fakecomfy.server import FakeComfy

UPLOAD = "POST /upload/image"


def uploads_seen(fake: FakeComfy) -> int:
    return sum(1 for method, path in fake.records.requests if f"{method} {path}" == UPLOAD)


def test_the_same_image_needed_twice_at_once_is_sent_once(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    image = tmp_path / "ref.png"
    Image.new("RGB", (8, 8), (200, 10, 10)).save(image)
    digest = hashlib.sha256(image.read_bytes()).hexdigest()
    client = ComfyClient(fake_comfy.url, name="fake", websocket=False,
                         retry=RetryPolicy.immediate(1), timeout=httpx.Timeout(20.0))
    names: list[str] = []
    fake_comfy.faults.hang(UPLOAD)  # the first upload is held at the server
    first = threading.Thread(target=lambda: names.append(client.upload(image, digest)))
    second = threading.Thread(target=lambda: names.append(client.upload(image, digest)))
    try:
        first.start()
        assert wait_until(lambda: uploads_seen(fake_comfy) == 1, 10)
        second.start()
        # Without the per-file lock the second upload arrives at once; give it the chance.
        assert not wait_until(lambda: uploads_seen(fake_comfy) > 1, 0.5)
    finally:
        fake_comfy.faults.release()
        first.join(20)
        second.join(20)
        client.close()
    assert len(names) == 2 and names[0] == names[1]
    assert uploads_seen(fake_comfy) == 1
    assert len(fake_comfy.records.uploads) == 1
