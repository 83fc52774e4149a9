"""The ``loadtest`` command line: argument parsing and the run driver, nothing the runtime needs."""

from loadtest.cli.main import main

__all__ = ["main"]
