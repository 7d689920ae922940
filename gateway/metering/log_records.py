"""What a call's log is recorded as, and read back as. Pure.

CallLog is a call's log as the call journal carries it (its bytes, the
marks that tell when each part was written, the frame its platform lines
are made of); LogEvent and LogPage are what the log store's queries
answer. split_events stamps each line of a call's log; framed tells
whether a call's frame makes its platform lines again, to the byte (then
logstore.py keeps the frame instead of those lines).
"""

from __future__ import annotations

import msgspec

from .log_lines import MAX_MARKS, CallFrame


class CallLog(msgspec.Struct, array_like=True, kw_only=True, gc=False):
    """The log a call produced, as the journal carries it."""

    log_group: str
    log_stream: str
    request_id: str
    started_ns: int
    ended_ns: int
    log: bytes
    # (offset, ms) pairs: when the bytes before each offset had been written
    # (log_lines.call_marks). Records journaled before marks existed have none.
    marks: list[tuple[int, int]] = []
    # What the log's platform lines (START, END, REPORT) are made of: they
    # are stored as this, not as text. None: every line is kept as text.
    frame: CallFrame | None = None


class LogEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    timestamp_ms: int
    log_group: str
    log_stream: str
    message: str


class LogPage(msgspec.Struct, frozen=True, kw_only=True):
    events: list[LogEvent]
    next: tuple[int, int] | None  # cursor (timestamp_ms, id) of the next page; None at the end
    upto_id: int  # the newest id paging covers; following goes on after it


def split_events(call: CallLog) -> list[tuple[int, str]]:
    """(timestamp ms, message) per line. Each line is stamped with the time
    it was written, as the call's marks tell it (log_lines.call_marks): the first
    mark at or after the line's end, clamped into the call's span and never
    earlier than a line before it. Lines after the last mark (END, REPORT,
    what a killed worker left) take the end of the call. The stamps depend
    only on the record, so a replayed journal stamps alike."""
    start_ms = call.started_ns // 1_000_000
    end_ms = max(start_ms, call.ended_ns // 1_000_000)
    if not call.marks:
        return _split_unmarked(call, start_ms, end_ms)
    log = call.log
    size = len(log)
    out: list[tuple[int, str]] = []
    pos = 0
    floor = start_ms
    for offset, ms in call.marks[: MAX_MARKS + 1]:
        # Lines that end at or before the mark: up to its last newline, or
        # to the end of the log when the mark reaches it.
        cut = size if offset >= size else log.rfind(b"\n", pos, offset) + 1
        if cut <= pos:
            continue
        floor = min(max(floor, ms), end_ms)
        out.extend((floor, line) for line in log[pos:cut].decode("utf-8", errors="replace").splitlines())
        pos = cut
    if pos < size:
        out.extend((end_ms, line) for line in log[pos:].decode("utf-8", errors="replace").splitlines())
    return out


def _split_unmarked(call: CallLog, start_ms: int, end_ms: int) -> list[tuple[int, str]]:
    # As such records were always stamped (a replay must stamp them alike):
    # the last two platform lines (END and REPORT, or platform.report) at
    # the end of the call, every other line at its start.
    out = []
    for line in call.log.decode("utf-8", errors="replace").splitlines():
        tail = line.startswith(("END RequestId:", "REPORT RequestId:")) or '"type":"platform.report"' in line
        out.append((end_ms if tail else start_ms, line))
    return out


def split_framed(call: CallLog) -> tuple[list[tuple[int, str]], tuple[int, int] | None]:
    """split_events(call) and framed() of its lines, in one. Most calls
    print nothing: their log is the frame's Text lines alone, with the one
    mark the gateway set at the end of START. Such a log is told by making
    the frame's bytes once and comparing; its lines are then stamped as
    split_events stamps them (START at its mark, clamped into the call's
    span; END and REPORT at the end of the call), without splitting,
    stamping and making them again to compare."""
    f = call.frame
    marks = call.marks
    if f is not None and not f.json and not f.head_at and len(marks) == 1:
        head = f.head()
        made = head + f.tail()
        if call.log == made and marks[0][0] == len(head) and head.endswith(b"\n") and made.isascii():
            start, *tail = made.decode().splitlines()
            # START one line (up to its mark), END and REPORT two more.
            if len(tail) == 2 and len(start) + 1 == len(head):
                start_ms = call.started_ns // 1_000_000
                end_ms = max(start_ms, call.ended_ns // 1_000_000)
                return [(min(max(start_ms, marks[0][1]), end_ms), start), (end_ms, tail[0]), (end_ms, tail[1])], (0, 1)
    lines = split_events(call)
    return lines, framed(call, lines)


def framed(call: CallLog, lines: list[tuple[int, str]]) -> tuple[int, int] | None:
    """Where the call's platform lines are among its lines, (head index,
    index of the first tail line), when its frame makes exactly those lines
    again, stamps included; else None and every line is kept as text."""
    f = call.frame
    if f is None:
        return None
    # A warm call's log starts with its START line (no init output before it).
    head = len(call.log[: f.head_at].decode("utf-8", errors="replace").splitlines()) if f.head_at else 0
    made = f.lines()  # every call of every batch: each line made once, not once per comparison
    tail = len(lines) - (len(made) - 1)
    if not 0 <= head < tail:
        return None
    if lines[head][1] != made[0]:
        return None
    stamp = lines[tail][0]
    for i in range(1, len(made)):
        ts, text = lines[tail + i - 1]
        if text != made[i] or ts != stamp:
            return None
    return head, tail
