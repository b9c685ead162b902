"""Two projects, two ``keyframed watch`` processes, the same fake ComfyUI servers.

No cross-talk: each daemon writes only what its own prompts made, cancels only its own
superseded prompts (the other project's prompts all run to the end, once), and byte-identical
projects in two folders are two sets of prompts with distinct ids.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from PIL import Image, ImageOps

from keyframed.backends.registry import project_id
from keyframed.daemon.store import JobStore, Store
from tests.comfy_project import PREFIX, comfy_project
from tests.daemon.test_daemon_live_edits import idle
from tests.daemon.test_daemon_process import start_watch, wait_for
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.server import FakeComfy

ALL = 19  # artifacts of the sample project
SUBMITTED = ALL - 1  # a landscape's background layer is a local copy of its keyframe


@contextmanager
def daemons(*roots: Path, logs: Path) -> Iterator[Callable[[Path], None]]:
    """``keyframed watch`` for each of ``roots`` now, and for more when the caller says; all are
    stopped (SIGTERM) at the end, and none may have logged a traceback."""
    procs: list[subprocess.Popen[bytes]] = []
    started: list[Path] = []

    def start(root: Path) -> None:
        procs.append(start_watch(root, logs / f"{root.name}.log"))
        started.append(root)

    try:
        for root in roots:
            start(root)
        yield start
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=20)
    for root in started:
        text = (logs / f"{root.name}.log").read_text(encoding="utf-8")
        assert "Traceback" not in text, text[-3000:]


def built(root: Path) -> bool:
    """The daemon says every artifact is built."""
    if not idle(root):
        return False
    doc = json.loads((root / "status.json").read_text(encoding="utf-8"))
    return doc["ok"] and sum(doc["counts"].get(s, 0) for s in ("fresh", "done")) == ALL


def prompts_by_project(servers: list[FakeComfy]) -> dict[str, dict[str, list[str]]]:
    """project id → artifact → prompt ids accepted for it (by the filename_prefix)."""
    out: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for server in servers:
        for record in server.records.prompts:
            for node in record.body["prompt"].values():
                prefix = node.get("inputs", {}).get("filename_prefix")
                if isinstance(prefix, str) and (match := PREFIX.match(prefix)):
                    pid = prefix.split("/")[1]
                    out[pid][match.group(1)].append(record.prompt_id)
    return out


def job_states(root: Path) -> list[tuple[str, str]]:
    """(path, state) of every job the project's daemon recorded."""
    store = Store.for_project(root)
    try:
        return [(j.path, j.state) for j in JobStore(store)._rows("1 = 1")]
    finally:
        store.close()


def embedded_prefix(png: Path) -> str:
    """The filename_prefix in the prompt ComfyUI embedded in an output PNG."""
    with Image.open(png) as image:
        prompt = json.loads(image.text["prompt"])
    prefixes = [n["inputs"]["filename_prefix"] for n in prompt.values()
                if "filename_prefix" in n.get("inputs", {})]
    assert len(prefixes) == 1, prefixes
    return str(prefixes[0])


def has_prompt(png: Path) -> bool:
    with Image.open(png) as image:
        return "prompt" in getattr(image, "text", {})


def assert_made_by_own_prompts(root: Path) -> None:
    """Every image in the project came from a prompt of this project, for this very path."""
    pid = project_id(root)
    pngs = [p for p in root.glob("scene-*/**/*.png")
            if p.name != "contact-sheet.png" and "takes" not in p.parts]
    pngs += list((root / "assets").glob("*/*.png"))
    generated = [p for p in pngs if has_prompt(p)]  # the user's reference images carry none
    assert len(generated) == 3 + 5 + 3 + 5, generated  # assets, scene 1, 2, 3 (no videos)
    for png in generated:
        rel = png.relative_to(root).with_suffix("").as_posix()
        # A landscape's background layer is a copy of its keyframe-start.
        own = {rel, rel.replace("layers/background", "keyframe-start")}
        assert embedded_prefix(png) in {f"keyframed/{pid}/{r}" for r in own}, png


def recolour(root: Path) -> None:
    """Give a project its own reference images (inverted colours)."""
    for png in (root / "assets").glob("*/*.png"):
        with Image.open(png) as image:
            inverted = ImageOps.invert(image.convert("RGB"))
        inverted.save(png)


def test_identical_projects_in_two_folders_get_their_own_prompts(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    server = fake_comfy_factory()
    first = comfy_project(tmp_path / "a" / "film", [server])
    second = tmp_path / "b" / "film"
    shutil.copytree(first, second)
    with daemons(first, second, logs=tmp_path):
        assert wait_for(lambda: built(first) and built(second), 120)
    by_project = prompts_by_project([server])
    pids = {project_id(first), project_id(second)}
    assert set(by_project) == pids
    artifacts = {a for per in by_project.values() for a in per}
    assert len(artifacts) == SUBMITTED
    for artifact in artifacts:
        ids = [i for pid in pids for i in by_project[pid][artifact]]
        # One submission per project, under distinct prompt ids, each run once.
        assert [len(by_project[pid][artifact]) for pid in pids] == [1, 1], artifact
        assert len(set(ids)) == 2, artifact
        assert all(server.records.executions.get(i) == 1 for i in ids), artifact
    for root in (first, second):
        assert_made_by_own_prompts(root)


def test_an_edit_in_one_project_never_cancels_the_other_projects_prompts(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path
) -> None:
    servers = [fake_comfy_factory(), fake_comfy_factory()]
    a = comfy_project(tmp_path / "a", servers)
    b = comfy_project(tmp_path / "b", servers)
    recolour(b)
    for server in servers:
        server.faults.hold_jobs()  # every job waits at its first node until released
    pid_a, pid_b = project_id(a), project_id(b)
    log_a = tmp_path / f"{a.name}.log"
    with daemons(b, logs=tmp_path) as start:
        # B's first prompts are held on both servers; A's first ones queue behind them.
        assert wait_for(lambda: len(prompts_by_project(servers)[pid_b]) >= 2, 60)
        start(a)
        assert wait_for(lambda: len(prompts_by_project(servers)[pid_a]) >= 2, 60)
        text = (a / "assets.json").read_text(encoding="utf-8")
        for old in ("Ancient temple", "Mountain range", "Studio Ghibli"):
            text = text.replace(old, f"Rainy {old.lower()}")
        (a / "assets.json").write_text(text, encoding="utf-8")
        # A takes its two queued prompts off the queues. Their workers, still waiting, find
        # them gone; they must not submit them again (as if the server had lost them).
        assert wait_for(lambda: log_a.read_text(encoding="utf-8").count('"job_superseded"') >= 3,
                        60)
        assert wait_for(lambda: log_a.read_text(encoding="utf-8").count("comfy_prompt_lost") >= 2,
                        60)
        for server in servers:
            server.faults.release_jobs()
        assert wait_for(lambda: built(a) and built(b), 120)
    by_project = prompts_by_project(servers)
    history = {k: v for server in servers for k, v in server.history().items()}
    # A superseded prompts of its own: the old recipes of the edited assets, submitted before
    # the edit, were cancelled (taken off the queue or interrupted), never finished.
    cancelled = [r.prompt_id for server in servers for r in server.records.prompts
                 if f"keyframed/{pid_a}/assets/" in json.dumps(r.body)
                 and "Rainy" not in json.dumps(r.body)]
    assert cancelled, by_project[pid_a]
    for prompt in cancelled:
        assert history.get(prompt, {}).get("status", {}).get("status_str") != "success"
    # B lost nothing: each of its prompts ran exactly once and succeeded; none superseded.
    b_prompts = [p for ids in by_project[pid_b].values() for p in ids]
    assert len(b_prompts) == SUBMITTED
    executions = {k: v for server in servers for k, v in server.records.executions.items()}
    for prompt in b_prompts:
        assert executions.get(prompt) == 1, prompt
        assert history[prompt]["status"]["status_str"] == "success", history[prompt]
    assert not any(s == "superseded" for _, s in job_states(b))
    # Each project's images come from its own prompts; their reference images differ, and so
    # do their outputs.
    for root in (a, b):
        assert_made_by_own_prompts(root)
    for rel in ("scene-01/keyframe-start.png", "scene-03/layers/character-end.png"):
        assert (a / rel).read_bytes() != (b / rel).read_bytes()
