"""Invoke through boto3: Python functions behave as they do on AWS."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError

CONTEXT_FN = """
import os, logging, sys
def handler(event, context):
    print("printed line")
    logging.getLogger().warning("logged line")
    return {
        "event": event,
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "client_context": context.client_context.custom if context.client_context else None,
        "python": sys.version.split()[0],
        "env": {k: os.environ.get(k) for k in (
            "AWS_LAMBDA_FUNCTION_NAME", "_HANDLER", "LAMBDA_TASK_ROOT", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_EXECUTION_ENV",
            "AWS_LAMBDA_INITIALIZATION_TYPE", "MY_VAR")},
        "cwd": os.getcwd(),
    }
"""


def invoke_json(lam, name, payload=None, **kwargs):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload if payload is not None else {}).encode(), **kwargs)
    return resp, json.loads(resp["Payload"].read())


def test_context_environment_and_logs(lam, deploy):
    name = deploy({"app.py": CONTEXT_FN}, MemorySize=192, Timeout=5, Environment={"Variables": {"MY_VAR": "v"}})
    ctx = base64.b64encode(json.dumps({"custom": {"k": "v"}}).encode()).decode()
    resp, out = invoke_json(lam, name, {"x": 1}, LogType="Tail", ClientContext=ctx)
    assert resp["StatusCode"] == 200
    assert "FunctionError" not in resp
    assert resp["ExecutedVersion"] == "$LATEST"
    assert out["event"] == {"x": 1}
    request_id = resp["ResponseMetadata"]["RequestId"]
    assert out["aws_request_id"] == request_id
    assert out["function_name"] == name
    assert out["function_version"] == "$LATEST"
    assert out["invoked_function_arn"].endswith(f":function:{name}")
    assert out["memory_limit_in_mb"] == "192"
    assert out["log_group_name"] == f"/aws/lambda/{name}"
    assert "[$LATEST]" in out["log_stream_name"]
    assert 0 < out["remaining"] <= 5000
    assert out["client_context"] == {"k": "v"}
    env = out["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == out["cwd"]
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "192"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == out["log_stream_name"]
    assert env["AWS_EXECUTION_ENV"].startswith("AWS_Lambda_python3")
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"
    assert env["MY_VAR"] == "v"

    log = base64.b64decode(resp["LogResult"]).decode()
    lines = log.splitlines()
    # A cold start: the init names the interpreter that runs, as AWS's INIT_START does.
    assert lines.pop(0) == f"INIT_START Runtime Version: python:{out['python']}"
    assert lines[0] == f"START RequestId: {request_id} Version: $LATEST"
    assert "printed line" in lines
    assert any(l.startswith("[WARNING]\t") and l.endswith(f"\t{request_id}\tlogged line") for l in lines)
    assert f"END RequestId: {request_id}" in lines
    report = lines[-1]
    assert report.startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    assert "\tMemory Size: 192 MB\t" in report and "\tInit Duration: " in report

    # A warm call: no Init Duration.
    resp2, _ = invoke_json(lam, name, LogType="Tail")
    assert "Init Duration" not in base64.b64decode(resp2["LogResult"]).decode()


def test_log_tail_is_the_last_4kb(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    print('x' * 10000)\n    return 1\n"})
    resp = lam.invoke(FunctionName=name, LogType="Tail")
    log = base64.b64decode(resp["LogResult"])
    assert len(log) == 4096
    assert log.decode().splitlines()[-1].startswith("REPORT RequestId: ")


def test_unhandled_exception_shape(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    raise KeyError('missing thing')\n"})
    resp, out = invoke_json(lam, name)
    assert resp["StatusCode"] == 200
    assert resp["FunctionError"] == "Unhandled"
    assert set(out) == {"errorMessage", "errorType", "requestId", "stackTrace"}
    assert out["errorType"] == "KeyError"
    assert out["errorMessage"] == "'missing thing'"
    assert out["requestId"] == resp["ResponseMetadata"]["RequestId"]
    assert any("app.py" in frame and "in handler" in frame for frame in out["stackTrace"])
    assert not any("lambdalet" in frame for frame in out["stackTrace"])


@pytest.mark.parametrize(
    "files,handler,error_type,message",
    [
        ({"app.py": "x = 1\n"}, "nope.handler", "Runtime.ImportModuleError", "Unable to import module 'nope': No module named 'nope'"),
        ({"app.py": "x = 1\n"}, "app.handler", "Runtime.HandlerNotFound", "Handler 'handler' missing on module 'app'"),
        ({"app.py": "def handler(:\n"}, "app.handler", "Runtime.UserCodeSyntaxError", "Syntax error in module 'app'"),
        (
            {"app.py": "import not_installed_anywhere\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_anywhere'",
        ),
    ],
)
def test_init_errors(lam, deploy, files, handler, error_type, message):
    name = deploy(files, handler=handler)
    for _ in range(2):  # the failed instance is discarded and init is retried
        resp, out = invoke_json(lam, name)
        assert resp["FunctionError"] == "Unhandled"
        assert out["errorType"] == error_type
        assert out["errorMessage"].startswith(message)


def test_timeout_returns_lambdas_error_and_replaces_the_instance(lam, deploy):
    name = deploy(
        {
            "app.py": "import time\ncalls = 0\ndef handler(e, c):\n    global calls\n    calls += 1\n    print('before sleep')\n    if e.get('sleep'):\n        time.sleep(30)\n    return calls\n"
        },
        Timeout=1,
    )
    _, first = invoke_json(lam, name)
    _, second = invoke_json(lam, name)
    assert (first, second) == (1, 2)  # globals persist in a warm instance
    resp, out = invoke_json(lam, name, {"sleep": True}, LogType="Tail")
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Sandbox.Timedout"
    assert out["errorMessage"].endswith("Task timed out after 1.00 seconds")
    log = base64.b64decode(resp["LogResult"]).decode()
    assert "before sleep" in log and "Task timed out after 1.00 seconds" in log
    _, fresh = invoke_json(lam, name)
    assert fresh == 1  # a new instance


def test_exit_in_handler_is_a_runtime_exit_error(lam, deploy):
    name = deploy({"app.py": "import os\ndef handler(e, c):\n    os._exit(3)\n"})
    resp, out = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in out["errorMessage"]


def test_unserialisable_result_is_a_marshal_error(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return {1, 2}\n"})
    resp, out = invoke_json(lam, name)
    assert resp["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.MarshalError"


def test_user_modules_named_like_ours_still_work(lam, deploy):
    name = deploy(
        {
            "runtime.py": "WHO = 'user runtime'\n",
            "gateway.py": "WHO = 'user gateway'\n",
            "sandbox.py": "WHO = 'user sandbox'\n",
            "protocol.py": "WHO = 'user protocol'\n",
            "app.py": "import runtime, gateway, sandbox, protocol\ndef handler(e, c):\n    return [runtime.WHO, gateway.WHO, sandbox.WHO, protocol.WHO]\n",
        }
    )
    _, out = invoke_json(lam, name)
    assert out == ["user runtime", "user gateway", "user sandbox", "user protocol"]


def test_handler_in_a_subpackage(lam, deploy):
    name = deploy({"pkg/__init__.py": "", "pkg/mod.py": "def go(e, c):\n    return 'deep'\n"}, handler="pkg/mod.go")
    _, out = invoke_json(lam, name)
    assert out == "deep"


def test_dry_run_and_event(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return 1\n"})
    assert lam.invoke(FunctionName=name, InvocationType="DryRun")["StatusCode"] == 204
    assert lam.invoke(FunctionName=name, InvocationType="Event", Payload=b"{}")["StatusCode"] == 202


def test_empty_payload_is_an_empty_object(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return e\n"})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == {}


def test_invoke_unknown_function(lam):
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="does-not-exist")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_malformed_json_payload(lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return e\n"})
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b'{"unterminated": ')
    assert exc.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
