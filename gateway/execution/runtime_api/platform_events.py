"""The platform.* telemetry records of one execution environment, from
what the pool knows. Pure but for the wall clock's stamp on each record.

telemetry.py knows the Telemetry API's schema; this module knows which of
the pool's facts fill it: the function's figures (fixed per environment),
the runtime's init reply, a call's Result, the durations the gateway
measured and the outcome the pool billed. The extensions' host
(extension_host.py) emits them to the subscribers.
"""

from __future__ import annotations

import time

from lambdalet.gateway.metering import billing
from lambdalet.runtime.protocol import MAX_CALL_LOG, InitError, InitOk, Invoke, Result

from . import telemetry as tm


def now_ms() -> int:
    """The wall clock's time in ms, which every record carries."""
    return time.time_ns() // 1_000_000


class Figures:
    """What the platform's telemetry records name, fixed per environment."""

    def __init__(
        self,
        *,
        function_name: str,
        version: str,
        runtime_version: str,
        initialization_type: str,
        memory_mb: int,
        json_logs: bool,
        account_id: str,
        handler: str,
    ) -> None:
        self.function_name = function_name
        self.version = version
        self.runtime_version = runtime_version
        self.initialization_type = initialization_type
        self.memory_mb = memory_mb
        self.json_logs = json_logs
        self.account_id = account_id
        self.handler = handler

    @classmethod
    def of(cls, spec, initialization_type: str) -> Figures:
        """From the pool's FunctionSpec."""
        rec = spec.record
        parts = spec.arn.split(":")
        return cls(
            function_name=rec.name,
            version=spec.version,
            runtime_version=spec.runtime_version,
            initialization_type=initialization_type,
            memory_mb=rec.memory_size,
            json_logs=rec.logging_config.get("LogFormat") == "JSON",
            account_id=parts[4] if len(parts) > 4 else "",
            handler=rec.handler,
        )


def init_start(figures: Figures, started_ms: int, instance_id: str) -> tm.Event:
    """platform.initStart, stamped when init began."""
    return tm.init_start(
        started_ms,
        initialization_type=figures.initialization_type,
        runtime_version=figures.runtime_version or "unknown",
        function_name=figures.function_name,
        function_version=figures.version,
        instance_id=instance_id,
        memory_mb=figures.memory_mb,
    )


def init_runtime_done(figures: Figures, reply: InitOk | InitError) -> list[tm.Event]:
    """What the runtime wrote during init, and platform.initRuntimeDone."""
    status = "success" if isinstance(reply, InitOk) else "error"
    events = tm.log_lines("function", reply.log, reply.log_marks, now_ms(), figures.json_logs)
    events.append(
        tm.init_runtime_done(
            now_ms(), initialization_type=figures.initialization_type, status=status, error_type=getattr(reply, "error_type", None)
        )
    )
    return events


def init_report(figures: Figures, reply: InitOk | InitError, duration_ns: int) -> tm.Event:
    """platform.initReport, once the extensions' init is over too (reply
    is then the environment's outcome, an extension's failure included)."""
    return tm.init_report(
        now_ms(),
        initialization_type=figures.initialization_type,
        status="success" if isinstance(reply, InitOk) else "error",
        duration_ns=duration_ns,
        error_type=getattr(reply, "error_type", None),
    )


def runtime_done(figures: Figures, invoke: Invoke, result: Result, started_ms: int, runtime_ns: int, trace_id: str) -> list[tm.Event]:
    """The runtime's lines and platform.runtimeDone. runtime_ns: the
    gateway's measure, from the event handed out to the answer read."""
    output = result.log[-MAX_CALL_LOG:]
    events = tm.log_lines(
        "function",
        output,
        result.log_marks if len(output) == len(result.log) else [],
        now_ms(),
        figures.json_logs,
        start_ms=started_ms,
    )
    events.append(
        tm.runtime_done(
            now_ms(),
            request_id=invoke.request_id,
            status="error" if result.error_type else "success",
            error_type=result.error_type,
            duration_ns=runtime_ns,
            produced_bytes=len(result.payload),
            started_ms=started_ms,
            trace_id=trace_id,
        )
    )
    return events


def report(figures: Figures, outcome, granularity_ms: int, trace_id: str) -> tm.Event:
    """platform.report: the call's outcome (pool.CallOutcome) as the pool
    billed it."""
    kind = outcome.kind
    status = "success" if kind == "success" else "timeout" if kind == "timeout" else "error" if kind == "error" else "failure"
    return tm.report(
        now_ms(),
        request_id=outcome.request_id,
        status=status,
        error_type=outcome.error_type,
        duration_ns=outcome.duration_ns,
        billed_ms=billing.billed_ms(outcome.duration_ns, granularity_ms),
        memory_mb=figures.memory_mb,
        max_memory_mb=outcome.max_memory_mb,
        init_ns=outcome.init_ns,
        trace_id=trace_id,
    )
