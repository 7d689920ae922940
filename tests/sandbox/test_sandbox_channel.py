"""The hostile-channel table (channel_rows.py), run straight against the
gateway's pool on real namespaced sandboxes, with the server's accounting
(meter, usage ledger, log store) in a scratch data dir. No HTTP: what is
checked is what the pool answered, the REPORT line it wrote, the log the
log store kept and the usage the ledger bills."""

from __future__ import annotations

import json
import os
import sys
import time

import channel_rows
import pytest
import trio
from channel_rows import ROWS, Seen

from lambdalet.gateway.execution.accounting import Accounting, MeteredPool
from lambdalet.gateway.execution.pool import FunctionSpec
from lambdalet.gateway.functions.model import FunctionRecord
from lambdalet.gateway.metering import billing
from lambdalet.gateway.metering.calls import CallJournal
from lambdalet.gateway.metering.ledger import Ledger
from lambdalet.gateway.metering.logstore import LogStore
from lambdalet.gateway.metering.meter import Meter
from lambdalet.sandbox import memory_peak


def _spec(code_dir: str, row) -> FunctionSpec:
    name = f"ch-{row.id}"[:64]
    rec = FunctionRecord(
        name=name,
        runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        role="r",
        handler="app.handler",
        code_sha256_hex="0" * 64,
        code_sha256_b64="",
        code_size=1,
        revision_id=f"rev-{row.id}",
        last_modified="",
        created_ns=0,
        timeout=row.timeout,
        memory_size=row.memory_mb,
    )
    return FunctionSpec(
        record=rec, code_dir=code_dir, arn=f"arn:aws:lambda:us-east-1:123456789012:function:{name}", env={}, log_group=f"/aws/lambda/{name}"
    )


class Run:
    """A row's calls through a MeteredPool on `backend`, accounted in a
    scratch data dir as the server accounts them."""

    def __init__(self, backend, tmp_path, row) -> None:
        code = tmp_path / "code"
        code.mkdir()
        (code / "app.py").write_text(channel_rows.module(row.source))
        # The sandbox user is "other" to the host: the tree must be world-readable.
        os.chmod(tmp_path, 0o755)
        os.chmod(code, 0o755)
        data = tmp_path / "data"
        data.mkdir()
        self.spec = _spec(str(code), row)
        self.meter, self.ledger, self.logstore = Meter(data / "meter.bin"), Ledger(data), LogStore(data)
        self.calls = CallJournal(data, self.ledger, self.logstore)
        accounting = Accounting(self.meter, self.calls)
        self.outcomes = []

        async def main():
            pool = MeteredPool(backend, meter=self.meter, on_call=accounting.on_call, concurrency_limit=4, memory_budget_mb=4096)
            async with trio.open_nursery() as nursery:
                await nursery.start(pool.run)
                for event in row.events:
                    self.outcomes.append(await pool.invoke(self.spec, json.dumps(event).encode()))
                nursery.cancel_scope.cancel()

        try:
            trio.run(main)
            self.calls.flush_sync()
        except BaseException:
            self.close()
            raise

    def seen(self) -> list[Seen]:
        # The log as stored: the row's one call (rows of several calls do not check it).
        log = "\n".join(e.message for e in self.logstore.events(self.spec.log_group))
        return [
            Seen(200, o.function_error, o.payload, channel_rows.parse_report(o.log.decode(errors="replace")), log) for o in self.outcomes
        ]

    def usage(self) -> dict:
        month = billing.month_of(time.time_ns())
        (fn,) = billing.report(month, 1, self.ledger.usage(month, self.spec.record.name))["functions"]
        return fn

    def close(self) -> None:
        self.calls.close()
        self.ledger.close()
        self.logstore.close()
        self.meter.close()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_channel_row_straight(row, backend, tmp_path):
    run = Run(backend, tmp_path, row)
    try:
        row.check(run.seen(), run.usage())
    finally:
        run.close()


def test_max_memory_used_is_each_calls_own_peak(backend, tmp_path):
    version = getattr(backend.cgroups, "version", None)
    if not memory_peak.per_call_peak(version):
        pytest.skip(f"cgroup v{version} on Linux {os.uname().release}: the peak cannot be reset per call")
    row = channel_rows.Row(
        "peak-per-call",
        """
def handler(event, context):
    if event == "big":
        hog = bytearray(100 << 20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
        del hog
    return event
""",
        check=None,
        events=("big", "small"),
        memory_mb=256,
    )
    run = Run(backend, tmp_path, row)
    try:
        big, small = (s.report["max_memory_mb"] for s in run.seen())
        assert big >= 100 and small < big - 50, (big, small)
    finally:
        run.close()


def test_which_hosts_can_report_each_calls_own_peak():
    assert memory_peak.per_call_peak(1)
    assert memory_peak.per_call_peak(2, "6.12.0-rc1") and memory_peak.per_call_peak(2, "6.18.44-fc")
    assert not memory_peak.per_call_peak(2, "6.11.9") and not memory_peak.per_call_peak(2, "5.19.0")
    assert not memory_peak.per_call_peak(None)
