"""The ``loadtest`` command line.

Exit codes are :class:`~loadtest.exitcodes.ExitCode`: 0 success; 1 a check failed; 2 usage or
configuration error; 3 the work could not be carried out (a port in use, a process that would
not start).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

from loadtest.backend.config import DEFECTS, BackendConfig, ConfigError, RateLimit
from loadtest.config.model import cli_type, help_for
from loadtest.config.scenario import DEFECT_NAMES, LoadTable, ScenarioTable, TargetTable
from loadtest.config.settings import ADMIN_TOKEN_ENV, JWT_SECRET_ENV
from loadtest.errors import LoadtestError
from loadtest.exitcodes import ExitCode


def _positive(kind: type) -> object:
    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    return parse


def _add_serve(sub: argparse._SubParsersAction) -> None:
    d = BackendConfig.__dataclass_fields__
    p = sub.add_parser(
        "serve",
        help="run the reference game backend (matchmaker + game servers)",
        description="Run the reference game backend described in docs/protocol.md.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (0 picks a free one; default 8080)")
    p.add_argument("--tick-rate", type=_positive(float), default=60.0, help="ticks per second (default 60)")
    p.add_argument("--game-servers", type=int, default=1, help="game-server processes (default 1)")
    p.add_argument("--room-capacity", type=int, default=64, help="players per room (default 64)")
    p.add_argument(
        "--heartbeat",
        type=_positive(float),
        default=d["heartbeat"].default,
        help="seconds between pings to a silent player; no answer in half that more drops it (default %(default)s)",
    )
    p.add_argument(
        "--substeps",
        type=int,
        default=d["substeps"].default,
        help="physics sub-steps per tick, each checking every pair of players (default %(default)s)",
    )
    p.add_argument(
        "--defect",
        action="append",
        default=[],
        choices=sorted(DEFECTS),
        metavar="NAME",
        help="switch on a defect (repeatable): " + "; ".join(f"{k}: {v}" for k, v in DEFECTS.items()),
    )
    p.add_argument("--ticket-ttl", type=_positive(float), default=10.0, help="ticket lifetime, s (default 10)")
    p.add_argument("--token-ttl", type=_positive(float), default=3600.0, help="JWT lifetime, s (default 3600)")
    p.add_argument(
        "--idle-timeout",
        type=_positive(float),
        default=30.0,
        help="close a connection that sends no complete request for this long, s (default 30)",
    )
    p.add_argument("--token-rate", type=_positive(float), default=5.0, help="/request_token per IP per s")
    p.add_argument("--token-burst", type=_positive(int), default=10, help="/request_token burst per IP")
    p.add_argument("--join-rate", type=_positive(float), default=10.0, help="/join per IP per s")
    p.add_argument("--join-burst", type=_positive(int), default=20, help="/join burst per IP")
    p.add_argument("--join-player-rate", type=_positive(float), default=2.0, help="/join per player per s")
    p.add_argument("--join-player-burst", type=_positive(int), default=5, help="/join burst per player")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        default=[],
        metavar="IP_OR_NET",
        help="believe X-Forwarded-For only from these addresses (repeatable)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=None,
        metavar="ORIGIN",
        help="browser origin allowed to call /request_token and /join (repeatable; '*' for any)",
    )
    p.add_argument(
        "--admin-token",
        help=f"admin bearer token (default: ${ADMIN_TOKEN_ENV}, else generated and printed); "
        "prefer the variable: a command line is visible to every local user",
    )
    p.add_argument(
        "--jwt-secret",
        help=f"HS256 secret for player tokens, at least 32 bytes (default: ${JWT_SECRET_ENV}, else random "
        "per start); prefer the variable: a command line is visible to every local user",
    )
    p.add_argument("--tls-cert", help="PEM certificate chain: serve https:// and wss://")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument(
        "--check",
        type=_positive(float),
        metavar="SECONDS",
        help="start, walk one player through the protocol for SECONDS, print what it measured, stop",
    )


def _config_from(args: argparse.Namespace) -> BackendConfig:
    extra = {}
    admin_token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV)
    jwt_secret = args.jwt_secret or os.environ.get(JWT_SECRET_ENV)
    if admin_token:
        extra["admin_token"] = admin_token
    if jwt_secret:
        extra["jwt_secret"] = jwt_secret
    if args.cors_origin is not None:
        extra["cors_origins"] = tuple(args.cors_origin)
    return BackendConfig(
        host=args.host,
        port=args.port,
        game_servers=args.game_servers,
        tick_rate=args.tick_rate,
        room_capacity=args.room_capacity,
        heartbeat=args.heartbeat,
        substeps=args.substeps,
        ticket_ttl=args.ticket_ttl,
        token_ttl=args.token_ttl,
        idle_timeout=args.idle_timeout,
        token_limit=RateLimit(args.token_rate, args.token_burst),
        join_ip_limit=RateLimit(args.join_rate, args.join_burst),
        join_player_limit=RateLimit(args.join_player_rate, args.join_player_burst),
        trusted_proxies=tuple(args.trusted_proxy),
        defects=frozenset(args.defect),
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        **extra,
    )


def _run_serve(args: argparse.Namespace) -> int:
    from loadtest.backend.pool import GameServerError
    from loadtest.backend.server import serve

    try:
        config = _config_from(args)
    except ConfigError as exc:
        print(f"loadtest serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    try:
        given = bool(args.admin_token or os.environ.get(ADMIN_TOKEN_ENV))
        return asyncio.run(serve(config, check_seconds=args.check, show_admin_token=not given))
    except OSError as exc:
        print(
            f"loadtest serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return ExitCode.NOT_CARRIED_OUT
    except GameServerError as exc:
        print(f"loadtest serve: {exc}", file=sys.stderr)
        return ExitCode.NOT_CARRIED_OUT


#: ``loadtest run`` flags that override one scenario key: (flag, table, key).
_RUN_OVERRIDES = (
    ("--users", LoadTable, "users"),
    ("--spawn-rate", LoadTable, "spawn_rate"),
    ("--duration", ScenarioTable, "duration"),
    ("--workers", LoadTable, "workers"),
)


def _target_and_set(
    p: argparse.ArgumentParser,
    target_help: str,
    set_help: str = "override any scenario value by its dotted key, e.g. --set player.reconnect.kind=none",
) -> None:
    """``--target`` and ``--set``, the same for every command that reads a scenario."""
    p.add_argument("--target", type=cli_type(TargetTable, "url"), help=target_help)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=set_help)


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a scenario and write its report (exit 0 passed, 1 a gate failed, 2 usage, 3 not carried out)",
        description="Run a scenario (a file, or the name of a bundled one) and judge it by its gates.",
    )
    p.add_argument("scenario", help="scenario file, or a bundled scenario's name (see `loadtest scenarios`)")
    _target_and_set(p, "base URL of the backend under test (default: the scenario's target.url, else embedded)")
    p.add_argument(
        "--defect",
        action="append",
        metavar="NAME",
        choices=DEFECT_NAMES,
        help="switch on a defect of the embedded backend (repeatable)",
    )
    # Types, ranges and defaults are the scenario file's own (loadtest.config.scenario).
    for flag, model, name in _RUN_OVERRIDES:
        key = f"{model.__name__.removesuffix('Table').lower()}.{name}"
        p.add_argument(
            flag,
            type=cli_type(model, name),
            help=help_for(model, name, default=f"default: the scenario's {key}, else {{}}"),
        )
    p.add_argument("--out", help="run folder (default reports/<scenario>-<timestamp>)")
    p.add_argument("--web", action="store_true", help="open Locust's web UI with the live collectors")
    p.add_argument("--web-host", default="127.0.0.1", help="web UI address (default 127.0.0.1)")
    p.add_argument("--web-port", type=int, default=8089, help="web UI port (default 8089)")


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="rebuild a run's report from its saved data")
    p.add_argument(
        "run_dir", help="a run folder: of `loadtest run`, of a test started in the web UI, or of a plain `locust -f`"
    )


def resolve_scenario(name: str) -> Path:
    from loadtest.config.scenario import bundled

    path = Path(name)
    if path.exists():
        return path
    for candidate in bundled():
        if candidate.stem == name:
            return candidate
    names = ", ".join(p.stem for p in bundled()) or "none (a broken install?)"
    raise FileNotFoundError(f"no scenario file {name!r}; bundled scenarios: {names}")


def _overrides(args: argparse.Namespace) -> list[tuple[str, object]]:
    from loadtest.config.scenario import parse_override

    overrides = [parse_override(text) for text in args.set]
    for flag, key in (
        ("users", "load.users"),
        ("spawn_rate", "load.spawn_rate"),
        ("duration", "scenario.duration"),
        ("workers", "load.workers"),
        ("target", "target.url"),
    ):
        value = getattr(args, flag)
        if value is not None:
            overrides.append((key, value))
    if args.defect:
        overrides.append(("target.defects", list(args.defect)))
    return overrides


def _impossible_gate(scenario: Any) -> str | None:
    """A gate no run can satisfy because its metric cannot exist: found before any load starts."""
    from loadtest.adapters import protocol_for
    from loadtest.results.schema import metric_problem

    steps = protocol_for(scenario.settings).step_paths()  # http.* gates name these steps (or paths)
    for i, gate in enumerate(scenario.gates):
        problem = metric_problem(gate.metric, steps)
        if problem:
            return f"gates[{i}].expr: {problem}"
    return None


#: Replay kinds that sign tokens with the target's own key.
SIGNED_KINDS = ("jwt_expired", "jwt_wrong_audience")


def _keyless_probes(scenario: Any) -> list[str]:
    """Probe kinds that need the target's signing key when none is at hand: say so before the run."""
    probes = scenario.settings.probes
    if scenario.target is None or probes.replay_rate <= 0 or os.environ.get(JWT_SECRET_ENV):
        return []
    kinds = [k for k in (probes.replay_kinds or SIGNED_KINDS) if k in SIGNED_KINDS]
    kinds = [k for k in kinds if f"replay {k}" not in probes.optional]
    if not kinds:
        return []
    return [
        f"replay kinds {', '.join(kinds)} sign tokens with the target's key, and {JWT_SECRET_ENV} is not set: "
        "unless the target's tokens are not JWTs (then these kinds do not apply) or jwt_expired can wait out "
        "a token's lifetime (probes.max_expiry_wait), they will not be checked and the run will be NOT CARRIED "
        "OUT. Set the variable, or name other kinds in probes.replay_kinds, or mark them optional "
        '(probes.optional = ["replay jwt_expired", ...]).'
    ]


def _run_run(args: argparse.Namespace) -> int:
    from loadtest.cli.run import default_out_dir, run
    from loadtest.config.scenario import ScenarioError, load
    from loadtest.results.runfolder import RunFolder, RunFolderError

    try:
        path = resolve_scenario(args.scenario)
        overrides = _overrides(args)
        scenario = load(path, overrides)
    except (ScenarioError, FileNotFoundError) as exc:
        print(f"loadtest run: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    problem = _impossible_gate(scenario)
    if problem:
        print(f"loadtest run: {path}: {problem}", file=sys.stderr)
        return ExitCode.USAGE
    for line in _keyless_probes(scenario):
        print(f"loadtest run: note: {line}")
    out = Path(args.out) if args.out else default_out_dir(scenario)
    if RunFolder(out).has_data:
        print(f"loadtest run: {out} already holds a run; choose another --out", file=sys.stderr)
        return ExitCode.USAGE
    if scenario.stages and args.duration is not None:
        print("loadtest run: note: the scenario has load stages; their durations decide its length, not --duration")
    if scenario.target and (scenario.defects or scenario.backend_args):
        print("loadtest run: note: defects and [target.backend] apply to the embedded backend only; ignored")
    if scenario.workers_auto:
        # The count "auto" chose here, kept: `loadtest report` on another machine must judge the
        # run by the workers it had, not by that machine's cores.
        overrides.append(("load.workers", scenario.workers))
    try:
        RunFolder(out).save_scenario(path, overrides)
    except RunFolderError as exc:
        print(f"loadtest run: {exc}", file=sys.stderr)
        return ExitCode.NOT_CARRIED_OUT
    return run(scenario, out_dir=out, web=(args.web_host, args.web_port) if args.web else None)


def _run_report(args: argparse.Namespace) -> int:
    from loadtest.cli.run import exit_code, print_summary
    from loadtest.config.scenario import ScenarioError
    from loadtest.results.runfolder import RunFolder, RunFolderError
    from loadtest.results.verdict import finish

    folder = RunFolder(args.run_dir)
    if not folder.has_data:
        print(f"loadtest report: {folder.path} holds no run data (data/aggregates.jsonl)", file=sys.stderr)
        return ExitCode.USAGE
    scenario = None
    if folder.has_scenario:
        try:
            scenario = folder.scenario()
        except (OSError, ValueError, ScenarioError) as exc:
            print(f"loadtest report: cannot read the run's scenario: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    previous = folder.summary() or {}
    # A run killed before it could write its verdict is incomplete by definition.
    incomplete = previous.get("incomplete", True) if "gates" in previous else True
    was = previous.get("integrity") or {}
    try:
        summary, results = finish(
            folder.path,
            scenario,
            incomplete=incomplete,
            aborted=previous.get("aborted"),
            interrupted=bool(was.get("interrupted")),
            locust_exit_code=was.get("locust_exit_code"),
        )
    except RunFolderError as exc:
        print(f"loadtest report: {exc}", file=sys.stderr)
        return ExitCode.NOT_CARRIED_OUT
    print_summary(summary, results, folder.path)
    return exit_code(summary)


def _run_scenarios(args: argparse.Namespace) -> int:
    from loadtest.config.scenario import BUNDLED_DIR, bundled, summary_line

    paths = bundled()
    if not paths:
        # An install without its package data is broken, not empty: say so, and fail.
        print(f"loadtest scenarios: no bundled scenarios in {BUNDLED_DIR} (a broken install?)", file=sys.stderr)
        return ExitCode.USAGE
    width = max(len(p.stem) for p in paths)
    for path in paths:
        print(f"{path.stem:<{width}}  {summary_line(path)}")
    return ExitCode.OK


# -- loadtest check and loadtest init: fitting a backend of this shape ----------------------------

#: What ``loadtest check`` without a scenario checks: the defaults, and its ``--set`` values.
_NO_SCENARIO = {"scenario": {"duration": "1s"}}


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="walk one player through the flow and say which [protocol] key to set "
        "(exit 0 the flow works, 1 it stops at a step, 2 usage, 3 no answer)",
        description="Log in, join, connect, play a few seconds, leave and reuse the ticket, as one player "
        "with the scenario's protocol; print each step's status and the shape of each reply (secrets "
        "masked), and, where a reply lacks a field the protocol expects, the key to set.",
    )
    p.add_argument("scenario", nargs="?", help="scenario file or bundled name (default: the reference protocol)")
    _target_and_set(
        p,
        "base URL of the backend (default: the scenario's target.url)",
        "override a scenario value, e.g. --set protocol.token_field=access_token",
    )
    p.add_argument("--seconds", type=_positive(float), default=3.0, help="seconds of play (default 3)")


def _check_scenario(args: argparse.Namespace, command: str) -> Any:
    """The scenario ``check``/``init`` works from (printed error and None when it cannot be read)."""
    from loadtest.config.scenario import ScenarioError, from_table, load, parse_override

    try:
        overrides = [parse_override(text) for text in args.set]
        if getattr(args, "target", None):
            overrides.append(("target.url", args.target))
        name = getattr(args, "scenario", None) or getattr(args, "source", None)
        if name:
            return load(resolve_scenario(name), overrides)
        return from_table("--set", _NO_SCENARIO, overrides)
    except (ScenarioError, FileNotFoundError) as exc:
        print(f"loadtest {command}: {exc}", file=sys.stderr)
        return None


def _run_check(args: argparse.Namespace) -> int:
    from loadtest.cli.check import report, walk

    scenario = _check_scenario(args, "check")
    if scenario is None:
        return ExitCode.USAGE
    if not scenario.target:
        print("loadtest check: no target: pass --target URL (or set target.url in the scenario)", file=sys.stderr)
        return ExitCode.USAGE
    result = walk(scenario.target, scenario.settings, seconds=args.seconds)
    code = report(result, scenario.target, scenario.protocol_kind)
    answered = not (result.steps and result.steps[0].status.startswith("no answer"))
    return code if answered else ExitCode.NOT_CARRIED_OUT


def _add_init(sub: argparse._SubParsersAction) -> None:
    from loadtest.cli.init import DEFAULT_SOURCE

    p = sub.add_parser(
        "init",
        help="write a scenario file to edit, with every [protocol] key listed and explained",
        description="Write a scenario into the current directory, from a bundled one or a file, with "
        "every [protocol] key of its protocol kind listed (commented, with its meaning and default). "
        "An existing file is never overwritten.",
    )
    p.add_argument(
        "--from",
        dest="source",
        default=DEFAULT_SOURCE,
        metavar="SCENARIO",
        help="scenario file or bundled name to start from (default %(default)s)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="protocol.KEY=VALUE",
        help="a [protocol] value to write uncommented (repeatable), e.g. --set protocol.token_field=access_token",
    )
    p.add_argument("--out", help="file to write (default: ./<scenario>.toml)")


def _run_init(args: argparse.Namespace) -> int:
    from loadtest.cli.init import render, write
    from loadtest.config.scenario import ScenarioError, parse_override

    try:
        source = resolve_scenario(args.source)
        overrides = [parse_override(text) for text in args.set]
    except (ScenarioError, FileNotFoundError) as exc:
        print(f"loadtest init: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    out = Path(args.out) if args.out else Path.cwd() / f"{source.stem}.toml"
    write(out, render(source, overrides))  # an InitError is a one-line usage error (main)
    print(f"loadtest init: wrote {out}; edit its [protocol] keys, then: loadtest run {out} --target URL")
    return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadtest", description="Load and resilience testing for multiplayer game backends."
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    _add_run(sub)
    _add_report(sub)
    sub.add_parser("scenarios", help="list the bundled scenarios")
    _add_check(sub)
    _add_init(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {
        "serve": _run_serve,
        "run": _run_run,
        "report": _run_report,
        "scenarios": _run_scenarios,
        "check": _run_check,
        "init": _run_init,
    }
    try:
        code = handlers[args.command](args)
    except LoadtestError as exc:
        # Anything the commands did not explain themselves: still one line, never a traceback.
        print(f"loadtest {args.command}: {exc}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.NOT_CARRIED_OUT
    sys.exit(code)
