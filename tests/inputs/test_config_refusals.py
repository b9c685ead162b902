"""Configuration that ``validate`` used to accept and ``run`` then tripped over (issue 14).

Each case goes through the real CLI on a copy of the example with a bad ``keyframed.toml``:
``validate`` must refuse it with the file and the fix, and ``run`` must exit non-zero at once
with the same message instead of retrying forever or silently using the defaults. Plus: a
password in a backend URL is shown nowhere.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.planning import copy_sample

CLI = [sys.executable, "-m", "keyframed"]


def cli(root: Path, *args: str,
        user_config: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYFRAMED_CONFIG": str(user_config or root.parent / "none.toml")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def with_config(tmp_path: Path, text: str) -> Path:
    root = copy_sample(tmp_path / "p")
    (root / "keyframed.toml").write_text(text, encoding="utf-8")
    return root


def backend(url: str) -> str:
    return f'[[backends]]\nname = "gpu"\nkind = "comfyui"\nurl = "{url}"\n'


BAD = {
    "infinite resync": ("[watch]\nresync_s = inf\n", "resync_s"),
    "nan resync": ("[watch]\nresync_s = nan\n", "resync_s"),
    "url that does not parse": (backend("http://[::1"), "not a URL"),
    "another scheme": (backend("ftp://127.0.0.1:8188"), "scheme must be http or https"),
    "impossible port": (backend("http://127.0.0.1:99999"), "not a URL"),
    "port zero": (backend("http://127.0.0.1:0"), "port 0"),
    "no host": (backend("http:///prompt"), "names no host"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_and_run_refuse_what_run_would_trip_over(tmp_path: Path, case: str) -> None:
    text, expected = BAD[case]
    root = with_config(tmp_path, text)
    checked = cli(root, "validate", str(root))
    assert checked.returncode == 1, checked.stdout + checked.stderr
    assert expected in checked.stdout + checked.stderr
    assert "keyframed.toml" in checked.stdout + checked.stderr
    ran = cli(root, "run", str(root), "--timeout", "60")
    assert ran.returncode != 0
    assert expected in ran.stdout + ran.stderr
    assert not (root / "scene-01" / "keyframe-start.png").exists()  # nothing was built


@pytest.mark.parametrize("what", ["folder", "fifo", "dangling link"])
def test_a_config_that_is_not_a_regular_file_is_refused(tmp_path: Path, what: str) -> None:
    root = copy_sample(tmp_path / "p")
    target = root / "keyframed.toml"
    target.unlink(missing_ok=True)
    if what == "folder":
        target.mkdir()
    elif what == "fifo":
        os.mkfifo(target)
    else:
        target.symlink_to(root / "nowhere.toml")
    for command in ("validate", "run"):
        done = cli(root, command, str(root))
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "not a config file" in done.stdout + done.stderr, (command, done.stderr)


def test_a_user_config_that_is_a_folder_is_refused(tmp_path: Path) -> None:
    root = copy_sample(tmp_path / "p")
    folder = tmp_path / "config.toml"
    folder.mkdir()
    done = cli(root, "validate", str(root), user_config=folder)
    assert done.returncode == 1
    assert f"{folder}: is a folder" in done.stdout + done.stderr


def test_a_password_in_a_backend_url_is_shown_nowhere(tmp_path: Path) -> None:
    secret = "hunter2-secret-pw"
    # Nothing listens on port 9 (discard): the backend is down, so its URL lands in every
    # place that explains why (status, doctor, the run's message).
    root = with_config(tmp_path, 'approval = "auto"\n' + backend(f"http://kf:{secret}@127.0.0.1:9"))
    ran = cli(root, "run", str(root), "--timeout", "3")
    status = cli(root, "status", str(root), "--json")
    doctor = cli(root, "doctor", str(root))
    shown = [ran.stdout, ran.stderr, status.stdout, status.stderr, doctor.stdout, doctor.stderr,
             (root / "status.json").read_text()]
    assert "127.0.0.1:9" in doctor.stdout + doctor.stderr  # the server is named...
    for text in shown:
        assert secret not in text  # ...its password never
    backends = json.loads((root / "status.json").read_text())["backends"]
    assert backends[0]["url"] == "http://kf:***@127.0.0.1:9"
