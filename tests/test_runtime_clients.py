"""Runtime clients nobody here wrote, against this server's Runtime API:
aws-lambda-go (Go module proxy), Rust lambda_runtime (crates.io) and
awslambdaric (PyPI), each unmodified as a provided.al2023 bootstrap.

The Go and Rust samples (tests/custom_runtimes/) are built once per source
version (tests/runtime_builds.py); awslambdaric comes with the test
dependencies. Each client shows: the event arrives intact (a 5.9 MB one
too), the context fields are right, errors come back in AWS's shape, the
timeout is enforced, and the log carries START/END/REPORT. The aws CLI
and boto3 deploy the Go bootstrap and call it through Invoke and a
function URL.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time

import pytest
import requests
import runtime_builds
from helpers import make_zip

from lambdalet.sandbox.runtime_root import python_executable

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
HANDLERS = ("echo", "context", "error", "sleep")
BIG_EVENT = {"blob": "x" * (5_900_000 - 20), "n": [1, 2, 3]}  # 5.9 MB of JSON

RIC_APP = """
import json, os, sys, time

def echo(event, context):
    return event

def context(event, context):
    print("context handler ran")
    return {"request_id": context.aws_request_id, "arn": context.invoked_function_arn,
            "remaining_ms": context.get_remaining_time_in_millis(), "function": context.function_name,
            "version": context.function_version, "memory_mb": int(context.memory_limit_in_mb),
            "log_group": context.log_group_name, "log_stream": context.log_stream_name}

class ProbeFailure(Exception):
    pass

def error(event, context):
    print("error handler about to fail", file=sys.stderr)
    raise ProbeFailure("it went wrong: " + json.dumps(event))

def sleep(event, context):
    time.sleep(event["ms"] / 1000)
    return {"slept_ms": event["ms"]}
"""


def _ric_zip() -> bytes:
    bootstrap = (
        "#!/bin/sh\n# AWS's Python runtime interface client as a custom runtime.\n"
        "export PYTHONPATH=/var/task/ric:/var/task\n"
        f'exec {python_executable()} -S -m awslambdaric "$_HANDLER"\n'
    )
    return make_zip({"bootstrap": bootstrap, "app.py": RIC_APP, **runtime_builds.ric_files()}, {"bootstrap": 0o755})


def _binary_zip(path) -> bytes:
    return make_zip({"bootstrap": path.read_bytes()}, {"bootstrap": 0o755})


@pytest.fixture(scope="session")
def go_zip() -> bytes:
    try:
        return _binary_zip(runtime_builds.go_bootstrap())
    except runtime_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def rust_zip() -> bytes:
    try:
        return _binary_zip(runtime_builds.rust_bootstrap())
    except runtime_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def ric_zip() -> bytes:
    try:
        return _ric_zip()
    except runtime_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module", params=["go", "rust", "awslambdaric"])
def client(request, lam):
    """One function per handler of one client, deployed for the module."""
    kind = request.param
    code = request.getfixturevalue({"go": "go_zip", "rust": "rust_zip", "awslambdaric": "ric_zip"}[kind])
    names = {}
    for handler in HANDLERS:
        name = f"client-{kind}-{handler}"
        lam.create_function(
            FunctionName=name,
            Role=ROLE,
            Runtime="provided.al2023",
            MemorySize=1024,
            Timeout=20,
            Handler=handler if kind != "awslambdaric" else f"app.{handler}",
            Code={"ZipFile": code},
        )
        names[handler] = name
    for name in names.values():
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield kind, names
    for name in names.values():
        lam.delete_function(FunctionName=name)


def _invoke(lam, name: str, payload: bytes):
    resp = lam.invoke(FunctionName=name, Payload=payload, LogType="Tail")
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0
    return resp, resp["Payload"].read(), base64.b64decode(resp["LogResult"]).decode()


def _framed(log: str, request_id: str) -> list[str]:
    """The call's own lines, between START and END; REPORT must follow."""
    lines = log.splitlines()
    start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
    end = lines.index(f"END RequestId: {request_id}")
    assert lines[end + 1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    return lines[start + 1 : end]


def test_event_arrives_intact_and_comes_back(client, lam):
    kind, names = client
    event = {"text": "héllo \u2603", "nested": {"list": [1, 2.5, None, True], "empty": {}}}
    resp, body, log = _invoke(lam, names["echo"], json.dumps(event).encode())
    assert "FunctionError" not in resp, body
    assert json.loads(body) == event
    assert _framed(log, resp["ResponseMetadata"]["RequestId"]) == []
    assert "Init Duration" in log.splitlines()[-1]
    resp, body, log = _invoke(lam, names["echo"], json.dumps(BIG_EVENT).encode())
    assert "FunctionError" not in resp, body[:500]
    assert len(body) > 5_800_000 and json.loads(body) == BIG_EVENT
    assert "Init Duration" not in log.splitlines()[-1]  # warm


def test_context_fields_are_right(client, lam):
    kind, names = client
    name = names["context"]
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    before_ms = time.time() * 1000
    resp, body, log = _invoke(lam, name, b"{}")
    after_ms = time.time() * 1000
    seen = json.loads(body)
    request_id = resp["ResponseMetadata"]["RequestId"]
    assert seen["request_id"] == request_id and seen["arn"] == arn
    assert seen["function"] == name and seen["version"] == "$LATEST" and int(seen["memory_mb"]) == 1024
    assert seen["log_group"] == f"/aws/lambda/{name}" and seen["log_stream"].startswith(time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()))
    # The deadline as each client exposes it: Go's context deadline, awslambdaric's remaining time, Rust's both.
    shown = {"go": {"deadline_ms"}, "rust": {"deadline_ms", "remaining_ms"}, "awslambdaric": {"remaining_ms"}}[kind]
    assert shown <= set(seen), seen
    if "deadline_ms" in shown:
        assert before_ms + 20_000 - 1 <= seen["deadline_ms"] <= after_ms + 20_000 + 1
    if "remaining_ms" in shown:
        assert 15_000 < seen["remaining_ms"] <= 20_000
    if kind == "go":
        env = seen["env"]
        assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9001" and env["_HANDLER"] == "context"
        assert env["LAMBDA_TASK_ROOT"] == "/var/task" and env["TZ"] == ":UTC" and "AWS_EXECUTION_ENV" not in env
    assert _framed(log, request_id) == ["context handler ran"]


def test_errors_come_back_in_aws_shape(client, lam):
    kind, names = client
    resp, body, log = _invoke(lam, names["error"], b'"x"')
    assert resp["FunctionError"] == "Unhandled"
    doc = json.loads(body)
    assert doc["errorMessage"] == 'it went wrong: "x"'
    expected_type = {"go": "failure", "awslambdaric": "ProbeFailure"}.get(kind)
    if expected_type:
        assert doc["errorType"] == expected_type
    else:
        assert doc["errorType"]  # Rust names the error's Rust type
    if kind == "awslambdaric":
        assert doc["requestId"] == resp["ResponseMetadata"]["RequestId"] and doc["stackTrace"]
    lines = _framed(log, resp["ResponseMetadata"]["RequestId"])
    assert "error handler about to fail" in lines
    # The environment goes on serving.
    resp, body, _ = _invoke(lam, names["error"], b'"y"')
    assert json.loads(body)["errorMessage"] == 'it went wrong: "y"'


def test_timeout_is_enforced(client, lam):
    kind, names = client
    name = names["sleep"]
    resp, body, _ = _invoke(lam, name, b'{"ms": 50}')
    assert "FunctionError" not in resp and json.loads(body) == {"slept_ms": 50}
    lam.update_function_configuration(FunctionName=name, Timeout=1)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    resp, body, log = _invoke(lam, name, b'{"ms": 5000}')
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(body)["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert re.search(r"Task timed out after 1.00 seconds\nEND RequestId: ", log)
    assert "\tDuration: 1000.00 ms\t" in log
    resp, body, log = _invoke(lam, name, b'{"ms": 10}')  # a fresh environment
    assert json.loads(body) == {"slept_ms": 10} and "Init Duration" in log.splitlines()[-1]


def test_go_bootstrap_through_the_aws_cli_invoke_and_a_function_url(server, lam, go_zip, tmp_path):
    aws_cli = os.path.join(os.path.dirname(sys.executable), "aws")
    assert os.access(aws_cli, os.X_OK), "the aws CLI is a test dependency (pip install -e '.[test]')"
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=server.url,
        AWS_SHARED_CREDENTIALS_FILE=str(server.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)

    def aws(*args: str) -> str:
        proc = subprocess.run([aws_cli, "lambda", *args], capture_output=True, text=True, env=env, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    zip_path = tmp_path / "go.zip"
    zip_path.write_bytes(go_zip)
    name = "client-go-cli"
    created = json.loads(
        aws(
            "create-function",
            "--function-name",
            name,
            "--runtime",
            "provided.al2023",
            "--handler",
            "url",
            "--role",
            ROLE,
            "--zip-file",
            f"fileb://{zip_path}",
        )
    )
    try:
        assert created["Runtime"] == "provided.al2023" and created["Handler"] == "url"
        aws("wait", "function-active-v2", "--function-name", name)
        aws("update-function-configuration", "--function-name", name, "--handler", "echo")
        aws("wait", "function-updated-v2", "--function-name", name)
        out = tmp_path / "out.json"
        meta = json.loads(aws("invoke", "--function-name", name, "--payload", '{"via": "aws cli"}', str(out)))
        assert meta["StatusCode"] == 200 and "FunctionError" not in meta
        assert json.loads(out.read_text()) == {"via": "aws cli"}
        # boto3 too, then a function URL answered through aws-lambda-go's event types.
        assert json.loads(lam.invoke(FunctionName=name, Payload=b'[1, "two"]')["Payload"].read()) == [1, "two"]
        aws("update-function-configuration", "--function-name", name, "--handler", "url")
        aws("wait", "function-updated-v2", "--function-name", name)
        url = json.loads(aws("create-function-url-config", "--function-name", name, "--auth-type", "NONE"))["FunctionUrl"]
        # As on AWS: a public URL needs both statements in the function's policy.
        aws(
            "add-permission",
            "--function-name",
            name,
            "--statement-id",
            "FunctionURLAllowPublicAccess",
            "--action",
            "lambda:InvokeFunctionUrl",
            "--principal",
            "*",
            "--function-url-auth-type",
            "NONE",
        )
        aws(
            "add-permission",
            "--function-name",
            name,
            "--statement-id",
            "FunctionURLAllowInvokeAction",
            "--action",
            "lambda:InvokeFunction",
            "--principal",
            "*",
            "--invoked-via-function-url",
        )
        resp = requests.post(url + "some/path?q=1", data=b"hello", timeout=30)
        assert resp.status_code == 201 and resp.headers["x-from"] == "aws-lambda-go"
        assert resp.text == "POST /some/path?q=1 body=hello"
    finally:
        aws("delete-function", "--function-name", name)
