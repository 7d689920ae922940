"""The Python runtime's main loop, run inside the sandbox.

Started as `python -I -S` with the control socket on a known fd. It imports
only the stdlib, msgspec and this package before the user's code, so that a
function shipping its own runtime.py, gateway.py or sandbox.py still works.

Logs: fd 1 and 2 point at an in-memory file (memfd) in append mode. After
each call the worker flushes, reads what the call wrote and truncates, so
logs split per call without a pipe that could fill and block the handler.
The gateway holds a duplicate of the memfd to recover the output of a call
it had to kill. Each write through sys.stdout or sys.stderr also notes how
far the file had grown and when (a mark), so that every line of the log is
stamped with the time it was written, not the time the call began.
"""

from __future__ import annotations

import fcntl
import importlib
import io
import json
import logging
import os
import socket
import sys
import time
from typing import Optional, TypeVar

try:
    import msgspec
except ImportError:  # an interpreter with no msgspec build of its own (README: Runtimes)
    from . import msgspec_fallback as msgspec  # type: ignore[no-redef]

from . import bootstrap, errors, extensions
from .lambda_context import LambdaContext
from .protocol import (
    MAX_CALL_LOG,
    MAX_RESPONSE,
    Bootstrap,
    FrameReader,
    Init,
    InitError,
    InitOk,
    Invoke,
    Ready,
    Result,
    StartExtensions,
    encode,
)

RECV_SIZE = 65536
# MAX_CALL_LOG: keep the last MiB of a call's output (Tail needs only 4 KB).
# The gateway enforces the same caps; honouring them here keeps an honest
# worker's frames within what the gateway accepts, so it is never killed.


MAX_MARKS = 4096  # the gateway reads no more (gateway/metering/log_lines.py)


class _MarkedWriter(io.RawIOBase):
    """fd 1 or 2 under sys.stdout or sys.stderr. After each write it marks
    (size of the log so far, epoch ms): the bytes before that offset were
    written by then. Writes within one millisecond share a mark, and a call
    that writes in more milliseconds than MAX_MARKS keeps every other mark,
    so the list stays small whatever the handler prints."""

    def __init__(self, fd: int, marks: list) -> None:
        super().__init__()
        self._fd = fd
        self._marks = marks

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._fd

    def write(self, data) -> int:
        view = memoryview(data)
        size = len(view)
        while view:
            view = view[os.write(self._fd, view) :]
        # fd 1 and 2 share one open file in append mode: its offset after
        # our write is the size of the log (since the last truncation).
        mark = (os.lseek(self._fd, 0, os.SEEK_CUR), time.time_ns() // 1_000_000)
        marks = self._marks
        if marks and marks[-1][1] == mark[1]:
            marks[-1] = mark
        else:
            marks.append(mark)
            if len(marks) > MAX_MARKS:
                del marks[::2]
        return size


def _marking_streams(marks: list) -> tuple[io.TextIOWrapper, io.TextIOWrapper]:
    """New text streams for fd 1 and 2 over marking writers, layered as the
    interpreter layers its own. Line buffering: a line reaches the file (and
    gets its mark) as it is printed, and stays visible up to a kill."""
    out, err = (
        io.TextIOWrapper(io.BufferedWriter(_MarkedWriter(fd, marks)), encoding=stream.encoding, errors=stream.errors, line_buffering=True)
        for fd, stream in ((1, sys.stdout), (2, sys.stderr))
    )
    return out, err


# The streams and their marks, built by prepare() in the zygote; a worker
# that has them only points fd 1 and 2 at its own log.
_prepared_streams: Optional[tuple[list, tuple[io.TextIOWrapper, io.TextIOWrapper]]] = None


class _LogCapture:
    def __init__(self) -> None:
        self.fd = os.memfd_create("lambdalet-log", os.MFD_CLOEXEC)
        # O_APPEND lets us truncate between calls while writers keep appending.
        fcntl.fcntl(self.fd, fcntl.F_SETFL, fcntl.fcntl(self.fd, fcntl.F_GETFL) | os.O_APPEND)
        os.dup2(self.fd, 1)
        os.dup2(self.fd, 2)
        old = self._previous = (sys.stdout, sys.stderr)  # kept: closing them would close fd 1 and 2
        for stream in old:
            stream.flush()
        if _prepared_streams is not None:
            self.marks, (sys.stdout, sys.stderr) = _prepared_streams
        else:
            self.marks = []
            sys.stdout, sys.stderr = _marking_streams(self.marks)
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in old:
                handler.setStream(sys.stdout if handler.stream is old[0] else sys.stderr)

    def take(self, extra: bytes = b"") -> tuple[bytes, list[tuple[int, int]]]:
        """What was written since the last take, then `extra`, at most the
        last MAX_CALL_LOG bytes of the two, with the marks of the part read
        from the file, offsets relative to what is returned."""
        sys.stdout.flush()
        sys.stderr.flush()
        size = os.fstat(self.fd).st_size
        marks = self.marks[:]
        self.marks.clear()
        if not size:
            return extra[-MAX_CALL_LOG:], []
        start = max(0, size + len(extra) - MAX_CALL_LOG)
        data = os.pread(self.fd, size - start, start) if start < size else b""
        os.ftruncate(self.fd, 0)
        return data + extra[-MAX_CALL_LOG:], [(offset - start, ms) for offset, ms in marks if start < offset <= size]


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _RequestIdFilter.request_id
        return True


def _install_logging(stream=None) -> None:
    # AWS's runtime gives the root logger this handler and format, at WARNING.
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.addFilter(_RequestIdFilter())
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


class _JsonFormatter(logging.Formatter):
    """LogFormat JSON: one object per record, as AWS's Python runtime
    (awslambdaric) writes them: timestamp, level, message, logger,
    requestId, the exception fields when there is one, and any `extra`."""

    _RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"aws_request_id", "message", "asctime"}

    def __init__(self) -> None:
        super().__init__(datefmt="%Y-%m-%dT%H:%M:%SZ")
        self.converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        level = min(50, max(0, record.levelno)) // 10 * 10
        doc = {
            "timestamp": self.formatTime(record, self.datefmt),
            "level": logging.getLevelName(level),
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": getattr(record, "aws_request_id", None) or None,
        }
        # logger.exception() outside an except block gives (None, None, None).
        if record.exc_info and record.exc_info[0] is not None:
            doc["errorType"] = record.exc_info[0].__name__
            doc["errorMessage"] = str(record.exc_info[1])
            doc["stackTrace"] = errors.user_frames(record.exc_info[2])
            doc["location"] = f"{record.pathname}:{record.funcName}:{record.lineno}"
        doc.update((k, v) for k, v in vars(record).items() if k not in self._RESERVED and k not in doc)
        return json.dumps({k: v for k, v in doc.items() if v is not None}, default=str, ensure_ascii=False)


_JSON_LOGS = False


def _configure_log_format(env: dict[str, str]) -> None:
    """Lambda sets AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL (the
    ApplicationLogLevel) for a function whose LoggingConfig says JSON."""
    global _JSON_LOGS
    if env.get("AWS_LAMBDA_LOG_FORMAT", "").upper() != "JSON":
        return
    _JSON_LOGS = True
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(_JsonFormatter())
    level = {"TRACE": "DEBUG", "WARN": "WARNING", "FATAL": "CRITICAL"}.get(
        env.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper(), env.get("AWS_LAMBDA_LOG_LEVEL", "INFO").upper()
    )
    if isinstance(logging.getLevelName(level), int):
        root.setLevel(level)


def _error_log(text: str, payload: bytes) -> str:
    """An unhandled error's log entry: AWS's text lines, or with JSON logs
    the error document stamped with a timestamp and log_level."""
    if not _JSON_LOGS:
        return text
    doc = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "log_level": "ERROR", **json.loads(payload)}
    return json.dumps(doc, ensure_ascii=False)


def _load_handler(init: Init):
    """Returns the handler callable, or raises _Fault."""
    try:
        modname, fname = init.handler.rsplit(".", 1)
    except ValueError as exc:
        raise _Fault("Runtime.MalformedHandlerName", f"Bad handler '{init.handler}': {exc}") from None
    modname = modname.replace("/", ".")
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        raise _Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}") from None
    except SyntaxError as exc:
        raise _Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}") from None
    handler = getattr(module, fname, None)
    if handler is None:
        raise _Fault("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'")
    return handler


class _Fault(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _init(init: Init, capture: _LogCapture):
    os.environ.update(init.env)
    _configure_log_format(init.env)
    sys.path[:0] = [init.task_root, "/opt/python", f"/opt/python/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"]
    try:
        os.chdir(init.task_root)
    except OSError:
        pass
    try:
        handler = _load_handler(init)
    except _Fault as fault:
        log = f"[ERROR] {fault.error_type}: {fault.message}\n".encode()
        return None, InitError(*_fitting(fault.error_type, errors.fault(fault.error_type, fault.message)), *capture.take(log))
    except Exception as exc:  # the module raised while importing
        error_type, payload, text = errors.from_exception(exc, "")
        return None, InitError(*_fitting(error_type, payload), *capture.take(text.encode()))
    return handler, InitOk(*capture.take())


# InitError's type is always named; a call's Result may carry none
# (typing is loaded already: msgspec and its fallback import it).
_ErrorType = TypeVar("_ErrorType", str, Optional[str])


def _fitting(error_type: _ErrorType, payload: bytes) -> tuple[_ErrorType, bytes]:
    """The response as the gateway will accept it: one over MAX_RESPONSE
    bytes is Function.ResponseSizeTooLarge instead, as on AWS."""
    if len(payload) <= MAX_RESPONSE:
        return error_type, payload
    return "Function.ResponseSizeTooLarge", errors.response_too_large()


_decode_json = msgspec.json.Decoder().decode


def _parse_event(payload: bytes):
    """The event, as json.loads gives it. msgspec's strict UTF-8 parser takes
    a third of the time for the common case; whatever it refuses (NaN,
    UTF-16, a BOM, huge integers) goes to json.loads, which decides."""
    try:
        return _decode_json(payload)
    except msgspec.DecodeError:
        return json.loads(payload)


class _NoCapture:
    """The log capture of prepare()'s rehearsed calls, which print nothing."""

    def take(self, extra: bytes = b"") -> tuple[bytes, list[tuple[int, int]]]:
        return extra, []


def _invoke(handler, init: Init, call: Invoke, capture: _LogCapture | _NoCapture) -> Result:
    _RequestIdFilter.request_id = call.request_id
    client_context = None
    if call.client_context:
        try:
            client_context = json.loads(call.client_context)
        except ValueError:
            client_context = None
    context = LambdaContext(
        aws_request_id=call.request_id,
        function_name=init.function_name,
        function_version=init.function_version,
        invoked_function_arn=call.invoked_arn,
        memory_limit_in_mb=str(init.memory_mb),
        log_group_name=init.log_group,
        log_stream_name=init.log_stream,
        deadline_ms=call.deadline_ms,
        client_context=client_context,
    )
    error_type = None
    try:
        event = _parse_event(call.payload) if call.payload else {}
        result = handler(event, context)
        try:
            payload = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            error_type = "Runtime.MarshalError"
            payload = errors.fault(error_type, f"Unable to marshal response: {exc}", call.request_id)
            print(f"[ERROR] {error_type}: Unable to marshal response: {exc}")
    except Exception as exc:
        error_type, payload, text = errors.from_exception(exc, call.request_id)
        print(_error_log(text, payload))
    error_type, payload = _fitting(error_type, payload)
    return Result(call.request_id, payload, error_type, *capture.take())


_prepared = False


def prepare() -> None:
    """Everything a worker sets up before it knows its function, done once
    in the zygote (sandbox/zygote.py) so that its forks share the result
    instead of each building (and writing) its own copy: the log handler
    and the streams under it, the lazily built parts of the codecs and
    clocks every call uses, the ABC cache entry (dict is a Mapping) that
    os.environ.update consults at init, and the call path itself: the
    interpreter rewrites a function's code in place as it warms up
    (specializing it after a few runs), so the path a call takes is
    rehearsed here until that is done, once, rather than in every worker."""
    global _prepared, _prepared_streams
    marks: list[tuple[int, int]] = []
    _prepared_streams = marks, _marking_streams(marks)
    _install_logging(_prepared_streams[1][0])
    os.environ.update({})
    json.loads(json.dumps({"warm": [1, 2.5, "x", None, True]}))
    time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    init = Init("app.handler", "/var/task", {}, "f", "$LATEST", 128, "g", "s")
    for _ in range(REHEARSALS):
        for call in FrameReader("to_worker").feed(encode(Invoke("r", b'{"k": [1, "x"]}', 0, "arn"))):
            encode(_invoke(_rehearsal_handler, init, call, _NoCapture()))
    _RequestIdFilter.request_id = ""
    _prepared = True


# CPython 3.11 quickens a function on its 8th call and specializes its
# instructions on the runs after; 3.12 and 3.13 start sooner. 16 runs cover
# both (measured: ~70 KB less private memory per idle 3.11 worker).
REHEARSALS = 16


def _rehearsal_handler(event, context) -> dict:
    return {"statusCode": 200, "body": "ok"}


def main(control_fd: int) -> None:
    # SCHED_BATCH: a worker woken by a new call does not preempt the
    # gateway mid-request on the same CPU; it runs when the gateway yields.
    # Throughput on a small host depends on it; the CPU quota is unchanged.
    try:
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass
    sock = socket.socket(fileno=control_fd)
    capture = _LogCapture()
    if not _prepared:
        _install_logging()
    reader = FrameReader("to_worker")
    sock.sendall(encode(Ready()))
    handler = None
    init: Init | None = None
    while True:
        # 64 KiB: a 1 MiB request makes the allocator mmap and unmap a fresh
        # buffer on every call; frames larger than this simply take several reads.
        data = sock.recv(RECV_SIZE)
        if not data:
            return
        for msg in reader.feed(data):
            if isinstance(msg, Init):
                init = msg
                handler, reply = _init(msg, capture)
                # The memfd rides along with the init reply so the gateway can
                # read the log of a call it had to kill.
                frame = encode(reply)
                sent = socket.send_fds(sock, [frame], [capture.fd])
                if sent < len(frame):
                    sock.sendall(frame[sent:])
                if handler is None:
                    return
            elif isinstance(msg, StartExtensions):
                # Before the runtime: the layers' extensions, which the
                # gateway waits for until they have registered.
                extensions.start(msg, sock)
            elif isinstance(msg, Bootstrap):
                # A custom runtime: this process becomes its bootstrap, and
                # comes back only to say why it could not.
                failure = bootstrap.launch(msg, sock, capture.fd, lambda: capture.take()[0])
                sock.sendall(encode(failure))
                return
            elif isinstance(msg, Invoke):
                if handler is None or init is None:
                    return
                sock.sendall(encode(_invoke(handler, init, msg, capture)))
