"""``loadtest serve --check``: one real client walks the whole protocol against a running backend.

It proves a fresh install works end to end (token, join, ticket, WebSocket, ticks, input acks, a
refused replay) and reports the tick rate measured from the server's own tick numbers and
timestamps.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import aiohttp


@dataclass
class CheckResult:
    ticks: int
    tick_rate_hz: float
    acked: int
    replay_refused: bool

    @property
    def ok(self) -> bool:
        return self.ticks > 0 and self.acked > 0 and self.replay_refused


async def run_check(base_url: str, seconds: float) -> CheckResult:
    ws_url = base_url.replace("http", "ws", 1) + "/connect"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=seconds + 15)) as http:
        async with http.post(f"{base_url}/request_token", json={"name": "self-check"}) as r:
            r.raise_for_status()
            token = (await r.json())["token"]
        async with http.post(f"{base_url}/join", json={}, headers={"Authorization": f"Bearer {token}"}) as r:
            r.raise_for_status()
            ticket = (await r.json())["ticket"]
        first = last = None
        ticks = acked = seq = 0
        async with http.ws_connect(ws_url, params={"ticket": ticket}) as ws:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                msg = await ws.receive(timeout=2.0)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                data = json.loads(msg.data)
                if data.get("type") != "tick":
                    continue
                first = first or (data["tick"], data["ts"])
                last = (data["tick"], data["ts"])
                ticks += 1
                acked = max(acked, data["ack"])
                if ticks % 3 == 0:  # 20 Hz input at 60 Hz ticks
                    seq += 1
                    await ws.send_str(json.dumps({"type": "input", "seq": seq, "x": 1.0, "y": 0.0}))
        try:
            async with http.ws_connect(ws_url, params={"ticket": ticket}):
                replay_refused = False
        except aiohttp.WSServerHandshakeError as exc:
            replay_refused = exc.status == 403
    rate = 0.0
    if first and last and last[1] > first[1]:
        rate = (last[0] - first[0]) / (last[1] - first[1])
    return CheckResult(ticks, rate, acked, replay_refused)
