"""What holds for every language: a Node.js, a Java and a C# function, each
deployed with boto3 and with the aws CLI, called synchronously, through a
function URL and asynchronously (to a destination), failing, timing out and
running out of memory as AWS reports those; metered and billed like any
other; and the hostile suite's core rows from inside each runtime (the file
system view, no capabilities, seccomp, no network, the memory limit, the
timeout).

One server for the module, started once the Java runtime's files are built
(tests/language_builds.py builds every sample once per run).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid

import botocore.auth
import botocore.awsrequest
import botocore.credentials
import language_builds
import pytest
import requests
from helpers import ServerProcess, allow_public_url, make_zip, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"

NODE = r"""
const fs = require('fs');
const os = require('os');
exports.echo = async (event, context) => ({ echo: event, language: 'node', requestId: context.awsRequestId });
exports.fails = async () => { throw new Error('node failure'); };
exports.sleeps = async (event) => { await new Promise((r) => setTimeout(r, event.ms)); return 'slept'; };
exports.hog = async () => { const hold = []; for (;;) { hold.push(Buffer.alloc(16 << 20, 1)); } };
exports.http = async (event) => ({ statusCode: 201, headers: { 'x-lang': 'node' }, body: 'node ' + event.rawPath });
exports.probe = async () => {
  const status = Object.fromEntries(fs.readFileSync('/proc/self/status', 'utf8').split('\n')
    .map((l) => l.split(/:\s*/, 2)).filter(([k]) => ['Uid', 'CapEff', 'Seccomp', 'NoNewPrivs'].includes(k)));
  let taskWritable = true;
  try { fs.writeFileSync('/var/task/written', 'x'); } catch (e) { taskWritable = false; }
  fs.writeFileSync('/tmp/probe', 'x');
  return { ...status, taskWritable, interfaces: Object.keys(os.networkInterfaces()),
           hostname: fs.readFileSync('/proc/sys/kernel/hostname', 'utf8').trim(),
           etcShadow: fs.existsSync('/etc/shadow'), tmpWritable: fs.existsSync('/tmp/probe') };
};
"""

# Per language: runtime, zip, and the handler of each kind of call.
LANGUAGES = {
    "node": (
        "nodejs20.x",
        {
            "echo": "index.echo",
            "fails": "index.fails",
            "sleeps": "index.sleeps",
            "hog": "index.hog",
            "http": "index.http",
            "probe": "index.probe",
        },
    ),
    "java": (
        "java17",
        {
            "echo": "example.Hello::handleRequest",
            "fails": "example.Plain::fails",
            "sleeps": "example.Plain::sleeps",
            "hog": "example.Plain::hog",
            "http": "example.Events$Http",
            "probe": "example.Plain::probe",
        },
    ),
    "dotnet": (
        "dotnet8",
        {
            "echo": "Sample::Sample.Functions::Dict",
            "fails": "Sample::Sample.Functions::Fails",
            "sleeps": "Sample::Sample.Functions::Sleeps",
            "hog": "Sample::Sample.Functions::Hog",
            "http": "Sample::Sample.Functions::Http",
            "probe": "Sample::Sample.Functions::Probe",
        },
    ),
}


@pytest.fixture(scope="module")
def codes() -> dict[str, bytes]:
    try:
        language_builds.java_runtime()
        return {"node": make_zip({"index.js": NODE}), "java": language_builds.java_sample()[0], "dotnet": language_builds.dotnet_sample()}
    except language_builds.ToolMissing as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="module")
def srv(tmp_path_factory, codes):
    server = ServerProcess(tmp_path_factory.mktemp("languages"), "--retry-delay-s", "0.2").start()
    yield server
    assert server.stop() == 0, "".join(server.output)


@pytest.fixture(scope="module")
def clam(srv):
    return srv.client()


@pytest.fixture(scope="module", params=list(LANGUAGES))
def fns(request, clam, codes):
    """One function per kind of call, for one language."""
    lang = request.param
    runtime, handlers = LANGUAGES[lang]
    names = {}
    for kind, handler in handlers.items():
        name = f"core-{lang}-{kind}"
        clam.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=ROLE,
            Handler=handler,
            Code={"ZipFile": codes[lang]},
            MemorySize=256 if kind == "hog" else 512,
            Timeout=2 if kind == "sleeps" else 30,
        )
        names[kind] = name
    for name in names.values():
        clam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    yield lang, names
    for name in names.values():
        clam.delete_function(FunctionName=name)


def _invoke(lam, name: str, payload: object):
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
    return resp, json.loads(resp["Payload"].read() or b"null")


def test_sync_invoke_is_metered_and_billed(srv, clam, fns):
    lang, names = fns
    resp, body = _invoke(clam, names["echo"], {"k": lang})
    assert "FunctionError" not in resp, body
    assert body.get("echo", body)["k"] == lang  # each sample's echo has its own shape
    text = requests.get(srv.url + "/metrics", timeout=10).text
    m = re.search(r'^lambdalet_invocations_total\{[^}]*function="' + re.escape(names["echo"]) + r'"[^}]*\} (\S+)$', text, re.M)
    assert m and float(m.group(1)) >= 1.0
    gb = re.search(r'^lambdalet_billed_gb_seconds_total\{[^}]*function="' + re.escape(names["echo"]) + r'"[^}]*\} (\S+)$', text, re.M)
    assert gb and float(gb.group(1)) > 0.0


def test_an_error_a_timeout_and_out_of_memory(clam, fns):
    lang, names = fns
    resp, body = _invoke(clam, names["fails"], {"name": "x"})
    assert resp["FunctionError"] == "Unhandled"
    assert body["errorMessage"] in ("node failure", "it went wrong in Java", "it went wrong in C#"), body
    resp, body = _invoke(clam, names["sleeps"], {"ms": 10_000})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in body["errorMessage"]
    resp, body = _invoke(clam, names["hog"], {"name": "x"})
    assert resp["FunctionError"] == "Unhandled" and body["errorType"] == "Runtime.OutOfMemory", body


def test_function_url(clam, fns):
    lang, names = fns
    url = clam.create_function_url_config(FunctionName=names["http"], AuthType="NONE")["FunctionUrl"]
    allow_public_url(clam, names["http"])
    resp = requests.get(url + "p/q", timeout=60)
    assert resp.status_code in (201, 202, 203), resp.text
    assert "/p/q" in resp.text


def _signed(srv, method: str, path: str) -> dict:
    key, secret = srv.credentials()
    req = botocore.awsrequest.AWSRequest(method=method, url=srv.url + path, data=b"", headers={"Content-Type": "application/json"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    r = requests.request(method, srv.url + path, headers=dict(req.headers), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_async_invoke_reaches_its_destination(srv, clam, fns):
    lang, names = fns
    queue = f"dest-{lang}-{uuid.uuid4().hex[:8]}"
    clam.put_function_event_invoke_config(
        FunctionName=names["echo"],
        MaximumRetryAttempts=0,
        DestinationConfig={"OnSuccess": {"Destination": f"arn:aws:sqs:us-east-1:000000000000:{queue}"}},
    )
    try:
        resp = clam.invoke(FunctionName=names["echo"], InvocationType="Event", Payload=json.dumps({"k": "async"}).encode())
        assert resp["StatusCode"] == 202
        messages = wait_for(lambda: _signed(srv, "GET", f"/_lambdalet/queues/{queue}/messages")["Messages"] or None, timeout=60)
        record = messages[0]["Body"]
        assert record["requestContext"]["condition"] == "Success" and record["requestPayload"] == {"k": "async"}
        assert record["responsePayload"].get("echo", record["responsePayload"])["k"] == "async"
    finally:
        clam.delete_function_event_invoke_config(FunctionName=names["echo"])


def test_core_isolation_rows_from_inside_the_runtime(clam, fns):
    lang, names = fns
    _resp, seen = _invoke(clam, names["probe"], {})
    assert seen["Uid"].split()[0] == "993", seen  # sbx_user1051, not root
    assert seen["CapEff"] == "0000000000000000" and seen["NoNewPrivs"] == "1"
    assert seen["Seccomp"] == "2"  # filtered
    assert seen["taskWritable"] is False and seen["tmpWritable"] is True
    assert seen["interfaces"] == ["lo"]  # no network by default
    assert seen["hostname"] == "lambdalet" and seen["etcShadow"] is False


def test_deployed_and_called_with_the_aws_cli(srv, codes, fns, tmp_path):
    """The same calls as the boto3 tests above, every one made with the aws
    CLI: sync and async invoke, a function URL, an error, a timeout, an OOM."""
    lang, _names = fns
    aws_cli = os.path.join(os.path.dirname(sys.executable), "aws")
    env = dict(
        os.environ,
        AWS_ENDPOINT_URL=srv.url,
        AWS_SHARED_CREDENTIALS_FILE=str(srv.data_dir / "credentials"),
        AWS_DEFAULT_REGION="us-east-1",
        AWS_REGION="us-east-1",
        AWS_PAGER="",
    )
    for key in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key, None)

    def aws(*args: str) -> str:
        proc = subprocess.run([aws_cli, "lambda", *args], capture_output=True, text=True, env=env, timeout=180)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    out = tmp_path / "out.json"

    def invoke(payload: str, *extra: str) -> tuple[dict, str]:
        meta = json.loads(aws("invoke", "--function-name", name, "--payload", payload, *extra, str(out)))
        return meta, out.read_text()

    def switch(kind: str, *settings: str) -> None:
        aws("update-function-configuration", "--function-name", name, "--handler", handlers[kind], *settings)
        aws("wait", "function-updated-v2", "--function-name", name)

    runtime, handlers = LANGUAGES[lang]
    package = tmp_path / "code.zip"
    package.write_bytes(codes[lang])
    name = f"cli-{lang}"
    aws(
        "create-function",
        "--function-name",
        name,
        "--runtime",
        runtime,
        "--handler",
        handlers["echo"],
        "--role",
        ROLE,
        "--memory-size",
        "512",
        "--zip-file",
        f"fileb://{package}",
    )
    try:
        aws("wait", "function-active-v2", "--function-name", name)
        meta, body = invoke('{"via": "cli"}')
        assert meta["StatusCode"] == 200 and "FunctionError" not in meta
        assert "cli" in body

        queue = f"cli-dest-{lang}-{uuid.uuid4().hex[:8]}"
        aws(
            "put-function-event-invoke-config",
            "--function-name",
            name,
            "--maximum-retry-attempts",
            "0",
            "--destination-config",
            json.dumps({"OnSuccess": {"Destination": f"arn:aws:sqs:us-east-1:000000000000:{queue}"}}),
        )
        meta, _ = invoke('{"k": "cli async"}', "--invocation-type", "Event")
        assert meta["StatusCode"] == 202
        messages = wait_for(lambda: _signed(srv, "GET", f"/_lambdalet/queues/{queue}/messages")["Messages"] or None, timeout=60)
        record = messages[0]["Body"]
        assert record["requestContext"]["condition"] == "Success" and record["requestPayload"] == {"k": "cli async"}

        switch("http")
        url = json.loads(aws("create-function-url-config", "--function-name", name, "--auth-type", "NONE"))["FunctionUrl"]
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
        resp = requests.get(url + "from/cli", timeout=60)
        assert resp.status_code in (201, 202, 203) and "/from/cli" in resp.text, resp.text

        switch("fails")
        meta, body = invoke('{"name": "x"}')
        assert meta["StatusCode"] == 200 and meta["FunctionError"] == "Unhandled"
        assert json.loads(body)["errorMessage"] in ("node failure", "it went wrong in Java", "it went wrong in C#"), body

        switch("sleeps", "--timeout", "2")
        meta, body = invoke('{"ms": 10000}')
        assert meta["FunctionError"] == "Unhandled" and json.loads(body)["errorType"] == "Sandbox.Timedout"
        assert "Task timed out after 2.00 seconds" in json.loads(body)["errorMessage"]

        switch("hog", "--memory-size", "256", "--timeout", "30")
        meta, body = invoke('{"name": "x"}')
        assert meta["FunctionError"] == "Unhandled" and json.loads(body)["errorType"] == "Runtime.OutOfMemory", body
    finally:
        aws("delete-function", "--function-name", name)


def test_doctor_lists_the_language_runtimes_and_why_not(srv):
    from lambdalet.sandbox import languages as host

    found, _ = host.discover()
    proc = subprocess.run(
        [sys.executable, "-m", "lambdalet.gateway.cli", "doctor"],
        capture_output=True,
        text=True,
        env={**os.environ, "LAMBDALET_DATA_DIR": str(srv.data_dir)},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    for runtime in host.LANGUAGE_RUNTIMES:
        line = next(line for line in proc.stdout.splitlines() if line.strip().startswith(f"runtime {runtime}:"))
        if runtime in found:
            t = found[runtime]
            assert f"{host.DISPLAY[t.language]} {t.version} at {t.path}" in line, line
        else:
            assert "CANNOT RUN here:" in line and ("install" in line or "apt-get" in line), line
