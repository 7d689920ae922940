"""What the monitor pages and the functions list read: the rollup's rows,
the open minute from the meter, and the month's usage from the ledger."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..functions.service import FunctionService
from ..metering import billing
from ..metering.calls import CallJournal
from . import series
from .rollup import Counts, Rollup, add_into, quantile_ms
from .rollup_store import ACCOUNT, RollupStore


class Monitor:
    def __init__(
        self,
        store: RollupStore,
        rollup: Rollup,
        calls: CallJournal,
        service: FunctionService,
        *,
        prices: billing.Prices = billing.DEFAULT_PRICES,
        wall: Callable[[], float] = time.time,
        run_sync: Callable[..., Awaitable] = trio.to_thread.run_sync,
    ) -> None:
        self.store = store
        self.rollup = rollup
        self.calls = calls
        self.service = service
        self.prices = prices
        self.wall = wall
        self._run_sync = run_sync

    def _architecture(self, name: str) -> str:
        rec = self.service.registry.get(name)
        return rec.architectures[0] if rec is not None and rec.architectures else "x86_64"

    async def _month_totals(self, starts: list[int]) -> dict[str, tuple[int, int]]:
        out = {}
        for month in sorted({series.month_of(ts) for ts in starts}):
            usage = await self.calls.usage(month, None)
            out[month] = (sum(u.requests for u in usage), sum(u.mb_ms for u in usage))
        return out

    async def _filled(self, function: str | None, starts: list[int], step: int, tier: int) -> list[Counts]:
        key = ACCOUNT if function is None else function
        first, end = starts[0], starts[-1] + step
        rows = await self._run_sync(self.store.rows, tier, key, first, end)
        found = [(ts, c) for ts, _, c in rows]
        if tier == 3600:
            # The current hour is not rolled up yet: its minutes so far.
            current = await self._run_sync(self.store.rows, 60, key, starts[-1], end)
            found += [(ts, c) for ts, _, c in current]
        found += series.live_rows(await self._run_sync(self.rollup.live), function)
        return series.fill(starts, step, found)

    async def chart(self, function: str | None, range_name: str) -> dict:
        """Every series of one function's (None: the account's) monitor
        page, with cost after the free tier."""
        now = self.wall()
        starts, step, tier = series.buckets(range_name, now)
        mine = await self._filled(function, starts, step, tier)
        account = mine if function is None else await self._filled(None, starts, step, tier)
        paid = series.paid_parts(starts, account, await self._month_totals(starts), self.prices)
        if function is None:
            rows = await self._run_sync(self.store.rows, tier, None, starts[0], starts[-1] + step)
            mb_ms: dict[str, int] = {}
            for _, name, c in rows:
                if name != ACCOUNT:
                    mb_ms[name] = mb_ms.get(name, 0) + c.mb_ms
            price = series.blended_price(mb_ms, self._architecture, self.prices)
        else:
            price = self.prices.gb_second_price(self._architecture(function))
        doc: dict[str, Any] = series.shape(starts, step, mine)
        doc["cost_usd"] = series.costs(mine, paid, price, self.prices)
        doc["step"] = step
        doc["range"] = range_name
        doc["function"] = function
        return doc

    async def last_hour(self) -> dict[str, dict]:
        """Per function: calls, errors and p99 over the last hour, and a
        point per minute of each (the functions list's sparklines)."""
        now = self.wall()
        starts, step, _ = series.buckets("1h", now)
        rows = await self._run_sync(self.store.rows, 60, None, starts[0], starts[-1] + step)
        per_fn: dict[str, list[tuple[int, Counts]]] = {}
        for ts, name, c in rows:
            if name != ACCOUNT:
                per_fn.setdefault(name, []).append((ts, c))
        minute, live = await self._run_sync(self.rollup.live)
        for name, c in live.items():
            per_fn.setdefault(name, []).append((minute, c))
        out = {}
        for name, found in per_fn.items():
            filled = series.fill(starts, step, found)
            total = Counts()
            for c in filled:
                add_into(total, c, gauges="max")
            p99 = quantile_ms(total.hist, 0.99)
            out[name] = {
                "invocations": total.invocations,
                "errors": total.errors,
                "p99_ms": None if p99 is None else round(p99, 3),
                "spark": {
                    "t": starts,
                    "invocations": [c.invocations for c in filled],
                    "errors": [c.errors for c in filled],
                    "p99_ms": [None if (q := quantile_ms(c.hist, 0.99)) is None else round(q, 3) for c in filled],
                },
            }
        return out

    async def month_bill(self, granularity_ms: int = 1) -> dict:
        """This month's bill so far, as `lambdalet usage` reports it."""
        month = billing.month_of(time.time_ns())
        usage = await self.calls.usage(month, None)
        return billing.report(month, granularity_ms, usage, self.prices)


def queue_gauges(store, dead_letter_queue: str):
    """A Gauges reader for the rollup: events accepted and not finished, and
    records in the dead-letter queue, per function (from queue.db; run in a
    worker thread)."""
    from .rollup import Gauges

    def read() -> Gauges:
        with store.reading() as db:
            depth = dict(db.execute("SELECT function, COUNT(*) FROM events GROUP BY function").fetchall())
            dlq = dict(
                db.execute("SELECT function, COUNT(*) FROM messages WHERE queue = ? GROUP BY function", (dead_letter_queue,)).fetchall()
            )
        return Gauges(async_depth=depth, dlq=dlq)

    return read
