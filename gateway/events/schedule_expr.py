"""EventBridge schedule expressions: `rate(...)` and `cron(...)`, parsed and
stepped forward in UTC. Pure: no clock, no I/O.

The grammar is EventBridge's (eb-cron-expressions): six fields, minutes to
year; `?` in exactly one of day-of-month and day-of-week; `L`, `W` and `LW`
in day-of-month; `L`, `nL` and `n#k` in day-of-week, where 1 is Sunday; names
JAN-DEC and SUN-SAT; `a-b`, `a/n`, `a-b/n`, `*/n` and lists. Like the Quartz
grammar EventBridge inherits, a range may wrap (`FRI-MON`, `22-2`).
"""

from __future__ import annotations

import calendar
import datetime
import re

UTC = datetime.timezone.utc
MONTHS = {name: i for i, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
WEEKDAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}
YEAR_MIN, YEAR_MAX = 1970, 2199
_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+([a-z]+)\s*\)$")
_CRON_RE = re.compile(r"^cron\((.*)\)$")
_RATE_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


class ScheduleExpressionError(ValueError):
    """The expression is not one EventBridge accepts; the message says why."""


class Rate:
    """rate(N unit): every N units, counted from an anchor (the moment the
    schedule was created), as EventBridge counts from a rule's creation."""

    def __init__(self, text: str, seconds: int) -> None:
        self.text = text
        self.seconds = seconds

    def next_after(self, after: datetime.datetime, anchor: datetime.datetime) -> datetime.datetime:
        if after < anchor:
            return anchor + datetime.timedelta(seconds=self.seconds)
        periods = int((after - anchor).total_seconds() // self.seconds) + 1
        return anchor + datetime.timedelta(seconds=periods * self.seconds)

    def __repr__(self) -> str:
        return f"Rate({self.text!r})"


class Cron:
    """cron(minutes hours day-of-month month day-of-week year), in UTC."""

    def __init__(self, text: str, fields: list[str]) -> None:
        self.text = text
        self.minutes = _values(fields[0], 0, 59, "Minutes")
        self.hours = _values(fields[1], 0, 23, "Hours")
        self.months = _values(fields[3], 1, 12, "Month", MONTHS)
        self.years = _values(fields[5], YEAR_MIN, YEAR_MAX, "Year")
        dom, dow = fields[2], fields[4]
        # EventBridge: "If you specify a value or a * in one of the fields,
        # you must use a ? in the other" — so exactly one is '?'.
        if (dom == "?") == (dow == "?"):
            raise ScheduleExpressionError("exactly one of Day-of-month and Day-of-week must be '?'")
        self.day_rule = _DayOfMonth(dom) if dow == "?" else _DayOfWeek(dow)

    def next_after(self, after: datetime.datetime, anchor: datetime.datetime | None = None) -> datetime.datetime | None:
        """The first whole minute strictly after `after` that matches, or
        None when there is none before the end of year 2199."""
        after = after.astimezone(UTC)
        start = (after.replace(second=0, microsecond=0) + datetime.timedelta(minutes=1)).replace(tzinfo=UTC)
        for year in self.years:
            if year < start.year:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in self.day_rule.days(year, month):
                    if (year, month, day) < (start.year, start.month, start.day):
                        continue
                    same_day = (year, month, day) == (start.year, start.month, start.day)
                    for hour in self.hours:
                        if same_day and hour < start.hour:
                            continue
                        for minute in self.minutes:
                            if same_day and hour == start.hour and minute < start.minute:
                                continue
                            return datetime.datetime(year, month, day, hour, minute, tzinfo=UTC)
        return None

    def __repr__(self) -> str:
        return f"Cron({self.text!r})"


Schedule = Rate | Cron


def parse(text: object) -> Schedule:
    if not isinstance(text, str):
        raise ScheduleExpressionError("a schedule expression must be a string")
    text = text.strip()
    m = _RATE_RE.match(text)
    if m:
        return _rate(text, int(m.group(1)), m.group(2))
    if text.startswith("rate("):
        raise ScheduleExpressionError("rate expressions take the form rate(value unit), e.g. rate(5 minutes)")
    m = _CRON_RE.match(text)
    if m:
        fields = m.group(1).split()
        if len(fields) != 6:
            raise ScheduleExpressionError(
                f"cron expressions have 6 fields (minutes hours day-of-month month day-of-week year), got {len(fields)}"
            )
        return Cron(text, fields)
    raise ScheduleExpressionError("a schedule expression is rate(value unit) or cron(minutes hours day-of-month month day-of-week year)")


def _rate(text: str, value: int, unit: str) -> Rate:
    if value <= 0:
        raise ScheduleExpressionError("the value of a rate expression must be a positive integer")
    singular = unit[:-1] if unit.endswith("s") else unit
    if singular not in _RATE_UNITS:
        raise ScheduleExpressionError(f"unknown unit {unit!r}: use minute(s), hour(s) or day(s)")
    # EventBridge: "If the value is equal to 1, then the unit must be
    # singular"; greater than 1, plural. rate(1 hours) and rate(5 hour) fail.
    if (value == 1) != (unit == singular):
        want = singular if value == 1 else singular + "s"
        raise ScheduleExpressionError(f"rate({value} {unit}) is not valid: the unit must be {want!r}")
    return Rate(text, value * _RATE_UNITS[singular])


# -- fields --------------------------------------------------------------------


def _number(token: str, low: int, high: int, field: str, names: dict[str, int] | None = None) -> int:
    upper = token.upper()
    if names and upper in names:
        return names[upper]
    if not token.isdigit():
        raise ScheduleExpressionError(f"{field}: {token!r} is not a value")
    value = int(token)
    if not low <= value <= high:
        raise ScheduleExpressionError(f"{field}: {value} is outside {low}-{high}")
    return value


def _values(spec: str, low: int, high: int, field: str, names: dict[str, int] | None = None) -> list[int]:
    """The sorted values a field of `, - * /` matches."""
    if not spec:
        raise ScheduleExpressionError(f"{field} is empty")
    out: set[int] = set()
    for part in spec.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ScheduleExpressionError(f"{field}: the increment in {part!r} must be a positive integer")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _number(a, low, high, field, names), _number(b, low, high, field, names)
        else:
            first = _number(base, low, high, field, names)
            # "a/n" runs from a to the end of the field; a plain value is itself.
            last = high if slash else first
        span = last - first if last >= first else (high - first) + (last - low) + 1
        for i in range(0, span + 1, step):
            value = first + i
            out.add(value if value <= high else value - high + low - 1)
    return sorted(out)


class _DayOfMonth:
    """1-31 with `, - * /`, or one of `L`, `LW`, `nW`."""

    def __init__(self, spec: str) -> None:
        self.last = self.last_weekday = False
        self.nearest_weekday: int | None = None
        self.values: list[int] = []
        upper = spec.upper()
        if upper == "L":
            self.last = True
        elif upper == "LW":
            self.last_weekday = True
        elif upper.endswith("W"):
            if "," in upper or "-" in upper or "/" in upper:
                raise ScheduleExpressionError("Day-of-month: W takes one day, e.g. 15W")
            self.nearest_weekday = _number(upper[:-1], 1, 31, "Day-of-month")
        elif "L" in upper or "W" in upper:
            raise ScheduleExpressionError(f"Day-of-month: L and W stand alone (L, LW, 15W), not in {spec!r}")
        else:
            self.values = _values(spec, 1, 31, "Day-of-month")

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        if self.last:
            return [length]
        if self.last_weekday:
            return [_nearest_weekday(year, month, length, length)]
        if self.nearest_weekday is not None:
            if self.nearest_weekday > length:
                return []
            return [_nearest_weekday(year, month, self.nearest_weekday, length)]
        return [d for d in self.values if d <= length]


class _DayOfWeek:
    """1-7 (SUN-SAT) with `, - * /`, or one of `L`, `nL`, `n#k`."""

    def __init__(self, spec: str) -> None:
        self.last_of: int | None = None  # nL: the last such weekday of the month
        self.nth: tuple[int, int] | None = None  # n#k: the k-th such weekday
        self.values: list[int] = []
        upper = spec.upper()
        if "#" in upper:
            # "If you use the '#' character, you can define only one
            # expression in the day-of-week field": 3#1,6#3 is invalid.
            if "," in upper or "-" in upper or "/" in upper:
                raise ScheduleExpressionError("Day-of-week: with '#' the field holds one expression only")
            day, _, nth = upper.partition("#")
            if not nth.isdigit() or not 1 <= int(nth) <= 5:
                raise ScheduleExpressionError(f"Day-of-week: the instance in {spec!r} must be 1-5")
            self.nth = (_number(day, 1, 7, "Day-of-week", WEEKDAYS), int(nth))
        elif upper == "L":
            self.values = [7]  # the last day of the week is Saturday
        elif upper.endswith("L"):
            if "," in upper or "-" in upper or "/" in upper:
                raise ScheduleExpressionError("Day-of-week: L takes one day, e.g. 6L")
            self.last_of = _number(upper[:-1], 1, 7, "Day-of-week", WEEKDAYS)
        else:
            self.values = _values(spec, 1, 7, "Day-of-week", WEEKDAYS)

    def days(self, year: int, month: int) -> list[int]:
        length = calendar.monthrange(year, month)[1]
        # calendar.weekday: Monday is 0. EventBridge: Sunday is 1.
        first_dow = (calendar.weekday(year, month, 1) + 1) % 7 + 1
        dow = [(first_dow - 1 + d - 1) % 7 + 1 for d in range(1, length + 1)]
        if self.nth is not None:
            want, k = self.nth
            matches = [d for d in range(1, length + 1) if dow[d - 1] == want]
            return [matches[k - 1]] if k <= len(matches) else []
        if self.last_of is not None:
            return [max(d for d in range(1, length + 1) if dow[d - 1] == self.last_of)]
        wanted = set(self.values)
        return [d for d in range(1, length + 1) if dow[d - 1] in wanted]


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    """The Monday-Friday closest to `day` without leaving the month (Quartz's
    W: 1W on a Saturday is Monday the 3rd, not Friday of the month before)."""
    weekday = calendar.weekday(year, month, day)  # Monday 0 .. Sunday 6
    if weekday == 5:  # Saturday
        return day - 1 if day > 1 else day + 2
    if weekday == 6:  # Sunday
        return day + 1 if day < length else day - 2
    return day
