"""The ``loadtest`` command line.

Exit codes: 0 success; 1 a check failed; 2 usage or configuration error; 3 the work could not
be carried out (a port in use, a process that would not start).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from loadtest.backend.config import DEFECTS, BackendConfig, ConfigError, RateLimit

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ERROR = 0, 1, 2, 3


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
    p.add_argument("--admin-token", help="admin bearer token (default: generated and printed)")
    p.add_argument("--jwt-secret", help="HS256 secret for player tokens (default: random per start)")
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
    if args.admin_token:
        extra["admin_token"] = args.admin_token
    if args.jwt_secret:
        extra["jwt_secret"] = args.jwt_secret
    if args.cors_origin is not None:
        extra["cors_origins"] = tuple(args.cors_origin)
    return BackendConfig(
        host=args.host,
        port=args.port,
        game_servers=args.game_servers,
        tick_rate=args.tick_rate,
        room_capacity=args.room_capacity,
        substeps=args.substeps,
        ticket_ttl=args.ticket_ttl,
        token_ttl=args.token_ttl,
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
        return EXIT_USAGE
    try:
        return asyncio.run(serve(config, check_seconds=args.check))
    except OSError as exc:
        print(
            f"loadtest serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    except GameServerError as exc:
        print(f"loadtest serve: {exc}", file=sys.stderr)
        return EXIT_ERROR


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loadtest", description="Load and resilience testing for multiplayer game backends."
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_serve(sub)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers = {"serve": _run_serve}
    try:
        code = handlers[args.command](args)
    except KeyboardInterrupt:
        code = EXIT_ERROR
    sys.exit(code)
