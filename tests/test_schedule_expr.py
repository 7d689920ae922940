"""rate(...) and cron(...) as EventBridge defines them (eb-cron-expressions,
eb-rate-expressions): the documented examples, and each documented rule as a
row. Pure: no server, no clock."""

from __future__ import annotations

import datetime

import pytest

from lambdalet.gateway.events.schedule_expr import Cron, Rate, ScheduleExpressionError, parse

UTC = datetime.timezone.utc


def at(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def fires(expr: str, after: datetime.datetime, n: int = 1) -> list[datetime.datetime]:
    sched = parse(expr)
    out = []
    for _ in range(n):
        after = sched.next_after(after, at(2026, 1, 1))
        out.append(after)
    return out


# -- rate ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "expr, seconds",
    [
        ("rate(1 minute)", 60),
        ("rate(5 minutes)", 300),
        ("rate(1 hour)", 3600),
        ("rate(12 hours)", 43200),
        ("rate(1 day)", 86400),
        ("rate(7 days)", 604800),
    ],
)
def test_rate_units(expr, seconds):
    sched = parse(expr)
    assert isinstance(sched, Rate) and sched.seconds == seconds


@pytest.mark.parametrize(
    "expr",
    [
        "rate(1 minutes)",  # 1 takes the singular
        "rate(1 hours)",
        "rate(5 hour)",  # more than 1 takes the plural
        "rate(2 day)",
        "rate(0 minutes)",  # a positive integer
        "rate(-1 minutes)",
        "rate(1.5 hours)",
        "rate(5 seconds)",  # minute, hour and day only
        "rate(2 weeks)",
        "rate(5)",
        "rate(minutes)",
        "rate 5 minutes",
    ],
)
def test_rate_refusals(expr):
    with pytest.raises(ScheduleExpressionError):
        parse(expr)


def test_rate_counts_from_its_anchor():
    anchor = at(2026, 3, 1, 12, 0, 30)
    sched = parse("rate(5 minutes)")
    assert sched.next_after(anchor, anchor) == at(2026, 3, 1, 12, 5, 30)
    assert sched.next_after(at(2026, 3, 1, 12, 5, 30), anchor) == at(2026, 3, 1, 12, 10, 30)  # strictly after
    assert sched.next_after(at(2026, 3, 1, 13, 2, 0), anchor) == at(2026, 3, 1, 13, 5, 30)


# -- cron: EventBridge's own example table -------------------------------------


@pytest.mark.parametrize(
    "expr, after, expected",
    [
        # 10:00 AM (UTC) every day
        ("cron(0 10 * * ? *)", at(2026, 5, 4, 10, 0), [at(2026, 5, 5, 10, 0), at(2026, 5, 6, 10, 0)]),
        # 12:15 PM every day
        ("cron(15 12 * * ? *)", at(2026, 5, 4, 12, 14), [at(2026, 5, 4, 12, 15), at(2026, 5, 5, 12, 15)]),
        # 6:00 PM Monday through Friday (2026-05-08 is a Friday)
        ("cron(0 18 ? * MON-FRI *)", at(2026, 5, 8, 18, 0), [at(2026, 5, 11, 18, 0), at(2026, 5, 12, 18, 0)]),
        # 8:00 AM on the first day of the month
        ("cron(0 8 1 * ? *)", at(2026, 5, 4), [at(2026, 6, 1, 8, 0), at(2026, 7, 1, 8, 0)]),
        # every 15 minutes
        ("cron(0/15 * * * ? *)", at(2026, 5, 4, 10, 50), [at(2026, 5, 4, 11, 0), at(2026, 5, 4, 11, 15)]),
        # every 10 minutes Monday through Friday (2026-05-09 is a Saturday)
        ("cron(0/10 * ? * MON-FRI *)", at(2026, 5, 8, 23, 55), [at(2026, 5, 11, 0, 0), at(2026, 5, 11, 0, 10)]),
        # every 5 minutes between 8:00 AM and 5:55 PM weekdays
        ("cron(0/5 8-17 ? * MON-FRI *)", at(2026, 5, 4, 17, 55), [at(2026, 5, 5, 8, 0), at(2026, 5, 5, 8, 5)]),
        # every 30 minutes weekdays, 10:00 PM to 2:00 AM: the hour range wraps
        ("cron(0/30 20-2 ? * MON-FRI *)", at(2026, 5, 4, 2, 30), [at(2026, 5, 4, 20, 0), at(2026, 5, 4, 20, 30)]),
        ("cron(0/30 20-2 ? * MON-FRI *)", at(2026, 5, 4, 23, 30), [at(2026, 5, 5, 0, 0), at(2026, 5, 5, 0, 30)]),
        # 9:00 AM on the first Monday of each month (2026-06-01 is a Monday)
        ("cron(0 9 ? * 2#1 *)", at(2026, 5, 4, 9, 0), [at(2026, 6, 1, 9, 0), at(2026, 7, 6, 9, 0)]),
        # 10:15 AM on the last Friday of each month during 2019-2027
        ("cron(15 10 ? * 6L 2019-2027)", at(2026, 5, 1), [at(2026, 5, 29, 10, 15), at(2026, 6, 26, 10, 15)]),
        # "1/10 ... the 11th, 21st, and 31st minute"
        ("cron(1/10 * * * ? *)", at(2026, 5, 4, 10, 1), [at(2026, 5, 4, 10, 11), at(2026, 5, 4, 10, 21)]),
    ],
)
def test_documented_examples(expr, after, expected):
    assert fires(expr, after, len(expected)) == expected


# -- cron: each wildcard ------------------------------------------------------


@pytest.mark.parametrize(
    "expr, after, expected",
    [
        # , and - and names, case-insensitive
        ("cron(0 0 1 JAN,jul ? *)", at(2026, 2, 1), [at(2026, 7, 1), at(2027, 1, 1)]),
        ("cron(0 0 ? * SUN,SAT *)", at(2026, 5, 4), [at(2026, 5, 9), at(2026, 5, 10)]),
        ("cron(0 0 ? * FRI-MON *)", at(2026, 5, 5), [at(2026, 5, 8), at(2026, 5, 9), at(2026, 5, 10), at(2026, 5, 11)]),
        # a step over a range
        ("cron(10-30/10 6 * * ? *)", at(2026, 5, 4, 6, 10), [at(2026, 5, 4, 6, 20), at(2026, 5, 4, 6, 30), at(2026, 5, 5, 6, 10)]),
        ("cron(0 */6 * * ? *)", at(2026, 5, 4, 7), [at(2026, 5, 4, 12), at(2026, 5, 4, 18), at(2026, 5, 5, 0)]),
        # L: the last day of the month, leap years included
        ("cron(0 0 L * ? *)", at(2028, 2, 1), [at(2028, 2, 29), at(2028, 3, 31), at(2028, 4, 30)]),
        ("cron(0 0 L 2 ? *)", at(2026, 3, 1), [at(2027, 2, 28), at(2028, 2, 29)]),
        # L alone in day-of-week: the last day of the week, Saturday
        ("cron(0 0 ? * L *)", at(2026, 5, 4), [at(2026, 5, 9), at(2026, 5, 16)]),
        # W: the weekday nearest the day, never leaving the month.
        # 2026-08-15 is a Saturday -> Friday 14th; 2026-11-15 a Sunday -> Monday 16th.
        ("cron(0 0 15W * ? 2026)", at(2026, 8, 1), [at(2026, 8, 14), at(2026, 9, 15), at(2026, 10, 15), at(2026, 11, 16)]),
        # 2026-08-01 is a Saturday: 1W is Monday the 3rd, not Friday in July.
        ("cron(0 0 1W 8 ? 2026)", at(2026, 7, 1), [at(2026, 8, 3)]),
        # 2026-05-31 is a Sunday: 31W is Friday the 29th; months without a 31st are skipped.
        ("cron(0 0 31W * ? 2026)", at(2026, 5, 1), [at(2026, 5, 29), at(2026, 7, 31)]),
        # LW: the last weekday of the month (2026-05-31 is a Sunday)
        ("cron(0 0 LW * ? 2026)", at(2026, 5, 1), [at(2026, 5, 29), at(2026, 6, 30)]),
        # #: the 5th Friday exists only in some months (2026: Jan, May, Jul, Oct)
        ("cron(0 0 ? * 6#5 2026)", at(2026, 1, 31), [at(2026, 5, 29), at(2026, 7, 31), at(2026, 10, 30)]),
        ("cron(0 0 ? * FRI#5 2026)", at(2026, 1, 31), [at(2026, 5, 29)]),
        # year lists and ranges
        ("cron(0 0 1 1 ? 2027,2030-2031)", at(2026, 6, 1), [at(2027, 1, 1), at(2030, 1, 1), at(2031, 1, 1), None]),
        ("cron(0 0 1 1 ? */50)", at(2026, 6, 1), [at(2070, 1, 1), at(2120, 1, 1)]),
        # Feb 30 never happens: no next fire
        ("cron(0 0 30 2 ? *)", at(2026, 1, 1), [None]),
        # the end of EventBridge's calendar
        ("cron(0 0 1 1 ? *)", at(2199, 1, 1), [None]),
    ],
)
def test_wildcards(expr, after, expected):
    sched = parse(expr)
    got = []
    for _ in expected:
        after = sched.next_after(after) if after is not None else None
        got.append(after)
    assert got == expected


def test_next_is_strictly_after_and_on_the_minute():
    sched = parse("cron(0 10 * * ? *)")
    assert sched.next_after(at(2026, 5, 4, 10, 0, 0)) == at(2026, 5, 5, 10, 0)
    assert sched.next_after(at(2026, 5, 4, 9, 59, 59, 999999)) == at(2026, 5, 4, 10, 0)
    assert parse("cron(* * * * ? *)").next_after(at(2026, 12, 31, 23, 59, 30)) == at(2027, 1, 1, 0, 0)


def test_non_utc_input_is_converted():
    tz = datetime.timezone(datetime.timedelta(hours=2))
    # 11:00 at +02:00 is 09:00 UTC: today's 10:00 UTC is still ahead.
    assert parse("cron(0 10 * * ? *)").next_after(datetime.datetime(2026, 5, 4, 11, 0, tzinfo=tz)) == at(2026, 5, 4, 10, 0)
    assert parse("cron(0 10 * * ? *)").next_after(datetime.datetime(2026, 5, 4, 12, 0, tzinfo=tz)) == at(2026, 5, 5, 10, 0)


@pytest.mark.parametrize(
    "expr, why",
    [
        ("cron(0 10 * * * *)", "both day fields given"),
        ("cron(0 10 ? * ? *)", "both day fields '?'"),
        ("cron(0 10 1 * MON *)", "both day fields given"),
        ("cron(0 10 * * ?)", "five fields"),
        ("cron(0 10 * * ? * *)", "seven fields"),
        ("cron(60 10 * * ? *)", "minute out of range"),
        ("cron(0 24 * * ? *)", "hour out of range"),
        ("cron(0 0 32 * ? *)", "day-of-month out of range"),
        ("cron(0 0 0 * ? *)", "day-of-month starts at 1"),
        ("cron(0 0 1 13 ? *)", "month out of range"),
        ("cron(0 0 ? * 8 *)", "day-of-week out of range"),
        ("cron(0 0 ? * 0 *)", "day-of-week starts at 1 (SUN)"),
        ("cron(0 0 1 1 ? 2200)", "year after 2199"),
        ("cron(0 0 1 1 ? 1969)", "year before 1970"),
        ("cron(0 0 ? * 3#1,6#3 *)", "'#' allows one expression only"),
        ("cron(0 0 ? * 2#6 *)", "no sixth Monday"),
        ("cron(0 0 ? * 2#0 *)", "instances count from 1"),
        ("cron(0 0 1-5W * ? *)", "W takes one day"),
        ("cron(0 0 ? * 2W *)", "W is day-of-month only"),
        ("cron(0 0 L-2 * ? *)", "L stands alone"),
        ("cron(0 0 1 * L *)", "both day fields given"),
        ("cron(0 0 ? * 1-3L *)", "L takes one day"),
        ("cron(L 0 * * ? *)", "L is a day wildcard only"),
        ("cron(0 ? * * ? *)", "? is a day wildcard only"),
        ("cron(0/0 * * * ? *)", "a zero increment"),
        ("cron(0/x * * * ? *)", "a bad increment"),
        ("cron(0 0 1 FOO ? *)", "an unknown month name"),
        ("cron(0 0 ? * MONDAY *)", "day names are three letters"),
        ("cron(0,,5 0 * * ? *)", "an empty list item"),
        ("cron()", "no fields"),
        ("0 10 * * ? *", "no cron(...)"),
        ("at(2026-05-04T10:00:00)", "one-time schedules are Scheduler's, not a rule's"),
        ("", "empty"),
    ],
)
def test_cron_refusals(expr, why):
    with pytest.raises(ScheduleExpressionError):
        parse(expr)


def test_parse_gives_the_right_kind():
    assert isinstance(parse("  cron(0 10 * * ? *) "), Cron)
    assert isinstance(parse("rate(1 day)"), Rate)
