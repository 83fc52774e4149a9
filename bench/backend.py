"""The reference backend's own ceiling: how many 60 Hz sessions one game-server process carries.

Users point the harness at the embedded reference backend to try it out; they should know where
that target, not their generator, gives out. One ``loadtest.backend.gameserver`` process (its own
core) receives sessions straight on its internal endpoint (no matchmaker proxy in the way) from
bench/backend_clients.py (the other core), 64 to a room as the default room capacity gives,
each sending inputs at 20 Hz. At each step the server's own per-room tick rate
(``/internal/stats``, tick numbers over its clock) is sampled once a second; p5 across sessions
must stay >= 57 Hz.

    .venv/bin/python bench/backend.py          # 32 ... 256 sessions, 12 s a step
    .venv/bin/python bench/backend.py --quick  # 64, 128, 192 sessions (< 60 s)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench._common import (
    BENCH,
    ROOT,
    cores,
    machine,
    pinned,
    raise_fd_limit,
    say,
    stop_process,
    table,
    verdict,
    write_json,
)

P5_TARGET_HZ = 57.0


def stats(port: int, key: str) -> list[dict[str, Any]]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/internal/stats", headers={"X-Internal-Key": key})
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback, our own server
        return json.loads(response.read())["rooms"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64, 128, 192 sessions (< 60 s)")
    parser.add_argument("--steps", help="comma-separated session counts")
    parser.add_argument("--hold", type=float, help="seconds per step (12; --quick 8)")
    parser.add_argument("--out", help="JSON output path (bench/results/backend-<time>.json)")
    args = parser.parse_args(argv)
    steps = (
        [int(s) for s in args.steps.split(",")]
        if args.steps
        else ([64, 128, 192] if args.quick else [32, 64, 96, 128, 160, 192, 256])
    )
    hold = args.hold or (8.0 if args.quick else 12.0)
    raise_fd_limit()
    server_core, client_core = cores()
    key = secrets.token_hex(16)
    env = {**os.environ, "LOADTEST_INTERNAL_KEY": key}
    server = subprocess.Popen(
        pinned([sys.executable, "-m", "loadtest.backend.gameserver", "--index", "0"], server_core),
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    clients: subprocess.Popen[str] | None = None
    rows: list[dict[str, Any]] = []
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"game server did not start: {line!r}")
        port = int(line.split()[1])
        say(f"game server on core {server_core} (port {port}), clients on core {client_core}; steps {steps}")
        clients = subprocess.Popen(
            pinned(
                [
                    sys.executable,
                    str(BENCH / "backend_clients.py"),
                    "--url",
                    f"ws://127.0.0.1:{port}",
                    "--steps",
                    ",".join(map(str, steps)),
                    "--hold",
                    str(hold),
                ],
                client_core,
            ),
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert clients.stdout is not None
        for step in steps:
            line = clients.stdout.readline()  # bounded: the client prints AT or exits
            if not line.startswith("AT "):
                say(f"  clients stopped before {step} sessions: {line!r}")
                break
            say(f"  {step} sessions connected; sampling for {hold - 3:.0f} s ...")
            time.sleep(2.0)
            rates: list[float] = []
            players = 0
            deadline = time.monotonic() + hold - 3
            while time.monotonic() < deadline:
                rooms = stats(port, key)
                players = sum(len(r["players"]) for r in rooms)
                for room in rooms:
                    rates += [room["tick_rate_hz"] or 0.0] * len(room["players"])
                time.sleep(1.0)
            arr = np.array(rates) if rates else np.array([0.0])
            row = {
                "sessions": step,
                "players_seen": players,
                "rooms": -(-step // 64),
                "p50_hz": round(float(np.percentile(arr, 50)), 2),
                "p5_hz": round(float(np.percentile(arr, 5)), 2),
                "min_hz": round(float(arr.min()), 2),
            }
            row["holds"] = row["p5_hz"] >= P5_TARGET_HZ
            say(f"    -> p50 {row['p50_hz']} Hz, p5 {row['p5_hz']} Hz")
            rows.append(row)
            if not row["holds"] and len([r for r in rows if not r["holds"]]) >= 2:
                break  # two steps past the ceiling say enough
    finally:
        if clients is not None:
            stop_process(clients)
        if server.stdin is not None:
            server.stdin.close()  # the game server exits when its stdin closes
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop_process(server)
    say("")
    say(
        table(
            rows,
            [
                ("sessions", "sessions"),
                ("rooms", "rooms of 64"),
                ("players_seen", "players seen"),
                ("p50_hz", "p50 Hz"),
                ("p5_hz", "p5 Hz"),
                ("min_hz", "min Hz"),
                ("holds", "p5 >= 57 Hz"),
            ],
        )
    )
    say("")
    held = [r["sessions"] for r in rows if r["holds"]]
    ceiling = max(held) if held else 0
    say(
        f"INFO  one game-server process carries {ceiling} sessions at p5 >= {P5_TARGET_HZ:g} Hz "
        f"(largest step measured that held)"
    )
    target = verdict("the reference game server's ceiling was measured", bool(rows), f"{ceiling} sessions")
    write_json(
        {
            "benchmark": "backend",
            "machine": machine(),
            "hold_s": hold,
            "rows": rows,
            "ceiling": ceiling,
            "targets": [target],
        },
        args.out,
        "backend",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
