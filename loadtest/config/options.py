"""The ``--lt-*`` Locust options: one row per option, naming the player setting it sets.

:mod:`loadtest.runtime.plugin` adds the rows to Locust's parser and :meth:`PlayerSettings.with_options`
applies them, so an option's type, range, choices, default and help are the setting's own
(:mod:`loadtest.config.settings`) and exist nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from loadtest.config.model import choices, cli_type, explain, field_info, help_for, render
from loadtest.config.settings import PlayerSettings, SettingsError
from loadtest.runtime.backoff import ReconnectPolicy


def _items(value: Any) -> list[str]:
    """A repeated option's list, or the comma list Locust's web form sends for it."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]


@dataclass(frozen=True)
class LtOption:
    flag: str
    #: The setting's dotted path in :class:`PlayerSettings` (``reconnect.base``).
    path: str
    #: Turns what argparse or the web form hands over into what the setting reads.
    read: Callable[[Any], Any] | None = None
    #: argparse keywords beyond the derived ones (action, metavar, dest, help).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.extra.get("dest", "lt_" + self.flag.removeprefix("--lt-").replace("-", "_"))

    def argparse_kwargs(self) -> dict[str, Any]:
        """``add_argument`` keywords: type, choices and help from the setting's field."""
        kwargs: dict[str, Any] = {}
        try:
            info = field_info(PlayerSettings, self.path)
        except KeyError:
            info = None
        if info is not None:
            allowed = choices(info.annotation)
            if allowed:
                kwargs["choices"] = allowed
            elif "action" not in self.extra and self.read is None:
                kwargs["type"] = cli_type(PlayerSettings, self.path)
            kwargs["help"] = help_for(PlayerSettings, self.path)
        kwargs.update(self.extra)
        return kwargs


def _jitter_help() -> str:
    fields = ReconnectPolicy.model_fields
    return (
        f"added jitter range MIN,MAX in s (default {fields['jitter_min'].default:g},{fields['jitter_max'].default:g})"
    )


LT_OPTIONS: tuple[LtOption, ...] = (
    LtOption("--lt-session-length", "session_length"),
    LtOption("--lt-input-rate", "input_rate"),
    LtOption("--lt-join-mode", "join_mode"),
    LtOption("--lt-room", "room"),
    LtOption("--lt-sessions-per-user", "sessions_per_user"),
    LtOption("--lt-think-time", "think_time"),
    LtOption("--lt-reconnect", "reconnect.kind"),
    LtOption("--lt-source-addresses", "source_addresses", read=str),
    LtOption("--lt-ca-bundle", "ca_bundle"),
    LtOption("--lt-insecure", "insecure", extra={"action": "store_true", "default": False}),
    LtOption("--lt-reconnect-base", "reconnect.base"),
    LtOption("--lt-reconnect-multiplier", "reconnect.multiplier"),
    LtOption("--lt-reconnect-cap", "reconnect.cap"),
    LtOption("--lt-reconnect-jitter", "reconnect.jitter", read=str, extra={"help": _jitter_help()}),
    LtOption("--lt-reconnect-max-attempts", "reconnect.max_attempts"),
    LtOption(
        "--lt-out",
        "out_dir",
        extra={"dest": "lt_out_dir", "help": "run folder for collector data (reports/locust-<time>)"},
    ),
    LtOption(
        "--lt-storm",
        "storms",
        read=_items,
        extra={
            "action": "append",
            "metavar": "at=S,side=client|server|stall[,fraction=F][,close_code=C][,seconds=S]",
            "help": "a reconnect storm or stall at S seconds into the run (repeatable); server side needs "
            "LOADTEST_ADMIN_TOKEN in the environment",
        },
    ),
    LtOption("--lt-replay-rate", "probes.replay_rate"),
    LtOption(
        "--lt-replay-kinds",
        "probes.replay_kinds",
        read=_items,
        extra={"action": "append", "help": "limit replay probes to these kinds (repeatable)"},
    ),
    LtOption("--lt-rate-limit-probe", "probes.rate_limit_endpoint", extra={"dest": "lt_rate_limit_endpoint"}),
    LtOption("--lt-rate-limit-steps", "probes.rate_limit_steps", read=_items),
    LtOption(
        "--lt-cors-origin",
        "probes.cors_origins",
        read=_items,
        extra={
            "dest": "lt_cors_origins",
            "action": "append",
            "help": "a browser origin that must be allowed (repeatable; turns the CORS probe on)",
        },
    ),
    LtOption(
        "--lt-cors-refused-origin",
        "probes.cors_refused_origins",
        read=_items,
        extra={"dest": "lt_cors_refused_origins", "action": "append"},
    ),
)


def add_arguments(group: Any) -> None:
    """Add every ``--lt-*`` option to an argparse (Locust) argument group."""
    for option in LT_OPTIONS:
        group.add_argument(option.flag, **option.argparse_kwargs())


def apply(settings: PlayerSettings, options: Any) -> PlayerSettings:
    """``settings`` with the ``--lt-*`` options that were given; an impossible value is a
    :class:`SettingsError` that names the option."""
    data = settings.model_dump()
    given: list[LtOption] = []
    for option in LT_OPTIONS:
        value = getattr(options, option.dest, None)
        if value is None or value == "" or value == [] or value is False:
            continue
        node = data
        *parents, last = option.path.split(".")
        for part in parents:
            node = node[part]
        node[last] = option.read(value) if option.read else value
        given.append(option)
    if not given:
        return settings
    try:
        return PlayerSettings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_explain(exc, given)) from None


def _explain(exc: ValidationError, given: list[LtOption]) -> str:
    """Name the option that was given (or else the one that sets the impossible value)."""
    loc, text = explain(exc)
    place = ".".join(str(p) for p in loc)
    for option in (*given, *LT_OPTIONS):
        if place.startswith(option.path):  # reconnect.jitter -> reconnect.jitter_min too
            rest = loc[len(option.path.split(".")) :]
            if option in given:
                return f"{option.flag}: {render(rest)}: {text}" if rest else f"{option.flag}: {text}"
            return f"{PlayerSettings.key_of(loc)} ({option.flag}): {text}"
    return f"--lt-* options: {PlayerSettings.key_of(loc)}: {text}"
