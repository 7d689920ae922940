"""Billing arithmetic at 1 ms and 100 ms granularity, with the free tier."""

from __future__ import annotations

import pytest

from lambdalet.gateway.metering import billing
from lambdalet.gateway.metering.billing import Prices, Usage, billed_ms, report

MS = 1_000_000


@pytest.mark.parametrize(
    ("duration_ns", "at_1", "at_100"),
    [
        (0, 1, 100),  # a call that did nothing still bills one unit
        (1, 1, 100),
        (12_340_000, 13, 100),  # the issue's REPORT example: 12.34 ms
        (1 * MS, 1, 100),
        (1 * MS + 1, 2, 100),
        (100 * MS, 100, 100),
        (100 * MS + 1, 101, 200),
        (3_000 * MS, 3000, 3000),
    ],
)
def test_billed_duration_rounds_up_to_the_granularity(duration_ns, at_1, at_100):
    assert billed_ms(duration_ns, 1) == at_1
    assert billed_ms(duration_ns, 100) == at_100


def _calls(n: int, duration_ns: int, memory_mb: int, granularity: int, function: str = "f", arch: str = "x86_64") -> Usage:
    b = billed_ms(duration_ns, granularity)
    return Usage(function=function, architecture=arch, requests=n, duration_ns=n * duration_ns, billed_ms=n * b, mb_ms=n * memory_mb * b)


def test_the_issue_example_is_free():
    # 20 calls of 30.615 ms at 128 MB: 620 billed ms at 1 ms granularity.
    usage = [Usage(function="f", requests=20, duration_ns=612_300_000, billed_ms=620, mb_ms=128 * 620)]
    assert report("2026-11", 1, usage) == {
        "month": "2026-11",
        "granularity_ms": 1,
        "functions": [
            {"function": "f", "requests": 20, "duration_ms": 612.3, "billed_duration_ms": 620, "gb_seconds": 0.0775, "cost_usd": 0.0}
        ],
        "totals": {"requests": 20, "gb_seconds": 0.0775, "cost_usd_before_free_tier": 0.0000052917, "cost_usd": 0.0},
    }


def test_granularity_changes_the_bill():
    # 1,000 calls of 12.34 ms at 512 MB, with no free tier so costs show.
    no_free = Prices(free_requests=0, free_gb_seconds=0)
    at_1 = report("2026-11", 1, [_calls(1000, 12_340_000, 512, 1)], no_free)
    at_100 = report("2026-11", 100, [_calls(1000, 12_340_000, 512, 100)], no_free)
    assert at_1["functions"][0]["billed_duration_ms"] == 13_000
    assert at_100["functions"][0]["billed_duration_ms"] == 100_000
    assert at_1["totals"]["gb_seconds"] == 6.5  # 1000 x 0.013 s x 0.5 GB
    assert at_100["totals"]["gb_seconds"] == 50.0
    # 1000 requests = $0.0002; 6.5 GB-s x $0.0000166667 = $0.00010833355
    assert at_1["totals"]["cost_usd"] == 0.0003083336
    assert at_100["totals"]["cost_usd"] == 0.000200 + 0.000833335
    assert at_1["functions"][0]["duration_ms"] == at_100["functions"][0]["duration_ms"] == 12_340.0


def test_free_tier_covers_a_million_requests_and_400000_gb_s_per_month():
    # 3M requests of 100 ms at 128 MB: 37,500 GB-s, all inside the free tier;
    # only the requests past the first million are paid.
    doc = report("2026-11", 100, [_calls(3_000_000, 100 * MS, 128, 100)])
    assert doc["totals"]["gb_seconds"] == 37_500.0
    assert doc["totals"]["cost_usd_before_free_tier"] == round(0.6 + 37_500 * 0.0000166667, 10)
    assert doc["totals"]["cost_usd"] == 0.4
    # 500,000 GB-s at 1024 MB: 100,000 GB-s are paid, requests are free.
    big = _calls(250_000, 2_000 * MS, 1024, 1)
    doc = report("2026-11", 1, [big])
    assert doc["totals"]["gb_seconds"] == 500_000.0
    assert doc["totals"]["cost_usd"] == 1.66667


def test_free_tier_is_per_account_and_shared_in_proportion():
    # Two functions, 600,000 GB-s between them (x86 and arm64): a third paid.
    a = _calls(150_000, 2_000 * MS, 1024, 1, function="a")  # 300,000 GB-s x86
    b = _calls(150_000, 2_000 * MS, 1024, 1, function="b", arch="arm64")  # 300,000 GB-s arm
    doc = report("2026-11", 1, [a, b])
    by_name = {f["function"]: f for f in doc["functions"]}
    assert by_name["a"]["cost_usd"] == round(100_000 * 0.0000166667, 10)
    assert by_name["b"]["cost_usd"] == round(100_000 * 0.0000133334, 10)
    assert doc["totals"]["cost_usd"] == round(by_name["a"]["cost_usd"] + by_name["b"]["cost_usd"], 10)
    assert doc["totals"]["requests"] == 300_000


def test_prices_are_configurable():
    cheap = Prices(
        per_million_requests="0.10", per_gb_second={"x86_64": "0.00001", "arm64": "0.000008"}, free_requests=0, free_gb_seconds=0
    )
    doc = report("2026-11", 1, [_calls(1_000_000, 1000 * MS, 1024, 1)], cheap)
    assert doc["totals"]["cost_usd"] == 0.1 + 1_000_000 * 0.00001


def test_empty_month_and_month_bounds():
    assert report("2026-02", 1, [])["totals"] == {"requests": 0, "gb_seconds": 0.0, "cost_usd_before_free_tier": 0.0, "cost_usd": 0.0}
    start, end = billing.month_bounds_ns("2026-12")
    assert billing.month_of(start) == "2026-12" and billing.month_of(end) == "2027-01"
    with pytest.raises(ValueError):
        billing.month_bounds_ns("2026-13")


def test_csv_has_plain_decimals():
    doc = report("2026-11", 1, [Usage(function="f", requests=20, duration_ns=612_300_000, billed_ms=620, mb_ms=128 * 620)])
    lines = billing.report_csv(doc).splitlines()
    assert lines[0].startswith("month,function,requests")
    assert lines[1] == "2026-11,f,20,612.3,620,0.0775,0.0"
    assert lines[2] == "2026-11,TOTAL,20,,,0.0775,0.0"


def test_json_text_is_the_issue_example_to_the_character():
    doc = report("2026-11", 1, [Usage(function="f", requests=20, duration_ns=612_300_000, billed_ms=620, mb_ms=128 * 620)])
    assert billing.report_json(doc) == (
        '{"month": "2026-11", "granularity_ms": 1, "functions": [{"function": "f", "requests": 20, "duration_ms": 612.3, '
        '"billed_duration_ms": 620, "gb_seconds": 0.0775, "cost_usd": 0.0}], "totals": {"requests": 20, "gb_seconds": 0.0775, '
        '"cost_usd_before_free_tier": 0.0000052917, "cost_usd": 0.0}}'
    )
