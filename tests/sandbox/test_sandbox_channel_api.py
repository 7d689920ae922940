"""The hostile-channel table (channel_rows.py) through the real server.

Each row is deployed as a function and invoked with boto3 (LogType Tail
gives its REPORT line); the stored log comes from /_lambdalet/logs and the
usage from /_lambdalet/usage, both signed as the CLI signs them. A
bystander function must keep answering throughout. Last, what no single
row shows: three concurrent forged 60 MB answers leave the server's memory
where it was, and a function URL maps a too-large answer to 502 as AWS does."""

from __future__ import annotations

import concurrent.futures
import json
import sys
import time

import channel_rows
import pytest
import requests
from channel_rows import ROWS, Seen
from helpers import ServerProcess, allow_public_url, make_zip, signed_get

RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
BYSTANDER = "def handler(event, context):\n    return 'still here'\n"


def create(lam, name: str, source: str, **kwargs) -> str:
    lam.create_function(
        FunctionName=name, Role=ROLE, Handler="app.handler", Runtime=RUNTIME, Code={"ZipFile": make_zip({"app.py": source})}, **kwargs
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


@pytest.fixture(scope="module")
def bystander(lam):
    name = create(lam, "channel-bystander", BYSTANDER)
    yield name
    lam.delete_function(FunctionName=name)


def _still_serving(lam, name: str) -> None:
    resp = lam.invoke(FunctionName=name, Payload=b"null")
    assert "FunctionError" not in resp and json.loads(resp["Payload"].read()) == "still here"


def _stored_log(server, name: str) -> str:
    r = signed_get(server, f"/_lambdalet/logs?function={name}")
    assert r.status_code == 200, r.text[:300]
    return "\n".join(e["message"] for e in r.json()["events"])


def _usage(server, name: str) -> dict:
    r = signed_get(server, f"/_lambdalet/usage?function={name}")
    assert r.status_code == 200, r.text[:300]
    (fn,) = r.json()["functions"]
    return fn


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_channel_row_through_the_api(row, server, lam, bystander):
    import base64

    name = create(lam, f"channel-{row.id}"[:64], channel_rows.module(row.source), Timeout=row.timeout, MemorySize=row.memory_mb)
    try:
        seen = []
        for event in row.events:
            resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
            tail = base64.b64decode(resp["LogResult"]).decode(errors="replace")
            seen.append(Seen(resp["StatusCode"], resp.get("FunctionError"), resp["Payload"].read(), channel_rows.parse_report(tail), ""))
        # The log as stored: the row's one call (rows of several calls do not check it).
        log = _stored_log(server, name)
        seen = [s._replace(log=log) for s in seen]
        row.check(seen, _usage(server, name))
        _still_serving(lam, bystander)
    finally:
        lam.delete_function(FunctionName=name)


FORGED_60_MB = channel_rows.module("""
silence_the_worker()
def handler(event, context):
    forge_result(context.aws_request_id, payload=b"x" * (60 << 20))
""")


def _rss_high_water_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_concurrent_huge_answers_leave_the_servers_memory_bounded(tmp_path):
    srv = ServerProcess(tmp_path).start()
    try:
        lam = srv.client()
        name = create(lam, "sixty-mb", FORGED_60_MB, MemorySize=1024, Timeout=30)
        small = create(lam, "small", BYSTANDER)
        _still_serving(lam, small)  # the server's own first-call allocations happen before the baseline
        before = _rss_high_water_kb(srv.proc.pid)
        with concurrent.futures.ThreadPoolExecutor(3) as workers:
            answers = list(workers.map(lambda _: lam.invoke(FunctionName=name, Payload=b"null"), range(3)))
        for resp in answers:
            assert resp["StatusCode"] == 200 and resp.get("FunctionError") == "Unhandled"
            assert json.loads(resp["Payload"].read()) == channel_rows.TOO_LARGE
        grown_mb = (_rss_high_water_kb(srv.proc.pid) - before) / 1024
        # One answer the size of these was 60 MB; the three were refused unread.
        assert grown_mb < 48, f"the server's peak RSS grew by {grown_mb:.0f} MB"
        # A function URL maps the same failure to 502, as AWS does.
        url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
        allow_public_url(lam, name)
        r = requests.get(url, timeout=60)
        assert r.status_code == 502, r.text[:300]
        _still_serving(lam, small)
    finally:
        assert srv.stop() == 0


def test_usage_survives_rows_stored_before_clamping(tmp_path):
    """Rows that an older server stored from forged frames (2**63 - 1 twice,
    a negative duration) must not break the account's usage report."""
    from lambdalet.gateway.metering import billing
    from lambdalet.gateway.metering.ledger import Ledger

    started = time.time_ns()
    ledger = Ledger(tmp_path)
    with ledger._db_lock:
        for i, (duration, billed) in enumerate([(2**63 - 1, 2**63 - 1), (2**63 - 1, 2**63 - 1), (-5_000_000_000, -5000), (1_500_000, 2)]):
            ledger._db.execute(
                "INSERT INTO usage (request_id, account, function, version, architecture, started_ns, duration_ns, init_ns,"
                " billed_ms, granularity_ms, memory_mb, max_memory_mb, cold, outcome)"
                " VALUES (?, '', 'old', '$LATEST', 'x86_64', ?, ?, 0, ?, 1, 128, 0, 0, 'success')",
                (f"r{i}", started + i, duration, billed),
            )
    ledger.close()
    srv = ServerProcess(tmp_path).start()
    try:
        r = signed_get(srv, f"/_lambdalet/usage?month={billing.month_of(started)}")
        assert r.status_code == 200, r.text[:300]
        (fn,) = r.json()["functions"]
        assert fn["requests"] == 4
        # Each row counts at most one call's worth (16 minutes), never 2**63 ns.
        assert fn["billed_duration_ms"] == 2 * billing.MAX_BILLED_MS + 0 + 2
        assert fn["duration_ms"] == 2 * billing.MAX_CALL_NS / 1e6 + 1.5
    finally:
        assert srv.stop() == 0
