"""Errors on the engine's thread reach the log with their traceback, as text."""

from __future__ import annotations

import logging

from loadtest.runtime.engine import _ThreadLogger


def _raise() -> None:
    raise ValueError("the bad thing")


def test_an_exception_crosses_with_its_traceback():
    posted = []
    log = _ThreadLogger(lambda *event: posted.append(event))
    try:
        _raise()
    except ValueError as exc:
        log.error("session %d failed: %r", 7, exc, exc_info=exc)
        log.exception("and again")
    (kind, level, text), (_, _, again) = posted
    assert (kind, level) == ("log", logging.ERROR)
    assert text.startswith("session 7 failed: ValueError('the bad thing')")
    assert "Traceback (most recent call last)" in text and "in _raise" in text
    assert "in _raise" in again, "exception() logs the exception being handled"


def test_a_message_without_an_exception_stays_one_line():
    posted = []
    _ThreadLogger(lambda *event: posted.append(event)).warning("slow: %d ms", 12)
    assert posted == [("log", logging.WARNING, "slow: 12 ms")]
