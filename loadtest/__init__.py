"""game-loadtest: load and resilience testing for multiplayer game backends."""

__version__ = "0.1.0"
