"""summary.json is checked against its documented shape where it is written."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from loadtest.results.schema import SummaryError, validate

GOLDEN = Path(__file__).resolve().parents[2] / "integration" / "golden" / "expected" / "summary.json"


def _golden() -> dict:
    summary = json.loads(GOLDEN.read_text())
    summary["run"]["log_lines_unreadable"] = 0
    return summary


def test_a_real_summary_has_the_documented_shape() -> None:
    summary = _golden()
    assert validate(summary) is summary


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: s["tick"].update(p5=s["tick"].pop("p5_hz")), "tick.p5"),  # renamed
        (lambda s: s["ws"].pop("sessions_opened"), "ws.sessions_opened"),  # dropped
        (lambda s: s["replay"]["by_kind"]["ticket_reuse"].update(accepted="many"), "replay.by_kind"),
        (lambda s: s.update(surprise=1), "surprise"),
    ],
)
def test_a_renamed_dropped_or_mistyped_key_is_an_error_naming_it(change, where: str) -> None:
    summary = copy.deepcopy(_golden())
    change(summary)
    with pytest.raises(SummaryError, match=where.replace(".", r"\.")):
        validate(summary)
