"""What each function did minute by minute, from the meter's counters.

The meter's counters only grow (meter.py): a minute's calls are the
difference between a snapshot taken as the minute ends and the one taken as
it began. This module holds that arithmetic (pure: snapshots in, counts
out) and the trio task that takes the snapshots and hands each closed
minute to the store (rollup_store.py).

Nothing is lost across a restart: the snapshot a minute was measured
against (the baseline) is stored in the same commit as the minute's rows,
so calls made between the last minute closed and a kill of the server are
counted in the first minute closed after the restart. The first start ever
(or an upgrade from a version without the console) takes the meter as it is
as its baseline: the counters' history before that has no minutes to go in.

Gauges (concurrent executions, the async queue's depth, the dead-letter
queue) are not counters: concurrency is sampled every SAMPLE_S and a minute
keeps its highest sample; the queues are read as the minute closes.
"""

from __future__ import annotations

import math
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterable

import msgspec
import trio

from ..metering.meter import HIST_BUCKETS, W_CONCURRENT, W_END, W_THROTTLES, Meter, SlotSnapshot, hist_upper_bounds_ns

MINUTE = 60
SAMPLE_S = 5.0
# Every count a minute can hold, however the meter file got its numbers:
# within a JavaScript number's exact range, so charts show what is stored.
MAX_COUNT = 2**53 - 1
_BOUNDS_NS = hist_upper_bounds_ns()


class Cumulative(msgspec.Struct, array_like=True, frozen=True):
    """One meter slot's counters at one instant (the parts the console shows)."""

    invocations: int
    errors: int
    throttles: int
    cold_starts: int
    duration_ns: int
    billed_ms: int
    mb_ms: int
    hist: tuple[int, ...]

    @classmethod
    def of(cls, snap: SlotSnapshot) -> Cumulative:
        return cls(
            snap.invocations,
            snap.errors,
            snap.throttles,
            snap.cold_starts,
            snap.duration_ns,
            snap.billed_ms,
            snap.mb_ms,
            tuple(snap.histogram),
        )


ZERO = Cumulative(0, 0, 0, 0, 0, 0, 0, (0,) * HIST_BUCKETS)


class Counts(msgspec.Struct, kw_only=True):
    """What one function (or the account) did in one period."""

    invocations: int = 0
    errors: int = 0
    throttles: int = 0
    cold_starts: int = 0
    duration_ns: int = 0
    billed_ms: int = 0
    mb_ms: int = 0
    hist: dict[int, int] = {}  # meter histogram bucket -> calls; only buckets with calls
    concurrent_max: int = 0
    async_depth: int = 0
    dlq: int = 0

    def is_empty(self) -> bool:
        return not (self.invocations or self.throttles or self.concurrent_max or self.async_depth or self.dlq)


_SUMMED = ("invocations", "errors", "throttles", "cold_starts", "duration_ns", "billed_ms", "mb_ms")
_GAUGES = ("concurrent_max", "async_depth", "dlq")


def _clamp(value: int) -> int:
    return 0 if value < 0 else MAX_COUNT if value > MAX_COUNT else value


def delta(before: Cumulative | None, now: Cumulative) -> Counts:
    """The calls between two snapshots of one slot. A slot with no earlier
    snapshot is new (every call it holds is new); a counter that went down
    means the meter file was replaced, and counting starts again from zero."""
    base = before if before is not None else ZERO
    fields = [getattr(now, f) - getattr(base, f) for f in _SUMMED]
    hist = [a - b for a, b in zip(now.hist, base.hist)]
    if any(x < 0 for x in fields) or any(x < 0 for x in hist) or len(now.hist) != len(base.hist):
        fields = [getattr(now, f) for f in _SUMMED]
        hist = list(now.hist)
    counts = Counts(**{f: _clamp(x) for f, x in zip(_SUMMED, fields)})  # type: ignore[arg-type]  # the summed ints; hist comes next
    counts.hist = {i: _clamp(c) for i, c in enumerate(hist) if c > 0}
    return counts


def add_into(total: Counts, part: Counts, *, gauges: str) -> None:
    """Adds part's counts to total's. gauges: "sum" when adding functions
    into the account, "max" when adding minutes into a longer period."""
    for f in _SUMMED:
        setattr(total, f, _clamp(getattr(total, f) + getattr(part, f)))
    if part.hist:
        hist = dict(total.hist)
        for i, c in part.hist.items():
            hist[i] = _clamp(hist.get(i, 0) + c)
        total.hist = hist
    for f in _GAUGES:
        mine, theirs = getattr(total, f), getattr(part, f)
        setattr(total, f, _clamp(mine + theirs) if gauges == "sum" else max(mine, theirs))


def by_function(before: dict[tuple[str, str], Cumulative], now: dict[tuple[str, str], Cumulative]) -> dict[str, Counts]:
    """Each function's calls between two snapshots of the meter (its
    versions' slots added up). now may hold only the slots that moved."""
    out: dict[str, Counts] = {}
    for key, cum in now.items():
        d = delta(before.get(key), cum)
        if d.invocations or d.throttles:
            add_into(out.setdefault(key[0], Counts()), d, gauges="sum")
    return out


def account_total(functions: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in functions:
        add_into(total, c, gauges="sum")
    return total


def quantile_ms(hist: dict[int, int], q: float) -> float | None:
    """The q-quantile of a period's durations in ms, interpolated within its
    histogram bucket (as Prometheus' histogram_quantile does); None without calls."""
    total = sum(hist.values())
    if total <= 0:
        return None
    rank = q * total
    seen = 0
    for index in sorted(hist):
        count = hist[index]
        if seen + count >= rank and count > 0:
            lower = _BOUNDS_NS[index - 1] if 0 < index <= len(_BOUNDS_NS) else 0
            if index >= len(_BOUNDS_NS):
                return _BOUNDS_NS[-1] / 1e6  # the open last bucket: its lower bound
            upper = _BOUNDS_NS[index]
            return (lower + (upper - lower) * max(0.0, rank - seen) / count) / 1e6
        seen += count
    return _BOUNDS_NS[-1] / 1e6


def snapshot_of(meter: Meter) -> dict[tuple[str, str], Cumulative]:
    return {(s.function, s.version): Cumulative.of(s) for s in meter.snapshot()}


class Gauges(msgspec.Struct, kw_only=True):
    """The queues as a minute closes, per function."""

    async_depth: dict[str, int] = {}
    dlq: dict[str, int] = {}


class Rollup:
    """Takes the meter's snapshots and closes each minute into the store.

    store: needs load_baseline() -> dict | None, save_baseline(baseline)
    and close_minute(minute_s, rows, baseline) (rollup_store.RollupStore).

    Reading every slot of the meter costs ~3 us a slot in Python, and the
    meter has 4096: the slots in use are listed once a minute, a sample
    reads one word of each, and a minute reads in full only the slots whose
    record sequence or throttle count moved since the last one.
    """

    def __init__(
        self,
        meter: Meter,
        store,
        *,
        gauges: Callable[[], Gauges] = Gauges,
        wall: Callable[[], float] = time.time,
        sample_s: float = SAMPLE_S,
        run_sync: Callable[..., Awaitable] = trio.to_thread.run_sync,
    ) -> None:
        self.meter = meter
        self.store = store
        self.gauges = gauges
        self.wall = wall
        self.sample_s = sample_s
        self._run_sync = run_sync
        self._baseline: dict[tuple[str, str], Cumulative] = {}
        self._marks: dict[tuple[str, str], tuple[int, int]] = {}  # (END, throttles) the baseline was read at
        self._slots: list[tuple[str, str, object]] = []
        self._cached = -1  # the meter's count of looked-up slots when they were listed
        self._open_minute = 0
        self._concurrent: dict[str, int] = {}  # highest sample this minute, per function
        self.closed = 0  # minutes closed since start (tests wait on it)
        self.failures = 0  # minutes in a row the store refused

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        stored = await self._run_sync(self.store.load_baseline)
        if stored is None:
            stored = await self._run_sync(snapshot_of, self.meter)
            await self._run_sync(self.store.save_baseline, stored)
        self._baseline = stored
        self._cached = self.meter.statistics()["slots_cached"]
        self._slots = await self._run_sync(self.meter.slots_in_use)
        self._open_minute = _minute_of(self.wall())
        task_status.started()
        while True:
            now = self.wall()
            next_minute = self._open_minute + MINUTE
            await trio.sleep(max(0.0, min(self.sample_s, next_minute - now)))
            if self.wall() >= next_minute:
                await self.close_minute()
            else:
                self._rescan_if_new()
                self._sample()

    def _sample(self) -> None:
        """The concurrency gauges now: one word per slot in use."""
        per_fn: dict[str, int] = {}
        for function, _, slot in self._slots:
            value = Meter.word(slot, W_CONCURRENT)
            if value and value < 1 << 63:  # a leave() seen before its enter() reads as a wrap
                per_fn[function] = per_fn.get(function, 0) + value
        for name, value in per_fn.items():
            if value > self._concurrent.get(name, 0):
                self._concurrent[name] = value

    def _current(self) -> tuple[dict[tuple[str, str], Cumulative], dict[tuple[str, str], tuple[int, int]]]:
        """The slots that moved since the baseline, read now, and the marks
        (END, throttles) of every slot in use."""
        moved: dict[tuple[str, str], Cumulative] = {}
        marks: dict[tuple[str, str], tuple[int, int]] = {}
        baseline, seen = self._baseline, self._marks
        word = Meter.word
        for function, version, slot in self._slots:
            key = (function, version)
            mark = (word(slot, W_END), word(slot, W_THROTTLES))
            marks[key] = mark
            if seen.get(key) == mark and key in baseline:
                continue
            moved[key] = Cumulative.of(self.meter.read_slot(function, version, slot))
        return moved, marks

    async def close_minute(self) -> bool:
        """Closes the open minute: its counts, gauges and the new baseline
        go to the store in one commit. False when the store cannot take
        them now (a full disk): the baseline stays, so the next minute
        that closes counts these calls too, and the server goes on."""
        try:
            await self._close_minute()
        except (OSError, sqlite3.Error) as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 60 == 0:
                print(
                    f"lambdalet: console rollup: cannot store a minute ({exc}); its calls go into the next one", file=sys.stderr, flush=True
                )
            self._open_minute = max(self._open_minute + MINUTE, _minute_of(self.wall()))
            return False
        self.failures = 0
        return True

    async def _close_minute(self) -> None:
        # New functions' slots, once a minute.
        self._cached = self.meter.statistics()["slots_cached"]
        self._slots = await self._run_sync(self.meter.slots_in_use)
        self._sample()
        moved, marks = await self._run_sync(self._current)
        rows = by_function(self._baseline, moved)
        gauges = await self._run_sync(self.gauges)
        for name, value in self._concurrent.items():
            if value:
                rows.setdefault(name, Counts()).concurrent_max = _clamp(value)
        for name, value in gauges.async_depth.items():
            if value:
                rows.setdefault(name, Counts()).async_depth = _clamp(value)
        for name, value in gauges.dlq.items():
            if value:
                rows.setdefault(name, Counts()).dlq = _clamp(value)
        minute = self._open_minute
        await self._run_sync(self.store.close_minute, minute, rows, moved)
        self._baseline.update(moved)
        self._marks = marks
        self._concurrent = {}
        self._open_minute = max(minute + MINUTE, _minute_of(self.wall()))
        self.closed += 1

    def _rescan_if_new(self) -> None:
        """This process claims a slot for each function version it meters
        (meter.Meter.slot): when it has looked up new ones, list them, so
        that a new function's first call shows at once."""
        cached = self.meter.statistics()["slots_cached"]
        if cached != self._cached:
            self._cached = cached
            self._slots = self.meter.slots_in_use()

    def live(self) -> tuple[int, dict[str, Counts]]:
        """The open minute so far: its start, and each function's counts.
        Reads the meter: call it from a worker thread."""
        self._rescan_if_new()
        moved, _ = self._current()
        rows = by_function(self._baseline, moved)
        concurrent: dict[str, int] = {}
        for function, _, slot in self._slots:
            value = Meter.word(slot, W_CONCURRENT)
            if value and value < 1 << 63:
                concurrent[function] = concurrent.get(function, 0) + value
        for name in set(concurrent) | set(self._concurrent):
            value = max(concurrent.get(name, 0), self._concurrent.get(name, 0))
            if value:
                rows.setdefault(name, Counts()).concurrent_max = value
        return self._open_minute, rows


def _minute_of(wall_s: float) -> int:
    return int(math.floor(wall_s / MINUTE)) * MINUTE
