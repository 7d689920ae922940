"""Lambda's platform log lines around each call. Pure functions.

The REPORT format is AWS's to the character: tab-separated fields, each
followed by a tab, Init Duration only on a cold start.
"""

from __future__ import annotations

import base64
import datetime
import json

import msgspec

from . import billing


def start_line(request_id: str, version: str) -> bytes:
    return f"START RequestId: {request_id} Version: {version}\n".encode()


def end_line(request_id: str) -> bytes:
    return f"END RequestId: {request_id}\n".encode()


def billed_ms(duration_ns: int, granularity_ms: int = 1) -> int:
    """Billed duration: rounded up to the granularity, at least one unit."""
    return billing.billed_ms(duration_ns, granularity_ms)


def report_line(
    request_id: str,
    duration_ns: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None = None,
    granularity_ms: int = 1,
) -> bytes:
    # One f-string: this runs on every call, and a list of fields joined
    # with tabs costs a third more.
    init = "" if init_ns is None else f"Init Duration: {init_ns / 1e6:.2f} ms\t"
    return (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ns / 1e6:.2f} ms\t"
        f"Billed Duration: {billed_ms(duration_ns, granularity_ms)} ms\tMemory Size: {memory_mb} MB\t"
        f"Max Memory Used: {max_memory_mb} MB\t{init}\n"
    ).encode()


def timestamp(ms: int | None = None) -> str:
    """A log time as Lambda writes them, of now or of epoch ms."""
    if ms is None:
        now = datetime.datetime.now(datetime.timezone.utc)
        ms = int(now.timestamp()) * 1000 + now.microsecond // 1000
    return datetime.datetime.fromtimestamp(ms // 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def timeout_line(request_id: str, timeout_s: float) -> bytes:
    return f"{timestamp()} {request_id} Task timed out after {timeout_s:.2f} seconds\n".encode()


def cap(output: bytes, limit: int) -> tuple[bytes, int]:
    """The last `limit` bytes of a worker's output, from the start of a
    line where one begins near the cut, and how many bytes were dropped."""
    if len(output) <= limit:
        return output, 0
    kept = output[-limit:]
    newline = kept.find(b"\n", 0, 4096)
    if newline >= 0:
        kept = kept[newline + 1 :]
    return kept, len(output) - len(kept)


def capped(
    output: bytes,
    marks: list[tuple[int, int]],
    limit: int,
    request_id: str | None,
    logging_config: dict[str, str] | None = None,
    dropped: int = 0,
) -> tuple[bytes, list[tuple[int, int]]]:
    """A worker's output within `limit` bytes (cap), led by a notice of
    what was cut (`dropped` bytes were cut before this already), with its
    marks moved to match and those of the cut part left out."""
    kept, cut = cap(output, limit)
    dropped += cut
    if not dropped:
        return kept, marks
    notice = dropped_notice(request_id, dropped, limit, logging_config)
    shift = len(notice) - cut
    return notice + kept, [(offset + shift, ms) for offset, ms in marks if offset > cut]


def dropped_notice(request_id: str | None, dropped: int, limit: int, logging_config: dict[str, str] | None = None) -> bytes:
    """Says in the log that `dropped` bytes of output were cut (request_id
    None: output of the init phase), as a platform line in the Text format
    and as a platform.logsDropped event in the JSON one."""
    phase = "invocation" if request_id else "init phase"
    reason = f"{dropped} bytes of log output were dropped: at most {limit} bytes are kept per {phase}"
    if (logging_config or _NO_CONFIG).get("LogFormat", "Text") == "JSON":
        return _event("platform.logsDropped", {"reason": reason, "droppedBytes": dropped})
    prefix = f"RequestId: {request_id} " if request_id else ""
    return f"{timestamp()} {prefix}Warning: {reason}\n".encode()


LOG_RESULT_BYTES = 4096


def log_result(log: bytes) -> str:
    """LogType Tail's answer: the call's last 4 KB of log, base64, as
    Invoke's X-Amz-Log-Result header and a response stream's LogResult
    carry it."""
    return base64.b64encode(log[-LOG_RESULT_BYTES:]).decode()


# -- one call's log, in the function's LoggingConfig format -------------------

_NO_CONFIG: dict[str, str] = {}
_LEVELS = {"TRACE": 0, "DEBUG": 10, "INFO": 20, "WARN": 30, "ERROR": 40, "FATAL": 50}


def init_start(
    runtime_version: str,
    mapping: str = "",
    *,
    logging_config: dict[str, str] | None = None,
    initialization_type: str = "on-demand",
    function_name: str = "",
    version: str = "$LATEST",
) -> bytes:
    """The line Lambda writes as an environment's init begins, naming the
    runtime version that runs (AWS: `INIT_START Runtime Version:
    python:3.13.v14`; here the interpreter's own version). A runtime mapped
    onto another interpreter says so (gateway/functions/runtimes.py)."""
    config = logging_config or _NO_CONFIG
    if config.get("LogFormat", "Text") != "JSON":
        extra = f"\tRuntime Mapping: {mapping}" if mapping else ""
        return f"INIT_START Runtime Version: {runtime_version}{extra}\n".encode()
    if _LEVELS.get(config.get("SystemLogLevel", "INFO").upper(), 20) > _LEVELS["INFO"]:
        return b""
    record = {
        "initializationType": initialization_type,
        "phase": "init",
        "runtimeVersion": runtime_version,
        "functionName": function_name,
        "functionVersion": version,
    }
    if mapping:
        record["runtimeMapping"] = mapping
    return _event("platform.initStart", record)


class CallFrame(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What a call's platform lines are made of: START, and END and REPORT,
    or with LogFormat JSON the platform.start and platform.report events
    (their time is at_ms). The log store keeps this, a call's figures, in
    place of the lines' text and makes the lines again, to the byte, when
    they are read (logstore.py). head_at: where START sits in the call's log."""

    request_id: str
    version: str
    duration_ns: int
    memory_mb: int
    max_memory_mb: int
    init_ns: int | None
    granularity_ms: int
    error_type: str | None
    json: bool
    at_ms: int
    head_at: int = 0

    def head(self) -> bytes:
        if self.json:
            return platform_start(self.request_id, self.version, self.at_ms)
        return start_line(self.request_id, self.version)

    def tail(self) -> bytes:
        if self.json:
            return platform_report(
                self.request_id,
                self.duration_ns,
                self.memory_mb,
                self.max_memory_mb,
                self.init_ns,
                self.granularity_ms,
                self.error_type,
                self.at_ms,
            )
        return end_line(self.request_id) + report_line(
            self.request_id, self.duration_ns, self.memory_mb, self.max_memory_mb, self.init_ns, self.granularity_ms
        )

    def line(self, which: int) -> str:
        """One of its lines as the log store shows it: 0 the head, 1 and 2
        the tail's (END, REPORT; a JSON tail has one)."""
        text = self.head() if which == 0 else self.tail().split(b"\n")[which - 1] + b"\n"
        return text[:-1].decode()

    def lines(self) -> list[str]:
        """Every one of its lines, as line() makes each: the head, then the
        tail's (two for Text, one for JSON)."""
        tail = self.tail().decode().split("\n")
        return [self.head()[:-1].decode(), *tail[: 1 if self.json else 2]]


def call_frame(
    request_id: str,
    version: str,
    *,
    duration_ns: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None,
    granularity_ms: int = 1,
    logging_config: dict[str, str] | None = None,
    error_type: str | None = None,
    at_ms: int | None = None,
) -> CallFrame | None:
    """The platform's lines before and after a call's output. With LogFormat
    Text those are START, and END and REPORT; with JSON they are the
    platform.start and platform.report events that Lambda writes at INFO,
    dropped (None) when SystemLogLevel is WARN or above."""
    config = logging_config or _NO_CONFIG
    json_format = config.get("LogFormat", "Text") == "JSON"
    if json_format and _LEVELS.get(config.get("SystemLogLevel", "INFO").upper(), 20) > _LEVELS["INFO"]:
        return None
    if at_ms is None:
        at_ms = 0 if not json_format else _now_ms()
    return CallFrame(request_id, version, duration_ns, memory_mb, max_memory_mb, init_ns, granularity_ms, error_type, json_format, at_ms)


def _now_ms() -> int:
    return int(datetime.datetime.now(datetime.timezone.utc).timestamp() * 1000)


def wrap_call(request_id: str, version: str, init_log: bytes, output: bytes, **figures) -> bytes:
    """What the call's log stream receives: the init's output, then the
    worker's output between the platform's lines (call_frame)."""
    frame = call_frame(request_id, version, **figures)
    if frame is None:
        return init_log + output
    return b"".join((init_log, frame.head(), output, frame.tail()))


# -- when each line was written -------------------------------------------------
#
# A mark (offset, ms) says: the bytes of the log before `offset` had been
# written by wall-clock time `ms`. The worker marks each write it makes to
# stdout or stderr; the gateway marks the START line with the time the call
# was handed over. A line is stamped with the first mark at or after its
# end, and lines after the last mark (END, REPORT, what a killed call left)
# with the time the call ended. Marks come from inside the sandbox, so they
# are input from the function: they are counted, ordered and clamped here
# and in log_records.split_events, never trusted.

MAX_MARKS = 4096
Marks = list[tuple[int, int]]


def call_marks(init_log: bytes, init_marks: Marks, head: bytes, output: bytes, output_marks: Marks, call_ms: int) -> Marks:
    """The marks of wrap_call's result, from the worker's marks of its init
    output and of its call output (offsets within each)."""
    base = len(init_log) + len(head)
    if not init_marks and not output_marks:
        return [(base, call_ms)]  # a call that printed nothing: every call pays this
    marks: Marks = []
    _shifted(marks, init_marks, 0, len(init_log))
    marks.append((base, call_ms))
    _shifted(marks, output_marks, base, len(output))
    return marks


def prefixed(line: bytes, ms: int, log: bytes, marks: Marks) -> tuple[bytes, Marks]:
    """A platform line (INIT_START) put before a worker's output, stamped
    ms: the log, and its marks with the worker's moved past the line."""
    n = len(line)
    return line + log, [(n, ms), *((offset + n, t) for offset, t in marks[: MAX_MARKS - 1])]


def _shifted(into: Marks, marks: Marks, base: int, size: int) -> None:
    last = 0
    for offset, ms in marks[:MAX_MARKS]:
        if not (isinstance(offset, int) and isinstance(ms, int)) or offset <= last or offset > size:
            continue  # out of order or out of range: a line takes a later mark instead
        into.append((base + offset, ms))
        last = offset


def _event(kind: str, record: dict, at_ms: int | None = None) -> bytes:
    return json.dumps({"time": timestamp(at_ms), "type": kind, "record": record}, separators=(",", ":")).encode() + b"\n"


def platform_start(request_id: str, version: str, at_ms: int | None = None) -> bytes:
    return _event("platform.start", {"requestId": request_id, "version": version}, at_ms)


def platform_report(
    request_id: str,
    duration_ns: int,
    memory_mb: int,
    max_memory_mb: int,
    init_ns: int | None = None,
    granularity_ms: int = 1,
    error_type: str | None = None,
    at_ms: int | None = None,
) -> bytes:
    """The JSON form of REPORT (the Telemetry API's platform.report record)."""
    metrics: dict = {
        "durationMs": round(duration_ns / 1e6, 3),
        "billedDurationMs": billed_ms(duration_ns, granularity_ms),
        "memorySizeMB": memory_mb,
        "maxMemoryUsedMB": max_memory_mb,
    }
    if init_ns is not None:
        metrics["initDurationMs"] = round(init_ns / 1e6, 3)
    record: dict = {"requestId": request_id, "metrics": metrics}
    if error_type is None:
        record["status"] = "success"
    else:
        record["status"] = "timeout" if error_type == "Sandbox.Timedout" else "error"
        record["errorType"] = error_type
    return _event("platform.report", record, at_ms)
