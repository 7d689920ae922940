"""Response streaming on a real server: awslambda.streamifyResponse
handlers (Node.js) and a custom runtime's streamed POST, read through
InvokeWithResponseStream with boto3 (its event stream parsed by botocore,
unmodified) and through function URLs whose InvokeMode is
RESPONSE_STREAM (chunked, with the status and headers of
awslambda.HttpResponseStream's prelude).

That the first bytes leave before the handler ends is shown causally, not
timed: a handler writes, then never ends on its own; the client reads
those bytes while /metrics still counts the call as running.
"""

from __future__ import annotations

import base64
import json
import re
import sys

import pytest
import requests
from helpers import allow_public_url, make_zip

from lambdalet.sandbox.runtime_root import python_executable

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
PYTHON = f"python{sys.version_info[0]}.{sys.version_info[1]}"

NODE = r"""
exports.chunks = awslambda.streamifyResponse(async (event, responseStream, context) => {
  responseStream.setContentType('text/plain');
  for (const part of event.parts) {
    responseStream.write(part);
    await new Promise((r) => setTimeout(r, 5));
  }
  console.log('streamed', event.parts.length, 'parts for', context.awsRequestId);
  responseStream.end();
});
exports.hangs = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('first bytes');
  await new Promise(() => {});
});
exports.fails = awslambda.streamifyResponse(async (event, responseStream) => {
  responseStream.write('partial');
  await new Promise((r) => setTimeout(r, 5));
  throw new RangeError('went wrong mid-stream');
});
exports.http = awslambda.streamifyResponse(async (event, responseStream) => {
  const stream = awslambda.HttpResponseStream.from(responseStream, {
    statusCode: 201, headers: {'x-streamed': 'yes', 'content-type': 'text/html'}, cookies: ['a=1'],
  });
  stream.write('<p>' + event.rawPath + '</p>');
  await new Promise((r) => setTimeout(r, 5));
  stream.end('<p>done</p>');
});
exports.buffered = async (event) => ({statusCode: 200, body: 'not streamed'});
"""

# A provided.al2023 bootstrap that answers in the Runtime API's streaming
# mode itself: a chunked POST, and an error in its trailers when asked.
CUSTOM = r"""#!PYTHON -S
import http.client, json, os, base64
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
host, port = api.split(":")
conn = http.client.HTTPConnection(host, int(port))
while True:
    conn.request("GET", "/2018-06-01/runtime/invocation/next")
    resp = conn.getresponse()
    event = json.loads(resp.read())
    rid = resp.getheader("Lambda-Runtime-Aws-Request-Id")
    conn.putrequest("POST", f"/2018-06-01/runtime/invocation/{rid}/response")
    conn.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Trailer", "Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body")
    conn.putheader("Content-Type", "application/x-custom")
    conn.endheaders()
    for part in event.get("parts") or [event.get("rawPath", "?")]:
        data = part.encode()
        conn.send(b"%x\r\n%s\r\n" % (len(data), data))
    if event.get("fail"):
        body = base64.b64encode(json.dumps({"errorType": "Custom.Failure", "errorMessage": "trailer error"}).encode())
        conn.send(b"0\r\nLambda-Runtime-Function-Error-Type: Function.Custom\r\nLambda-Runtime-Function-Error-Body: " + body + b"\r\n\r\n")
    else:
        conn.send(b"0\r\n\r\n")
    conn.getresponse().read()
"""


def _create(lam, name: str, runtime: str, handler: str, files: dict, modes: dict | None = None, **kw) -> str:
    lam.create_function(FunctionName=name, Runtime=runtime, Role=ROLE, Handler=handler, Code={"ZipFile": make_zip(files, modes)}, **kw)
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return name


@pytest.fixture(scope="module")
def streamer(lam):
    names = {}
    for handler in ("chunks", "hangs", "fails", "http", "buffered"):
        names[handler] = _create(
            lam, f"stream-node-{handler}", "nodejs20.x", f"index.{handler}", {"index.js": NODE}, Timeout=5 if handler == "hangs" else 30
        )
    names["custom"] = _create(
        lam, "stream-custom", "provided.al2023", "x", {"bootstrap": CUSTOM.replace("PYTHON", python_executable())}, {"bootstrap": 0o755}
    )
    names["python"] = _create(
        lam, "stream-python", PYTHON, "app.handler", {"app.py": "def handler(event, context):\n    return {'whole': event}\n"}
    )
    yield names
    for name in names.values():
        lam.delete_function(FunctionName=name)


def _stream(lam, name: str, payload: object, **kw):
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=json.dumps(payload).encode(), **kw)
    chunks, complete = [], None
    for event in resp["EventStream"]:
        if "PayloadChunk" in event:
            assert complete is None, "a chunk after InvokeComplete"
            chunks.append(event["PayloadChunk"]["Payload"])
        else:
            complete = event["InvokeComplete"]
    assert complete is not None
    return resp, chunks, complete


def test_streamed_chunks_through_boto3(lam, streamer):
    parts = ["alpha ", "beta ", "gamma " * 1000]
    resp, chunks, complete = _stream(lam, streamer["chunks"], {"parts": parts}, LogType="Tail")
    assert resp["StatusCode"] == 200 and resp["ExecutedVersion"] == "$LATEST"
    assert resp["ResponseStreamContentType"] == "text/plain"
    assert b"".join(chunks).decode() == "".join(parts) and len(chunks) >= 2
    assert "ErrorCode" not in complete
    log = base64.b64decode(complete["LogResult"]).decode()
    rid = resp["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"]
    assert f"streamed 3 parts for {rid}" in log and f"REPORT RequestId: {rid}" in log


def test_an_error_mid_stream_ends_in_invoke_complete(lam, streamer):
    _resp, chunks, complete = _stream(lam, streamer["fails"], {})
    assert b"".join(chunks) == b"partial"
    assert complete["ErrorCode"] == "Unhandled"
    details = json.loads(complete["ErrorDetails"])
    assert details["errorType"] == "RangeError" and details["errorMessage"] == "went wrong mid-stream"


def test_a_function_that_does_not_stream_answers_in_one_chunk(lam, streamer):
    _resp, chunks, complete = _stream(lam, streamer["python"], {"n": 1})
    assert chunks == [b'{"whole": {"n": 1}}'] and "ErrorCode" not in complete
    _resp, chunks, complete = _stream(lam, streamer["buffered"], {})
    assert json.loads(b"".join(chunks)) == {"statusCode": 200, "body": "not streamed"}


def test_a_custom_runtime_streams_through_the_runtime_api(lam, streamer):
    resp, chunks, complete = _stream(lam, streamer["custom"], {"parts": ["one", "two", "three"]})
    assert resp["ResponseStreamContentType"] == "application/x-custom"
    assert b"".join(chunks) == b"onetwothree" and "ErrorCode" not in complete
    _resp, chunks, complete = _stream(lam, streamer["custom"], {"parts": ["half"], "fail": True})
    assert b"".join(chunks) == b"half" and complete["ErrorCode"] == "Unhandled"
    assert json.loads(complete["ErrorDetails"]) == {"errorType": "Custom.Failure", "errorMessage": "trailer error"}


def test_invocation_type_is_checked(lam, streamer):
    # Event breaks the model's enum for streamed calls: ValidationException, as on AWS.
    with pytest.raises(lam.exceptions.ClientError, match=r"ValidationException.*\[RequestResponse, DryRun\]"):
        lam.invoke_with_response_stream(FunctionName=streamer["chunks"], InvocationType="Event", Payload=b"{}")
    resp = lam.invoke_with_response_stream(FunctionName=streamer["chunks"], InvocationType="DryRun", Payload=b"{}")
    assert resp["StatusCode"] == 204
    assert list(resp["EventStream"]) == []  # read to its end: the connection goes back to the pool


def _running(server, name: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    m = re.search(r'^lambdalet_concurrent_executions\{[^}]*function="' + re.escape(name) + r'"[^}]*\} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_first_bytes_arrive_while_the_handler_still_runs(server, lam, streamer):
    name = streamer["hangs"]
    resp = lam.invoke_with_response_stream(FunctionName=name, Payload=b"{}")
    events = iter(resp["EventStream"])
    first = next(events)
    assert first["PayloadChunk"]["Payload"] == b"first bytes"
    # The handler never ends on its own: the call is running as we read.
    assert _running(server, name) == 1.0
    rest = list(events)
    assert rest[-1]["InvokeComplete"]["ErrorCode"] == "Unhandled"
    assert "Task timed out after 5.00 seconds" in rest[-1]["InvokeComplete"]["ErrorDetails"]


def _url(lam, name: str) -> str:
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE", InvokeMode="RESPONSE_STREAM")["FunctionUrl"]
    allow_public_url(lam, name)
    return url


def test_function_url_streams_chunked_with_the_prelude(lam, streamer):
    url = _url(lam, streamer["http"])
    with requests.get(url + "some/path", stream=True, timeout=30) as resp:
        assert resp.status_code == 201 and resp.headers["x-streamed"] == "yes"
        assert resp.headers["Content-Type"] == "text/html" and resp.headers["Set-Cookie"] == "a=1"
        assert resp.headers["Transfer-Encoding"] == "chunked" and "Content-Length" not in resp.headers
        assert resp.content == b"<p>/some/path</p><p>done</p>"


def test_function_url_streams_first_bytes_before_the_end(server, lam, streamer):
    name = streamer["hangs"]
    url = _url(lam, name)
    with requests.get(url, stream=True, timeout=30) as resp:
        assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/octet-stream"
        raw = resp.raw
        assert raw.read(len(b"first bytes")) == b"first bytes"
        assert _running(server, name) == 1.0
        # At its Timeout the response is cut short: no final chunk.
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = resp.content


def test_function_url_stream_of_a_custom_runtime_and_a_failure(lam, streamer):
    url = _url(lam, streamer["custom"])
    resp = requests.post(url + "from/the/url", json={}, timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/x-custom"
    assert resp.content == b"/from/the/url"
    url = _url(lam, streamer["fails"])
    with requests.get(url, stream=True, timeout=30) as resp:
        assert resp.status_code == 200
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            _ = resp.content
