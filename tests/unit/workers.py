"""Worker-side generator collectors for unit tests that feed a reduction seconds of load by hand."""

from __future__ import annotations

from loadtest.collectors.generator import GeneratorCollector

#: A Unix second far from any real run's, so seconds read as run seconds 0, 1, 2...
T0 = 1_800_000_000


class _Cpu:
    """The test process's own CPU is no worker's: a fixed, healthy reading."""

    def cpu_percent(self, interval: float | None = None) -> float:
        return 5.0


def quiet_collector(worker: str) -> GeneratorCollector:
    """A worker's collector whose CPU reading is healthy whatever the test machine is doing."""
    collector = GeneratorCollector(worker)
    collector._process = _Cpu()  # type: ignore[assignment]
    return collector
