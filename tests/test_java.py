"""Java functions (java17, and java21/java25 where the host has that JDK) on a
real server: the Maven project in tests/languages/java, built by `mvn
package` once per run, deployed with boto3 as a shaded jar and as a zip of
classes with lib/, and run by AWS's runtime interface client, unmodified.

RequestHandler of maps, strings, numbers, POJOs and aws-lambda-java-events
classes (APIGatewayV2HTTPEvent through a function URL, S3Event,
ScheduledEvent); handlers named Class::method without an interface;
RequestStreamHandler; Context and LambdaLogger; JAVA_TOOL_OPTIONS; the
RIC's error shapes.
"""

from __future__ import annotations

import base64
import json

import language_builds
import pytest
import requests
from helpers import ServerProcess, allow_public_url

from lambdalet.sandbox import languages

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
JAVA_RUNTIMES = [name for name in languages.JAVA_RUNTIMES if name in languages.discover()[0]]


@pytest.fixture(scope="module")
def java_server(tmp_path_factory):
    try:
        language_builds.java_runtime()
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))
    srv = ServerProcess(tmp_path_factory.mktemp("java")).start()
    yield srv
    assert srv.stop() == 0, "".join(srv.output)


@pytest.fixture(scope="module")
def jlam(java_server):
    return java_server.client()


@pytest.fixture(scope="module")
def sample():
    try:
        return language_builds.java_sample()
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))


def test_the_host_has_java17():
    assert "java17" in JAVA_RUNTIMES, "this project's machines have Java 17 (docs/architecture.md)"


@pytest.fixture(scope="module", params=JAVA_RUNTIMES)
def jfn(request, jlam, sample):
    """The shaded jar as one function per runtime; the tests change its handler."""
    runtime = request.param
    name = f"java-sample-{runtime}"
    jlam.create_function(
        FunctionName=name,
        Runtime=runtime,
        Role=ROLE,
        Handler="example.Hello::handleRequest",
        Code={"ZipFile": sample[0]},
        MemorySize=512,
        Timeout=30,
        Environment={"Variables": {"MY_SETTING": "from the function"}},
    )
    jlam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield runtime, name
    jlam.delete_function(FunctionName=name)


def _use(lam, name: str, handler: str, **config) -> None:
    lam.update_function_configuration(FunctionName=name, Handler=handler, **config)
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})


def _invoke(lam, name: str, payload: object):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode(), LogType="Tail")
    return resp, json.loads(resp["Payload"].read()), base64.b64decode(resp["LogResult"]).decode()


def test_request_handler_context_and_logs(jlam, jfn):
    runtime, name = jfn
    _use(jlam, name, "example.Hello::handleRequest")
    resp, body, log = _invoke(jlam, name, {"hello": ["java", 1]})
    assert "FunctionError" not in resp, body
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    arn = jlam.get_function_configuration(FunctionName=name)["FunctionArn"]
    assert body["echo"] == {"hello": ["java", 1]} and body["requestId"] == rid
    assert (body["functionName"], body["version"], body["memory"], body["arn"]) == (name, "$LATEST", 512, arn)
    assert body["logGroup"] == f"/aws/lambda/{name}" and body["logStream"] and 0 < body["remaining"] <= 30_000
    assert body["env"] == f"AWS_Lambda_{runtime}" and body["mine"] == "from the function"
    assert body["javaVersion"] == int(runtime[4:]) and body["userDir"] == "/var/task"
    assert "toolOptions" not in body  # the RIC leaves nulls out
    for line in (f"logger line for {rid}", "stdout line", "stderr line"):
        assert line in log, log
    assert f"REPORT RequestId: {rid}" in log


def test_handlers_of_strings_numbers_and_pojos(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Plain::upper")
    assert _invoke(jlam, name, "shout")[1] == "SHOUT"
    _use(jlam, name, "example.Plain::twice")
    assert _invoke(jlam, name, 21)[1] == 42
    _use(jlam, name, "example.Plain::greet")
    resp, body, _log = _invoke(jlam, name, {"name": "Ada", "age": 36})
    assert body == {"message": "Hello, Ada (36)", "requestId": resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]}


def test_request_stream_handler(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Streams")
    raw = json.dumps({"k": "v"}).encode()
    assert _invoke(jlam, name, {"k": "v"})[1] == {"length": len(raw), "raw": {"k": "v"}}


def test_event_classes(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Events$S3")
    s3 = {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": "photos", "arn": "arn:aws:s3:::photos"},
                    "object": {"key": "cat.jpg", "size": 3},
                },
            }
        ]
    }
    assert _invoke(jlam, name, s3)[1] == "ObjectCreated:Put photos/cat.jpg"
    _use(jlam, name, "example.Events$Scheduled")
    scheduled = {
        "version": "0",
        "id": "1",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-01-01T00:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/r"],
        "detail": {},
    }
    assert _invoke(jlam, name, scheduled)[1] == "Scheduled Event from aws.events [arn:aws:events:us-east-1:123456789012:rule/r]"


def test_function_url_with_api_gateway_v2_classes(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Events$Http")
    url = jlam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    allow_public_url(jlam, name)
    try:
        resp = requests.post(url + "orders/7?sort=asc", data=b"payload", timeout=60)
        assert resp.status_code == 202 and resp.headers["x-from"] == "java"
        assert resp.text == "POST /orders/7 q=sort=asc body=payload"
    finally:
        jlam.delete_function_url_config(FunctionName=name)


def test_errors_in_the_rics_shape(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Plain::fails")
    resp, body, log = _invoke(jlam, name, {})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorType"] == "java.lang.IllegalStateException" and body["errorMessage"] == "it went wrong in Java"
    assert any("example.Plain.fails" in frame for frame in body["stackTrace"])
    # The RIC logs the error after it has posted it: the call's log here
    # ends with the answer, so the line lands in the same instance's next
    # call (on AWS, before this call's END).
    _resp, _body, later = _invoke(jlam, name, {})
    assert "it went wrong in Java" in log + later
    _use(jlam, name, "example.Nope::handleRequest")
    resp, body, _log = _invoke(jlam, name, {})
    assert resp["FunctionError"] == "Unhandled" and "ClassNotFoundException" in body["errorType"], body
    assert "example.Nope" in body["errorMessage"]


def test_java_tool_options_are_honoured(jlam, jfn):
    _runtime, name = jfn
    _use(jlam, name, "example.Hello::handleRequest", Environment={"Variables": {"JAVA_TOOL_OPTIONS": "-Dlambdalet.sample=picked-up"}})
    try:
        _resp, body, log = _invoke(jlam, name, {})
        assert body["toolOptions"] == "picked-up"
        assert "Picked up JAVA_TOOL_OPTIONS: -Dlambdalet.sample=picked-up" in log
    finally:
        _use(jlam, name, "example.Hello::handleRequest", Environment={"Variables": {"MY_SETTING": "from the function"}})


def test_a_zip_with_lib_and_classes(jlam, sample):
    name = "java-sample-lib-zip"
    jlam.create_function(
        FunctionName=name,
        Runtime="java17",
        Role=ROLE,
        Handler="example.Plain::greet",
        Code={"ZipFile": sample[1]},
        MemorySize=512,
        Timeout=30,
    )
    try:
        jlam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        assert _invoke(jlam, name, {"name": "Lib", "age": 1})[1]["message"] == "Hello, Lib (1)"
    finally:
        jlam.delete_function(FunctionName=name)
