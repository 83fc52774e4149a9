"""The public API: exactly these names, each one resolves, and ``import loadtest`` stays light.

A name added to or dropped from ``loadtest.__all__`` must change ``EXPECTED`` too: the list is
the promise to people who write their own players, adapters and probes. Names that import Locust
resolve in a child interpreter, because importing Locust patches the process with gevent and
this test process must stay unpatched.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import loadtest
from loadtest.errors import LoadtestError, NotCarriedOutError, UsageError
from loadtest.exitcodes import ExitCode

EXPECTED = [
    "ACK",
    "LOBBY",
    "OTHER",
    "PATCH",
    "TICK",
    "WELCOME",
    "Adapter",
    "AdapterError",
    "Attempt",
    "BackendStartError",
    "ExitCode",
    "GamePlayer",
    "GateSyntaxError",
    "JoinGrant",
    "LoadtestError",
    "NotCarriedOutError",
    "Opening",
    "Option",
    "PlayerSettings",
    "PolicyError",
    "ProbeSkipped",
    "Protocol",
    "ProtocolConfig",
    "ProtocolError",
    "RateLimitProbe",
    "ReplayProbe",
    "ScenarioError",
    "SettingsError",
    "StormError",
    "TokenGrant",
    "UnknownAdapter",
    "UsageError",
    "__version__",
    "register_adapter",
]
#: Exported names whose modules import Locust or gevent.
HEAVY = {"GamePlayer", "Attempt", "ReplayProbe", "RateLimitProbe"}
USAGE_ERRORS = {"ScenarioError", "SettingsError", "PolicyError", "GateSyntaxError", "AdapterError", "UnknownAdapter"}
NOT_CARRIED_OUT = {"StormError", "BackendStartError"}


def child(code: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_all_is_exactly_the_expected_list() -> None:
    assert loadtest.__all__ == EXPECTED
    assert set(dir(loadtest)) >= set(EXPECTED)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        loadtest.nope  # noqa: B018


def test_every_name_resolves_and_only_the_heavy_ones_bring_gevent() -> None:
    light = [name for name in EXPECTED if name not in HEAVY]
    light_run = child(
        f"""
        import json, sys
        import loadtest
        before = sorted(m for m in sys.modules if m.startswith("loadtest"))
        values = {{name: getattr(loadtest, name) for name in {light!r}}}
        print(json.dumps({{
            "before": before,
            "modules": {{name: getattr(v, "__module__", None) for name, v in values.items()}},
            "gevent": "gevent" in sys.modules,
            "locust": "locust" in sys.modules,
        }}))
        """
    )
    assert light_run["before"] == ["loadtest"], "import loadtest imported more than itself"
    assert not light_run["gevent"] and not light_run["locust"]
    for name, module in light_run["modules"].items():
        assert module is None or module.startswith("loadtest."), (name, module)

    # Heavy names first: Locust must be imported before anything imports ssl.
    heavy_run = child(
        f"""
        import json, sys
        import loadtest
        order = {sorted(HEAVY)!r} + {light!r}
        values = {{name: getattr(loadtest, name) for name in order}}
        print(json.dumps({{
            "resolved": sorted(values),
            "classes": {{n: v.__name__ for n, v in values.items() if isinstance(v, type)}},
        }}))
        """
    )
    assert heavy_run["resolved"] == sorted(EXPECTED)
    for name in HEAVY:
        assert heavy_run["classes"][name] == name


def test_light_names_are_the_defining_objects() -> None:
    from loadtest.adapters import register_adapter
    from loadtest.adapters.protocol import TICK, Protocol
    from loadtest.config.scenario import ScenarioError

    assert loadtest.Protocol is Protocol
    assert loadtest.ScenarioError is ScenarioError
    assert loadtest.register_adapter is register_adapter
    assert loadtest.TICK == TICK
    assert loadtest.__version__ == "0.1.0"


def test_every_exported_error_is_a_loadtest_error_with_its_exit_code() -> None:
    for name in USAGE_ERRORS:
        error = getattr(loadtest, name)
        assert issubclass(error, UsageError) and issubclass(error, ValueError), name
        assert error.exit_code == ExitCode.USAGE == 2
    for name in NOT_CARRIED_OUT:
        error = getattr(loadtest, name)
        assert issubclass(error, NotCarriedOutError) and issubclass(error, RuntimeError), name
        assert error.exit_code == ExitCode.NOT_CARRIED_OUT == 3
    for name in ("ProtocolError", "ProbeSkipped"):
        assert issubclass(getattr(loadtest, name), LoadtestError)
    from loadtest.backend.config import ConfigError
    from loadtest.backend.pool import GameServerError

    assert issubclass(ConfigError, UsageError) and issubclass(GameServerError, NotCarriedOutError)


def test_exit_codes() -> None:
    codes = (ExitCode.PASSED, ExitCode.FAILED, ExitCode.USAGE, ExitCode.NOT_CARRIED_OUT)
    assert [int(c) for c in codes] == [0, 1, 2, 3]
    assert ExitCode.OK is ExitCode.PASSED
