"""Idle capacity: how many idle sessions (one tick per 5 s) one Locust worker holds, and their RSS.

Game clients spend most of a soak test in lobbies and menus, where the server says little; what
limits a worker there is memory and file descriptors, not CPU. One headless Locust process ramps
to the target session count against bench/tick_source.py at 0.2 Hz (its own process and core) and
holds; RSS per session is (RSS when all are connected - RSS at test start) / sessions. The fd
limit is raised to the hard limit first (10,000 sessions need 10,000 descriptors). Idle sessions
send no inputs (``--input-rate``, 0), as in a lobby and as the websocket-client baseline: at 20 Hz
each session would also hold the inputs sent since the last tick's ack (5 s of them, ~7 KB).

    .venv/bin/python bench/idle_capacity.py           # our engine and the websocket-client baseline, 10,000 sessions
    .venv/bin/python bench/idle_capacity.py --quick   # 1,000 sessions (< 60 s)
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    cores,
    machine,
    raise_fd_limit,
    run_locust,
    say,
    table,
    tick_source,
    verdict,
    window_stats,
    write_json,
)
from bench.ws_engine import DESIGN_ENV, DESIGNS

RSS_TARGET_KB = 30.0
RATE = 0.2  # one tick per 5 s

COLUMNS = [
    ("design", "design"),
    ("sessions", "sessions asked"),
    ("connected", "connected"),
    ("rss_mb", "RSS MB"),
    ("rss_per_session_kb", "RSS/session KB"),
    ("cpu_pct", "CPU %"),
    ("lag_p99_ms", "lag p99 ms"),
    ("connect_failures", "connect failures"),
    ("survived", "survived"),
    ("stopped_cleanly", "stopped cleanly"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 sessions (< 60 s)")
    parser.add_argument("--sessions", type=int, help="sessions (10,000; --quick 1,000)")
    parser.add_argument("--designs", nargs="*", choices=list(DESIGNS), default=["engine", "websocket-client"])
    parser.add_argument(
        "--hold", type=float, default=12.0, help="seconds held after the ramp is due (12); a busy machine ramps slower"
    )
    parser.add_argument("--input-rate", type=float, default=0.0, help="inputs per second per session (0)")
    parser.add_argument("--out", help="JSON output path (bench/results/idle_capacity-<time>.json)")
    args = parser.parse_args(argv)
    sessions = args.sessions or (1000 if args.quick else 10_000)
    designs = args.designs if not args.quick else args.designs[:1]
    spawn = 250.0 if args.quick else 500.0
    hold = args.hold
    limit = raise_fd_limit()
    if limit < sessions + 1000:
        # Where allowed (CAP_SYS_RESOURCE) the hard limit is raised too; the children inherit it.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (sessions + 1000, sessions + 1000))
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < sessions + 200:
        say(f"warning: the fd limit is {limit} and cannot be raised here; {sessions} sessions may not fit")
    src_core, gen_core = cores()
    say(f"{sessions} idle sessions ({RATE:g} Hz ticks); fd limit {limit}; source core {src_core}, generator {gen_core}")
    rows: list[dict[str, Any]] = []
    started = time.time()
    with tick_source(RATE, src_core) as source:
        for design in designs:
            run_time = sessions / spawn + hold + 3
            say(f"  {design}: ramping to {sessions} sessions, ~{run_time:.0f} s ...")
            run = run_locust(
                DESIGNS[design],
                design,
                url=source.url,
                sessions=sessions,
                spawn_rate=spawn,
                run_time=run_time,
                core=gen_core,
                extra_env={**DESIGN_ENV.get(design, {}), "BENCH_INPUT_RATE": f"{args.input_rate:g}"},
            )
            left = source.wait_connections(0, timeout=30)
            stats = window_stats(run, warmup=1.0, rate=RATE)
            row = {
                "design": design,
                "sessions": sessions,
                **stats,
                "survived": run.survived,
                "stopped_cleanly": run.stopped_cleanly and run.survived and left == 0,
                "sockets_left_at_source": left,
                "peak_rss_mb": round(run.peak_rss / 1e6, 1),
                "connect_failures": run.meter.get("connect_failures"),
                "errors": run.meter.get("errors", [])[:5],
            }
            if not run.survived:
                row["stderr_tail"] = run.stderr_tail[-800:]
            say(f"    -> {row.get('connected')} connected, {row.get('rss_per_session_kb')} KB/session")
            rows.append(row)
    say("")
    say(table(rows, COLUMNS))
    say("")
    ours = next((r for r in rows if r["design"] == "engine"), None)
    targets = []
    if ours:
        kb = ours.get("rss_per_session_kb")
        held = ours.get("connected") == sessions and ours["survived"]
        targets.append(
            verdict(
                f"<= {RSS_TARGET_KB:g} KB RSS per idle session (engine, {sessions} sessions)",
                bool(held and kb is not None and kb <= RSS_TARGET_KB),
                f"{kb} KB/session, {ours.get('connected')}/{sessions} held",
            )
        )
    write_json(
        {
            "benchmark": "idle_capacity",
            "machine": machine(),
            "started": started,
            "quick": args.quick,
            "rate_hz": RATE,
            "fd_limit": limit,
            "input_rate": args.input_rate,
            "rows": rows,
            "targets": targets,
        },
        args.out,
        "idle_capacity",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
