"""A hostile or broken ComfyUI: every answer it can give wrongly is refused, in bounded time.

Most cases run the daemon's real path (a :class:`Reconciler` with a ``comfyui`` backend pointed
at the fake server, small timeouts and attempts in keyframed.toml); the cases that need a chosen
prompt id run the client's :func:`run_job`. Each one checks that the job is refused with a
clear error, that nothing is written outside the project or anywhere but the expected output
path, and that the loop carries on (another pass runs and writes valid status files).
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from PIL import Image

from keyframed.backends.comfy import ComfyClient, RetryPolicy, prompt_id_for, run_job
from keyframed.backends.comfy.deadline import MAX_ANSWER_BYTES, DeadlineTransport
from keyframed.daemon.loop import Reconciler
from keyframed.daemon.store import Job
from keyframed.errors import ComfyPermanentError, ComfyTransientError
from keyframed.inputs.config import load_settings
from tests.comfy_project import comfy_project, submission_counts
from tests.fakecomfy.fixtures import FakeComfyFactory
from tests.fakecomfy.server import FakeComfy
from tests.fakecomfy.testkit import image_graph, wait_history

SCHEMA = json.loads(
    (Path(__file__).resolve().parents[2] / "keyframed" / "schemas" / "status.schema.json")
    .read_text(encoding="utf-8")
)
# A text-to-image asset: one job, no inputs to upload.
TARGET = "assets/styles/ghibli.png"
# A character layer: uploads the samurai and the pose, after the style asset above.
LAYER = "scene-01/layers/character-start.png"
# Files the daemon may write besides outputs: status files, sheets and its private folder.
OWN = ("status.json", "storyboard.png", "asset-sheet.png")
OWN_SUFFIXES = ("/status.json", "/contact-sheet.png")


# -- the project and its surroundings ---------------------------------------------------------


def hostile_project(tmp_path: Path, server: FakeComfy, *, timeout_s: float = 5.0,
                    max_attempts: int = 1, lost_resubmits: int = 1) -> Path:
    """The sample wired to ``server`` with small timeouts, beside a sentinel folder."""
    root = comfy_project(tmp_path / "p", [server])
    config = root / "keyframed.toml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("timeout_s = 60", f"timeout_s = {timeout_s}")
    text = text.replace("[run]\n", f"[run]\nmax_attempts = {max_attempts}\n"
                                   f"lost_resubmits = {lost_resubmits}\n")
    config.write_text(text, encoding="utf-8")
    sentinel = tmp_path / "sentinel"
    sentinel.mkdir()
    (sentinel / "keep.txt").write_text("untouched\n", encoding="utf-8")
    return root


def tree(base: Path) -> dict[str, bytes]:
    """Every file under ``base`` (relative path to bytes), the state database excepted."""
    return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*"))
            if p.is_file() and ".keyframed" not in p.relative_to(base).parts}


def assert_contained(tmp_path: Path, before: dict[str, bytes], allowed: set[str]) -> None:
    """Nothing outside the project changed, and inside it only ``allowed`` outputs appeared."""
    after = tree(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith("p/")}
    assert outside == {k: v for k, v in before.items() if not k.startswith("p/")}
    for name, data in after.items():
        if not name.startswith("p/") or before.get(name) == data:
            continue
        rel = name[2:]
        kept_take = "/takes/" in f"/{rel}" and rel.rsplit("/", 1)[-1].startswith(
            tuple(a.rsplit("/", 1)[-1].rsplit(".", 1)[0] + ".take-" for a in allowed))
        assert rel in allowed or kept_take or rel in OWN or rel.endswith(OWN_SUFFIXES), rel
    state = tmp_path / "p" / ".keyframed"
    assert not list(state.glob("kf-dl-*")), "a download folder was left behind"
    assert not list((tmp_path / "p").rglob(".kf-tmp-*")), "a temp file was left behind"


def assert_status_valid(root: Path) -> dict[str, Any]:
    """Both kinds of status file match the schema; the root one is returned."""
    doc: dict[str, Any] = json.loads((root / "status.json").read_text(encoding="utf-8"))
    jsonschema.validate(doc, SCHEMA)
    for path in root.glob("scene-*/status.json"):
        jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), SCHEMA)
    return doc


def backend_health(root: Path) -> dict[str, Any]:
    """The one backend's health as status.json reports it."""
    backends = assert_status_valid(root)["backends"]
    assert len(backends) == 1
    health: dict[str, Any] = backends[0]
    return health


@pytest.fixture
def daemon() -> Iterator[Callable[..., Reconciler]]:
    """Start Reconcilers for a project (closed after the test)."""
    made: list[Reconciler] = []

    def start(root: Path, *targets: str) -> Reconciler:
        rec = Reconciler(root, load_settings(root, env={}),
                         targets=frozenset(targets or (TARGET,)))
        rec.start()
        made.append(rec)
        return rec

    yield start
    for rec in made:
        rec.close()


def job_of(rec: Reconciler, path: str = TARGET) -> Job:
    job = rec.jobs.latest().get(path)
    assert job is not None, f"no job for {path}"
    return job


def carries_on(rec: Reconciler) -> None:
    """The loop survived: another pass runs and the status files are valid."""
    assert rec.reconcile_once().ok
    assert_status_valid(rec.root)


def refused(rec: Reconciler, *needles: str, path: str = TARGET) -> Job:
    """Run to the end; the job must have failed with an error naming each needle."""
    snap = rec.run_until_idle(timeout=60)
    assert snap is not None and not rec.busy, "the run did not end"
    job = job_of(rec, path)
    assert job.state == "failed", (job.state, job.error)
    assert job.error is not None
    for needle in needles:
        assert needle in job.error, job.error
    assert not (rec.root / path).exists()
    status = (rec.root / "status.json").read_text(encoding="utf-8")
    assert '"failed"' in status
    carries_on(rec)
    return job


def built(rec: Reconciler, path: str = TARGET) -> None:
    """Run to the end; the output must be a fresh, valid image."""
    snap = rec.run_until_idle(timeout=60)
    assert snap is not None
    job = job_of(rec, path)
    assert job.state == "done", (job.state, job.error)
    with Image.open(rec.root / path) as image:
        image.verify()


# -- output names ----------------------------------------------------------------------------


HOSTILE_NAMES: dict[str, tuple[str | None, str | None]] = {
    "dotdot": ("../../../escape.png", None),
    "absolute": ("{sentinel}/abs.png", None),
    "subfolder-dotdot": (None, "../../.."),
    "subfolder-absolute": (None, "{sentinel}"),
    "nul": ("a\x00b.png", None),
    "newline": ("line\nbreak.png", None),
    "long": ("x" * 5000 + ".png", None),
    "backslash": ("..\\..\\escape.png", None),
}


def hostile_names(server: FakeComfy, case: str, sentinel: Path) -> None:
    """Make ``server`` report the outputs under the hostile name of ``case`` (and serve them)."""
    name, subfolder = HOSTILE_NAMES[case]
    server.faults.hostile_output_name = name and name.replace("{sentinel}", str(sentinel))
    server.faults.hostile_output_subfolder = subfolder and subfolder.replace("{sentinel}",
                                                                           str(sentinel))


@pytest.mark.parametrize("case", ["dotdot", "subfolder-absolute", "nul"])
def test_hostile_output_names_are_refused_and_nothing_escapes(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path,
    daemon: Callable[..., Reconciler], case: str,
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    # The fake serves the real output under the hostile name: only the client can refuse.
    hostile_names(server, case, tmp_path / "sentinel")
    before = tree(tmp_path)
    refused(daemon(root), "refusing output")
    assert_contained(tmp_path, before, allowed=set())


@pytest.mark.parametrize("case", sorted(HOSTILE_NAMES))
def test_every_hostile_output_name_is_refused_by_run_job(
    fake_comfy: FakeComfy, tmp_path: Path, case: str
) -> None:
    (tmp_path / "sentinel").mkdir()
    hostile_names(fake_comfy, case, tmp_path / "sentinel")
    dest = tmp_path / "out" / "k.png"
    with fast_client(fake_comfy) as client, \
            pytest.raises(ComfyPermanentError, match="refusing output") as caught:
        run_job(client, prompt=image_graph(f"names/{case}"), prompt_id=prompt_id_for(case, 0),
                dest=dest, expect="image", timeout=20, poll=0.01, sleep=real_sleep)
    assert len(str(caught.value)) < 400, "the message shows the name cut short"
    assert [p for p in tmp_path.rglob("*")] == [tmp_path / "sentinel"]


def test_a_plain_output_name_in_a_nested_subfolder_is_fine(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.hostile_output_name = "ComfyUI_00001_.png"
    server.faults.hostile_output_subfolder = "some/deeper/folder"
    before = tree(tmp_path)
    built(daemon(root))
    assert_contained(tmp_path, before, allowed={TARGET})


# -- bodies of /view -------------------------------------------------------------------------


@pytest.mark.parametrize("mode, needle", [("not_png", "not a valid image"),
                                          ("wrong_size", "expected 128x72")])
def test_a_bad_image_is_refused(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path,
    daemon: Callable[..., Reconciler], mode: str, needle: str,
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.view_mode = mode  # type: ignore[assignment]
    before = tree(tmp_path)
    refused(daemon(root), "OutputError", needle)
    assert_contained(tmp_path, before, allowed=set())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
def test_a_2_gb_answer_is_cut_off_at_the_image_cap(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path,
    daemon: Callable[..., Reconciler], declared: bool,
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.view_mode = "huge"
    server.faults.huge_view_bytes = 2 << 30
    server.faults.huge_view_declared = declared
    before = tree(tmp_path)
    # The cap for a 128x72 image is a few tens of MB: 2 GB is refused early, not streamed.
    refused(daemon(root), "OutputError", "bytes")
    assert_contained(tmp_path, before, allowed=set())


@pytest.mark.timeout(60)
def test_a_trickled_answer_is_cut_off_by_the_request_deadline(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server, timeout_s=0.5)
    # One byte every 50 ms: no single read ever times out; the deadline must end it.
    server.faults.trickle("GET /history/*", interval=0.05)
    job = refused(daemon(root), "ComfyTransientError", "deadline")
    assert job.attempts == 1
    server.faults.release()


# -- JSON of the wrong shape -----------------------------------------------------------------


@pytest.mark.parametrize("route, body, needle", [
    ("GET /history/*", ["wrong", "shape"], "not an object"),
    ("GET /queue", {"queue_running": "nope"}, "not a list"),
    ("POST /prompt", ["wrong"], "did not answer an object"),
    ("POST /prompt", {"prompt_id": 5}, "not under the id keyframed chose"),
])
def test_json_of_the_wrong_shape_fails_the_job_clearly(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler],
    route: str, body: Any, needle: str,
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.wrong_shape_next(route, n=1000, body=body)
    before = tree(tmp_path)
    refused(daemon(root), "ComfyPermanentError", "unexpected answer", needle)
    assert_contained(tmp_path, before, allowed=set())


def test_object_info_of_the_wrong_shape_keeps_the_backend_down_until_it_is_right(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.wrong_shape_next("GET /object_info", n=1000)
    rec = daemon(root)
    rec.reconcile_once()
    health = backend_health(root)
    assert health["up"] is False and "/object_info is not an object" in health["error"]
    assert not server.records.prompts, "a job went to a backend that failed its preflight"
    job = job_of(rec)
    assert job.state == "ready" and job.attempts == 0
    server.faults.reset()
    built(rec)
    assert backend_health(root)["up"] is True
    assert list(submission_counts(server).values()) == [1]


# -- whose history entry ----------------------------------------------------------------------


def fast_client(server: FakeComfy, **kwargs: Any) -> ComfyClient:
    kwargs.setdefault("retry", RetryPolicy.immediate(2))
    return ComfyClient(server.url, name="fake", websocket=False,
                       timeout=httpx.Timeout(2.0, connect=1.0), **kwargs)


def real_sleep(seconds: float) -> None:
    threading.Event().wait(min(seconds, 0.01))


def finished_elsewhere(server: FakeComfy) -> tuple[str, dict[str, Any], bytes]:
    """A prompt someone else ran: its id, its history entry and its output's bytes."""
    with httpx.Client(base_url=server.url) as http:
        answer = http.post("/prompt", json={"prompt": image_graph("other/x", colour=0x00FF00)})
        other = answer.json()["prompt_id"]
        entry = wait_history(http, other)
        image = entry["outputs"]["3"]["images"][0]
        data = http.get("/view", params=image).content
    return other, entry, data


def test_a_history_entry_filed_under_another_id_is_not_taken_as_ours(
    fake_comfy: FakeComfy, tmp_path: Path
) -> None:
    other, entry, theirs = finished_elsewhere(fake_comfy)
    mine = prompt_id_for("hostile-history-other-id", 0)
    # The first lookups see only the other prompt's entry; ours is then submitted and run.
    fake_comfy.faults.wrong_shape_next("GET /history/*", n=2, body={other: entry})
    dest = tmp_path / "out" / "k.png"
    with fast_client(fake_comfy) as client:
        outcome = run_job(client, prompt=image_graph("mine/x", colour=0x0000FF), prompt_id=mine,
                          dest=dest, expect="image", timeout=20, poll=0.01, sleep=real_sleep)
    assert outcome.prompt_id == mine
    assert fake_comfy.records.prompt_ids == [other, mine]
    assert dest.read_bytes() != theirs
    with Image.open(dest) as image:
        assert image.convert("RGB").getpixel((0, 0)) != (0, 255, 0)


@pytest.mark.parametrize("shape", ["other-outputs", "not-an-entry", "outputs-a-list"])
def test_a_bad_entry_under_our_id_is_refused(
    fake_comfy: FakeComfy, tmp_path: Path, shape: str
) -> None:
    other, entry, _ = finished_elsewhere(fake_comfy)
    mine = prompt_id_for(f"hostile-history-{shape}", 0)
    body: Any = {"other-outputs": entry, "not-an-entry": "done, trust me",
                 "outputs-a-list": {**entry, "prompt": None, "outputs": ["x.png"]}}[shape]
    needle = {"other-outputs": f"belongs to prompt '{other}'",
              "not-an-entry": "entry is not an object",
              "outputs-a-list": "outputs is not an object"}[shape]
    fake_comfy.faults.wrong_shape_next("GET /history/*", n=1000, body={mine: body})
    dest = tmp_path / "out" / "k.png"
    with fast_client(fake_comfy) as client, pytest.raises(ComfyPermanentError) as caught:
        run_job(client, prompt=image_graph("mine/x"), prompt_id=mine, dest=dest,
                expect="image", timeout=20, poll=0.01, sleep=real_sleep)
    assert needle in str(caught.value)
    assert not dest.parent.exists()
    assert fake_comfy.records.prompt_ids == [other], "nothing of ours was submitted"


# -- slow answers ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("route", ["GET /history/*", "GET /view"])
def test_the_client_bounds_a_whole_trickled_request(
    fake_comfy: FakeComfy, tmp_path: Path, route: str
) -> None:
    with httpx.Client(base_url=fake_comfy.url) as http:
        entry = wait_history(http, http.post("/prompt", json={
            "prompt": image_graph("slow/x")}).json()["prompt_id"])
    body = json.dumps(entry) if route.startswith("GET /history") else "x" * 2000
    fake_comfy.faults.trickle(route, interval=0.05)
    prompt_id = entry["prompt"][1]
    dest = tmp_path / "k.png"
    started = time.monotonic()
    with fast_client(fake_comfy, request_deadline=0.5) as client, \
            pytest.raises(ComfyTransientError, match="deadline"):
        run_job(client, prompt=image_graph("slow/x"), prompt_id=prompt_id, dest=dest,
                expect="image", timeout=0.5, poll=0.01, sleep=real_sleep)
    elapsed = time.monotonic() - started
    # Unbounded, the body alone would take len(body) * 50 ms (well over a minute).
    assert elapsed < len(body) * 0.05 / 4, elapsed
    assert not dest.exists()
    fake_comfy.faults.release()


def test_deadline_transport_passes_a_prompt_answer_and_cuts_a_slow_one() -> None:
    now = [0.0]

    def slow_chunks() -> Iterator[bytes]:
        for _ in range(10):
            now[0] += 1.0
            yield b"x"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/fast":
            return httpx.Response(200, content=b"{}")
        return httpx.Response(200, content=slow_chunks())

    transport = DeadlineTransport(httpx.MockTransport(handler), 5.0, clock=lambda: now[0])
    with httpx.Client(transport=transport, base_url="http://comfy") as http:
        assert http.get("/fast").json() == {}
        with pytest.raises(httpx.ReadTimeout, match="deadline"):
            http.get("/slow")
        now[0] = 0.0
        answer = http.get("/slow", extensions={"kf_deadline": 20.0})
        assert answer.content == b"x" * 10


# -- storms and outages ----------------------------------------------------------------------


def test_a_5xx_storm_marks_the_backend_down_then_the_job_goes_through_once(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.faults.fail_next("*", n=100_000, status=503)
    rec = daemon(root, LAYER)
    rec.reconcile_once()
    health = backend_health(root)
    assert health["up"] is False and "503" in health["error"]
    assert not server.records.prompts
    assert all(j.attempts == 0 for j in rec.jobs.latest().values())
    server.faults.reset()
    built(rec, LAYER)
    assert backend_health(root)["up"] is True
    counts = submission_counts(server)
    assert len(counts) == 2 and set(counts.values()) == {1}  # the style asset and the layer


def test_a_short_5xx_storm_is_ridden_out_within_the_retry_budget(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory(job_seconds=0.2)
    root = hostile_project(tmp_path, server, max_attempts=3)
    # Lookups and the download of the style asset are retried inside one attempt; the
    # layer's upload fails three times (one attempt lost, the backend probed) and once more.
    server.faults.fail_next("GET /history/*", n=2, status=502)
    server.faults.fail_next("GET /view", n=2, status=503)
    server.faults.fail_next("POST /upload/image", n=4, status=502)
    rec = daemon(root, LAYER)
    built(rec, LAYER)
    assert job_of(rec, TARGET).attempts == 0
    assert job_of(rec, LAYER).attempts == 1
    counts = submission_counts(server)
    assert len(counts) == 2 and set(counts.values()) == {1}
    assert backend_health(root)["up"] is True


def test_connection_refused_then_up_runs_the_job_once(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    server.go_down()
    rec = daemon(root)
    rec.reconcile_once()
    health = backend_health(root)
    assert health["up"] is False and health["error"]
    assert job_of(rec).state == "ready" and job_of(rec).attempts == 0
    server.come_up()
    built(rec)
    assert backend_health(root)["up"] is True
    assert list(submission_counts(server).values()) == [1]


def test_a_server_that_dies_mid_job_and_comes_back_finishes_it(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server, max_attempts=3)
    server.faults.hold_jobs()
    rec = daemon(root)
    assert rec.reconcile_once().ok
    server.faults.wait_held()
    server.go_down()
    deadline = time.monotonic() + 30
    while rec.inflight and time.monotonic() < deadline:  # the worker sees the refusals
        rec.wake.wait(0.05)
        rec.reconcile_once()
    assert backend_health(root)["up"] is False
    server.faults.release_jobs()
    server.come_up()
    built(rec)
    assert backend_health(root)["up"] is True
    # Lost with the server's queue: submitted again once, under the same id.
    assert list(submission_counts(server).values()) == [2]


def test_a_restart_on_an_empty_input_folder_gets_the_inputs_again(
    fake_comfy_factory: FakeComfyFactory, tmp_path: Path, daemon: Callable[..., Reconciler]
) -> None:
    server = fake_comfy_factory()
    root = hostile_project(tmp_path, server)
    rec = daemon(root, LAYER)
    built(rec, LAYER)
    uploads = len(server.records.uploads)
    server.restart(clear_uploads=True)  # a container without a volume, say
    assets = root / "assets.json"
    assets.write_text(assets.read_text(encoding="utf-8").replace("red armor", "blue armor"),
                      encoding="utf-8")
    built(rec, LAYER)  # not "Invalid image file" for ever
    assert len(server.records.uploads) > uploads
    assert job_of(rec, LAYER).attempts == 0


@pytest.mark.parametrize("route", ["GET /object_info", "GET /history/*", "GET /queue"])
def test_a_json_answer_of_gigabytes_is_not_read_into_memory(
    fake_comfy: FakeComfy, route: str
) -> None:
    # A server (or something in front of it) answering 4 GiB of JSON: keyframed stops reading
    # at its bound (MAX_ANSWER_BYTES) with a permanent error naming the server (issue 14).
    fake_comfy.faults.flood_next(route, n=10)
    client = ComfyClient(fake_comfy.url, name="gpu", websocket=False,
                         retry=RetryPolicy(attempts=1))
    started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with client, pytest.raises(ComfyPermanentError, match=r"over the \d+ bytes keyframed reads"):
        if route == "GET /object_info":
            client.preflight()
        else:  # /history/{id} first, then /queue
            client.lookup("c3b1fd6e-4c55-5b7c-8d5a-2f6b0e3a9c11")
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - started
    assert grown_kib < 3 * (MAX_ANSWER_BYTES >> 10)
