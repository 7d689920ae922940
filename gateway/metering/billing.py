"""What calls cost: pure arithmetic, no I/O.

A call is billed per request and per GB-second: its duration rounded up to
the billing granularity (1 ms as AWS bills today, or 100 ms as it once
did), times its configured memory. Each calendar month (UTC) an account's
first 1M requests and 400,000 GB-s are free. The free tier is shared out
across functions in proportion to their use, so every function's cost and
the account's total agree.

Sums are exact: GB-s are kept as integer MB·ms until the end, and money is
reckoned in Decimal and rounded to 10 decimal places (a tenth of a
nano-dollar) only when the report is written.
"""

from __future__ import annotations

import datetime
from decimal import ROUND_HALF_EVEN, Decimal

import msgspec

MB_MS_PER_GB_S = 1024 * 1000
MONEY_PLACES = Decimal("0.0000000001")


class Prices(msgspec.Struct, frozen=True, kw_only=True):
    """Defaults are AWS's us-east-1 on-demand prices (first pricing tier)."""

    per_million_requests: str = "0.20"
    per_gb_second: dict[str, str] = msgspec.field(default_factory=lambda: {"x86_64": "0.0000166667", "arm64": "0.0000133334"})
    free_requests: int = 1_000_000
    free_gb_seconds: int = 400_000

    def gb_second_price(self, architecture: str) -> Decimal:
        return Decimal(self.per_gb_second.get(architecture, self.per_gb_second["x86_64"]))


DEFAULT_PRICES = Prices()

# Bounds of what one call can honestly be. Numbers outside them are clamped
# wherever they enter the account (the per-call hook, the ledger's insert)
# and wherever sums are read, so no row, however it got there, can make a
# sum overflow or go negative. A call cannot outlive Lambda's 15-minute
# Timeout; the minute of slack only keeps a slow kill's few ms.
MAX_CALL_NS = 16 * 60 * 1_000_000_000
MAX_BILLED_MS = 2 * MAX_CALL_NS // 1_000_000  # room for any billing granularity
MAX_MEMORY_MB = 10_240


def billed_ms(duration_ns: int, granularity_ms: int = 1) -> int:
    """Duration rounded up to the granularity; at least one unit is billed."""
    if granularity_ms < 1:
        raise ValueError("granularity_ms must be at least 1")
    unit = granularity_ms * 1_000_000
    return max(1, -(-duration_ns // unit)) * granularity_ms


def clamp(value: int, high: int) -> int:
    """value within [0, high]."""
    return 0 if value < 0 else high if value > high else value


def mb_ms(memory_mb: int, billed: int) -> int:
    return memory_mb * billed


def gb_seconds(mb_ms_total: int) -> Decimal:
    return Decimal(mb_ms_total) / MB_MS_PER_GB_S


class Usage(msgspec.Struct, kw_only=True):
    """One function's sums for one month and one architecture."""

    function: str
    architecture: str = "x86_64"
    requests: int = 0
    duration_ns: int = 0
    billed_ms: int = 0
    mb_ms: int = 0


def month_of(epoch_ns: int) -> str:
    return datetime.datetime.fromtimestamp(epoch_ns / 1e9, datetime.timezone.utc).strftime("%Y-%m")


def month_bounds_ns(month: str) -> tuple[int, int]:
    """[start, end) of a calendar month in UTC, as epoch ns."""
    try:
        start = datetime.datetime.strptime(month, "%Y-%m").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise ValueError(f"month must be YYYY-MM, got {month!r}") from None
    end = (start + datetime.timedelta(days=32)).replace(day=1)
    return int(start.timestamp()) * 1_000_000_000, int(end.timestamp()) * 1_000_000_000


def _money(value: Decimal) -> float:
    return float(value.quantize(MONEY_PLACES, rounding=ROUND_HALF_EVEN))


def _round(value: Decimal | float, places: int) -> float:
    return float(round(Decimal(value), places))


def report(month: str, granularity_ms: int, usage: list[Usage], prices: Prices = DEFAULT_PRICES) -> dict:
    """The monthly bill in the shape `lambdalet usage --json` prints.

    The free tier covers the whole account, so it is worked out on the
    totals, then each function's share of the remaining cost is in
    proportion to its requests and GB-s.
    """
    per_request = Decimal(prices.per_million_requests) / 1_000_000
    total_requests = sum(u.requests for u in usage)
    total_mb_ms = sum(u.mb_ms for u in usage)
    total_gbs = gb_seconds(total_mb_ms)
    free_requests = min(total_requests, prices.free_requests)
    free_gbs = min(total_gbs, Decimal(prices.free_gb_seconds))
    # The paid fraction of each dimension after the free tier.
    paid_requests = Decimal(total_requests - free_requests) / total_requests if total_requests else Decimal(0)
    paid_gbs = (total_gbs - free_gbs) / total_gbs if total_gbs else Decimal(0)

    rows: dict[str, dict] = {}
    before_total = Decimal(0)
    after_total = Decimal(0)
    for u in usage:
        request_cost = u.requests * per_request
        compute_cost = gb_seconds(u.mb_ms) * prices.gb_second_price(u.architecture)
        before = request_cost + compute_cost
        after = request_cost * paid_requests + compute_cost * paid_gbs
        before_total += before
        after_total += after
        row = rows.setdefault(u.function, {"requests": 0, "duration_ns": 0, "billed_ms": 0, "mb_ms": 0, "cost": Decimal(0)})
        row["requests"] += u.requests
        row["duration_ns"] += u.duration_ns
        row["billed_ms"] += u.billed_ms
        row["mb_ms"] += u.mb_ms
        row["cost"] += after
    functions = [
        {
            "function": name,
            "requests": r["requests"],
            "duration_ms": _round(Decimal(r["duration_ns"]) / 1_000_000, 3),
            "billed_duration_ms": r["billed_ms"],
            "gb_seconds": _round(gb_seconds(r["mb_ms"]), 10),
            "cost_usd": _money(r["cost"]),
        }
        for name, r in sorted(rows.items())
    ]
    return {
        "month": month,
        "granularity_ms": granularity_ms,
        "functions": functions,
        "totals": {
            "requests": total_requests,
            "gb_seconds": _round(total_gbs, 10),
            "cost_usd_before_free_tier": _money(before_total),
            "cost_usd": _money(after_total),
        },
    }


def report_json(doc: object) -> str:
    """JSON as json.dumps writes it, except that numbers are plain decimals
    (0.0000052917, not 5.2917e-06), as the usage report shows money."""
    import json

    if isinstance(doc, dict):
        return "{" + ", ".join(f"{json.dumps(k)}: {report_json(v)}" for k, v in doc.items()) + "}"
    if isinstance(doc, list):
        return "[" + ", ".join(report_json(v) for v in doc) + "]"
    if isinstance(doc, float):
        text = repr(doc)
        return _fmt(doc) if "e" in text else text
    return json.dumps(doc)


def report_csv(doc: dict) -> str:
    """The same report as CSV: one row per function, then a TOTAL row."""
    import csv
    import io

    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["month", "function", "requests", "duration_ms", "billed_duration_ms", "gb_seconds", "cost_usd"])
    for f in doc["functions"]:
        w.writerow(
            [
                doc["month"],
                f["function"],
                f["requests"],
                f["duration_ms"],
                f["billed_duration_ms"],
                _fmt(f["gb_seconds"]),
                _fmt(f["cost_usd"]),
            ]
        )
    t = doc["totals"]
    w.writerow([doc["month"], "TOTAL", t["requests"], "", "", _fmt(t["gb_seconds"]), _fmt(t["cost_usd"])])
    return out.getvalue()


def _fmt(value: float) -> str:
    # Plain decimals, never 5.2917e-06: spreadsheets read these as numbers.
    # Money and GB-s are already rounded to 10 places.
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0")
        text = text + "0" if text.endswith(".") else text
    else:
        text += ".0"
    return text
