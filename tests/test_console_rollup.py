"""The console's per-minute rollup: deltas of the meter's real counters
(a meter file written by meter.record, as calls write it), SQLite rows,
hours rolled up, retention, a restart that loses nothing, and the chart
series and cost after the free tier."""

from __future__ import annotations

import pathlib
import sqlite3

import pytest
import trio

from lambdalet.gateway.console import series
from lambdalet.gateway.console.rollup import Counts, Cumulative, Gauges, Rollup, by_function, delta, quantile_ms, snapshot_of
from lambdalet.gateway.console.rollup_store import ACCOUNT, HOUR_RETENTION_S, MINUTE_RETENTION_S, RollupStore
from lambdalet.gateway.metering import billing
from lambdalet.gateway.metering.meter import OUTCOME_INDEX, Meter

T0 = 1_800_000_000 // 3600 * 3600  # an hour boundary


def call(meter: Meter, fn: str, ms: float, *, outcome: str = "success", cold: bool = False, memory: int = 128, version: str = "$LATEST"):
    ns = int(ms * 1e6)
    meter.record(meter.slot(fn, version), ns, max(1, -(-ns // 1_000_000)), memory, 0, OUTCOME_INDEX[outcome], cold)


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


async def inline(fn, *args):
    return fn(*args)


@pytest.fixture
def parts(tmp_path: pathlib.Path):
    meter = Meter(tmp_path / "meter.bin", slots=64)
    store = RollupStore(tmp_path / "console.db")
    yield meter, store, tmp_path
    store.close()
    meter.close()


def test_delta_counts_calls_between_snapshots_and_restarts_after_a_reset():
    before = Cumulative(10, 2, 1, 3, 5_000, 10, 1280, (0, 4, 6) + (0,) * 0)
    now = Cumulative(15, 3, 1, 4, 9_000, 16, 2048, (0, 6, 9))
    d = delta(before, now)
    assert (d.invocations, d.errors, d.throttles, d.cold_starts, d.duration_ns, d.billed_ms, d.mb_ms) == (5, 1, 0, 1, 4_000, 6, 768)
    assert d.hist == {1: 2, 2: 3}
    # A counter that went down: the file was replaced; count from zero.
    reset = delta(now, before)
    assert reset.invocations == 10 and reset.hist == {1: 4, 2: 6}
    # A slot never seen before: all of its calls are new.
    assert delta(None, now).invocations == 15


def test_versions_add_up_into_their_function(parts):
    meter, _, _ = parts
    before = snapshot_of(meter)
    call(meter, "f", 2)
    call(meter, "f", 3, version="1")
    call(meter, "f", 4, outcome="error", version="1")
    call(meter, "g", 1)
    rows = by_function(before, snapshot_of(meter))
    assert rows["f"].invocations == 3 and rows["f"].errors == 1
    assert rows["g"].invocations == 1
    assert sum(rows["f"].hist.values()) == 3


def test_quantiles_come_from_the_histogram():
    meter_hist = {}
    assert quantile_ms(meter_hist, 0.99) is None
    # 99 calls near 1 ms and one near 100 ms: p50 about 1 ms, p99 at most the slow bucket's bound.
    from lambdalet.gateway.metering.meter import hist_upper_bounds_ns

    bounds = hist_upper_bounds_ns()
    fast = bounds.index(2_000_000)  # the bucket [1 ms, 2 ms)
    slow = bounds.index(200_000_000)  # [100 ms, 200 ms)
    hist = {fast: 99, slow: 1}
    assert 1.0 <= quantile_ms(hist, 0.5) <= 2.0
    assert 1.0 <= quantile_ms(hist, 0.99) <= 2.0
    assert 100.0 <= quantile_ms(hist, 0.999) <= 200.0


@pytest.mark.trio
async def test_minutes_close_into_rows_with_the_account_beside_them(parts):
    meter, store, _ = parts
    clock = Clock(T0 + 5)
    depth = {"f": 3}
    rollup = Rollup(meter, store, wall=clock, run_sync=inline, gauges=lambda: Gauges(async_depth=depth, dlq={"g": 2}))
    async with trio.open_nursery() as nursery:
        await nursery.start(rollup.run)
        call(meter, "f", 2)
        call(meter, "f", 40, outcome="timeout", cold=True)
        call(meter, "g", 1, memory=1024)
        clock.t = T0 + 60
        await rollup.close_minute()
        nursery.cancel_scope.cancel()
    rows = {name: c for _, name, c in store.rows(60, None, T0, T0 + 60)}
    assert rows["f"].invocations == 2 and rows["f"].errors == 1 and rows["f"].cold_starts == 1
    assert rows["f"].async_depth == 3
    assert rows["g"].dlq == 2 and rows["g"].mb_ms == 1024 * 1
    assert rows[ACCOUNT].invocations == 3 and rows[ACCOUNT].dlq == 2 and rows[ACCOUNT].async_depth == 3
    # The next minute starts from this one's end: nothing counted twice.
    assert rollup.live()[1] == {}


@pytest.mark.trio
async def test_a_restart_loses_no_call_and_counts_none_twice(parts):
    meter, store, tmp_path = parts
    clock = Clock(T0 + 1)
    first = Rollup(meter, store, wall=clock, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(first.run)
        call(meter, "f", 1)
        clock.t = T0 + 60
        await first.close_minute()
        call(meter, "f", 1)  # made after the last close, before a kill
        nursery.cancel_scope.cancel()
    store.close()
    store2 = RollupStore(tmp_path / "console.db")
    try:
        clock.t = T0 + 300
        second = Rollup(meter, store2, wall=clock, run_sync=inline)
        async with trio.open_nursery() as nursery:
            await nursery.start(second.run)
            call(meter, "f", 1)
            clock.t = T0 + 360
            await second.close_minute()
            nursery.cancel_scope.cancel()
        counts = [c.invocations for _, name, c in store2.rows(60, "f", T0, T0 + 3600)]
        assert counts == [1, 2]
    finally:
        store2.close()


def test_first_start_takes_the_meter_as_it_is(parts):
    meter, store, _ = parts
    call(meter, "old", 1)  # history from before the console existed
    clock = Clock(T0 + 1)

    async def main():
        rollup = Rollup(meter, store, wall=clock, run_sync=inline)
        async with trio.open_nursery() as nursery:
            await nursery.start(rollup.run)
            clock.t = T0 + 60
            await rollup.close_minute()
            nursery.cancel_scope.cancel()

    trio.run(main)
    assert store.rows(60, None, 0, T0 + 3600) == []


def test_hours_roll_up_and_old_rows_go(parts):
    _, store, _ = parts
    base = {("f", "$LATEST"): Cumulative(0, 0, 0, 0, 0, 0, 0, ())}
    for minute in range(0, 3600, 60):
        store.close_minute(T0 + minute, {"f": Counts(invocations=1, concurrent_max=minute // 60, hist={5: 1})}, base)
    store.close_minute(T0 + 3600, {"f": Counts(invocations=7)}, base)
    hours = {name: c for _, name, c in store.rows(3600, None, T0, T0 + 3600)}
    assert hours["f"].invocations == 60 and hours["f"].concurrent_max == 59 and hours["f"].hist == {5: 60}
    assert hours[ACCOUNT].invocations == 60
    assert store.hours_through() == T0
    # Far later: minutes past 25 h and hours past 8 days are deleted.
    later = T0 + HOUR_RETENTION_S + 7200
    store.close_minute(later, {"f": Counts(invocations=1)}, base)
    assert store.rows(60, "f", 0, later - MINUTE_RETENTION_S) == []
    assert store.rows(3600, "f", 0, later - HOUR_RETENTION_S) == []
    assert [c.invocations for _, _, c in store.rows(60, "f", later, later + 60)] == [1]


def test_series_buckets_and_cost_after_the_free_tier():
    starts, step, tier = series.buckets("24h", T0 + 1234)
    assert step == 300 and tier == 60 and len(starts) == 288 and starts[-1] <= T0 + 1234 < starts[-1] + 300
    filled = series.fill(starts, step, [(starts[-1], Counts(invocations=2, mb_ms=2048)), (starts[-1] + 60, Counts(invocations=3))])
    assert filled[-1].invocations == 5
    doc = series.shape(starts, step, filled)
    assert doc["invocations"][-1] == 5 and doc["p99_ms"][-1] is None and doc["gb_s"][-1] == pytest.approx(2048 / 1024 / 1000)
    prices = billing.DEFAULT_PRICES
    month = series.month_of(starts[-1])
    # The month so far: 1M requests (the free tier) were used before this
    # bucket's 5, so all 5 are paid; GB-s are still within the free tier.
    paid = series.paid_parts(starts, filled, {month: (1_000_005, 2048)}, prices)
    assert paid[-1][0] == 1 and paid[-1][1] == 0
    cost = series.costs(filled, paid, prices.gb_second_price("x86_64"), prices)
    assert cost[-1] == pytest.approx(5 * 0.20 / 1_000_000)
    # Well within the free tier: nothing to pay.
    assert (
        series.costs(filled, series.paid_parts(starts, filled, {month: (5, 2048)}, prices), prices.gb_second_price("x86_64"), prices)[-1]
        == 0
    )


class RefusingStore:
    """A store on a full disk: refuses every minute."""

    def __init__(self, real: RollupStore) -> None:
        self.real = real
        self.refuse = True

    def load_baseline(self):
        return self.real.load_baseline()

    def save_baseline(self, baseline):
        self.real.save_baseline(baseline)

    def close_minute(self, minute_s, rows, baseline):
        if self.refuse:
            raise sqlite3.OperationalError("database or disk is full")
        self.real.close_minute(minute_s, rows, baseline)


@pytest.mark.trio
async def test_a_store_that_cannot_write_loses_no_call_and_stops_nothing(parts, capsys):
    meter, store, _ = parts
    flaky = RefusingStore(store)
    clock = Clock(T0 + 1)
    rollup = Rollup(meter, flaky, wall=clock, run_sync=inline)
    async with trio.open_nursery() as nursery:
        await nursery.start(rollup.run)
        call(meter, "f", 1)
        clock.t = T0 + 60
        assert await rollup.close_minute() is False
        call(meter, "f", 1)
        flaky.refuse = False
        clock.t = T0 + 120
        assert await rollup.close_minute() is True
        nursery.cancel_scope.cancel()
    assert [(ts, c.invocations) for ts, _, c in store.rows(60, "f", T0, T0 + 3600)] == [(T0 + 60, 2)]
    assert "cannot store a minute" in capsys.readouterr().err
