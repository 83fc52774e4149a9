"""The CORS probe: the preflight a browser sends before a web build of the game may call the API."""

from __future__ import annotations

import logging

from loadtest.adapters.protocol import Protocol
from loadtest.collectors.cors import CorsCollector
from loadtest.config.settings import PlayerSettings
from loadtest.probes.http import TIMEOUT, probe_session

log = logging.getLogger(__name__)
REQUEST_HEADERS = "authorization, content-type"


def judge(headers: dict[str, str], origin: str, *, should_allow: bool) -> list[str]:
    """The findings for one preflight answer (header names compared case-insensitively)."""
    h = {k.lower(): v for k, v in headers.items()}
    allow_origin = h.get("access-control-allow-origin")
    credentials = h.get("access-control-allow-credentials", "").lower() == "true"
    findings = []
    if allow_origin == "*" and credentials:
        findings.append("wildcard_with_credentials")
    if not should_allow:
        if allow_origin in (origin, "*"):
            findings.append("refused_origin_allowed")
        return findings
    if allow_origin is None:
        return [*findings, "missing_allow_origin"]
    if allow_origin not in (origin, "*"):
        findings.append("wrong_allow_origin")
    allowed_headers = {x.strip().lower() for x in h.get("access-control-allow-headers", "").split(",")}
    if not {"authorization", "content-type"} <= allowed_headers and "*" not in allowed_headers:
        findings.append("missing_allow_headers")
    methods = {x.strip().upper() for x in h.get("access-control-allow-methods", "").split(",")}
    if "POST" not in methods and "*" not in methods:
        findings.append("missing_allow_methods")
    return findings


class CorsProbe:
    def __init__(self, host: str, settings: PlayerSettings, protocol: Protocol, collector: CorsCollector) -> None:
        self.host = host.rstrip("/")
        self.settings = settings
        self.paths = (protocol.config.token_path, protocol.config.join_path)
        self.collector = collector
        self.http = probe_session(settings, None)

    def run(self) -> None:
        probes = self.settings.probes
        checks = [(o, True) for o in probes.cors_origins] + [(o, False) for o in probes.cors_refused_origins]
        for origin, should_allow in checks:
            for path in self.paths:
                try:
                    r = self.http.options(
                        self.host + path,
                        headers={
                            "Origin": origin,
                            "Access-Control-Request-Method": "POST",
                            "Access-Control-Request-Headers": REQUEST_HEADERS,
                        },
                        timeout=TIMEOUT,
                    )
                    findings = judge(dict(r.headers), origin, should_allow=should_allow)
                except OSError as exc:
                    log.warning("CORS probe: %s %s failed: %s", origin, path, exc)
                    findings = ["no_answer"]
                self.collector.checked(origin, path, findings)
