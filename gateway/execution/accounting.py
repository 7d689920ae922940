"""Where each call is counted, billed and logged: the pool's on_call hook.

For every call the pool finishes (success, function error, timeout, OOM,
crash, failed init) Accounting.on_call, still before the caller is
answered, takes the pool's own figures (the gateway's clock, the sandbox's
cgroup; nothing the worker reported), clamps them, and:
  - appends the call's usage row and its log to the call journal, in one
    write(2) (calls.py),
  - then adds the call to its function version's counters (one C call),
  - and hands it to the operator's export, when one is configured
    (metering/export: an append to a bounded buffer, nothing more).
If the journal cannot be written the call is answered with a
ServiceException instead, and nothing of it is billed, logged or counted.

MeteredPool adds what the pool cannot see from a finished call: how many
calls are in flight per function, and the calls refused as throttled.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from ..errors import LambdaError
from ..metering import billing
from ..metering.billing import MAX_CALL_NS, MAX_MEMORY_MB
from ..metering.calls import CallJournal
from ..metering.ledger import UsageRecord
from ..metering.log_records import CallLog
from ..metering.meter import OUTCOME_INDEX, Meter
from .pool import CallOutcome, FunctionSpec, Pool


def version_of(spec: FunctionSpec) -> str:
    """The version a call is counted under: its published version, or $LATEST."""
    return spec.version or "$LATEST"


class Accounting:
    def __init__(
        self,
        meter: Meter,
        calls: CallJournal,
        *,
        granularity_ms: int = 1,
        account: str = "",
        export: Callable[[UsageRecord, CallLog | None], None] | None = None,
    ) -> None:
        self.meter = meter
        self.calls = calls
        self.granularity_ms = granularity_ms
        self.account = account
        self.export = export

    def on_call(self, spec: FunctionSpec, outcome: CallOutcome) -> None:
        rec = spec.record
        version = version_of(spec)
        # The pool says what happened; the function's errorType never does.
        name = outcome.kind or ("success" if outcome.function_error is None else "error")
        # The pool's figures are its own measurements, but nothing outside
        # these bounds may reach a counter or a sum (chained comparisons:
        # this runs on every call).
        duration_ns = outcome.duration_ns
        if not 0 <= duration_ns <= MAX_CALL_NS:
            duration_ns = billing.clamp(duration_ns, MAX_CALL_NS)
        init_ns = outcome.init_ns or 0
        if not 0 <= init_ns <= MAX_CALL_NS:
            init_ns = billing.clamp(init_ns, MAX_CALL_NS)
        memory_mb = outcome.memory_mb or rec.memory_size
        if not 0 < memory_mb <= MAX_MEMORY_MB:
            memory_mb = billing.clamp(memory_mb, MAX_MEMORY_MB)
        max_memory_mb = outcome.max_memory_mb
        if not 0 <= max_memory_mb <= MAX_MEMORY_MB:
            max_memory_mb = billing.clamp(max_memory_mb, MAX_MEMORY_MB)
        billed = billing.billed_ms(duration_ns, self.granularity_ms)
        started_ns = outcome.started_ns or time.time_ns()
        architectures = rec.architectures
        usage = UsageRecord(
            request_id=outcome.request_id,
            function=rec.name,
            version=version,
            architecture=architectures[0] if architectures else "x86_64",
            started_ns=started_ns,
            duration_ns=duration_ns,
            init_ns=init_ns,
            billed_ms=billed,
            granularity_ms=self.granularity_ms,
            memory_mb=memory_mb,
            max_memory_mb=max_memory_mb,
            cold=outcome.cold,
            outcome=name,
            account=self.account,
        )
        log = None
        if outcome.log:
            log = CallLog(
                log_group=spec.log_group,
                log_stream=outcome.log_stream or "unknown",
                request_id=outcome.request_id,
                started_ns=started_ns,
                ended_ns=time.time_ns(),
                log=outcome.log,
                marks=outcome.log_marks,
                frame=outcome.log_frame,
            )
        try:
            self.calls.record(usage, log)
        except OSError as exc:
            # Not recorded, so not answered: the caller gets this error and
            # the call is neither billed, nor logged, nor counted.
            raise LambdaError("ServiceException", f"The call could not be recorded: {exc.strerror or exc}") from None
        meter = self.meter
        meter.record(meter.slot(rec.name, version), duration_ns, billed, memory_mb, init_ns, OUTCOME_INDEX[name], outcome.cold)
        if self.export is not None:
            self.export(usage, log)


class MeteredPool(Pool):
    """The pool, plus per-function concurrency and throttle counts."""

    def __init__(self, *args, meter: Meter, billing_granularity_ms: int = 1, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.meter = meter
        self.billing_granularity_ms = billing_granularity_ms

    async def invoke(
        self, spec: FunctionSpec, payload: bytes, client_context: str | None = None, request_id: str | None = None, stream=None
    ) -> CallOutcome:
        meter = self.meter
        slot = meter.slot(spec.record.name, version_of(spec))
        meter.enter(slot)
        try:
            return await super().invoke(spec, payload, client_context, request_id, stream)
        except LambdaError as exc:
            if exc.error_type == "TooManyRequestsException":
                meter.throttle(slot)
            raise
        finally:
            meter.leave(slot)
