"""Each test started from the web UI is a run of its own, without a browser: Locust's own HTTP API
starts and stops tests in one ``loadtest run --web`` process, and each run folder is finished
with its report (the browser test, ``test_webui.py``, needs Chromium; this one does not).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

SCENARIO = """
[scenario]
name = "webruns-check"
duration = "5m"

[load]
users = 4
spawn_rate = 4
workers = 2

[player]
session_length = "5m"
input_rate = 5

[[gates]]
expr = "ws.sessions_opened >= 1"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:g} s")


@pytest.mark.xdist_group("heavy")  # a web UI steering real tests: its waits assume a core to itself
def test_two_tests_from_the_web_ui_are_two_finished_run_folders(tmp_path: Path) -> None:
    scenario = tmp_path / "webruns.toml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    port = _free_port()
    out = tmp_path / "out"
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "loadtest", "run", str(scenario), "--web", "--web-port", str(port), "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    http = requests.Session()

    def runs() -> dict[str, Any]:
        return http.get(f"{url}/loadtest/runs.json", timeout=5).json()

    def sessions_live() -> bool:
        stats = http.get(f"{url}/stats/requests", timeout=5).json()
        return any(table["data"] for table in stats.get("extended_stats", []))

    try:
        _until("the web UI answering", lambda: http.get(url + "/", timeout=5).status_code == 200)
        assert runs() == {"finished": [], "current": None}

        # First test: started and stopped from the page's API.
        assert http.post(f"{url}/swarm", data={"user_count": 4, "spawn_rate": 4}, timeout=10).json()["success"]
        _until("the first run folder", lambda: runs()["current"] == str(out))
        _until("the live summary", sessions_live)
        assert http.get(f"{url}/loadtest/report", timeout=10).status_code == 409, "no report while it runs"
        time.sleep(3)  # a few seconds of play, so the folder has whole seconds to judge
        http.post(f"{url}/stop", timeout=30)
        _until("the first report", lambda: runs() == {"finished": [str(out)], "current": None}, timeout=120)
        assert http.get(f"{url}/loadtest/report", timeout=10).status_code == 200

        # Second test in the same process: a folder of its own, finished by the quit that ends it.
        second = out.with_name("out-2")
        assert http.post(f"{url}/swarm", data={"user_count": 4, "spawn_rate": 4}, timeout=10).json()["success"]
        _until("the second run folder", lambda: runs()["current"] == str(second))
        _until("records of the second run", lambda: (second / "data" / "aggregates.jsonl").stat().st_size > 0)
        time.sleep(3)
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate(timeout=10)

    assert "Traceback" not in output, output[-4000:]
    for folder in (out, second):
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
        assert summary["ws"]["sessions_opened"] >= 4, folder
        assert [g["name"] for g in summary["gates"]] == ["ws.sessions_opened >= 1"], folder
        assert (folder / "report.html").exists() and (folder / "junit.xml").exists(), folder
    assert proc.returncode == 0, output[-4000:]
