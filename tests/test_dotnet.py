"""C# functions (dotnet8) on Mono, on a real server: the sample in
tests/languages/dotnet compiled once per run by mcs against Lambdalet's
Amazon.Lambda.Core contract and deployed with boto3. Handlers
Assembly::Namespace.Class::Method of POCOs (through the serializer named by
[assembly: LambdaSerializer]), strings, numbers, dictionaries, Stream in and
out, async Task<T>, static and instance methods; ILambdaContext and
ILambdaLogger; AWS's .NET error shape and log format.
"""

from __future__ import annotations

import base64
import json
import re

import language_builds
import pytest
import requests
from helpers import allow_public_url

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t(\S*)\t(trce|dbug|info|warn|fail|crit)\t(.*)$")


@pytest.fixture(scope="module")
def sample():
    try:
        return language_builds.dotnet_sample()
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def cfn(lam, sample):
    name = "dotnet-sample"
    lam.create_function(
        FunctionName=name,
        Runtime="dotnet8",
        Role=ROLE,
        Handler="Sample::Sample.Functions::Greet",
        Code={"ZipFile": sample},
        MemorySize=256,
        Timeout=20,
        Environment={"Variables": {"MY_SETTING": "from the function"}},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield name
    lam.delete_function(FunctionName=name)


def _use(lam, name: str, handler: str, **config) -> None:
    lam.update_function_configuration(FunctionName=name, Handler=handler, **config)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _invoke(lam, name: str, payload: object):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), LogType="Tail")
    return resp, json.loads(resp["Payload"].read() or b"null"), base64.b64decode(resp["LogResult"]).decode()


def test_poco_handler_context_and_logs(lam, cfn):
    _use(lam, cfn, "Sample::Sample.Functions::Greet")
    resp, body, log = _invoke(lam, cfn, {"name": "Grace", "age": 85})
    assert "FunctionError" not in resp, body
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    arn = lam.get_function_configuration(FunctionName=cfn)["FunctionArn"]
    assert body["Message"] == "Hello, Grace (85)" and body["RequestId"] == rid
    assert (body["FunctionName"], body["Memory"], body["Arn"]) == (cfn, 256, arn)
    assert body["LogGroup"] == f"/aws/lambda/{cfn}" and body["LogStream"] and 0 < body["RemainingMs"] <= 20_000
    assert body["Setting"] == "from the function" and body["Cwd"] == "/var/task"
    records = [m.groups() for m in map(LINE.match, log.splitlines()) if m]
    assert (rid, "info", "greeting Grace") in records
    assert (rid, "warn", "a warning") in records and (rid, "info", "console line") in records


def test_strings_numbers_dicts_streams_and_async(lam, cfn):
    _use(lam, cfn, "Sample::Sample.Functions::UpperAsync")
    assert _invoke(lam, cfn, "quiet")[1] == "QUIET"
    _use(lam, cfn, "Sample::Sample.Functions::Twice")
    assert _invoke(lam, cfn, 21)[1] == 42
    _use(lam, cfn, "Sample::Sample.Functions::Dict")
    assert _invoke(lam, cfn, {"a": [1, 2]})[1] == {"a": [1, 2], "seen": True}
    _use(lam, cfn, "Sample::Sample.Functions::Raw")
    assert _invoke(lam, cfn, {"k": "v"})[1] == {"raw": {"k": "v"}}


def test_errors_in_the_dotnet_shape(lam, cfn):
    _use(lam, cfn, "Sample::Sample.Functions::Fails")
    resp, body, log = _invoke(lam, cfn, {"name": "x"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "InvalidOperationException" and body["errorMessage"] == "it went wrong in C#"
    assert any("Sample.Functions.Fails" in line for line in body["stackTrace"])
    assert body["cause"]["errorType"] == "ArgumentException" and body["cause"]["errorMessage"] == "the cause"
    assert re.search(r"\tfail\tSystem.InvalidOperationException: it went wrong in C#", log)
    _use(lam, cfn, "Sample::Sample.Functions::FailsAsync")
    _resp, body, _log = _invoke(lam, cfn, {"name": "x"})
    assert (body["errorType"], body["errorMessage"]) == ("KeyNotFoundException", "async failure")


@pytest.mark.parametrize(
    "handler, message",
    [
        ("Missing::Sample.Functions::Greet", "Could not find the specified handler assembly with the file name 'Missing"),
        ("Sample::Sample.Nope::Greet", "Unable to load type 'Sample.Nope' from assembly 'Sample'."),
        ("Sample::Sample.Functions::Nope", "Unable to find method 'Nope' in type 'Sample.Functions'"),
        ("Sample.Functions.Greet", "Invalid lambda function handler: 'Sample.Functions.Greet'."),
    ],
)
def test_handler_errors(lam, cfn, handler, message):
    _use(lam, cfn, handler)
    resp, body, _log = _invoke(lam, cfn, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "LambdaException" and body["errorMessage"].startswith(message), body


def test_function_url(lam, cfn):
    _use(lam, cfn, "Sample::Sample.Functions::Http")
    url = lam.create_function_url_config(FunctionName=cfn, AuthType="NONE")["FunctionUrl"]
    allow_public_url(lam, cfn)
    try:
        resp = requests.get(url + "from/csharp", timeout=60)
        assert resp.status_code == 203 and resp.headers["x-from"] == "csharp" and resp.text == "csharp saw /from/csharp"
    finally:
        lam.delete_function_url_config(FunctionName=cfn)


def test_json_log_format(lam, cfn):
    _use(lam, cfn, "Sample::Sample.Functions::Greet", LoggingConfig={"LogFormat": "JSON", "ApplicationLogLevel": "WARN"})
    try:
        resp, _body, log = _invoke(lam, cfn, {"name": "J", "age": 1})
        rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
        records = [json.loads(line) for line in log.splitlines() if line.startswith('{"timestamp"')]
        assert [(r["level"], r["message"], r["requestId"]) for r in records] == [("Warning", "a warning", rid)]
    finally:
        _use(lam, cfn, "Sample::Sample.Functions::Greet", LoggingConfig={"LogFormat": "Text"})
