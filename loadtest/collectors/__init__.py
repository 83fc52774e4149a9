"""Collectors: one module per concern, each keeping only per-second mergeable aggregates.

Ticks and generator loop lag are measured on the WebSocket engine's thread; everything else on
the gevent side. :class:`~loadtest.runtime.harness.Harness` owns one of each per Locust process.
"""
