"""The hostile-channel table: what a function forges on its worker's control
channel (fd 3), and what the platform must make of it.

The worker runtime runs in the function's own process, so user code can
write frames on fd 3 as the worker would, change the worker's code, or
write past its caps. Each row is a handler module (the PRELUDE below gives
it the tools) and a check of what came out, seen from outside: the answer,
the REPORT line, the log as stored and the usage as billed. The rows run
straight against the gateway's pool on a real sandbox
(test_sandbox_channel.py) and through the real server and the Lambda API
(test_sandbox_channel_api.py); both build the same `Seen` for the checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import NamedTuple

MAX_RESPONSE = 6_291_556  # AWS's limit on a synchronous response, in bytes
LOG_CAP = 1 << 20  # the log a call may leave, in bytes
TOO_LARGE = {
    "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
    "errorType": "Function.ResponseSizeTooLarge",
}

PRELUDE = '''
import json, os, select, sys, time
from lambdalet.runtime import protocol as _protocol
import lambdalet.runtime.worker as _worker


def write_frame(data):
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(3, view):]
        except BlockingIOError:  # the worker's socket may be non-blocking
            select.select([], [3], [])


def forge_result(request_id, payload=b"null", log=b"", **figures):
    """A Result frame with whatever figures the attacker likes; fields
    this protocol does not carry are left out, as a real forger would."""
    import msgspec
    given = dict(request_id=request_id, payload=payload, log=log, **figures)
    fields = {}
    for field in msgspec.structs.fields(_protocol.Result):
        if field.name in given:
            fields[field.name] = given[field.name]
        elif field.required:  # a figure this forger did not think of: any value will do
            fields[field.name] = 1
    write_frame(_protocol.encode(_protocol.Result(**fields)))


def silence_the_worker():
    """From now on the worker's own results go nowhere: only forged ones arrive."""
    real = _protocol.encode
    _worker.encode = lambda msg: b"" if isinstance(msg, _protocol.Result) else real(msg)


def kib_lines(text, count):
    """count lines of 1 KiB each (few enough for one page of a log query)."""
    return (text + b" " + b"." * (1022 - len(text)) + b"\\n") * count


def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
'''


class Seen(NamedTuple):
    """One call as seen from outside the sandbox."""

    status: int  # HTTP status (200 when run straight against the pool)
    function_error: str | None
    payload: bytes
    report: dict  # the REPORT line's figures, see parse_report
    log: str  # the call's log as the log store holds it

    def __repr__(self) -> str:
        # Payloads and logs run to megabytes: show their ends only.
        return (
            f"Seen(status={self.status}, function_error={self.function_error!r}, payload={_clip(self.payload)!r}, "
            f"report={self.report}, log={_clip(self.log)!r})"
        )


def _clip(data, keep: int = 300):
    if len(data) <= 2 * keep:
        return data
    return data[:keep] + (b"..." if isinstance(data, bytes) else "...") + data[-keep:]


class Row(NamedTuple):
    id: str
    source: str  # the handler module, after PRELUDE
    check: Callable[[list[Seen], dict], None]  # (one Seen per call, this month's usage of the function)
    events: tuple = (None,)  # one call per event
    timeout: int = 10
    memory_mb: int = 128


_REPORT = re.compile(
    r"REPORT RequestId: (?P<rid>\S+)\tDuration: (?P<duration_ms>[\d.]+) ms\tBilled Duration: (?P<billed_ms>\d+) ms\t"
    r"Memory Size: (?P<memory_mb>\d+) MB\tMax Memory Used: (?P<max_memory_mb>-?\d+) MB\t"
)


def parse_report(log: str) -> dict:
    found = list(_REPORT.finditer(log))
    assert found, f"no REPORT line in {log[-600:]!r}"
    m = found[-1]
    return {
        "duration_ms": float(m["duration_ms"]),
        "billed_ms": int(m["billed_ms"]),
        "memory_mb": int(m["memory_mb"]),
        "max_memory_mb": int(m["max_memory_mb"]),
    }


def module(source: str) -> str:
    return PRELUDE + source


# -- checks -------------------------------------------------------------------


def _billed_at_least(ms: int):
    def check(seen: list[Seen], usage: dict) -> None:
        for s in seen:
            assert s.status == 200, s
            assert s.report["duration_ms"] >= ms and s.report["billed_ms"] >= ms, s.report
            assert 1 <= s.report["max_memory_mb"] <= s.report["memory_mb"], s.report
        assert usage["requests"] == len(seen), usage
        assert usage["billed_duration_ms"] >= ms * len(seen) and usage["duration_ms"] >= ms * len(seen), usage

    return check


def _memory_within_limit(seen: list[Seen], usage: dict) -> None:
    (s,) = seen
    assert s.status == 200 and s.function_error is None, s
    assert 1 <= s.report["max_memory_mb"] <= s.report["memory_mb"], s.report
    assert usage["requests"] == 1, usage


def _answered_and_sane(seen: list[Seen], usage: dict) -> None:
    for s in seen:
        assert s.status == 200 and s.function_error is None, s
        assert 0 < s.report["billed_ms"] < 60_000, s.report
    assert usage["requests"] == len(seen), usage
    # The clock was the platform's: a few seconds at most, never 2**63 ns.
    assert 0 < usage["billed_duration_ms"] < 60_000 * len(seen), usage
    assert 0 < usage["duration_ms"] < 60_000 * len(seen), usage


def _log_capped(notices: int):
    def check(seen: list[Seen], usage: dict) -> None:
        (s,) = seen
        assert s.status == 200, s
        # Each part of the call's log (init, call) keeps at most LOG_CAP bytes,
        # and says what it dropped.
        assert len(s.log.encode()) <= notices * LOG_CAP + 64 * 1024, len(s.log)
        dropped_notices = s.log.count("bytes of log output were dropped")
        assert dropped_notices == notices, (dropped_notices, s.log[:300], s.log[-300:])
        assert s.log.count("REPORT RequestId:") == 1
        assert usage["requests"] == 1, usage

    return check


def _log_capped_after_a_kill(seen: list[Seen], usage: dict) -> None:
    (s,) = seen
    assert s.function_error == "Unhandled" and json.loads(s.payload)["errorType"] == "Sandbox.Timedout", _clip(s.payload)
    assert len(s.log.encode()) <= LOG_CAP + 64 * 1024, len(s.log)
    dropped_notices = s.log.count("bytes of log output were dropped")
    assert dropped_notices == 1, (dropped_notices, s.log[:300], s.log[-300:])
    assert s.log.count("Task timed out after 1.00 seconds") == 1


def _too_large(*, then_ok: bool = False):
    def check(seen: list[Seen], usage: dict) -> None:
        first = seen[0]
        assert first.status == 200 and first.function_error == "Unhandled", first
        assert json.loads(first.payload) == TOO_LARGE, _clip(first.payload)
        assert first.report["billed_ms"] >= 1
        if then_ok:
            # A refused answer does not cost the instance: the next call works.
            assert seen[1].status == 200 and seen[1].function_error is None and json.loads(seen[1].payload) == "small", seen[1]
        assert usage["requests"] == len(seen), usage

    return check


def _at_the_limit(seen: list[Seen], usage: dict) -> None:
    (s,) = seen
    assert s.status == 200 and s.function_error is None, _clip(s.payload)
    assert len(s.payload) == MAX_RESPONSE


def _init_refused(kind: str):
    def check(seen: list[Seen], usage: dict) -> None:
        # Each call is an init failure: the refused instance was destroyed,
        # never kept idle for the next call.
        for s in seen:
            assert s.status == 200 and s.function_error == "Unhandled", s
            error = json.loads(s.payload)
            assert error["errorType"] == "Runtime.InvalidLogDescriptor", error
            assert f"handed over {kind} where its log memfd belongs" in error["errorMessage"], error
            assert s.report["billed_ms"] < 60_000, s.report
        assert usage["requests"] == len(seen), usage
        assert 0 < usage["billed_duration_ms"] < 60_000 * len(seen), usage

    return check


# Module code runs during init, in the worker's process: it can make the
# init reply carry any fd of its own in place of the log memfd.
_SEND_INSTEAD_OF_THE_LOG = """
import socket
_real_send_fds = socket.send_fds
def _send_fds(sock, buffers, fds, *args):
    return _real_send_fds(sock, buffers, [instead()], *args)
socket.send_fds = _send_fds
def handler(event, context):
    return "kept"
"""

_WRONG_LOG_FDS = (
    ("a socket", "def instead():\n    return socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).detach()\n"),
    ("a pipe", "def instead():\n    return os.pipe()[0]\n"),
    ("a directory", "def instead():\n    return os.open('/', os.O_RDONLY | os.O_DIRECTORY)\n"),
    ("a device", "def instead():\n    return os.open('/dev/null', os.O_RDWR)\n"),
    ("a file with a path", "def instead():\n    return os.open(__file__, os.O_RDONLY)\n"),
)

ROWS: list[Row] = [
    # --- the init reply's fd: only the log memfd is kept -----------------------
    *(
        Row(f"init-log-fd-{kind.split()[-1]}", source + _SEND_INSTEAD_OF_THE_LOG, _init_refused(kind), events=(None, None))
        for kind, source in _WRONG_LOG_FDS
    ),
    # --- billing: figures the worker reports are not what is billed ----------
    Row(
        "forged-short-duration",
        """
silence_the_worker()
def handler(event, context):
    spin(0.3)
    forge_result(context.aws_request_id, b'"cheap"', duration_ns=1_000_000, max_rss_kb=0)
""",
        _billed_at_least(300),
    ),
    Row(
        "forged-huge-memory",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, duration_ns=1, max_rss_kb=2**40)
""",
        _memory_within_limit,
    ),
    # --- numbers that broke the account --------------------------------------
    Row(
        "forged-negative-duration",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, duration_ns=-5_000_000_000, max_rss_kb=-1)
""",
        _answered_and_sane,
    ),
    Row(
        "forged-max-durations",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, duration_ns=2**63 - 1, max_rss_kb=2**63 - 1)
""",
        _answered_and_sane,
        events=(1, 2),
    ),
    # --- logs: the per-call cap holds outside the sandbox ---------------------
    Row(
        "forged-huge-log",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, log=kib_lines(b"forged", 5 * 1024))
""",
        _log_capped(1),
    ),
    Row(
        "init-and-call-logs-past-the-cap",
        """
_worker.MAX_CALL_LOG = 1 << 30  # the in-sandbox cap, lifted
print(kib_lines(b"init says hello", 3 * 1024).decode(), end="")
def handler(event, context):
    print(kib_lines(b"call says hello", 3 * 1024).decode(), end="")
    return "done"
""",
        _log_capped(2),
    ),
    Row(
        "log-past-the-cap-then-killed",
        """
def handler(event, context):
    os.write(1, kib_lines(b"before the kill", 3 * 1024))
    time.sleep(30)
""",
        _log_capped_after_a_kill,
        timeout=1,
    ),
    # --- responses: 6291556 bytes at most --------------------------------------
    Row(
        "response-at-the-limit",
        """
def handler(event, context):
    return "x" * (6291556 - 2)
""",
        _at_the_limit,
        memory_mb=512,
    ),
    Row(
        "response-one-byte-over",
        """
def handler(event, context):
    return "small" if event == "small" else "x" * (6291556 - 1)
""",
        _too_large(then_ok=True),
        events=(None, "small"),
        memory_mb=512,
    ),
    Row(
        "forged-response-one-byte-over",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, payload=b"x" * 6291557)
""",
        _too_large(),
        memory_mb=512,
    ),
    Row(
        "forged-20-mib-response",
        """
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, payload=b"x" * (20 << 20))
""",
        _too_large(),
        memory_mb=512,
    ),
]
