"""A copy of the sample project wired to a fake ComfyUI server, and ways to read what it got."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tests.fakecomfy.server import FakeComfy
from tests.planning import copy_sample

PREFIX = re.compile(r"^keyframed/[0-9a-f]{12}/(.+)$")


def comfy_project(dest: Path, servers: list[FakeComfy], *, approval: str = "auto",
                  max_in_flight: int = 1) -> Path:
    """Copy the sample and point it at the given servers, with small images."""
    root = copy_sample(dest)
    lines = [f'approval = "{approval}"', "", "[image]", "width = 128", "height = 72", "",
             "[video]", "width = 128", "height = 80", "",
             "[run]", "retry_initial_s = 0.05", "retry_max_s = 0.2", ""]
    for n, server in enumerate(servers):
        lines += ["[[backends]]", f'name = "gpu{n}"', 'kind = "comfyui"', f'url = "{server.url}"',
                  f"max_in_flight = {max_in_flight}", "timeout_s = 60", ""]
    (root / "keyframed.toml").write_text("\n".join(lines), encoding="utf-8")
    return root


def submitted_artifacts(server: FakeComfy) -> list[str]:
    """Artifact paths of every prompt the server accepted, in order (from filename_prefix)."""
    out = []
    for record in server.records.prompts:
        for node in record.body["prompt"].values():
            prefix = node.get("inputs", {}).get("filename_prefix")
            if isinstance(prefix, str) and (match := PREFIX.match(prefix)):
                out.append(match.group(1))
    return out


def submission_counts(server: FakeComfy) -> Counter[str]:
    """How often each prompt_id was accepted."""
    return Counter(r.prompt_id for r in server.records.prompts)
