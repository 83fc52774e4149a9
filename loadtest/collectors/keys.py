"""Counter and histogram names with structure: one definition both writes and reads a name.

A record's counters travel as flat strings (``429:/join``, ``status:/join:200``,
``probe:/request_token:10:limited``) because they must merge by plain addition across workers and
stay readable in the log. Their structure lives here, once: a :class:`Family` encodes a name from
its labels when a collector counts, and decodes it back when a summary or a table reads it, so no
reader splits strings of its own and a renamed label fails in one place.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

SEP = ":"


@dataclass(frozen=True)
class Family:
    """Names ``head[:label...][suffix]``.

    At most one label (``greedy``) may itself contain ``:`` (an origin URL, a server's reason
    text); labels before it are split from the left, labels after it from the right.
    ``suffix`` is a histogram's unit (``_us``), which ends the name after the labels.
    """

    head: str
    labels: tuple[str, ...] = ()
    greedy: str | None = None
    suffix: str = ""

    def __post_init__(self) -> None:
        if self.greedy is not None and self.greedy not in self.labels:
            raise ValueError(f"{self.head}: greedy label {self.greedy!r} is not one of {self.labels}")

    def __call__(self, *values: object) -> str:
        if len(values) != len(self.labels):
            raise TypeError(f"{self.head} takes {len(self.labels)} label(s) {self.labels}, got {len(values)}")
        return SEP.join((self.head, *map(str, values))) + self.suffix

    def parse(self, name: str) -> tuple[str, ...] | None:
        """The labels of ``name``, or None when it is not of this family."""
        if self.suffix:
            if not name.endswith(self.suffix):
                return None
            name = name[: -len(self.suffix)]
        if not self.labels:
            return () if name == self.head else None
        if not name.startswith(self.head + SEP):
            return None
        rest = name[len(self.head) + 1 :]
        n = len(self.labels)
        if self.greedy is None:
            parts = rest.split(SEP)
            return tuple(parts) if len(parts) == n else None
        g = self.labels.index(self.greedy)
        left = rest.split(SEP, g) if g else [rest]
        if len(left) != g + 1:
            return None
        right = left[-1].rsplit(SEP, n - g - 1) if n - g - 1 else [left[-1]]
        if len(right) != n - g:
            return None
        return (*left[:-1], *right)

    def items(self, values: Mapping[str, float]) -> Iterator[tuple[tuple[str, ...], float]]:
        """(labels, value) for every name of this family in ``values``."""
        for name, value in values.items():
            labels = self.parse(name)
            if labels is not None:
                yield labels, value

    def by(self, values: Mapping[str, float], label: str | None = None) -> dict[str, int]:
        """Totals per value of one label (the only one when ``label`` is None), sorted by it."""
        index = 0 if label is None else self.labels.index(label)
        out: Counter[str] = Counter()
        for labels, value in self.items(values):
            out[labels[index]] += value
        return {k: int(out[k]) for k in sorted(out)}

    def total(self, values: Mapping[str, float]) -> int:
        return int(sum(value for _, value in self.items(values)))
