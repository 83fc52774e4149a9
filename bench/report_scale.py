"""Report scale: build the summary and report of a synthetic 1-hour, 1,000-user run with storms.

A report is built after every run and again by ``loadtest report``; a one-hour soak must not take
minutes or gigabytes to read. This writes a run folder whose log has the shape a real run leaves
(4 workers of 250 players, every collector every second, a reconnect storm every 10 minutes with
429s and recoveries), then builds it in a child process as ``loadtest run`` does, timing the one
pass over the log that gives the summary, the report's tables and the sliding windows of two
60 s ``over`` gates (``results.reduction.read``), then ``report.build_report``, and reading the
child's peak RSS. A second child watches the same log as ``loadtest run`` does while a run goes on
(tail, settle, abort checks) and times one abort check after minute 1 and after minute 60.

    .venv/bin/python bench/report_scale.py           # 1 h x 1,000 users
    .venv/bin/python bench/report_scale.py --quick   # 10 min x 1,000 users (< 60 s)
    .venv/bin/python bench/report_scale.py --keep DIR --profile   # keep the folder; pyinstrument the build
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import machine, say, table, verdict, write_json
from loadtest.collectors.aggregates import Record, new_histogram
from loadtest.results.runfolder import AGGREGATES, RUN_INFO, TARGET_METRICS

TIME_TARGET_S = 10.0
RSS_TARGET_MB = 300.0
#: An abort check at minute 60 may cost at most this many times one at minute 1 (constant cost).
CHECK_GROWTH_TARGET = 2.0
WORKERS = 4
STORM_EVERY = 600
#: Distinct encoded histograms per name. A real log never repeats one, but decoding cost depends on
#: the histogram's spread, not on its identity, and encoding 100,000 of them would make the
#: benchmark slower than what it measures.
VARIANTS = 24


def _pool(rng: random.Random, unit: str, draw: Any, samples: int = 1500) -> list[str]:
    out = []
    for _ in range(VARIANTS):
        hist = new_histogram(unit)
        for _ in range(samples):
            hist.record_value(max(1, int(draw())), rng.choice((1, 5, 10)))
        out.append(hist.encode().decode("ascii"))
    return out


def synthesise(run_dir: Path, seconds: int, users: int, seed: int = 1) -> int:
    """Write ``run.json`` and ``data/aggregates.jsonl``; returns the number of records."""
    from loadtest.config.settings import PlayerSettings

    rng = random.Random(seed)
    (run_dir / "data").mkdir(parents=True, exist_ok=True)
    start = int(time.time()) - seconds - 60
    settings = json.loads(PlayerSettings().to_json())
    info = {"host": "http://127.0.0.1:8080", "started": start, "settings": settings}
    (run_dir / RUN_INFO).write_text(json.dumps(info), encoding="utf-8")
    (run_dir / "data" / TARGET_METRICS).write_text("", encoding="utf-8")
    pools = {
        "lag_us": _pool(rng, "us", lambda: rng.lognormvariate(7.5, 0.6)),
        "jitter_us": _pool(rng, "us", lambda: rng.expovariate(1 / 400)),
        "input_rtt_us": _pool(rng, "us", lambda: rng.lognormvariate(9.8, 0.4)),
        "tick_rate_centihz": _pool(rng, "centihz", lambda: rng.gauss(5990, 20), 250),
        "latency:/request_token_us": _pool(rng, "us", lambda: rng.lognormvariate(8.5, 0.5), 20),
        "latency:/join_us": _pool(rng, "us", lambda: rng.lognormvariate(8.8, 0.5), 20),
        "connect_us": _pool(rng, "us", lambda: rng.lognormvariate(8.0, 0.4), 10),
        "recovery_ms": _pool(rng, "ms", lambda: rng.lognormvariate(7.3, 0.5), 50),
        "cpu_x100_count": _pool(rng, "count", lambda: rng.gauss(4500, 500), 1),
        "loop_lag_us": _pool(rng, "us", lambda: rng.expovariate(1 / 2000), 1),
    }
    per_worker = users // WORKERS
    count = 0
    with open(run_dir / "data" / AGGREGATES, "w", encoding="utf-8") as fh:
        for i in range(seconds):
            second = start + i
            storm_at = i % STORM_EVERY
            in_storm = i >= STORM_EVERY and storm_at < 8
            for w in range(WORKERS):
                worker = f"host_{w:032x}"
                pick = {name: rng.choice(texts) for name, texts in pools.items()}
                lines = []
                ticks_n = per_worker * 60 if not in_storm else per_worker * 30
                lines.append(
                    Record(
                        "ticks",
                        second,
                        worker,
                        {
                            "ticks": ticks_n,
                            "messages": ticks_n + 1,
                            "missed": rng.choice((0, 0, 0, 2)),
                            "connected": per_worker if not in_storm else per_worker // 2,
                        },
                        {
                            k: pick[k]
                            for k in (
                                "lag_us",
                                "jitter_us",
                                "input_rtt_us",
                                "tick_rate_centihz",
                            )
                        },
                    )
                )
                http_counts: dict[str, float] = {}
                hists: dict[str, str] = {}
                for path in ("/request_token", "/join"):
                    n = rng.randint(6, 10) if not in_storm else 60
                    limited = 0 if not in_storm else 20
                    http_counts |= {f"requests:{path}": n, f"status:{path}:200": n - limited}
                    if limited:
                        http_counts |= {f"status:{path}:429": limited, f"failures:{path}": limited}
                    hists[f"latency:{path}_us"] = pick[f"latency:{path}_us"]
                lines.append(Record("http", second, worker, http_counts, hists))
                opened = rng.randint(6, 10)
                sess: dict[str, float] = {"opened": opened, "ended:client": opened}
                if in_storm and storm_at == 0:
                    sess |= {"ended:storm_client_drop": per_worker // 2, "unexpected": per_worker // 2}
                lines.append(
                    Record(
                        "sessions",
                        second,
                        worker,
                        sess,
                        {"connect_us": pick["connect_us"]},
                    )
                )
                me = f"worker:{worker}:"
                lines.append(
                    Record(
                        "generator",
                        second,
                        worker,
                        {
                            "seconds": 1,
                            "cpu_pct_sum": 45.0,
                            "sessions": per_worker,
                            me + "seconds": 1,
                            me + "cpu_pct_sum": 45.0,
                            me + "sessions": per_worker,
                        },
                        {
                            "cpu_x100_count": pick["cpu_x100_count"],
                            "loop_lag_us": pick["loop_lag_us"],
                            me + "cpu_x100_count": pick["cpu_x100_count"],
                            me + "loop_lag_us": pick["loop_lag_us"],
                        },
                    )
                )
                if in_storm:
                    rc: dict[str, float] = {"attempts": per_worker // 8, "recovered": per_worker // 16}
                    if storm_at == 0:
                        rc |= {"dropped": per_worker // 2, "dropped:storm_client_drop": per_worker // 2}
                        if w == 0:
                            rc |= {"storms": 1, "storm:client": 1, "storm_dropped": users // 2}
                    lines.append(
                        Record(
                            "reconnect",
                            second,
                            worker,
                            rc,
                            {"recovery_ms": pick["recovery_ms"]},
                        )
                    )
                    lines.append(
                        Record(
                            "rate_limit",
                            second,
                            worker,
                            {
                                "429:/request_token": 20,
                                "honoured:/request_token": 20,
                                "429:/join": 20,
                                "honoured:/join": 20,
                            },
                            {},
                        )
                    )
                fh.writelines(r.to_json() + "\n" for r in lines)
                count += len(lines)
    return count


#: The windowed case: a 60 s ``over`` gate, as the soak scenario has, judged with the summary.
WINDOW_GATES = ("tick.p5_hz >= 54", "http./join.p95_ms < 250")
WINDOW = 60.0


def build(run_dir: Path, profile: bool) -> dict[str, Any]:
    """In this (child) process, as ``loadtest run`` finishes a run: one pass over the log gives the
    summary, the report's tables and the 60 s windows of two gates, then the report is drawn;
    times and peak RSS after each."""
    from loadtest.results.frames import frames
    from loadtest.results.gates import evaluate, flatten, parse
    from loadtest.results.reduction import read
    from loadtest.results.report import build_report
    from loadtest.results.summary import summarise
    from loadtest.results.verdict import window_metrics

    gates = [parse(expr, over=WINDOW) for expr in WINDOW_GATES]
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler()
        profiler.start()
    cpu0 = _cpu()
    t0 = time.perf_counter()
    run = read(run_dir, windows=window_metrics(gates))
    summary = summarise(run.reduction, run.folder, index=run.index)
    results = [evaluate(g, flatten(summary), run.windows[WINDOW].values) for g in gates]
    t1 = time.perf_counter()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    build_report(run_dir, summary, run.reduction, frames(run.reduction))
    t2 = time.perf_counter()
    cpu2 = _cpu()
    rss2 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if profiler is not None:
        profiler.stop()
        (run_dir / "profile.txt").write_text(profiler.output_text(unicode=False, show_all=False), encoding="utf-8")
    return {
        "summarise_s": round(t1 - t0, 2),
        "report_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "cpu_s": round(cpu2 - cpu0, 2),
        "windows": len(run.windows[WINDOW].values),
        "gates": "; ".join(r.message for r in results),
        "peak_rss_after_summarise_mb": round(rss1, 1),
        "peak_rss_mb": round(rss2, 1),
    }


def _cpu() -> float:
    """This process's CPU seconds: on a shared machine, the figure that does not depend on the others."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def live(run_dir: Path) -> dict[str, Any]:
    """In this (child) process, as ``loadtest run`` watches a run: the log is tailed second by
    second into a live view, and the cost of one abort check (an ``abort_on_fail`` gate over 60 s)
    is timed after the first minute and after the last."""
    from loadtest.results.gates import parse
    from loadtest.results.live import SETTLE_SECONDS, Live
    from loadtest.results.runfolder import RunFolder

    folder = RunFolder(run_dir)
    gate = parse(WINDOW_GATES[0], over=WINDOW, abort_on_fail=True)
    view = Live(folder, [gate])
    by_second: dict[int, list[Record]] = {}
    for record in folder.records():
        by_second.setdefault(record.second, []).append(record)
    seconds = sorted(by_second)
    checks: dict[str, float] = {}
    marks = {seconds[0] + 60: "minute 1", seconds[-1]: "minute 60" if len(seconds) >= 3600 else "last minute"}
    feed = 0.0
    for second in seconds:
        t = time.perf_counter()
        view.add(by_second.pop(second))
        view.settle(now=second + 1)
        feed += time.perf_counter() - t
        if second in marks:
            t = time.perf_counter()
            view._summary = None  # time the check itself, not the one-second cache
            view.failing_gate(elapsed=second - seconds[0], now=second + 1 + SETTLE_SECONDS)
            checks[marks[second]] = round((time.perf_counter() - t) * 1000, 2)
    return {
        "abort_check_ms": checks,
        "live_feed_us_per_second": round(feed / len(seconds) * 1e6),
        "peak_rss_live_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 minutes x 1,000 users (< 60 s)")
    parser.add_argument("--minutes", type=float, help="run length to synthesise (60; --quick 10)")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--keep", help="write the run folder here and keep it")
    parser.add_argument("--profile", action="store_true", help="pyinstrument the build (profile.txt in the folder)")
    parser.add_argument("--out", help="JSON output path (bench/results/report_scale-<time>.json)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--live-child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(build(Path(args.child), args.profile)))
        return 0
    if args.live_child:
        print(json.dumps(live(Path(args.live_child))))
        return 0
    minutes = args.minutes or (10 if args.quick else 60)
    seconds = int(minutes * 60)
    run_dir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-report-"))
    try:
        say(f"synthesising {minutes:g} min x {args.users} users ({WORKERS} workers) in {run_dir} ...")
        t = time.perf_counter()
        records = synthesise(run_dir, seconds, args.users)
        size = (run_dir / "data" / AGGREGATES).stat().st_size
        say(f"  {records:,} records, {size / 1e6:.0f} MB log, {time.perf_counter() - t:.1f} s")
        say("building summary and report in a child process ...")
        command = [sys.executable, __file__, "--child", str(run_dir)] + (["--profile"] if args.profile else [])
        proc = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
        if proc.returncode != 0:
            say(proc.stderr[-3000:])
            return 1
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        say("watching it live in another child process (tail, settle, abort checks) ...")
        proc = subprocess.run(
            [sys.executable, __file__, "--live-child", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
        if proc.returncode != 0:
            say(proc.stderr[-3000:])
            return 1
        watched = json.loads(proc.stdout.strip().splitlines()[-1])
        row = {
            "run": f"{minutes:g} min x {args.users} users",
            "records": records,
            "log_mb": round(size / 1e6),
            **result,
        }
        say("")
        say(
            table(
                [row],
                [
                    ("run", "run"),
                    ("records", "records"),
                    ("log_mb", "log MB"),
                    ("summarise_s", "summarise s"),
                    ("report_s", "report s"),
                    ("total_s", "total s"),
                    ("cpu_s", "CPU s"),
                    ("peak_rss_after_summarise_mb", "peak RSS after summarise MB"),
                    ("peak_rss_mb", "peak RSS MB"),
                ],
            )
        )
        say("")
        say(f"windows: {result['windows']} of {WINDOW:g} s; gates: {result['gates']}")
        checks = watched["abort_check_ms"]
        say(
            "live: one abort check (60 s window) "
            + ", ".join(f"{k} {v} ms" for k, v in checks.items())
            + f"; feeding {watched['live_feed_us_per_second']} us per second of run; peak RSS "
            f"{watched['peak_rss_live_mb']} MB"
        )
        row |= {"abort_check_ms": checks, "peak_rss_live_mb": watched["peak_rss_live_mb"]}
        say("")
        targets = []
        if minutes >= 60:
            targets.append(
                verdict(
                    "report of 1 h x 1,000 users in <= 10 s",
                    result["total_s"] <= TIME_TARGET_S,
                    f"{result['total_s']} s (summarise {result['summarise_s']} s, report {result['report_s']} s)",
                )
            )
            targets.append(
                verdict(
                    f"report of 1 h x 1,000 users with <= {RSS_TARGET_MB:g} MB peak RSS",
                    result["peak_rss_mb"] <= RSS_TARGET_MB,
                    f"{result['peak_rss_mb']} MB",
                )
            )
            first, last = checks.get("minute 1"), checks.get("minute 60")
            if first and last:
                targets.append(
                    verdict(
                        "an abort check costs the same at minute 60 as at minute 1",
                        last <= CHECK_GROWTH_TARGET * max(first, 1.0),
                        f"{first} ms at minute 1, {last} ms at minute 60 ({last / first:.2f}x)",
                    )
                )
        else:
            say(f"INFO  targets are for 60 min; this was {minutes:g} min")
        if args.profile:
            say(f"profile: {run_dir / 'profile.txt'}")
        write_json(
            {"benchmark": "report_scale", "machine": machine(), "row": row, "targets": targets},
            args.out,
            "report_scale",
        )
    finally:
        if not args.keep:
            shutil.rmtree(run_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
