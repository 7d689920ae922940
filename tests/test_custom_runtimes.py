"""Custom runtimes (provided.al2023, provided.al2) through the real server:
a `bootstrap` exec'd in the sandbox, speaking the Runtime API at
AWS_LAMBDA_RUNTIME_API=127.0.0.1:9001, driven with boto3.

The runtime here is tests/custom_runtimes/probe_runtime.py on raw HTTP,
started by a shell bootstrap, so that it can commit every misuse the API
must answer; the real runtime clients (aws-lambda-go, awslambdaric, Rust
lambda_runtime) are in test_runtime_clients.py. The same rules are unit
tested without sockets in test_runtime_api_state.py.
"""

from __future__ import annotations

import base64
import json
import pathlib
import re
import time

import pytest
from helpers import make_zip

from lambdalet.sandbox.runtime_root import python_executable

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
PROBE = (pathlib.Path(__file__).parent / "custom_runtimes" / "probe_runtime.py").read_text()
PYTHON = python_executable()  # bound in every sandbox at its own path


def probe_bootstrap(mode: str = "events") -> str:
    return f"#!/bin/sh\necho 'bootstrap: exec the probe'\nexec {PYTHON} -I -S /var/task/probe_runtime.py {mode}\n"


@pytest.fixture
def deploy_custom(lam, fn_name):
    """Creates a provided.al2023 function from {name: content} (bootstrap
    executable unless modes say otherwise) and deletes it afterwards."""
    made: list[str] = []

    def _deploy(
        files: dict | None = None,
        *,
        mode: str = "events",
        modes: dict | None = None,
        name: str | None = None,
        runtime: str = "provided.al2023",
        **kwargs,
    ) -> str:
        name = name or f"{fn_name}-{len(made)}"
        if files is None:
            files = {"bootstrap": probe_bootstrap(mode), "probe_runtime.py": PROBE}
        lam.create_function(
            FunctionName=name,
            Role=ROLE,
            Runtime=runtime,
            Handler=kwargs.pop("Handler", "probe.handler"),
            Code={"ZipFile": make_zip(files, {"bootstrap": 0o755, **(modes or {})})},
            **kwargs,
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        made.append(name)
        return name

    yield _deploy
    for name in made:
        lam.delete_function(FunctionName=name)


def invoke(lam, name: str, event) -> tuple[dict, object, str]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode(), LogType="Tail")
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0
    raw = resp["Payload"].read()
    return resp, json.loads(raw) if raw else None, base64.b64decode(resp["LogResult"]).decode()


def report(log: str) -> dict[str, float]:
    line = next(line for line in log.splitlines() if line.startswith("REPORT RequestId:"))
    return {k: float(v) for k, v in re.findall(r"(Duration|Init Duration|Max Memory Used|Memory Size): ([\d.]+)", line)}


def test_event_context_environment_and_log_lines(lam, deploy_custom):
    name = deploy_custom(MemorySize=256, Timeout=7, Environment={"Variables": {"MINE": "yes"}})
    event = {"do": "echo", "nested": {"list": [1, 2.5, "ü", None]}}
    before_ms = time.time() * 1000
    resp, body, log = invoke(lam, name, event)
    assert "FunctionError" not in resp, body
    assert body["event"] == event
    headers = body["headers"]
    assert headers["lambda-runtime-aws-request-id"] == resp["ResponseMetadata"]["RequestId"]
    assert headers["lambda-runtime-invoked-function-arn"] == lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    deadline = int(headers["lambda-runtime-deadline-ms"])
    assert before_ms + 6000 < deadline < time.time() * 1000 + 7000
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Parent=[0-9a-f]{16};Sampled=0", headers["lambda-runtime-trace-id"])
    assert headers["content-type"] == "application/json"
    env = body["env"]
    expected = {
        "_HANDLER": "probe.handler",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TZ": ":UTC",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "MINE": "yes",
    }
    assert {k: env.get(k) for k in expected} == expected
    assert "AWS_EXECUTION_ENV" not in env and "PYTHONIOENCODING" not in env
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"].startswith(time.strftime("%Y/%m/%d/[$LATEST]", time.gmtime()))
    lines = log.splitlines()
    assert lines[0] == "INIT_START Runtime Version: provided:al2023"
    assert "bootstrap: exec the probe" in lines and "probe runtime starting (events)" in lines
    start = lines.index(f"START RequestId: {headers['lambda-runtime-aws-request-id']} Version: $LATEST")
    assert lines[start + 1] == f"END RequestId: {headers['lambda-runtime-aws-request-id']}"
    figures = report(log)
    assert figures["Memory Size"] == 256 and "Init Duration" in figures and figures["Duration"] > 0
    # Warm: the same environment, no Init Duration.
    resp, body2, log2 = invoke(lam, name, {"do": "echo"})
    assert body2["env"]["AWS_LAMBDA_LOG_STREAM_NAME"] == env["AWS_LAMBDA_LOG_STREAM_NAME"]
    assert "Init Duration" not in report(log2) and not log2.startswith("INIT_START")


def test_client_context_reaches_the_runtime_as_one_header_line(lam, deploy_custom):
    name = deploy_custom()
    context = '{\n  "custom": {"name": "Zoë"},\r\n  "env": {"k": "v"}\n}'
    resp = lam.invoke(FunctionName=name, Payload=b'{"do": "echo"}', ClientContext=base64.b64encode(context.encode()).decode())
    body = json.loads(resp["Payload"].read())
    assert body["headers"]["lambda-runtime-client-context"] == '{"custom":{"name":"Zo\\u00eb"},"env":{"k":"v"}}'
    assert json.loads(body["headers"]["lambda-runtime-client-context"]) == json.loads(context)


def test_provided_al2_runs_and_provided_is_refused(lam, deploy_custom):
    name = deploy_custom(runtime="provided.al2")
    assert lam.get_function_configuration(FunctionName=name)["Runtime"] == "provided.al2"
    resp, body, log = invoke(lam, name, {"do": "echo", "k": 1})
    assert body["event"] == {"do": "echo", "k": 1}
    assert log.startswith("INIT_START Runtime Version: provided:al2\n")
    with pytest.raises(lam.exceptions.InvalidParameterValueException, match="provided is no longer supported"):
        deploy_custom(runtime="provided")


def _entrypoint_error(resp, body, log, detail: str) -> None:
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorType": "Runtime.InvalidEntrypoint", "errorMessage": f"RequestId:  Error: {detail}"}
    assert f"Error: {detail}\nRuntime.InvalidEntrypoint\n" in log


def test_missing_bootstrap_is_invalid_entrypoint(lam, deploy_custom):
    name = deploy_custom({"main.sh": "#!/bin/sh\n"}, modes={"main.sh": 0o755})
    resp, body, log = invoke(lam, name, {})
    _entrypoint_error(resp, body, log, "Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")


def test_bootstrap_that_is_not_executable_is_invalid_entrypoint(lam, deploy_custom):
    name = deploy_custom({"bootstrap": probe_bootstrap(), "probe_runtime.py": PROBE}, modes={"bootstrap": 0o644})
    resp, body, log = invoke(lam, name, {})
    _entrypoint_error(resp, body, log, "fork/exec /var/task/bootstrap: permission denied")


def test_bootstrap_in_no_executable_format_is_invalid_entrypoint(lam, deploy_custom):
    name = deploy_custom({"bootstrap": b"\x7fELF garbage that is no program"})
    resp, body, log = invoke(lam, name, {})
    _entrypoint_error(resp, body, log, "fork/exec /var/task/bootstrap: exec format error")


def test_runtime_that_exits_during_init_is_an_exit_error(lam, deploy_custom):
    name = deploy_custom(mode="exit:7")
    resp, body, log = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Error: Runtime exited with error: exit status 7")
    assert "probe runtime starting (exit:7)" in log


def test_runtime_that_exits_during_a_call_is_an_exit_error_and_is_replaced(lam, deploy_custom):
    name = deploy_custom()
    _, first, _ = invoke(lam, name, {"do": "echo"})
    resp, body, log = invoke(lam, name, {"do": "exit", "code": 3})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {resp['ResponseMetadata']['RequestId']} Error: Runtime exited with error: exit status 3",
    }
    assert "exiting now" in log and "Runtime.ExitError" in log
    resp, body, log = invoke(lam, name, {"do": "echo"})
    assert "FunctionError" not in resp and "Init Duration" in report(log)
    assert body["env"]["AWS_LAMBDA_LOG_STREAM_NAME"] != first["env"]["AWS_LAMBDA_LOG_STREAM_NAME"]


def test_init_error_reaches_the_caller_with_its_type(lam, deploy_custom):
    name = deploy_custom(mode="init_error")
    resp, body, log = invoke(lam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "cannot start", "errorType": "Probe.Init"}
    assert "posting init/error" in log


def test_error_post_reaches_the_caller(lam, deploy_custom):
    name = deploy_custom()
    resp, body, log = invoke(lam, name, {"do": "error", "type": "Function.ProbeFailed"})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {"errorMessage": "it failed", "errorType": "ProbeError"}
    resp, body, _ = invoke(lam, name, {"do": "echo"})  # the environment goes on
    assert "FunctionError" not in resp


def test_each_misuse_gets_the_emulators_answer(lam, deploy_custom):
    name = deploy_custom()
    resp, body, _ = invoke(lam, name, {"do": "misuse"})
    assert "FunctionError" not in resp and body == {"misused": True}
    _, noted, _ = invoke(lam, name, {"do": "report"})
    by_what = {n["what"]: n for n in noted}
    invalid_id = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}
    assert by_what["unknown id"] == {"what": "unknown id", "status": 400, "body": invalid_id}
    assert by_what["error for an unknown id"]["status"] == 400
    # The emulator hands the open call out again.
    assert by_what["next while open"] == {
        "what": "next while open",
        "status": 200,
        "id": resp["ResponseMetadata"]["RequestId"],
        "same": True,
    }
    assert by_what["init error after init"] == {
        "what": "init error after init",
        "status": 403,
        "body": {
            "errorMessage": "State transition from Running to InitError failed for runtime. Error: State transition is not allowed",
            "errorType": "InvalidStateTransition",
        },
    }
    assert by_what["response"]["status"] == 202 and by_what["response"]["body"] == {"status": "OK"}
    assert by_what["response again"] == {"what": "response again", "status": 400, "body": invalid_id}
    assert by_what["error after response"] == {"what": "error after response", "status": 400, "body": invalid_id}


def test_response_over_six_mb_is_413_to_the_runtime_and_too_large_to_the_caller(lam, deploy_custom):
    name = deploy_custom(MemorySize=512)
    resp, body, log = invoke(lam, name, {"do": "big", "n": 6 * 1024 * 1024 + 101})
    assert resp["FunctionError"] == "Unhandled"
    assert body == {
        "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }
    # The same environment goes on, and saw the 413.
    resp, noted, log = invoke(lam, name, {"do": "report"})
    assert "Init Duration" not in report(log)
    assert noted == [
        {
            "what": "big",
            "status": 413,
            "body": {"errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).", "errorType": "RequestEntityTooLarge"},
        }
    ]
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"do": "big", "n": 6 * 1024 * 1024 + 100}).encode())
    assert "FunctionError" not in resp and resp["Payload"].read() == b"x" * (6 * 1024 * 1024 + 100)  # the limit itself


def test_timeout_is_enforced_and_the_sandbox_replaced(lam, deploy_custom):
    name = deploy_custom(Timeout=1)
    resp, body, log = invoke(lam, name, {"do": "sleep", "s": 30})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert re.search(r"\S+ \S+ Task timed out after 1.00 seconds\n", log)
    assert report(log)["Duration"] == 1000.0
    resp, body, log = invoke(lam, name, {"do": "echo"})
    assert "FunctionError" not in resp and "Init Duration" in report(log)


def test_duration_runs_from_handing_out_the_event_to_the_answer(lam, deploy_custom):
    name = deploy_custom()
    _, _, log = invoke(lam, name, {"do": "sleep", "s": 0.3})
    assert report(log)["Duration"] >= 300
    # The runtime waits a second before it asks for the next event: the
    # call waits for it, unbilled.
    invoke(lam, name, {"do": "late", "s": 1.0})
    _, body, log = invoke(lam, name, {"do": "echo"})
    assert body["event"] == {"do": "echo"} and report(log)["Duration"] < 1000


def test_max_memory_used_comes_from_the_cgroup(lam, deploy_custom):
    name = deploy_custom(MemorySize=512)
    _, body, log = invoke(lam, name, {"do": "memory", "mb": 96})
    assert body == {"held_mb": 96}
    assert report(log)["Max Memory Used"] >= 96


def test_stdout_and_stderr_go_to_the_calls_log(lam, deploy_custom):
    name = deploy_custom()
    invoke(lam, name, {"do": "echo"})
    resp, body, log = invoke(lam, name, {"do": "print", "lines": ["first line", "second line"]})
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("START RequestId:"))
    end = next(i for i, line in enumerate(lines) if line.startswith("END RequestId:"))
    assert lines[start + 1 : end] == ["first line", "err: first line", "second line", "err: second line"]


def test_streamed_response_and_its_error_trailers(lam, deploy_custom):
    name = deploy_custom()
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"do": "stream"}).encode())
    assert "FunctionError" not in resp and resp["Payload"].read() == b"part-1 part-2 part-3"
    resp = lam.invoke(FunctionName=name, Payload=json.dumps({"do": "stream", "fail": True}).encode())
    assert resp["FunctionError"] == "Unhandled"
    assert json.loads(resp["Payload"].read()) == {"errorMessage": "stream broke", "errorType": "StreamError"}
    _, noted, _ = invoke(lam, name, {"do": "report"})
    assert noted == [{"what": "stream", "status": 202}, {"what": "stream", "status": 202}]
