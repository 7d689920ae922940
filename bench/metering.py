"""Metering's two figures (docs/architecture.md targets):

1. what metering adds to each call: the counters' one C call (target
   <= 1 us), and beside it the whole on_call hook, its journal append included;
2. how far the duration Lambdalet records strays from the handler's own
   clock (target +-50 us): a real server runs a handler that times itself
   with time.monotonic_ns() and returns that; the ledger's duration_ns for
   the same request id is compared with it. The recorded duration is the
   gateway's own clock from sending the call to receiving its answer (the
   function cannot forge it), so the delta is what the runtime adds around
   the handler (event parsing, response encoding) plus the two wake-ups
   across the socketpair. The function has 1,769 MB, one CPU's worth, so
   that a CPU quota's throttling does not stand in for the meter's error.

`python -m bench.metering` prints the figures; run() returns them.
"""

from __future__ import annotations

import json
import pathlib
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time

from .harness import zip_of

CALLS = 200_000
SERVER_CALLS = 300


def _per_call_ns(fn, n: int) -> float:
    fn(1000)  # warm up
    best = float("inf")
    for _ in range(5):  # the least disturbed of five runs
        t0 = time.perf_counter_ns()
        fn(n)
        best = min(best, (time.perf_counter_ns() - t0) / n)
    return best


def metering_cost(calls: int = CALLS) -> dict:
    from lambdalet.gateway.execution.accounting import Accounting
    from lambdalet.gateway.execution.pool import CallOutcome, FunctionSpec
    from lambdalet.gateway.functions.model import FunctionRecord
    from lambdalet.gateway.metering.calls import CallJournal
    from lambdalet.gateway.metering.ledger import Ledger
    from lambdalet.gateway.metering.logstore import LogStore
    from lambdalet.gateway.metering.meter import OUTCOME_INDEX, Meter

    with tempfile.TemporaryDirectory() as tmp:
        data = pathlib.Path(tmp)
        meter = Meter(data / "meter.bin")
        slot = meter.slot("bench")
        ok = OUTCOME_INDEX["success"]

        def record(n: int) -> None:
            rec = meter.record
            for i in range(n):
                rec(slot, 1_234_567 + i, 2, 128, 0, ok, False)

        def empty(n: int) -> None:
            for _ in range(n):
                pass

        loop_ns = _per_call_ns(empty, calls)
        record_ns = _per_call_ns(record, calls) - loop_ns

        ledger, logstore = Ledger(data), LogStore(data)
        journal = CallJournal(data, ledger, logstore)
        accounting = Accounting(meter, journal)
        rec = FunctionRecord(
            name="bench",
            runtime="python3.11",
            role="r",
            handler="app.handler",
            code_sha256_hex="",
            code_sha256_b64="",
            code_size=0,
            revision_id="r",
            last_modified="",
            created_ns=0,
        )
        spec = FunctionSpec(record=rec, code_dir="/", arn="arn", env={}, log_group="/aws/lambda/bench")
        log = b"START RequestId: x Version: $LATEST\nEND RequestId: x\nREPORT RequestId: x\tDuration: 1.23 ms\t...\n"
        outcome = CallOutcome(
            request_id="x",
            payload=b"",
            function_error=None,
            error_type=None,
            log=log,
            duration_ns=1_234_567,
            init_ns=None,
            cold=False,
            started_ns=time.time_ns(),
            memory_mb=128,
            max_memory_mb=40,
            instance_id="i",
            log_stream="s",
        )

        def on_call(n: int) -> None:
            hook = accounting.on_call
            for _ in range(n):
                hook(spec, outcome)

        hook_calls = max(1000, calls // 20)
        on_call_ns = _per_call_ns(on_call, hook_calls) - loop_ns
        # Off the call path: the background batch into SQLite, per call.
        t0 = time.perf_counter_ns()
        pending = len(journal._pending)
        journal.flush_sync()
        flush_ns = (time.perf_counter_ns() - t0) / max(1, pending)
        journal.close()
        ledger.close()
        logstore.close()
        meter.close()
    return {"meter_record_ns": round(record_ns, 1), "on_call_hook_ns": round(on_call_ns, 1), "batch_flush_ns_per_call": round(flush_ns, 1)}


_HANDLER = """\
import time
def handler(event, context):
    t0 = time.monotonic_ns()
    end = t0 + event.get("spin_ns", 0)
    while time.monotonic_ns() < end:
        pass
    return {"own_ns": time.monotonic_ns() - t0}
"""


def duration_agreement(calls: int = SERVER_CALLS) -> dict:
    import boto3
    import botocore.config

    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, "-m", "lambdalet.gateway.cli", "serve", "--port", "0", "--data-dir", tmp]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = ""
            assert proc.stdout is not None
            for line in proc.stdout:
                m = re.search(r"serving the Lambda API on (http://\S+)", line)
                if m:
                    url = m.group(1)
                if line.startswith("  export AWS_ENDPOINT_URL="):
                    break
            if not url:
                raise RuntimeError("server did not start")
            import configparser

            creds = configparser.ConfigParser()
            creds.read(pathlib.Path(tmp) / "credentials")
            lam = boto3.client(
                "lambda",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=creds["default"]["aws_access_key_id"],
                aws_secret_access_key=creds["default"]["aws_secret_access_key"],
                config=botocore.config.Config(retries={"max_attempts": 1}),
            )
            lam.create_function(
                FunctionName="clock",
                Role="arn:aws:iam::123456789012:role/bench",
                Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                Handler="app.handler",
                Code={"ZipFile": zip_of({"app.py": _HANDLER})},
                MemorySize=1769,
            )
            lam.get_waiter("function_active_v2").wait(FunctionName="clock", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
            own: dict[str, int] = {}
            for i in range(calls):
                # Spins of 0 to 2 ms, so the handler's work is not all alike.
                payload = json.dumps({"spin_ns": (i % 5) * 500_000}).encode()
                resp = lam.invoke(FunctionName="clock", Payload=payload)
                own[resp["ResponseMetadata"]["RequestId"]] = json.loads(resp["Payload"].read())["own_ns"]
        finally:
            proc.send_signal(signal.SIGTERM)  # a clean stop flushes the ledger
            proc.communicate(timeout=60)
        db = sqlite3.connect(pathlib.Path(tmp) / "usage.db")
        recorded = dict(db.execute("SELECT request_id, duration_ns FROM usage WHERE function = 'clock'").fetchall())
        db.close()
    deltas_us = sorted((recorded[rid] - own_ns) / 1000 for rid, own_ns in own.items() if rid in recorded)
    if len(deltas_us) != len(own):
        raise RuntimeError(f"ledger holds {len(deltas_us)} of {len(own)} calls")
    worst = max(abs(deltas_us[0]), abs(deltas_us[-1]))
    return {
        "duration_delta_us_p50": round(statistics.median(deltas_us), 2),
        "duration_delta_us_p99": round(deltas_us[int(len(deltas_us) * 0.99) - 1], 2),
        "duration_delta_us_max_abs": round(worst, 2),
        "duration_calls": len(deltas_us),
    }


def run() -> dict:
    figures = metering_cost()
    figures.update(duration_agreement())
    figures["meter_target_ns"] = 1000
    figures["duration_target_us"] = 50
    figures["meter_within_target"] = figures["meter_record_ns"] <= 1000
    # p99, not the maximum: on a 2-core box the client, the server and the
    # worker share the CPUs, and one preemption between the handler's return
    # and the worker's clock read is not the meter's error.
    figures["duration_within_target"] = abs(figures["duration_delta_us_p99"]) <= 50
    return figures


def main() -> int:
    figures = run()
    print(f"metering: counters per call            {figures['meter_record_ns']:8.1f} ns  (target <= 1000 ns)")
    print(
        f"metering: whole on_call hook per call  {figures['on_call_hook_ns']:8.1f} ns  (counters + the call journal: usage and log in one write(2))"
    )
    print(f"metering: SQLite batch, per call       {figures['batch_flush_ns_per_call']:8.1f} ns  (background thread, off the call path)")
    print(
        f"duration: recorded - handler's clock   p50 {figures['duration_delta_us_p50']:+.2f} us, p99 {figures['duration_delta_us_p99']:+.2f} us, "
        f"max |delta| {figures['duration_delta_us_max_abs']:.2f} us over {figures['duration_calls']} calls  (target +-50 us)"
    )
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
