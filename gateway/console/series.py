"""Chart series from rollup rows: buckets, percentiles, and cost after the
free tier. Pure functions: rows in, arrays out (as the charts read them).

Ranges: 1 h in minutes, 24 h in 5-minute buckets (from minute rows), 7 d in
hours (hour rows, and the current hour from its minutes). The open minute,
which the store does not hold yet, comes from the meter directly
(Rollup.live), so a call shows in the charts at once.

Cost: the free tier (billing.Prices: 1M requests and 400,000 GB-s a month)
covers the account, so a bucket's paid part is what the account used beyond
it, counting month to date; the month's totals come from the usage ledger,
and the buckets are walked back from now. A function's bucket pays its
share of the account's paid part, as billing.report shares the bill.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from decimal import Decimal

from ..metering import billing
from .rollup import Counts, account_total, add_into, quantile_ms

RANGES: dict[str, tuple[int, int, int]] = {
    # name: (span, bucket step, rollup tier read)
    "1h": (3600, 60, 60),
    "24h": (86400, 300, 60),
    "7d": (7 * 86400, 3600, 3600),
}
MB_MS_PER_GB_S = billing.MB_MS_PER_GB_S


def buckets(range_name: str, now_s: float) -> tuple[list[int], int, int]:
    """(bucket starts, step, tier) for a range ending with the bucket that holds now."""
    span, step, tier = RANGES[range_name]
    last = int(now_s) // step * step
    first = last - span + step
    return list(range(first, last + step, step)), step, tier


def fill(starts: list[int], step: int, rows: Iterable[tuple[int, Counts]]) -> list[Counts]:
    """Rows (period start, counts) added into the buckets that hold them;
    gauges keep the highest value within a bucket."""
    out = [Counts() for _ in starts]
    if not starts:
        return out
    first = starts[0]
    for ts, counts in rows:
        i = (ts - first) // step
        if 0 <= i < len(out):
            add_into(out[i], counts, gauges="max")
    return out


def shape(starts: list[int], step: int, filled: list[Counts]) -> dict[str, list]:
    """The arrays a chart draws; None where a value does not exist (no
    call, no percentile)."""
    doc: dict[str, list] = {
        k: []
        for k in (
            "t",
            "invocations",
            "errors",
            "throttles",
            "cold_starts",
            "p50_ms",
            "p99_ms",
            "concurrent_max",
            "concurrent_mean",
            "async_depth",
            "dlq",
            "gb_s",
        )
    }
    for ts, c in zip(starts, filled):
        doc["t"].append(ts)
        doc["invocations"].append(c.invocations)
        doc["errors"].append(c.errors)
        doc["throttles"].append(c.throttles)
        doc["cold_starts"].append(c.cold_starts)
        p50, p99 = quantile_ms(c.hist, 0.5), quantile_ms(c.hist, 0.99)
        doc["p50_ms"].append(None if p50 is None else round(p50, 3))
        doc["p99_ms"].append(None if p99 is None else round(p99, 3))
        doc["concurrent_max"].append(c.concurrent_max)
        doc["concurrent_mean"].append(round(c.duration_ns / (step * 1e9), 3))
        doc["async_depth"].append(c.async_depth)
        doc["dlq"].append(c.dlq)
        doc["gb_s"].append(round(c.mb_ms / MB_MS_PER_GB_S, 6))
    return doc


def month_of(ts: int) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m")


def paid_parts(
    starts: list[int], account: list[Counts], months: dict[str, tuple[int, int]], prices: billing.Prices = billing.DEFAULT_PRICES
) -> list[tuple[Decimal, Decimal]]:
    """Per bucket, the fraction of the account's requests and of its GB-s
    that fell beyond the month's free tier, walking back from the month's
    total as of now. months: the account's (requests, MB·ms) per month to
    date, as the usage ledger sums them."""
    out: list[tuple[Decimal, Decimal]] = [(Decimal(0), Decimal(0))] * len(starts)
    free_req = prices.free_requests
    free_mb_ms = prices.free_gb_seconds * MB_MS_PER_GB_S
    after: dict[str, list[int]] = {}  # month -> [requests, mb_ms] of buckets later than the one at hand
    for i in range(len(starts) - 1, -1, -1):
        month = month_of(starts[i])
        total_req, total_mb_ms = months.get(month, (0, 0))
        later = after.setdefault(month, [0, 0])
        c = account[i]
        end_req = max(total_req - later[0], c.invocations)
        end_mb = max(total_mb_ms - later[1], c.mb_ms)
        paid_req = max(0, end_req - max(end_req - c.invocations, free_req))
        paid_mb = max(0, end_mb - max(end_mb - c.mb_ms, free_mb_ms))
        out[i] = (Decimal(paid_req) / c.invocations if c.invocations else Decimal(0), Decimal(paid_mb) / c.mb_ms if c.mb_ms else Decimal(0))
        later[0] += c.invocations
        later[1] += c.mb_ms
    return out


def costs(
    filled: list[Counts], paid: list[tuple[Decimal, Decimal]], gb_s_price: Decimal, prices: billing.Prices = billing.DEFAULT_PRICES
) -> list[float]:
    """USD per bucket after the free tier."""
    per_request = Decimal(prices.per_million_requests) / 1_000_000
    out = []
    for c, (req_frac, gb_frac) in zip(filled, paid):
        cost = c.invocations * per_request * req_frac + Decimal(c.mb_ms) / MB_MS_PER_GB_S * gb_s_price * gb_frac
        out.append(float(round(cost, 10)))
    return out


def blended_price(mb_ms_by_function: dict[str, int], architecture_of, prices: billing.Prices = billing.DEFAULT_PRICES) -> Decimal:
    """The account's GB-s price over a window: each function's GB-s at its
    architecture's price."""
    total = sum(mb_ms_by_function.values())
    if not total:
        return prices.gb_second_price("x86_64")
    weighted = sum((Decimal(m) * prices.gb_second_price(architecture_of(f)) for f, m in mb_ms_by_function.items()), Decimal(0))
    return weighted / total


def live_rows(live: tuple[int, dict[str, Counts]], function: str | None) -> list[tuple[int, Counts]]:
    """The open minute as a row of the function (None: the account)."""
    minute, rows = live
    if function is None:
        return [(minute, account_total(rows.values()))] if rows else []
    c = rows.get(function)
    return [(minute, c)] if c is not None else []
