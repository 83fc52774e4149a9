"""Probes' HTTP has a total deadline: a reply dripping one byte a second does not hold a probe.

Run in a child process, as probes run: gevent-patched (the test process must never be patched).
"""

from __future__ import annotations

import subprocess
import sys

from tests.integration.test_hostile_target import hostile
from tests.locust_run import ROOT

PROBE = """
from gevent import monkey; monkey.patch_all()
import sys, requests
from loadtest.config.settings import PlayerSettings
from loadtest.probes.http import probe_session
try:
    r = probe_session(PlayerSettings(), None).post(sys.argv[1] + "/request_token", json={}, timeout=1.5)
    print("completed", r.status_code, len(r.content))
except requests.RequestException as exc:
    print("refused:", exc)
"""


def test_a_dripping_reply_is_cut_at_the_probe_deadline() -> None:
    with hostile("drip_token") as url:
        done = subprocess.run([sys.executable, "-c", PROBE, url], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    # Without the deadline the read timeout (1.5 s) never fires: a byte arrives every second.
    assert "refused:" in done.stdout and "no complete reply within 1.5 s" in done.stdout, done.stdout
