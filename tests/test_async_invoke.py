"""Asynchronous invocation against a real server: the 202 and the 413,
retries counted exactly, destination records to a function and to the
built-in queues, the dead-letter queue with redrive, and events surviving
kill -9 (throttled, and in flight).

The servers here run with --retry-delay-s 0.2 so that retries come quickly;
every wait is on a condition (a record arriving), never on a clock.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.exceptions
import pytest
import requests
from helpers import ServerProcess, lambdalet_argv, make_zip, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ASYNC_MAX = 1024 * 1024
ACCOUNT = "000000000000"  # the server's default account (gateway/config.py)

OK = "def handler(event, context):\n    return {'echo': event}\n"
FAILS = "def handler(event, context):\n    raise ValueError('boom ' + context.aws_request_id)\n"
BROKEN_UNLESS_FIXED = (
    "import os\n"
    "def handler(event, context):\n"
    "    if os.environ.get('BROKEN'):\n"
    "        raise RuntimeError('still broken')\n"
    "    return {'fixed': event}\n"
)


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("async"), "--retry-delay-s", "0.2").start()
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


@pytest.fixture(scope="module")
def flam(fast):
    return fast.client()


def api(srv: ServerProcess, method: str, path: str, body: dict | None = None) -> tuple[int, dict | None]:
    """A SigV4-signed call to Lambdalet's own routes, as the CLI makes it."""
    key, secret = srv.credentials()
    data = json.dumps(body).encode() if body is not None else b""
    req = botocore.awsrequest.AWSRequest(method=method, url=srv.url + path, data=data, headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    r = requests.request(method, srv.url + path, data=data, headers=dict(req.headers), timeout=30)
    return r.status_code, (r.json() if r.content else None)


def create(lam, name: str, source: str, **kwargs) -> str:
    lam.create_function(
        FunctionName=name, Role=ROLE, Handler="app.handler", Runtime=RUNTIME, Code={"ZipFile": make_zip({"app.py": source})}, **kwargs
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return lam.get_function_configuration(FunctionName=name)["FunctionArn"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:us-east-1:000000000000:{name}"


def messages(srv: ServerProcess, queue: str, function: str | None = None) -> list[dict]:
    status, doc = api(srv, "GET", f"/_lambdalet/queues/{queue}/messages")
    assert status == 200, doc
    return [m for m in doc["Messages"] if function is None or m["FunctionName"] == function]


def wait_messages(srv: ServerProcess, queue: str, count: int, function: str | None = None, timeout: float = 60.0) -> list[dict]:
    return wait_for(lambda: (lambda got: got if len(got) >= count else None)(messages(srv, queue, function)), timeout=timeout)


def stats(srv: ServerProcess) -> dict:
    status, doc = api(srv, "GET", "/_lambdalet/async")
    assert status == 200
    return doc


def invoke_event(lam, name: str, payload: dict | bytes) -> str:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    resp = lam.invoke(FunctionName=name, InvocationType="Event", Payload=body)
    assert resp["StatusCode"] == 202
    assert resp["Payload"].read() == b""
    return resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]


def check_record(
    rec: dict, *, request_id: str, function_arn: str, condition: str, count: int, request_payload, function_error: str | None
) -> None:
    assert rec["version"] == "1.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", rec["timestamp"])
    assert rec["requestContext"] == {
        "requestId": request_id,
        "functionArn": function_arn + ":$LATEST",
        "condition": condition,
        "approximateInvokeCount": count,
    }
    assert rec["requestPayload"] == request_payload
    expected_ctx = {"statusCode": 200, "executedVersion": "$LATEST"}
    if function_error:
        expected_ctx["functionError"] = function_error
    assert rec["responseContext"] == expected_ctx
    assert "responsePayload" in rec


# -- 202 and 413 --------------------------------------------------------------


def test_event_is_accepted_with_202_and_runs(fast, flam):
    name = unique("ok")
    arn = create(flam, name, OK)
    q = unique("q")
    flam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}})
    request_id = invoke_event(flam, name, {"n": 1})
    [msg] = wait_messages(fast, q, 1)
    check_record(
        msg["Body"], request_id=request_id, function_arn=arn, condition="Success", count=1, request_payload={"n": 1}, function_error=None
    )
    assert msg["Body"]["responsePayload"] == {"echo": {"n": 1}}


def test_async_payload_over_1mb_is_413_and_1mb_is_accepted(fast, flam):
    name = unique("big")
    create(flam, name, OK)
    over = b'"' + b"a" * (ASYNC_MAX - 1) + b'"'  # one byte over 1 MB
    assert len(over) == ASYNC_MAX + 1
    with pytest.raises(botocore.exceptions.ClientError) as info:
        flam.invoke(FunctionName=name, InvocationType="Event", Payload=over)
    err = info.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 413
    assert err["Error"]["Code"] == "RequestTooLargeException"
    exactly = b'"' + b"a" * (ASYNC_MAX - 2) + b'"'
    assert len(exactly) == ASYNC_MAX
    invoke_event(flam, name, exactly)


def test_deprecated_invoke_async_uses_the_same_queue(fast, flam):
    name = unique("legacy")
    arn = create(flam, name, OK)
    q = unique("legacy-q")
    flam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}})
    resp = flam.invoke_async(FunctionName=name, InvokeArgs=b'{"old": "api"}')
    assert resp["Status"] == 202
    [msg] = wait_messages(fast, q, 1)
    check_record(
        msg["Body"],
        request_id=resp["ResponseMetadata"]["RequestId"],
        function_arn=arn,
        condition="Success",
        count=1,
        request_payload={"old": "api"},
        function_error=None,
    )


# -- retries ------------------------------------------------------------------


@pytest.mark.parametrize("retries", [0, 1, 2])
def test_function_errors_are_retried_exactly_max_retry_attempts_times(fast, flam, retries):
    name = unique(f"fails{retries}")
    arn = create(flam, name, FAILS)
    q = unique("failures")
    flam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=retries, DestinationConfig={"OnFailure": {"Destination": queue_arn(q)}}
    )
    before = stats(fast)["retries"]
    request_id = invoke_event(flam, name, {"attempt": "me"})
    [msg] = wait_messages(fast, q, 1)
    rec = msg["Body"]
    check_record(
        rec,
        request_id=request_id,
        function_arn=arn,
        condition="RetriesExhausted",
        count=retries + 1,
        request_payload={"attempt": "me"},
        function_error="Unhandled",
    )
    # Every attempt kept the request id, as Lambda's retries do.
    assert rec["responsePayload"]["errorType"] == "ValueError"
    assert rec["responsePayload"]["errorMessage"] == f"boom {request_id}"
    assert stats(fast)["retries"] - before == retries


def test_default_is_two_retries_and_timeouts_are_retried(fast, flam):
    name = unique("slow")
    arn = create(flam, name, "import time\ndef handler(event, context):\n    time.sleep(30)\n", Timeout=1)
    q = unique("timeouts")
    # Only the destination is set: MaximumRetryAttempts keeps its default, 2.
    flam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": queue_arn(q)}})
    request_id = invoke_event(flam, name, {})
    [msg] = wait_messages(fast, q, 1, timeout=120)
    check_record(
        msg["Body"],
        request_id=request_id,
        function_arn=arn,
        condition="RetriesExhausted",
        count=3,
        request_payload={},
        function_error="Unhandled",
    )
    assert msg["Body"]["responsePayload"]["errorType"] == "Sandbox.Timedout"


# -- destinations -------------------------------------------------------------


def test_on_success_and_on_failure_records_reach_a_destination_function(fast, flam):
    # The recorder is itself invoked asynchronously with each record; its own
    # OnSuccess puts what it received in a queue the test can read.
    recorder = unique("recorder")
    recorder_arn = create(flam, recorder, "def handler(event, context):\n    return event\n")
    seen = unique("seen")
    flam.put_function_event_invoke_config(FunctionName=recorder, DestinationConfig={"OnSuccess": {"Destination": queue_arn(seen)}})

    good, bad = unique("good"), unique("bad")
    good_arn = create(flam, good, OK)
    bad_arn = create(flam, bad, FAILS)
    flam.put_function_event_invoke_config(FunctionName=good, DestinationConfig={"OnSuccess": {"Destination": recorder_arn}})
    flam.put_function_event_invoke_config(
        FunctionName=bad, MaximumRetryAttempts=1, DestinationConfig={"OnFailure": {"Destination": recorder_arn}}
    )
    good_id = invoke_event(flam, good, {"order": 7})
    bad_id = invoke_event(flam, bad, {"order": 8})

    got = wait_messages(fast, seen, 2)
    records = {m["Body"]["requestPayload"]["requestContext"]["condition"]: m["Body"]["requestPayload"] for m in got}
    check_record(
        records["Success"],
        request_id=good_id,
        function_arn=good_arn,
        condition="Success",
        count=1,
        request_payload={"order": 7},
        function_error=None,
    )
    assert records["Success"]["responsePayload"] == {"echo": {"order": 7}}
    check_record(
        records["RetriesExhausted"],
        request_id=bad_id,
        function_arn=bad_arn,
        condition="RetriesExhausted",
        count=2,
        request_payload={"order": 8},
        function_error="Unhandled",
    )
    assert records["RetriesExhausted"]["responsePayload"]["errorType"] == "ValueError"


def test_dead_letter_queue_read_and_redrive(fast, flam):
    name = unique("dlq")
    create(flam, name, BROKEN_UNLESS_FIXED, Environment={"Variables": {"BROKEN": "1"}})
    fixed = unique("fixed")
    # No OnFailure: failures land in the built-in lambdalet-dlq.
    flam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnSuccess": {"Destination": queue_arn(fixed)}}
    )
    ids = [invoke_event(flam, name, {"item": i}) for i in range(3)]

    dead = wait_messages(fast, "lambdalet-dlq", 3, function=name)
    assert sorted(m["Body"]["requestContext"]["requestId"] for m in dead) == sorted(ids)
    assert {m["Body"]["requestContext"]["condition"] for m in dead} == {"RetriesExhausted"}
    assert all(m["QueueArn"] == "arn:aws:sqs:us-east-1:000000000000:lambdalet-dlq" for m in dead)

    # The CLI reads the same queue.
    cli = [*lambdalet_argv("--endpoint", fast.url, "--data-dir", str(fast.data_dir))]
    out = subprocess.run([*cli, "dlq", "ls", "--json"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert {m["MessageId"] for m in json.loads(out.stdout) if m["FunctionName"] == name} == {m["MessageId"] for m in dead}

    flam.update_function_configuration(FunctionName=name, Environment={"Variables": {}})
    flam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})

    # Redrive one over HTTP and two with the CLI.
    status, doc = api(fast, "POST", "/_lambdalet/queues/lambdalet-dlq/redrive", {"MessageIds": [dead[0]["MessageId"]]})
    assert status == 200 and doc == {"Redriven": 1}
    out = subprocess.run([*cli, "dlq", "redrive", dead[1]["MessageId"], dead[2]["MessageId"]], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "redrove 2" in out.stdout

    done = wait_messages(fast, fixed, 3)
    assert sorted(m["Body"]["requestPayload"]["item"] for m in done) == [0, 1, 2]
    assert {m["Body"]["responsePayload"]["fixed"]["item"] for m in done} == {0, 1, 2}
    assert messages(fast, "lambdalet-dlq", name) == []
    # Redriving what is gone moves nothing.
    status, doc = api(fast, "POST", "/_lambdalet/queues/lambdalet-dlq/redrive", {"MessageIds": [dead[0]["MessageId"]]})
    assert status == 200 and doc == {"Redriven": 0}


def test_dead_letters_can_be_deleted(fast, flam):
    name = unique("purge")
    create(flam, name, FAILS)
    q = unique("trash")
    flam.put_function_event_invoke_config(
        FunctionName=name, MaximumRetryAttempts=0, DestinationConfig={"OnFailure": {"Destination": queue_arn(q)}}
    )
    for i in range(3):
        invoke_event(flam, name, {"i": i})
    first, *rest = wait_messages(fast, q, 3)
    cli = [*lambdalet_argv("--endpoint", fast.url, "--data-dir", str(fast.data_dir))]
    refused = subprocess.run([*cli, "dlq", "rm", "--queue", q], capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "--all" in refused.stderr and "Traceback" not in refused.stderr
    one = subprocess.run([*cli, "dlq", "rm", "--queue", q, first["MessageId"]], capture_output=True, text=True, timeout=60)
    assert one.returncode == 0 and "deleted 1 record(s)" in one.stdout, one.stderr
    assert {m["MessageId"] for m in messages(fast, q)} == {m["MessageId"] for m in rest}
    every = subprocess.run([*cli, "dlq", "rm", "--queue", q, "--all"], capture_output=True, text=True, timeout=60)
    assert every.returncode == 0 and "deleted 2 record(s)" in every.stdout, every.stderr
    assert messages(fast, q) == []


# -- event-invoke config API --------------------------------------------------


def test_event_invoke_config_api(fast, flam):
    name = unique("cfg")
    arn = create(flam, name, OK)
    unchecked = fast.client(parameter_validation=False)

    with pytest.raises(flam.exceptions.ResourceNotFoundException):
        flam.get_function_event_invoke_config(FunctionName=name)
    assert flam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"] == []

    put = flam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=1, MaximumEventAgeInSeconds=600)
    assert put["FunctionArn"] == arn + ":$LATEST"
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 600
    assert put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}

    # Update changes only what it names.
    upd = flam.update_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnFailure": {"Destination": queue_arn("mine")}})
    assert upd["MaximumRetryAttempts"] == 1 and upd["MaximumEventAgeInSeconds"] == 600
    assert upd["DestinationConfig"]["OnFailure"] == {"Destination": queue_arn("mine")}
    got = flam.get_function_event_invoke_config(FunctionName=arn)
    assert got["DestinationConfig"] == upd["DestinationConfig"]

    # Put replaces the whole config.
    put = flam.put_function_event_invoke_config(FunctionName=name, MaximumEventAgeInSeconds=60)
    assert "MaximumRetryAttempts" not in put and put["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    listed = flam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert [c["FunctionArn"] for c in listed] == [arn + ":$LATEST"]

    # The model's ranges and ARN pattern are ValidationException; what the
    # model cannot say (a destination that does not exist, a service this
    # server cannot deliver to) is InvalidParameterValueException, as on AWS.
    refusals = [
        (dict(MaximumRetryAttempts=3), "ValidationException"),
        (dict(MaximumRetryAttempts=-1), "ValidationException"),
        (dict(MaximumEventAgeInSeconds=59), "ValidationException"),
        (dict(MaximumEventAgeInSeconds=21601), "ValidationException"),
        (
            dict(DestinationConfig={"OnFailure": {"Destination": "arn:aws:sns:us-east-1:000000000000:topic"}}),
            "InvalidParameterValueException",
        ),
        (
            dict(DestinationConfig={"OnSuccess": {"Destination": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:does-not-exist"}}),
            "InvalidParameterValueException",
        ),
        (dict(DestinationConfig={"OnSuccess": {"Destination": "not-an-arn"}}), "ValidationException"),
    ]
    for kwargs, code in refusals:
        with pytest.raises(botocore.exceptions.ClientError) as info:
            unchecked.put_function_event_invoke_config(FunctionName=name, **kwargs)
        assert info.value.response["Error"]["Code"] == code, kwargs
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400

    with pytest.raises(flam.exceptions.ResourceNotFoundException):
        flam.put_function_event_invoke_config(FunctionName=unique("nobody"), MaximumRetryAttempts=0)

    flam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(flam.exceptions.ResourceNotFoundException):
        flam.get_function_event_invoke_config(FunctionName=name)
    with pytest.raises(flam.exceptions.ResourceNotFoundException):
        flam.update_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)

    # Deleting the function deletes its config with it.
    flam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    flam.delete_function(FunctionName=name)
    create(flam, name, OK)
    with pytest.raises(flam.exceptions.ResourceNotFoundException):
        flam.get_function_event_invoke_config(FunctionName=name)


# -- schedules over HTTP and the CLI ------------------------------------------


def test_schedules_over_http_and_cli(fast, flam):
    name = unique("sched")
    create(flam, name, OK)
    cli = [*lambdalet_argv("--endpoint", fast.url, "--data-dir", str(fast.data_dir))]
    sched = unique("nightly")

    bad = subprocess.run(
        [*cli, "schedule", "add", sched, "cron(0 10 * * * *)", "--function", name], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    assert "InvalidParameterValueException" in bad.stderr

    ok = subprocess.run(
        [*cli, "schedule", "add", sched, "cron(0 3 ? * MON-FRI *)", "--function", name], capture_output=True, text=True, timeout=60
    )
    assert ok.returncode == 0, ok.stderr
    assert f"scheduled {sched}" in ok.stdout

    status, doc = api(fast, "GET", f"/_lambdalet/schedules/{sched}")
    assert status == 200
    assert doc["ScheduleExpression"] == "cron(0 3 ? * MON-FRI *)" and doc["FunctionName"] == name and doc["State"] == "ENABLED"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT03:00:00Z", doc["NextFire"])

    ls = subprocess.run([*cli, "schedule", "ls", "--json"], capture_output=True, text=True, timeout=60)
    assert ls.returncode == 0 and sched in {s["Name"] for s in json.loads(ls.stdout)}

    status, doc = api(fast, "PUT", f"/_lambdalet/schedules/{unique('x')}", {"ScheduleExpression": "rate(5 minute)", "FunctionName": name})
    assert status == 400 and "rate(5 minute)" in doc["message"]

    rm = subprocess.run([*cli, "schedule", "rm", sched], capture_output=True, text=True, timeout=60)
    assert rm.returncode == 0, rm.stderr
    status, _ = api(fast, "GET", f"/_lambdalet/schedules/{sched}")
    assert status == 404
    again = subprocess.run([*cli, "schedule", "rm", sched], capture_output=True, text=True, timeout=60)
    assert again.returncode == 1 and "ResourceNotFoundException" in again.stderr


def test_reserved_concurrency_zero_holds_events_until_lifted(fast, flam):
    name = unique("reserved0")
    arn = create(flam, name, OK)
    flam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    q = unique("held")
    flam.put_function_event_invoke_config(
        FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}, "OnFailure": {"Destination": queue_arn(q)}}
    )
    before = stats(fast)["throttles"]
    request_id = invoke_event(flam, name, {"wait": True})
    wait_for(lambda: stats(fast)["throttles"] >= before + 3)
    assert messages(fast, q) == []  # held: neither run nor failed
    flam.delete_function_concurrency(FunctionName=name)
    [msg] = wait_messages(fast, q, 1)
    check_record(
        msg["Body"],
        request_id=request_id,
        function_arn=arn,
        condition="Success",
        count=1,
        request_payload={"wait": True},
        function_error=None,
    )


# -- kill -9 ------------------------------------------------------------------


@pytest.mark.parametrize("throttle", ["reserved-concurrency-0", "account-limit-0"])
def test_accepted_event_survives_kill_9_while_throttled(tmp_path, throttle):
    data = tmp_path / "data"
    limit = ("--concurrency-limit", "0") if throttle == "account-limit-0" else ()
    srv = ServerProcess(data, "--retry-delay-s", "0.2", *limit).start()
    try:
        lam = srv.client()
        name = unique("held")
        arn = create(lam, name, OK)
        if throttle == "reserved-concurrency-0":
            lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        q = unique("after-crash")
        lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}})
        request_id = invoke_event(lam, name, {"keep": "me"})
        # Every call is throttled, so the event can only wait.
        wait_for(lambda: stats(srv)["throttles"] >= 2)
        held = stats(srv)
        assert held["depth"] == 1 and held["succeeded"] == 0 and held["failed"] == 0
        assert messages(srv, q) == []
    finally:
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL

    srv = ServerProcess(data, "--retry-delay-s", "0.2").start()
    try:
        lam = srv.client()
        if throttle == "reserved-concurrency-0":
            # Still throttled after the restart: still held, not dropped.
            wait_for(lambda: stats(srv)["throttles"] >= 2)
            assert stats(srv)["depth"] == 1 and messages(srv, q) == []
            lam.delete_function_concurrency(FunctionName=name)
        [msg] = wait_messages(srv, q, 1)
        # Throttles are not attempts: the one call that ran is the first.
        check_record(
            msg["Body"],
            request_id=request_id,
            function_arn=arn,
            condition="Success",
            count=1,
            request_payload={"keep": "me"},
            function_error=None,
        )
        assert stats(srv)["depth"] == 0
    finally:
        assert srv.stop() == 0


def test_event_in_flight_at_kill_9_is_delivered_again(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data, "--retry-delay-s", "0.2").start()
    try:
        lam = srv.client()
        name = unique("inflight")
        # The first run blocks until the server is killed; a marker in /tmp
        # does not survive, since every sandbox starts afresh.
        arn = create(
            lam,
            name,
            "import time\ndef handler(event, context):\n    if event.get('block'):\n        time.sleep(event['block'])\n    return 'done'\n",
            Timeout=60,
        )
        q = unique("redelivered")
        lam.put_function_event_invoke_config(FunctionName=name, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}})
        request_id = invoke_event(lam, name, {"block": 5})
        wait_for(lambda: stats(srv)["in_flight"] == 1, timeout=30)
    finally:
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL

    srv = ServerProcess(data, "--retry-delay-s", "0.2").start()
    try:
        [msg] = wait_messages(srv, q, 1, timeout=60)
        check_record(
            msg["Body"],
            request_id=request_id,
            function_arn=arn,
            condition="Success",
            count=1,
            request_payload={"block": 5},
            function_error=None,
        )
        assert msg["Body"]["responsePayload"] == "done"
    finally:
        assert srv.stop() == 0


def test_doctor_reports_the_queue(fast, flam):
    out = subprocess.run(lambdalet_argv("--data-dir", str(fast.data_dir), "doctor"), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(r"async queue: \d+ event\(s\) waiting, oldest \d+ s old, \d+ retries so far", out.stdout)
    assert "lambdalet-dlq" in out.stdout or "destination queues:" in out.stdout


def test_metrics_show_the_queue(fast, flam):
    r = requests.get(fast.url + "/metrics", timeout=10)
    assert r.status_code == 200
    values = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(lambdalet_async_\w+) (\S+)$", r.text, re.M)}
    s = stats(fast)
    assert values["lambdalet_async_queue_depth"] >= 0
    assert values["lambdalet_async_queue_oldest_age_seconds"] >= 0
    assert values["lambdalet_async_retries_total"] == s["retries"]
    assert "lambdalet_async_throttles_total" in values and "lambdalet_async_dead_letters" in values


@pytest.mark.cli
@pytest.mark.skipif(shutil.which("aws") is None, reason="the aws CLI is not installed")
def test_aws_cli_event_invoke_config_and_event_invoke(fast, flam, tmp_path):
    name = unique("awscli")
    create(flam, name, OK)
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=fast.url,
        AWS_SHARED_CREDENTIALS_FILE=str(fast.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    env.pop("AWS_PROFILE", None)

    def aws(*args):
        proc = subprocess.run([shutil.which("aws"), "lambda", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    q = unique("awscli-q")
    put = aws(
        "put-function-event-invoke-config",
        "--function-name",
        name,
        "--maximum-retry-attempts",
        "0",
        "--destination-config",
        json.dumps({"OnSuccess": {"Destination": queue_arn(q)}}),
    )
    assert put["MaximumRetryAttempts"] == 0
    assert aws("get-function-event-invoke-config", "--function-name", name)["DestinationConfig"]["OnSuccess"]["Destination"] == queue_arn(q)
    out = tmp_path / "out"
    meta = aws("invoke", "--function-name", name, "--invocation-type", "Event", "--payload", '{"via": "aws"}', str(out))
    assert meta["StatusCode"] == 202
    [msg] = wait_messages(fast, q, 1)
    assert msg["Body"]["requestPayload"] == {"via": "aws"}
    aws("delete-function-event-invoke-config", "--function-name", name)
    assert aws("list-function-event-invoke-configs", "--function-name", name)["FunctionEventInvokeConfigs"] == []


def test_events_run_the_version_they_were_invoked_on_with_that_qualifiers_config(fast, flam):
    name = unique("versioned")
    arn = create(flam, name, "def handler(event, context):\n    return 'v1'\n")
    flam.publish_version(FunctionName=name)
    flam.update_function_code(FunctionName=name, ZipFile=make_zip({"app.py": "def handler(event, context):\n    return 'latest'\n"}))
    flam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    flam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    queues = {q: unique(f"v-{q.strip('$').lower()}") for q in ("$LATEST", "1", "live")}
    for qualifier, q in queues.items():
        flam.put_function_event_invoke_config(
            FunctionName=name, Qualifier=qualifier, DestinationConfig={"OnSuccess": {"Destination": queue_arn(q)}}
        )
    listed = flam.list_function_event_invoke_configs(FunctionName=name)["FunctionEventInvokeConfigs"]
    assert sorted(c["FunctionArn"] for c in listed) == sorted(f"{arn}:{q}" for q in queues)

    ids = {
        qualifier: flam.invoke(FunctionName=name, Qualifier=qualifier, InvocationType="Event", Payload=b"{}")["ResponseMetadata"][
            "RequestId"
        ]
        for qualifier in queues
    }
    expected = {"$LATEST": ("$LATEST", "latest"), "1": ("1", "v1"), "live": ("1", "v1")}
    for qualifier, q in queues.items():
        [msg] = wait_messages(fast, q, 1)
        rec = msg["Body"]
        assert rec["requestContext"]["requestId"] == ids[qualifier]
        assert rec["requestContext"]["functionArn"] == f"{arn}:{qualifier}"
        assert (rec["responseContext"]["executedVersion"], rec["responsePayload"]) == expected[qualifier]
    # A redriven record runs the qualifier it was invoked with, as it stands now.
    fails = unique("v-dlq")
    flam.put_function_event_invoke_config(
        FunctionName=name,
        Qualifier="live",
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": queue_arn(queues["live"])}, "OnFailure": {"Destination": queue_arn(fails)}},
    )
    flam.update_function_code(
        FunctionName=name, ZipFile=make_zip({"app.py": "def handler(event, context):\n    raise ValueError('v2 is broken')\n"})
    )
    flam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    flam.publish_version(FunctionName=name)
    flam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    flam.invoke(FunctionName=name, Qualifier="live", InvocationType="Event", Payload=b'{"again": 1}')
    [dead] = wait_messages(fast, fails, 1)
    assert dead["Body"]["responseContext"]["executedVersion"] == "2"
    flam.update_alias(FunctionName=name, Name="live", FunctionVersion="1")
    status, doc = api(fast, "POST", f"/_lambdalet/queues/{fails}/redrive", {})
    assert status == 200 and doc == {"Redriven": 1}
    got = wait_messages(fast, queues["live"], 2)
    assert got[-1]["Body"]["requestPayload"] == {"again": 1}
    assert (got[-1]["Body"]["responseContext"]["executedVersion"], got[-1]["Body"]["responsePayload"]) == ("1", "v1")
