"""What the pool is given (FunctionSpec) and what it answers (CallOutcome),
and the outcome of each way a call can end, made from the platform's own
figures. Pure: the pool measures and acts; this shapes the answer, the
error document and the call's log (START/END/REPORT or JSON platform
events) from what it measured.
"""

from __future__ import annotations

import os
import signal
import time

import msgspec

from lambdalet.runtime import errors as function_errors
from lambdalet.runtime.protocol import MAX_CALL_LOG, MAX_RESPONSE, InitError, Result

from ..functions.model import FunctionRecord
from ..metering import log_lines as logs
from .languages import Launch


class CallOutcome(msgspec.Struct):
    """A finished call. Its figures are the platform's own: durations from
    the gateway's clock, memory from the sandbox's cgroup, never what the
    worker said."""

    request_id: str
    payload: bytes
    function_error: str | None  # "Unhandled" when the function failed
    error_type: str | None
    log: bytes  # START .. REPORT, as the call's log stream holds it
    duration_ns: int
    init_ns: int | None
    cold: bool
    started_ns: int = 0  # wall clock (time.time_ns) when the call was dispatched
    memory_mb: int = 0  # configured MemorySize
    max_memory_mb: int = 0  # peak seen by the sandbox, 0 when unknown
    instance_id: str = ""
    log_stream: str = ""
    log_marks: list[tuple[int, int]] = []  # when each part of log was written (logs.call_marks)
    log_frame: logs.CallFrame | None = None  # what log's platform lines are made of
    # What the platform saw happen: success, error, timeout, oom, crash or
    # init_error. Never read from error_type, which the function chooses.
    kind: str = ""


class FunctionSpec(msgspec.Struct, frozen=True):
    """What the pool needs to start and call one revision of a function."""

    record: FunctionRecord
    code_dir: str
    arn: str
    env: dict[str, str]
    log_group: str
    version: str = "$LATEST"
    runtime: str = ""  # the interpreter that runs it ("python3.12"); "" the backend's default
    runtime_version: str = ""  # INIT_START's "python:3.12.1"; "" writes no INIT_START
    runtime_mapping: str = ""  # how a mapped Runtime runs (gateway/functions/runtimes.py), for INIT_START
    # provided.al2023 / provided.al2: the worker execs the code's bootstrap,
    # which speaks the Runtime API (gateway/execution/runtime_api).
    custom: bool = False
    # A Node.js, Java or C# function: the worker execs the language's
    # runtime, which speaks the Runtime API (gateway/execution/languages.py).
    launch: Launch | None = None
    # The function's layers' trees, in order (mounted at /opt, the last on top).
    layers: tuple[str, ...] = ()

    def code_paths(self) -> tuple[str, ...]:
        """Every tree a call or an instance of this function holds."""
        return (self.code_dir, *self.layers)


class LogHead(msgspec.Struct):
    """What a call's log is made of before it is framed: what init wrote
    (a cold call's), and when each part of it was written."""

    init_log: bytes = b""
    init_marks: list = []
    call_ms: int = 0  # when the call was handed to the worker, epoch ms


def succeeded(
    rec: FunctionRecord,
    request_id: str,
    result: Result,
    call_log: LogHead,
    *,
    duration_ns: int,
    max_mb: int,
    init_ns: int | None,
    cold: bool,
    granularity_ms: int,
) -> CallOutcome:
    """A call the worker answered: its answer, or its error document when
    the function failed (its errorType made printable), or the platform's
    refusal of an answer past MAX_RESPONSE."""
    error_type = result.error_type
    answer = result.payload
    if len(answer) > MAX_RESPONSE:
        error_type, answer = "Function.ResponseSizeTooLarge", function_errors.response_too_large()
    elif error_type:
        error_type = printable(error_type)
    output, output_marks = capped(result.log, result.log_marks, request_id, rec)
    log, marks, frame = wrap(rec, request_id, call_log, output, output_marks, duration_ns, max_mb, init_ns, error_type, granularity_ms)
    return CallOutcome(
        request_id=request_id,
        payload=answer,
        function_error="Unhandled" if error_type else None,
        error_type=error_type,
        log=log,
        duration_ns=duration_ns,
        init_ns=init_ns,
        cold=cold,
        log_marks=marks,
        log_frame=frame,
        kind="error" if error_type else "success",
    )


def failed(
    rec: FunctionRecord,
    request_id: str,
    call_log: LogHead,
    output: bytes,
    *,
    duration_ns: int,
    max_mb: int,
    init_ns: int | None,
    cold: bool,
    timed_out: bool,
    too_large: bool,
    oom: bool,
    status: int | None,
    granularity_ms: int,
) -> CallOutcome:
    """A call that produced no usable result: it timed out, its worker died
    (out of memory, or otherwise: status is its wait status), or its answer
    was refused as too large. output: what the killed worker wrote."""
    if timed_out:
        error_type, kind = "Sandbox.Timedout", "timeout"
        payload = function_errors.platform(error_type, request_id, f"Task timed out after {rec.timeout:.2f} seconds")
        output += logs.timeout_line(request_id, rec.timeout)
    elif too_large:
        error_type, kind = "Function.ResponseSizeTooLarge", "error"
        payload = function_errors.response_too_large()
        output += f"{logs.timestamp()} RequestId: {request_id} Error: {function_errors.RESPONSE_TOO_LARGE}\n{error_type}\n".encode()
    elif oom:
        error_type, kind = "Runtime.OutOfMemory", "oom"
        detail = "Runtime exited with error: signal: killed"
        payload = function_errors.platform(error_type, request_id, detail)
        output += f"{logs.timestamp()} RequestId: {request_id} Error: {detail}\n{error_type}\n".encode()
    else:
        error_type, kind = "Runtime.ExitError", "crash"
        detail = "Runtime exited with error: " + describe_status(status)
        payload = function_errors.platform(error_type, request_id, detail)
        output += f"{logs.timestamp()} RequestId: {request_id} Error: {detail}\n{error_type}\n".encode()
    # What a killed worker wrote carries no marks: it is stamped with the
    # end of the call, the first time it is known to have been written.
    log, marks, frame = wrap(rec, request_id, call_log, output, [], duration_ns, max_mb, init_ns, error_type, granularity_ms)
    return CallOutcome(
        request_id=request_id,
        payload=payload,
        function_error="Unhandled",
        error_type=error_type,
        log=log,
        duration_ns=duration_ns,
        init_ns=init_ns,
        cold=cold,
        max_memory_mb=max_mb,
        log_marks=marks,
        log_frame=frame,
        kind=kind,
    )


def init_failed(
    rec: FunctionRecord, request_id: str, reply: InitError, init_ns: int, max_mb: int, started_ns: int, *, died: bool, granularity_ms: int
) -> CallOutcome:
    """The first call of an instance whose init failed. The worker's own
    error type is shown, but the outcome is the platform's: init_error
    when the worker reported the failure, crash when it died."""
    error_type = printable(reply.error_type) or "Runtime.Unknown"
    payload = reply.payload if len(reply.payload) <= MAX_RESPONSE else function_errors.response_too_large()
    log, marks, frame = wrap(
        rec,
        request_id,
        LogHead(call_ms=started_ns // 1_000_000),
        reply.log,
        reply.log_marks,
        0,
        max_mb,
        init_ns,
        error_type,
        granularity_ms,
    )
    return CallOutcome(
        request_id=request_id,
        payload=payload,
        function_error="Unhandled",
        error_type=error_type,
        log=log,
        duration_ns=0,
        init_ns=init_ns,
        cold=True,
        log_marks=marks,
        log_frame=frame,
        kind="crash" if died else "init_error",
    )


def capped(output: bytes, marks: list, request_id: str | None, rec: FunctionRecord, dropped: int = 0) -> tuple[bytes, list]:
    # The worker honours the same cap, but the function can bypass it.
    return logs.capped(output, marks, MAX_CALL_LOG, request_id, rec.logging_config, dropped)


def wrap(
    rec: FunctionRecord,
    request_id: str,
    call_log: LogHead,
    output: bytes,
    output_marks: list,
    duration_ns: int,
    max_mb: int,
    init_ns: int | None,
    error_type: str | None,
    granularity_ms: int,
) -> tuple[bytes, list[tuple[int, int]], logs.CallFrame | None]:
    """The call's log with START/END/REPORT, or JSON platform events, per
    the LoggingConfig, its marks (logs.call_marks), and what its platform
    lines are made of (logs.CallFrame), which the log store keeps instead
    of their text."""
    init_log = call_log.init_log
    config = rec.logging_config
    if not init_log and (not config or config.get("LogFormat", "Text") != "JSON"):
        # A warm call in the Text format, nearly every call: its frame and
        # lines made directly (call_frame's keywords, the frame copied to
        # set a head_at that stays 0, cost more than the lines).
        text = logs.CallFrame(request_id, rec.version, duration_ns, rec.memory_size, max_mb, init_ns, granularity_ms, error_type, False, 0)
        head = logs.start_line(request_id, rec.version)
        if output and not output.endswith(b"\n"):
            output += b"\n"
        marks = logs.call_marks(b"", [], head, output, output_marks, call_log.call_ms)
        return b"".join((head, output, text.tail())), marks, text
    frame = logs.call_frame(
        request_id,
        rec.version,
        duration_ns=duration_ns,
        memory_mb=rec.memory_size,
        max_memory_mb=max_mb,
        init_ns=init_ns,
        granularity_ms=granularity_ms,
        logging_config=rec.logging_config,
        error_type=error_type,
    )
    if frame is None:
        head = tail = b""
    else:
        # The platform's lines are lines of their own, whatever the
        # worker's output ended with.
        if init_log and not init_log.endswith(b"\n"):
            init_log += b"\n"
        if output and not output.endswith(b"\n"):
            output += b"\n"
        head, tail = frame.head(), frame.tail()
        frame = msgspec.structs.replace(frame, head_at=len(init_log))
    marks = logs.call_marks(init_log, call_log.init_marks, head, output, output_marks, call_log.call_ms)
    return b"".join((init_log, head, output, tail)), marks, frame


def log_stream_name(instance_id: str, version: str = "$LATEST") -> str:
    day = time.strftime("%Y/%m/%d", time.gmtime())
    return f"{day}/[{version}]{instance_id}"


def printable(error_type: str) -> str:
    """A worker's errorType as the platform shows it: it lands in log lines
    and platform events, so no control characters and no novels."""
    text = error_type[:256]
    return text if text.isprintable() else "".join(c if c.isprintable() else "?" for c in text)


def describe_status(status: int | None) -> str:
    if status is None:
        return "Runtime exited without providing a reason"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name[3:].lower() if sig in signal.Signals._value2member_map_ else str(sig)
        return f"signal: {'killed' if sig == signal.SIGKILL else name}"
    if os.WIFEXITED(status):
        return f"exit status {os.WEXITSTATUS(status)}"
    return "Runtime exited without providing a reason"
