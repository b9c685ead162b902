"""The fake ComfyUI beyond the recordings: validation rules, execution, files, queue, sockets."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from websockets.sync.client import connect

from tests.fakecomfy import DEFAULT_MODELS, FakeComfy, fixtures
from tests.fakecomfy.fixtures import FakeComfyFactory, object_info_path
from tests.fakecomfy.testkit import (
    image_graph,
    messages_until_done,
    png,
    qwen_edit_graph,
    receive,
    upload,
    video_graph,
    wait_history,
)

REPO = Path(__file__).resolve().parents[2]
# Until tests/conftest.py registers tests.fakecomfy.fixtures as a plugin.
fake_comfy = fixtures.fake_comfy
fake_comfy_factory = fixtures.fake_comfy_factory


@pytest.fixture
def client(fake_comfy: FakeComfy) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake_comfy.url, timeout=10) as http:
        yield http


def submit(client: httpx.Client, prompt: dict[str, Any], **body: Any) -> str:
    r = client.post("/prompt", json={"prompt": prompt, **body})
    assert r.status_code == 200, r.text
    prompt_id: str = r.json()["prompt_id"]
    return prompt_id


def run(client: httpx.Client, prompt: dict[str, Any], **body: Any) -> dict[str, Any]:
    """Submit and wait for the history entry."""
    return wait_history(client, submit(client, prompt, **body))


def refused(client: httpx.Client, prompt: Any) -> dict[str, Any]:
    r = client.post("/prompt", json={"prompt": prompt})
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    return body


def only_error(body: dict[str, Any], node_id: str) -> dict[str, Any]:
    errors = body["node_errors"][node_id]["errors"]
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    return error


def output_file(server: FakeComfy, image: dict[str, str]) -> Path:
    return server.dirs.output / image["subfolder"] / image["filename"]


# -- validation ------------------------------------------------------------------------------


def test_body_without_prompt_is_no_prompt(client: httpx.Client) -> None:
    r = client.post("/prompt", json={"client_id": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "no_prompt"


def test_node_without_class_type_is_invalid_prompt(client: httpx.Client) -> None:
    body = refused(client, {"7": {"inputs": {}}})
    assert body["error"]["type"] == "invalid_prompt"
    assert body["error"]["details"] == "Node ID '#7'"
    assert "missing the class_type" in body["error"]["message"]


@pytest.mark.parametrize(
    ("inputs", "kind", "message"),
    [
        ({"width": 8}, "value_smaller_than_min", "Value 8 smaller than min of 16"),
        (
            {"width": "wide"},
            "invalid_input_type",
            "Failed to convert an input value to a INT value",
        ),
        ({"width": 20000}, "value_bigger_than_max", "Value 20000 bigger than max of 16384"),
    ],
)
def test_number_inputs(
    client: httpx.Client, inputs: dict[str, Any], kind: str, message: str
) -> None:
    graph = image_graph()
    graph["1"]["class_type"] = "EmptySD3LatentImage"  # width min 16, max 16384
    graph["1"]["inputs"] = {"width": 64, "height": 64, "batch_size": 1, **inputs}
    graph["2"] = {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["4", 0]}}
    graph["4"] = {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}}
    error = only_error(refused(client, graph), "1")
    assert (error["type"], error["message"]) == (kind, message)
    assert error["extra_info"]["input_name"] == "width"


def test_long_combo_lists_are_not_echoed(client: httpx.Client) -> None:
    graph = qwen_edit_graph("x.png")
    upload(client, "x.png", png((1, 2, 3)))
    graph["8"]["inputs"]["sampler_name"] = "no_such_sampler"
    error = only_error(refused(client, graph), "8")
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_config"] is None
    assert error["details"].startswith("sampler_name: 'no_such_sampler' not in (list of length ")


def test_v3_combo_and_link_errors(client: httpx.Client) -> None:
    graph = image_graph()
    graph["2"] = {
        "class_type": "ImageBlend",
        "inputs": {
            "image1": ["1", 0],
            "image2": ["1", 0, 9],
            "blend_factor": 0.5,
            "blend_mode": "hue",
        },
    }
    graph["3"]["inputs"]["images"] = ["4", 0]
    graph["4"] = {"class_type": "VAELoader", "inputs": {"vae_name": "pixel_space"}}
    body = refused(client, graph)
    kinds = {e["type"] for e in body["node_errors"]["3"]["errors"]}
    assert kinds == {"return_type_mismatch"}
    graph["3"]["inputs"]["images"] = ["2", 0]
    kinds = {e["type"] for e in refused(client, graph)["node_errors"]["2"]["errors"]}
    assert kinds == {"bad_linked_input", "value_not_in_list"}


def test_links_to_missing_nodes_raise_during_validation(client: httpx.Client) -> None:
    graph = image_graph()
    graph["3"]["inputs"]["images"] = ["99", 0]
    error = only_error(refused(client, graph), "3")
    assert error["type"] == "exception_during_validation"
    assert error["details"] == "'99'"
    graph = image_graph()
    graph["2"]["inputs"]["image"] = ["1", 5]  # EmptyImage has one output
    error = only_error(refused(client, graph), "2")
    assert error["type"] == "exception_during_inner_validation"
    assert error["extra_info"]["exception_type"] == "IndexError"


def test_only_outputs_and_ancestors_are_checked_and_values_coerced(client: httpx.Client) -> None:
    graph = image_graph()
    graph["1"]["inputs"]["width"] = "64"
    graph["9"] = {"class_type": "EmptyImage", "inputs": {"width": -5}}  # disconnected, broken
    entry = run(client, graph)
    assert entry["prompt"][2]["1"]["inputs"]["width"] == 64
    assert entry["status"]["status_str"] == "success"


def test_one_bad_output_among_good_ones_still_runs(client: httpx.Client) -> None:
    graph = image_graph()
    graph["4"] = {"class_type": "SaveImage", "inputs": {"filename_prefix": "x"}}
    r = client.post("/prompt", json={"prompt": graph})
    assert r.status_code == 200
    assert r.json()["node_errors"]["4"]["errors"][0]["type"] == "required_input_missing"
    entry = wait_history(client, r.json()["prompt_id"])
    assert list(entry["outputs"]) == ["3"]


def test_partial_execution_targets(client: httpx.Client) -> None:
    graph = image_graph()
    graph["4"] = {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}}
    entry = run(client, graph, partial_execution_targets=["4"])
    assert list(entry["outputs"]) == ["4"]
    r = client.post("/prompt", json={"prompt": graph, "partial_execution_targets": ["2"]})
    assert r.json()["error"]["type"] == "prompt_no_outputs"


# -- models ----------------------------------------------------------------------------------


def test_default_models_fill_the_loader_lists(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    info = client.get("/object_info/LoraLoaderModelOnly").json()["LoraLoaderModelOnly"]
    assert info["input"]["required"]["lora_name"][0] == sorted(DEFAULT_MODELS["loras"])
    vae = client.get("/api/object_info").json()["VAELoader"]["input"]["required"]["vae_name"][0]
    assert vae == [*sorted(DEFAULT_MODELS["vae"]), "pixel_space"]
    assert client.get("/models/diffusion_models").json() == sorted(
        DEFAULT_MODELS["diffusion_models"]
    )
    assert client.get("/models/unet").status_code == 404
    assert client.get("/object_info/NoSuchNode").json() == {}
    fake_comfy.install_model("loras", "new.safetensors")
    assert "new.safetensors" in client.get("/models/loras").json()


def test_model_not_installed_is_refused_until_installed(
    fake_comfy_factory: FakeComfyFactory,
) -> None:
    server = fake_comfy_factory(models={"loras": ["only.safetensors"]})
    with httpx.Client(base_url=server.url) as http:
        upload(http, "ref.png", png((9, 9, 9)))
        body = http.post("/prompt", json={"prompt": qwen_edit_graph("ref.png")}).json()
        assert set(body["node_errors"]) == {"1", "2", "3", "4"}
        for folder, names in DEFAULT_MODELS.items():
            server.set_models(folder, names)
        assert http.post("/prompt", json={"prompt": qwen_edit_graph("ref.png")}).status_code == 200


# -- execution -------------------------------------------------------------------------------


def test_save_image_writes_a_png_of_the_latent_size(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    upload(client, "ref.png", png((200, 100, 50), (300, 200)))
    entry = run(client, qwen_edit_graph("ref.png", size=(96, 64)))
    image = entry["outputs"]["10"]["images"][0]
    assert image == {"filename": "edit_00001_.png", "subfolder": "kf", "type": "output"}
    with Image.open(output_file(fake_comfy, image)) as saved:
        assert (saved.format, saved.size) == ("PNG", (96, 64))
        assert json.loads(saved.info["prompt"])["8"]["inputs"]["seed"] == 1


def test_pixels_follow_seed_text_and_input_bytes(fake_comfy_factory: FakeComfyFactory) -> None:
    def pixels(server: FakeComfy, ref: bytes, **graph: Any) -> bytes:
        with httpx.Client(base_url=server.url) as http:
            name = upload(http, "ref.png", ref, {"overwrite": "true"}).json()["name"]
            image = run(http, qwen_edit_graph(name, **graph))["outputs"]["10"]["images"][0]
        with Image.open(output_file(server, image)) as saved:
            return saved.tobytes()

    one, two = fake_comfy_factory(), fake_comfy_factory()
    ref, other = png((1, 2, 3)), png((3, 2, 1))
    baseline = pixels(one, ref)
    assert pixels(two, ref) == baseline  # another server, same inputs
    assert pixels(one, ref, seed=2) != baseline
    assert pixels(one, ref, text="a ninja") != baseline
    assert pixels(one, other) != baseline


def test_identical_resubmission_is_cached(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    first = run(client, image_graph())
    written = fake_comfy.records.files_written
    again = run(client, image_graph())
    assert again["outputs"] == first["outputs"]
    assert fake_comfy.records.files_written == written
    assert again["status"]["messages"][1][1]["nodes"] == ["1", "2", "3"]
    changed = run(client, image_graph(colour=0x00FF00))
    assert changed["outputs"]["3"]["images"][0]["filename"] == "x_00002_.png"


def test_classic_cache_keeps_only_the_previous_prompt(client: httpx.Client) -> None:
    run(client, image_graph(prefix="a"))
    run(client, image_graph(prefix="b"))
    entry = run(client, image_graph(prefix="a"))
    assert entry["status"]["messages"][1][1]["nodes"] == ["1", "2"]
    assert entry["outputs"]["3"]["images"][0]["filename"] == "a_00002_.png"


def test_models_reload_only_when_the_loader_is_not_cached(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    upload(client, "ref.png", png((3, 3, 3)))
    run(client, qwen_edit_graph("ref.png", seed=1))
    run(client, qwen_edit_graph("ref.png", seed=2))  # same loaders: cached
    lora = qwen_edit_graph("ref.png", seed=2)
    lora["2"]["inputs"]["lora_name"] = "InStyle-0.5.safetensors"
    run(client, lora)
    loads = fake_comfy.records.model_loads
    assert [name for _, name in loads].count("qwen_image_vae.safetensors") == 1
    assert loads[-1] == ("loras", "InStyle-0.5.safetensors")
    assert len(loads) == 5  # unet, lora, clip, vae, then only the new lora


@pytest.mark.parametrize(
    ("saver", "ext", "magic"),
    [
        ("SaveVideo", ".mp4", None),
        ("SaveWEBM", ".webm", b"\x1a\x45\xdf\xa3"),
        ("SaveAnimatedWEBP", ".webp", b"RIFF"),
        ("SaveAnimatedPNG", ".png", b"\x89PNG"),
    ],
)
def test_animated_outputs(
    fake_comfy: FakeComfy,
    client: httpx.Client,
    saver: str,
    ext: str,
    magic: bytes | None,
) -> None:
    entry = run(client, video_graph(saver))
    output = entry["outputs"]["3"]
    assert output["animated"] == [True]
    data = output_file(fake_comfy, output["images"][0]).read_bytes()
    assert output["images"][0]["filename"].endswith(ext)
    if magic is None:
        assert data[4:8] == b"ftyp"
        assert b"moov" in data and b"mdat" in data
    else:
        assert data.startswith(magic)
    if saver in ("SaveAnimatedWEBP", "SaveAnimatedPNG"):
        with Image.open(io.BytesIO(data)) as animation:
            assert getattr(animation, "n_frames", 1) > 1


def test_sampler_reports_progress_and_job_time_is_spent(
    fake_comfy_factory: FakeComfyFactory,
) -> None:
    server = fake_comfy_factory(job_seconds=0.05)
    with httpx.Client(base_url=server.url) as http, connect(f"{server.ws_url}?clientId=me") as ws:
        receive(ws)
        upload(http, "ref.png", png((5, 5, 5)))
        prompt_id = submit(http, qwen_edit_graph("ref.png", steps=3), client_id="me")
        messages = messages_until_done(ws, prompt_id)
    progress = [m["data"] for m in messages if m["type"] == "progress"]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [
        (1, 3, "8"),
        (2, 3, "8"),
        (3, 3, "8"),
    ]
    executing = [m["data"]["node"] for m in messages if m["type"] == "executing"]
    assert executing[-1] is None
    assert executing.index("8") < executing.index("9") < executing.index("10")


def test_executing_null_comes_after_history(client: httpx.Client, fake_comfy: FakeComfy) -> None:
    with connect(f"{fake_comfy.ws_url}?clientId=abc") as ws:
        assert receive(ws)["data"]["sid"] == "abc"
        prompt_id = submit(client, image_graph(), client_id="abc")
        messages_until_done(ws, prompt_id)
        assert prompt_id in client.get(f"/history/{prompt_id}").json()


def test_no_client_id_means_no_prompt_events(client: httpx.Client, fake_comfy: FakeComfy) -> None:
    with connect(f"{fake_comfy.ws_url}?clientId=watcher") as ws:
        receive(ws)
        prompt_id = submit(client, image_graph())
        wait_history(client, prompt_id)
        submit(client, image_graph(prefix="marker"), client_id="watcher")
        kinds: list[str] = []
        while not kinds or kinds[-1] != "execution_start":
            kinds.append(receive(ws)["type"])
    # Only broadcasts (status, progress_state) came for the prompt without a client id.
    assert set(kinds[:-1]) <= {"status", "progress_state"}


# -- queue and history -----------------------------------------------------------------------


def test_priority_number_and_front(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    fake_comfy.faults.hold_jobs()
    blocker = submit(client, image_graph(prefix="blocker"))
    fake_comfy.faults.wait_held()
    late = submit(client, image_graph(prefix="late"), number=50)
    early = submit(client, image_graph(prefix="early"), number=2)
    front = submit(client, image_graph(prefix="front"), front=True)
    numbers = sorted(item[0] for item in client.get("/queue").json()["queue_pending"])
    assert numbers == [-1, 2.0, 50.0]  # only prompts without a number use the counter
    fake_comfy.faults.release_jobs()
    fake_comfy.wait_idle()
    assert list(fake_comfy.history()) == [blocker, front, early, late]


def test_queue_clear_and_interrupt_of_another_id(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    fake_comfy.faults.hold_jobs()
    running = submit(client, image_graph(prefix="run"))
    fake_comfy.faults.wait_held()
    queued = submit(client, image_graph(prefix="p1"))
    submit(client, image_graph(prefix="p2"))
    assert client.get(f"/history/{queued}").json() == {}
    assert client.get(f"/history/{running}").json() == {}
    assert client.post("/interrupt", json={"prompt_id": "not-running"}).text == ""
    assert client.post("/queue", json={"clear": True}).status_code == 200
    queue = client.get("/queue").json()
    assert (len(queue["queue_running"]), queue["queue_pending"]) == (1, [])
    assert client.post("/interrupt").status_code == 200  # no body: global interrupt
    entry = wait_history(client, running)
    assert entry["status"]["messages"][-1][0] == "execution_interrupted"


def test_history_paging_delete_and_reused_ids(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    ids = [run(client, image_graph(prefix=f"h{i}"))["prompt"][1] for i in range(4)]
    assert list(client.get("/history", params={"max_items": 2}).json()) == ids[2:]
    assert list(client.get("/history", params={"offset": 1, "max_items": 2}).json()) == ids[1:3]
    assert client.get("/history", params={"max_items": "x"}).status_code == 500
    client.post("/history", json={"delete": [ids[0]]})
    assert client.get(f"/history/{ids[0]}").json() == {}
    reused = run(client, image_graph(prefix="again"), prompt_id=ids[1])
    assert reused["outputs"]["3"]["images"][0]["filename"].startswith("again_")
    assert fake_comfy.records.prompt_ids.count(ids[1]) == 2
    client.post("/api/history", json={"clear": True})
    assert client.get("/history").json() == {}


# -- uploads and /view -----------------------------------------------------------------------


def test_upload_rules(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    data = png((1, 1, 1))
    assert upload(client, "a.png", data).json()["name"] == "a.png"
    assert upload(client, "a.png", png((2, 2, 2))).json()["name"] == "a (1).png"
    assert upload(client, "a.png", png((2, 2, 2))).json()["name"] == "a (1).png"  # dedupe
    assert upload(client, "../evil.png", data).status_code == 400
    assert upload(client, "a.png", data, {"subfolder": "/etc"}).status_code == 400
    assert upload(client, "a.png", data, {"type": "elsewhere"}).status_code == 500
    out = upload(client, "o.png", data, {"type": "output", "subfolder": "deep/er"})
    assert out.json() == {"name": "o.png", "subfolder": "deep/er", "type": "output"}
    assert (fake_comfy.dirs.output / "deep" / "er" / "o.png").read_bytes() == data
    records = fake_comfy.records.uploads
    assert [(r.name, r.written) for r in records[:3]] == [
        ("a.png", True),
        ("a (1).png", True),
        ("a (1).png", False),
    ]
    assert records[0].sha256 == hashlib.sha256(data).hexdigest()


def test_view_rules(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    upload(client, "in.png", png((4, 4, 4)), {"subfolder": "s"})
    r = client.get("/view", params={"filename": "in.png [input]", "subfolder": "s"})
    assert (r.status_code, r.headers["content-type"]) == (200, "image/png")
    assert 'filename="in.png"' in r.headers["content-disposition"]
    assert (
        client.get(
            "/view", params={"filename": "in.png", "subfolder": "../..", "type": "input"}
        ).status_code
        == 403
    )
    assert client.get("/view", params={"filename": "/etc/passwd"}).status_code == 400
    assert client.get("/view", params={"filename": "in.png", "type": "nope"}).status_code == 400
    assert client.get("/view").status_code == 404
    (fake_comfy.dirs.output / "page.html").write_text("<script></script>")
    html = client.get("/view", params={"filename": "page.html"})
    assert html.headers["content-type"] == "application/octet-stream"


def test_load_image_accepts_subfolders_and_annotations(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    upload(client, "p.png", png((7, 7, 7)), {"subfolder": "refs"})
    graph: dict[str, Any] = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "refs/p.png"}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "copy"}},
    }
    first = run(client, graph)["outputs"]["2"]["images"][0]
    graph["1"]["inputs"]["image"] = f"{first['filename']} [output]"
    assert run(client, graph)["status"]["status_str"] == "success"
    assert (
        client.get("/object_info/LoadImage").json()["LoadImage"]["input"]["required"]["image"][0]
        == []
    )


# -- websocket -------------------------------------------------------------------------------


def test_websocket_without_client_id_and_feature_flags(fake_comfy: FakeComfy) -> None:
    with connect(fake_comfy.ws_url) as ws:
        hello = receive(ws)
        assert hello["type"] == "status" and len(hello["data"]["sid"]) == 32
        ws.send(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
        flags = receive(ws)
        assert flags["type"] == "feature_flags"
        assert flags["data"]["max_upload_size"] == 100 * 1024 * 1024


def test_reconnect_while_running_gets_the_current_node(
    fake_comfy: FakeComfy, client: httpx.Client
) -> None:
    fake_comfy.faults.hold_jobs(node_id="2")
    prompt_id = submit(client, image_graph(), client_id="re")
    fake_comfy.faults.wait_held()
    with connect(f"{fake_comfy.ws_url}?clientId=re") as ws:
        assert receive(ws)["type"] == "status"
        assert receive(ws) == {"type": "executing", "data": {"node": "2"}}
        fake_comfy.faults.release_jobs()
        kinds = [m["type"] for m in messages_until_done(ws, prompt_id)]
    assert kinds[-3:] == ["execution_success", "status", "executing"]


# -- standalone ------------------------------------------------------------------------------


def test_runs_standalone(shared_dir: Path, tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "tests.fakecomfy",
        "--port",
        str(port),
        "--object-info",
        str(object_info_path(shared_dir)),
        "--output-dir",
        str(tmp_path / "out"),
        "--base-dir",
        str(tmp_path / "base"),
        "--job-seconds",
        "0.01",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            assert f"listening on http://127.0.0.1:{port}" in proc.stdout.readline()
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
                entry = run(http, image_graph())
            assert (
                tmp_path / "out" / "t" / entry["outputs"]["3"]["images"][0]["filename"]
            ).is_file()
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) == 0


def test_prefix_variables(fake_comfy: FakeComfy, client: httpx.Client) -> None:
    graph = image_graph(prefix="sized/%width%x%height%", size=(40, 30))
    image = run(client, graph)["outputs"]["3"]["images"][0]
    assert (image["subfolder"], image["filename"]) == ("sized", "40x30_00001_.png")
    graph = image_graph(prefix="../outside")
    entry = run(client, graph)
    assert entry["status"]["messages"][-1][1]["exception_message"].startswith("**** ERROR: Saving")


def test_taken_port_fails_cleanly(fake_comfy: FakeComfy, shared_dir: Path, tmp_path: Path) -> None:
    clash = FakeComfy(object_info_path(shared_dir), tmp_path, port=fake_comfy.port)
    with pytest.raises(OSError):
        clash.start()
    assert not clash.is_up
