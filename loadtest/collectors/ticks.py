"""Tick-rate fidelity: what the server really ticked at, measured from its own numbers.

The server tick rate of a session is (tick numbers advanced) / (server timestamps elapsed), so it is
immune to network jitter and to a slow client: it is the server's clock and counter, not ours.
Alongside it: the client arrival rate, missed ticks (gaps in the numbering), inter-arrival jitter,
lag (receive time minus server timestamp, less an estimated clock offset when the server is on
another host) and the input-to-ack round trip.

Each session keeps a few numbers; once a second :meth:`TickCollector.roll` folds every session's
second into histograms, so "p5 tick rate across sessions" is a percentile of per-session rates.
Runs on the WebSocket engine's thread only.

Per message the hot path only appends lag, jitter and round-trip values to lists; they go into the
second's HDR histograms in one numpy pass when the second changes, at the roll, or when anyone
reads :attr:`TickCollector.agg`, with results identical to hdrh's own ``record_value`` per value
(tests/unit/collectors/test_ticks_batch.py). ``record_value`` was half of ``on_tick``'s cost.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from hdrh.histogram import HdrHistogram

from loadtest.collectors.aggregates import Aggregator, Bucket, _limits, hist_unit, new_histogram, percentile
from loadtest.collectors.base import Context, Reducer, Row, Section, ms, register
from loadtest.collectors.keys import Family

NAME = "ticks"
TICKS, MESSAGES, MISSED, OUT_OF_ORDER = Family("ticks"), Family("messages"), Family("missed"), Family("out_of_order")
CONNECTED, WELCOMES, NOMINAL_SUM = Family("connected"), Family("welcomes"), Family("nominal_hz_sum")
#: A message the protocol could not read, by the protocol's reason.
PROTOCOL_ERROR = Family("protocol_error", ("reason",), greedy="reason")
RATE = Family("tick_rate_centihz")
#: The harness's own failures on the engine thread (a roll that raised): ours, never the target's.
ENGINE_ERROR = Family("engine_error", ("what",), greedy="what")
LAG, JITTER, INPUT_RTT = Family("lag_us"), Family("jitter_us"), Family("input_rtt_us")
# The hot path counts by plain strings.
_TICKS, _MESSAGES, _MISSED, _OOO, _CONNECTED = TICKS(), MESSAGES(), MISSED(), OUT_OF_ORDER(), CONNECTED()
_RATE, _LAG, _JITTER, _RTT = RATE(), LAG(), JITTER(), INPUT_RTT()
#: Input send times kept per session for matching acks (a few seconds at 20 Hz).
MAX_PENDING_INPUTS = 256
#: Seconds the p5 rate must stay under the threshold to call it degradation.
ONSET_HOLD = 3


class SessionTicks:
    """Per-session tick state; every field is a number, so the per-message path stays cheap."""

    __slots__ = (
        "_inputs",
        "last_recv",
        "last_tick",
        "last_ts",
        "mark",
        "measured",
        "min_raw_lag",
        "offset",
        "received",
        "w_count",
        "w_first_tick",
        "w_first_ts",
        "w_last_tick",
        "w_last_ts",
    )

    def __init__(self) -> None:
        self.last_tick = -1
        self.last_ts = 0.0
        self.last_recv = 0.0
        self.min_raw_lag = float("inf")
        self.offset = 0.0
        self.received = 0
        self.mark = 0  # self.received at the last roll
        self.measured = False  # a full window has been measured: silence now means a stall
        self.w_first_tick = -1
        self.w_first_ts = 0.0
        self.w_last_tick = -1
        self.w_last_ts = 0.0
        self.w_count = 0
        # Made on the first input: an idle session's empty deque was 760 bytes of its memory.
        self._inputs: deque[tuple[int, float]] | None = None

    def sent_input(self, seq: int, now: float) -> None:
        inputs = self._inputs
        if inputs is None:
            inputs = self._inputs = deque(maxlen=MAX_PENDING_INPUTS)
        inputs.append((seq, now))

    def window_rate(self) -> float | None:
        """Server tick rate over this second's window, or None if it saw fewer than two ticks."""
        if self.w_count < 2 or self.w_last_ts <= self.w_first_ts:
            return None
        return (self.w_last_tick - self.w_first_tick) / (self.w_last_ts - self.w_first_ts)


class TickCollector:
    """Aggregates tick fidelity across all sessions of one Locust process."""

    def __init__(self, *, estimate_offset: bool) -> None:
        self._agg = Aggregator(NAME)
        self.estimate_offset = estimate_offset
        self.sessions: set[SessionTicks] = set()
        # Values of the current second not yet in its histograms (see the module's docstring).
        self._second: int | None = None
        self._bucket: Bucket | None = None
        self._lag: list[float] = []
        self._jitter: list[float] = []
        self._rtt: list[float] = []

    @property
    def agg(self) -> Aggregator:
        """The aggregator, with every value gathered so far in its histograms."""
        self.flush()
        return self._agg

    def flush(self) -> None:
        """Put the gathered values into their second's histograms."""
        bucket = self._bucket
        if bucket is None:
            return
        for name, values in ((_LAG, self._lag), (_JITTER, self._jitter), (_RTT, self._rtt)):
            if values:
                observe_many(bucket, name, values)
                values.clear()

    def _pending(self, second: int) -> Bucket:
        """The bucket of ``second``, whose values are now the ones gathered."""
        self.flush()
        self._second = second
        self._bucket = bucket = self._agg.bucket(second)
        return bucket

    def open(self) -> SessionTicks:
        state = SessionTicks()
        self.sessions.add(state)
        return state

    def close(self, state: SessionTicks) -> None:
        self.sessions.discard(state)

    def on_tick(self, s: SessionTicks, tick: int, ts: float, ack: int, now: float, second: int) -> None:
        """One tick message, received at ``now`` (unix seconds). The hot path."""
        bucket = self._bucket if second == self._second else self._pending(second)
        counts = bucket.counts
        counts[_TICKS] += 1
        counts[_MESSAGES] += 1
        raw_lag = now - ts
        if raw_lag < s.min_raw_lag:
            s.min_raw_lag = raw_lag
            if self.estimate_offset:
                # The smallest (receive - send) seen is one-way delay + clock offset; take it as
                # the offset, so lag reads as delay above the best case.
                s.offset = raw_lag
        self._lag.append((raw_lag - s.offset) * 1e6)
        last = s.last_tick
        if last >= 0:
            gap = tick - last
            if gap > 1:
                counts[_MISSED] += gap - 1
            elif gap <= 0:
                counts[_OOO] += 1
            server_gap = ts - s.last_ts
            if server_gap > 0:
                self._jitter.append(abs((now - s.last_recv) - server_gap) * 1e6)
        s.last_tick, s.last_ts, s.last_recv = tick, ts, now
        s.received += 1
        if s.w_count == 0:
            s.w_first_tick, s.w_first_ts = tick, ts
        s.w_last_tick, s.w_last_ts = tick, ts
        s.w_count += 1
        if ack and s._inputs and ack >= s._inputs[0][0]:
            sent = None
            inputs = s._inputs
            while inputs and inputs[0][0] <= ack:
                sent = inputs.popleft()
            if sent is not None and sent[0] == ack:
                self._rtt.append((now - sent[1]) * 1e6)

    def on_patch(self, s: SessionTicks, now: float, second: int, interval: float | None) -> None:
        """A state update without the server's numbers (a Colyseus patch), received at ``now``.

        Without a server tick counter or clock the only honest measure is the client's: the rate
        is arrivals over receive time, jitter is the inter-arrival time's distance from
        ``interval``, and a silence longer than 1.5 intervals counts the patches that fit in it as
        missed. There is no lag: nothing says when the server sent it.
        """
        bucket = self._bucket if second == self._second else self._pending(second)
        counts = bucket.counts
        counts[_TICKS] += 1
        counts[_MESSAGES] += 1
        if s.received and interval:
            gap = now - s.last_recv
            self._jitter.append(abs(gap - interval) * 1e6)
            if gap > 1.5 * interval:
                counts[_MISSED] += round(gap / interval) - 1
        s.received += 1
        s.last_tick, s.last_ts, s.last_recv = s.received, now, now
        if s.w_count == 0:
            s.w_first_tick, s.w_first_ts = s.received, now
        s.w_last_tick, s.w_last_ts = s.received, now
        s.w_count += 1

    def on_ack(self, s: SessionTicks, ack: int, now: float, second: int) -> None:
        """A message that only acknowledges input ``ack`` (a PING answer): one round trip."""
        bucket = self._bucket if second == self._second else self._pending(second)
        bucket.counts[_MESSAGES] += 1
        inputs = s._inputs
        sent = None
        while inputs and inputs[0][0] <= ack:
            sent = inputs.popleft()
        if sent is not None and sent[0] == ack:
            self._rtt.append((now - sent[1]) * 1e6)

    def unreadable(self, reason: str, second: int) -> None:
        """A message the protocol refused (``ProtocolError.reason``): counted, never fatal."""
        counts = self._agg.bucket(second).counts
        counts[_MESSAGES] += 1
        counts[PROTOCOL_ERROR(reason)] += 1

    def other(self, second: int, nominal_hz: float | None = None) -> None:
        """Any other message; a welcome that announces the server's nominal rate adds it."""
        counts = self._agg.bucket(second).counts
        counts[_MESSAGES] += 1
        if nominal_hz:
            counts[WELCOMES()] += 1
            counts[NOMINAL_SUM()] += nominal_hz

    def engine_error(self, what: str) -> None:
        """Our own bug on the engine thread; counted so a run that hit one says so."""
        self.agg.count(ENGINE_ERROR(what))

    def sender_failed(self) -> None:
        """The input sender of a session stopped on a protocol bug (a Protocol subclass's)."""
        self._agg.count(PROTOCOL_ERROR("input_message"))

    def roll(self, second: int, connected: int) -> None:
        """Close second ``second`` for every session: its server rate and arrival count."""
        self.flush()
        bucket = self._agg.bucket(second)
        bucket.counts[_CONNECTED] += connected
        for s in self.sessions:
            if s.last_tick < 0:
                continue  # not yet ticking: nothing to say about the rate
            arrivals = s.received - s.mark
            rate = s.window_rate() if arrivals else 0.0
            if not s.measured:
                # The session's first second is partial: it began ticking somewhere inside it, and
                # a few ticks' server timestamps say little about the rate (a 30 Hz server read as
                # 36 Hz). Its first full window starts at its newest tick; the next roll measures it.
                if arrivals:
                    s.measured = True
                    s.mark = s.received
                    s.w_first_tick, s.w_first_ts, s.w_count = s.w_last_tick, s.w_last_ts, 1
                continue
            s.mark = s.received
            if rate is None:
                # A single tick in a whole second after the session was ticking normally: far
                # below nominal; report what arrived rather than staying silent.
                rate = float(arrivals)
            bucket.observe(_RATE, rate * 100)
            # The next window starts at this one's last tick, so no interval is lost between seconds.
            s.w_first_tick, s.w_first_ts, s.w_count = s.w_last_tick, s.w_last_ts, 1


def observe_many(bucket: Bucket, name: str, values: list[float]) -> None:
    """``bucket.observe(name, v)`` for every ``v`` in ``values``, in one numpy pass."""
    hist = bucket.hists.get(name)
    if hist is None:
        hist = bucket.hists[name] = new_histogram(hist_unit(name))
    low, high = _limits(name)
    floats = np.asarray(values, dtype=np.float64)
    floats = floats[~np.isnan(floats)]
    # Clamping before truncating is the same as Bucket.observe's int() then clamp: low and high
    # are integers.
    record_many(hist, np.trunc(np.clip(floats, low, high)).astype(np.int64))


def record_many(hist: HdrHistogram, values: np.ndarray) -> None:
    """``hist.record_value(v)`` for every ``v`` in ``values`` (int64, each trackable by ``hist``):
    hdrh's own index arithmetic (``_counts_index_for``) done on arrays."""
    if values.size == 0:
        return
    # bit length of (v | sub_bucket_mask): exact through float64 for values below 2**53.
    pow2ceiling = np.frexp((values | hist.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket_index = pow2ceiling - hist.unit_magnitude - (hist.sub_bucket_half_count_magnitude + 1)
    sub_bucket_index = values >> (bucket_index + hist.unit_magnitude)
    index = ((bucket_index + 1) << hist.sub_bucket_half_count_magnitude) + sub_bucket_index - hist.sub_bucket_half_count
    slots, counts = np.unique(index, return_counts=True)
    if slots[0] < 0 or slots[-1] >= hist.counts_len:
        raise ValueError("value outside the histogram's trackable range")
    array = np.ctypeslib.as_array(hist.counts)
    array[slots] += counts.astype(array.dtype)
    hist.total_count += int(values.size)
    hist.min_value = min(hist.min_value, int(values.min()))
    hist.max_value = max(hist.max_value, int(values.max()))


@dataclass(frozen=True)
class TickSecond:
    second: int
    p50_hz: float | None
    p5_hz: float | None
    min_hz: float | None
    players: int
    missed: int
    lag_p99_ms: float | None


def row(second: int, b: Bucket) -> TickSecond:
    """One second's tick figures, merged across workers (the report's and the live view's row)."""
    rate = b.hists.get(_RATE)
    lag_p99 = percentile(b.hists.get(_LAG), 99)
    return TickSecond(
        second,
        _hz(percentile(rate, 50)),
        _hz(percentile(rate, 5)),
        _hz(percentile(rate, 0)),
        int(b.counts.get(_CONNECTED, 0)),
        int(b.counts.get(_MISSED, 0)),
        None if lag_p99 is None else lag_p99 / 1000,
    )


def _hz(centihz: float | None) -> float | None:
    return None if centihz is None else centihz / 100


def degradation_onset(
    rows: Iterable[TickSecond], threshold_hz: float, *, saturated: set[int] = frozenset(), hold: int = ONSET_HOLD
) -> TickSecond | None:
    """The first second from which p5 stays below ``threshold_hz`` for ``hold`` seconds in a row.

    Seconds in which the load generator was saturated are not evidence either way: they break a
    run rather than extend it, so client-side lag is never reported as server degradation.
    """
    run: list[TickSecond] = []
    for row in rows:
        if row.p5_hz is None or row.second in saturated or row.p5_hz >= threshold_hz:
            run = []
            continue
        run.append(row)
        if len(run) >= hold:
            return run[0]
    return None


class Degradation(Section):
    onset_second: int
    players: int
    p5_hz: float | None


#: Where the nominal tick rate came from, in the order they are asked: the scenario
#: (``ticks.nominal_hz``, or what the adapter implies), the server's welcome messages, the target's
#: own tick-rate gauge on ``/metrics``. None: nobody said, and no tick verdict is given.
NOMINAL_SOURCES = ("scenario", "welcome", "target_metrics")
#: Key under which the run folder's reader passes the target's gauge to the reducers (not a setting).
TARGET_NOMINAL = "target_nominal_hz"


class TickSection(Section):
    nominal_hz: float | None
    nominal_source: Literal[NOMINAL_SOURCES] | None = None
    threshold_hz: float | None
    p50_hz: float | None
    p5_hz: float | None
    min_hz: float | None
    #: Measured / nominal: gates on these fit a server of any tick rate (``tick.p5_ratio >= 0.9``).
    p50_ratio: float | None = None
    p5_ratio: float | None = None
    min_ratio: float | None = None
    ticks_received: int
    missed_ticks: int
    out_of_order: int
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    jitter_p99_ms: float | None
    input_rtt_p50_ms: float | None
    input_rtt_p99_ms: float | None
    degradation: Degradation | None
    seconds: int
    peak_players: int
    engine_errors: int = 0


@register
class TicksReducer(Reducer):
    name = NAME
    models = {"tick": TickSection}
    sections = ("tick",)
    needs = ("generator",)
    table = "ticks"
    columns = ("p50_hz", "p5_hz", "min_hz", "players", "missed")
    columns += ("lag_p50_ms", "lag_p99_ms", "jitter_p99_ms", "saturated")
    int_columns = ("players", "missed")
    bool_columns = ("saturated",)

    def __init__(self) -> None:
        super().__init__()
        #: One row per second: the degradation onset and the live trend are read off these.
        self.seconds: list[TickSecond] = []
        self.peak_players = 0
        self._onset = _OnsetScan()

    def fact(self, second: int, bucket: Bucket) -> TickSecond:
        return row(second, bucket)

    def observe(self, second: int, fact: TickSecond) -> None:
        self.seconds.append(fact)
        self.peak_players = max(self.peak_players, fact.players)

    def rows(self, second: int, bucket: Bucket, ctx: Context) -> list[Row]:
        rate, lag = bucket.hists.get(_RATE), bucket.hists.get(_LAG)
        return [
            {
                "p50_hz": ms(rate, 50, 100, digits=None),
                "p5_hz": ms(rate, 5, 100, digits=None),
                "min_hz": ms(rate, 0, 100, digits=None),
                "players": int(bucket.counts.get(_CONNECTED, 0)),
                "missed": int(bucket.counts.get(_MISSED, 0)),
                "lag_p50_ms": ms(lag, 50, digits=None),
                "lag_p99_ms": ms(lag, 99, digits=None),
                "jitter_p99_ms": ms(bucket.hists.get(_JITTER), 99, digits=None),
                "saturated": second in saturated_seconds(ctx),
            }
        ]

    def nominal(self, ctx: Context) -> tuple[float | None, str | None]:
        """The nominal rate and where it came from (:data:`NOMINAL_SOURCES`): the scenario's, else
        the mean the server announced in its welcomes, else the target's tick-rate gauge. Never a
        guess: a server of unknown rate gets no tick verdict rather than one against 60 Hz."""
        configured = ctx.nominal_hz or ctx.settings.get("nominal_tick_rate")
        if configured:
            return float(configured), "scenario"
        welcomes = self.total.counts.get(WELCOMES(), 0)
        if welcomes:
            return round(self.total.counts[NOMINAL_SUM()] / welcomes, 3), "welcome"
        gauge = ctx.settings.get(TARGET_NOMINAL)
        if gauge:
            return float(gauge), "target_metrics"
        return None, None

    def summarise(self, ctx: Context) -> dict[str, Any]:
        total, rows = self.total, self.seconds
        rate, lag, rtt = total.hists.get(_RATE), total.hists.get(_LAG), total.hists.get(_RTT)
        nominal, source = self.nominal(ctx)
        threshold = ctx.threshold or ctx.settings.get("degradation_threshold") or 0.9
        unjudged = saturated_seconds(ctx) | fault_seconds(ctx)
        onset = self._onset.scan(rows, nominal * threshold, unjudged) if nominal else None
        p50, p5, low = ms(rate, 50, 100), ms(rate, 5, 100), ms(rate, 0, 100)
        return {
            "tick": {
                "nominal_hz": nominal,
                "nominal_source": source,
                "threshold_hz": None if not nominal else round(nominal * threshold, 3),
                "p50_hz": p50,
                "p5_hz": p5,
                "min_hz": low,
                "p50_ratio": ratio(p50, nominal),
                "p5_ratio": ratio(p5, nominal),
                "min_ratio": ratio(low, nominal),
                "ticks_received": int(total.counts.get(_TICKS, 0)),
                "missed_ticks": int(total.counts.get(_MISSED, 0)),
                "out_of_order": int(total.counts.get(_OOO, 0)),
                "lag_p50_ms": ms(lag, 50),
                "lag_p99_ms": ms(lag, 99),
                "jitter_p99_ms": ms(total.hists.get(_JITTER), 99),
                "input_rtt_p50_ms": ms(rtt, 50),
                "input_rtt_p99_ms": ms(rtt, 99),
                "degradation": None
                if onset is None
                else {"onset_second": onset.second, "players": onset.players, "p5_hz": onset.p5_hz},
                "seconds": len(rows),
                "peak_players": self.peak_players,
                "engine_errors": ENGINE_ERROR.total(total.counts),
            }
        }


class _OnsetScan:
    """:func:`degradation_onset`, resumed where the last summary left off: a live view asks every
    few seconds, and an hour of rows must not be scanned again each time."""

    def __init__(self) -> None:
        self.threshold: float | None = None
        self.done = 0
        self.run: list[TickSecond] = []
        self.onset: TickSecond | None = None

    def scan(self, rows: list[TickSecond], threshold: float, saturated: set[int]) -> TickSecond | None:
        if threshold != self.threshold or self.done > len(rows):
            self.threshold, self.done, self.run, self.onset = threshold, 0, [], None
        if self.onset is None:
            for r in rows[self.done :]:
                if r.p5_hz is None or r.second in saturated or r.p5_hz >= threshold:
                    self.run = []
                    continue
                self.run.append(r)
                if len(self.run) >= ONSET_HOLD:
                    self.onset = self.run[0]
                    break
        self.done = len(rows)
        return self.onset


def ratio(measured: float | None, nominal: float | None) -> float | None:
    """``measured / nominal`` to four places, or None when either is unknown."""
    if measured is None or not nominal:
        return None
    return round(measured / nominal, 4)


def gauge_nominal(target_metrics: Mapping[str, Any] | None, settings: Mapping[str, Any]) -> float | None:
    """The nominal tick rate the target's own ``/metrics`` states, from its last scrape (then its
    first): the mean of every sample of the gauge (one per game server or room), or None.

    The gauge is ``settings["nominal_tick_gauge"]`` (``ticks.nominal_gauge``): a sample named so,
    or ending in ``_`` and so (``mygame_nominal_tick_rate_hz`` for the default name)."""
    from loadtest.config.settings import NOMINAL_TICK_GAUGE

    if not isinstance(target_metrics, Mapping) or not target_metrics.get("scraped"):
        return None
    name = str(settings.get("nominal_tick_gauge") or NOMINAL_TICK_GAUGE)
    for phase in ("end", "start"):
        samples = target_metrics.get(phase) or {}
        values = [
            float(v)
            for k, v in samples.items()
            if (k.split("{", 1)[0] == name or k.split("{", 1)[0].endswith("_" + name)) and isinstance(v, int | float)
        ]
        values = [v for v in values if 0 < v <= 100_000]
        if values:
            return round(sum(values) / len(values), 3)
    return None


def saturated_seconds(ctx: Context) -> set[int]:
    """Seconds the generator was saturated in: no evidence about the server either way."""
    return getattr(ctx.reducer("generator"), "saturated", set())


#: Seconds after a network storm's planned end in which its players are still coming back.
FAULT_SLACK_S = 3


def fault_seconds(ctx: Context) -> set[int]:
    """Seconds in which the harness itself froze, cut off, reset or slowed players' links (network
    storms, carried out by the relay): the tick rate players saw then is our doing, not the
    server's, so like a saturated second it is no evidence of degradation either way."""
    from loadtest.config.settings import NETWORK_STORMS  # config imports collectors: late

    if ctx.first_second is None:
        return set()
    out: set[int] = set()
    for storm in ctx.settings.get("storms") or ():
        if not isinstance(storm, Mapping) or storm.get("side") not in NETWORK_STORMS:
            continue
        start = ctx.first_second + int(float(storm.get("at") or 0))
        length = 0.0 if storm.get("side") == "reset" else float(storm.get("seconds") or 0)
        out.update(range(start, start + int(length + 0.999) + FAULT_SLACK_S + 1))
    return out
