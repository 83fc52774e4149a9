"""The reference game backend: a matchmaker, game-server processes, and switchable defects.

It is the target ``loadtest`` runs against out of the box, and the proof that each check catches
the failure it is meant to: every defect in :data:`DEFECTS` turns off exactly one protection.
"""

from loadtest.backend.config import DEFECTS, BackendConfig, ConfigError, RateLimit
from loadtest.backend.process import BackendProcess, BackendStartError
from loadtest.backend.server import ReferenceBackend

__all__ = [
    "DEFECTS",
    "BackendConfig",
    "BackendProcess",
    "BackendStartError",
    "ConfigError",
    "RateLimit",
    "ReferenceBackend",
]
