"""Ground truth from the target: its own Prometheus ``/metrics``, at start, every few seconds, and at end.

Comparing our counts with the server's own (tickets consumed, 429s sent, connections opened) is how
a user can trust either. Runs on the master (or the single local process), never on workers, so
the target is scraped once per interval whatever the number of workers.
"""

from __future__ import annotations

import logging

import requests
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)

#: Samples kept per scrape; a backend exposing more is cut here (buckets are never kept).
MAX_SAMPLES = 5000


def sample_key(name: str, labels: dict[str, str]) -> str:
    if not labels:
        return name
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}}"


def scrape(url: str, *, verify: object = True, timeout: float = 5.0) -> dict[str, float]:
    """Every sample of the exposition at ``url`` except histogram buckets, keyed ``name{labels}``."""
    response = requests.get(url, timeout=timeout, verify=verify)
    response.raise_for_status()
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            if s.name.endswith("_bucket"):
                continue
            samples[sample_key(s.name, s.labels)] = float(s.value)
            if len(samples) >= MAX_SAMPLES:
                return samples
    return samples
