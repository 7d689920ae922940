"""Function URLs: the API through boto3, the data plane through plain HTTP."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from helpers import allow_public_url

from lambdalet.gateway.api import url_events

ECHO = """
import base64, json
def handler(event, context):
    if event.get('rawPath') == '/plain':
        return {'just': 'data'}
    if event.get('rawPath') == '/string':
        return 'hello there'
    if event.get('rawPath') == '/boom':
        raise RuntimeError('boom')
    if event.get('rawPath') == '/binary':
        return {'statusCode': 201, 'headers': {'content-type': 'image/png', 'x-custom': 'yes'},
                'cookies': ['a=1; Path=/', 'b=2'], 'body': base64.b64encode(b'\\x89PNG').decode(), 'isBase64Encoded': True}
    return {'statusCode': 200, 'headers': {'content-type': 'application/json'}, 'body': json.dumps(event)}
"""


@pytest.fixture
def url_fn(lam, deploy):
    name = deploy({"app.py": ECHO})
    conf = lam.create_function_url_config(
        FunctionName=name,
        AuthType="NONE",
        Cors={
            "AllowOrigins": ["https://example.com"],
            "AllowMethods": ["GET", "POST"],
            "AllowHeaders": ["x-foo"],
            "MaxAge": 60,
            "ExposeHeaders": ["x-custom"],
        },
    )
    allow_public_url(lam, name)
    return name, conf["FunctionUrl"]


def test_url_config_lifecycle(lam, deploy):
    name = deploy({"app.py": ECHO})
    created = lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AuthType"] == "NONE" and created["FunctionArn"].endswith(f":function:{name}")
    assert created["FunctionUrl"].startswith("http://127.0.0.1:") and created["FunctionUrl"].endswith("/")
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, AuthType="NONE")
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    got = lam.get_function_url_config(FunctionName=name)
    assert got["FunctionUrl"] == created["FunctionUrl"] and "LastModifiedTime" in got
    updated = lam.update_function_url_config(FunctionName=name, AuthType="AWS_IAM", Cors={"AllowOrigins": ["*"]})
    assert updated["AuthType"] == "AWS_IAM" and updated["Cors"]["AllowOrigins"] == ["*"]
    assert [c["FunctionUrl"] for c in lam.list_function_url_configs(FunctionName=name)["FunctionUrlConfigs"]] == [created["FunctionUrl"]]
    lam.delete_function_url_config(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.get_function_url_config(FunctionName=name)
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert requests.get(created["FunctionUrl"], timeout=10).status_code == 404
    with pytest.raises(ClientError) as exc:
        lam.create_function_url_config(FunctionName=name, AuthType="MAGIC")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_request_maps_to_payload_v2_event(url_fn):
    _, url = url_fn
    r = requests.post(
        url + "some/path?x=1&x=2&y=",
        data=b'{"k": "v"}',
        headers={"Content-Type": "application/json", "Cookie": "c1=a; c2=b", "X-Multi": "one"},
        timeout=10,
    )
    assert r.status_code == 200
    event = r.json()
    assert event["version"] == "2.0" and event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "x=1&x=2&y="
    assert event["queryStringParameters"] == {"x": "1,2", "y": ""}
    assert event["cookies"] == ["c1=a", "c2=b"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["content-type"] == "application/json"
    assert event["headers"]["x-multi"] == "one"
    assert event["body"] == '{"k": "v"}' and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["http"]["method"] == "POST" and ctx["http"]["path"] == "/some/path"
    assert ctx["http"]["sourceIp"] == "127.0.0.1"
    assert ctx["requestId"] == r.headers["x-amzn-RequestId"]
    assert ctx["domainPrefix"] == ctx["apiId"] and len(ctx["apiId"]) == 32
    assert isinstance(ctx["timeEpoch"], int)


def test_binary_bodies_are_base64(url_fn):
    _, url = url_fn
    r = requests.put(url + "bin", data=b"\x00\xffraw", headers={"Content-Type": "application/octet-stream"}, timeout=10)
    event = r.json()
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xffraw"


def test_responses_map_back(url_fn):
    _, url = url_fn
    r = requests.get(url + "binary", timeout=10)
    assert r.status_code == 201
    assert r.content == b"\x89PNG"
    assert r.headers["content-type"] == "image/png" and r.headers["x-custom"] == "yes"
    assert r.raw.headers.getlist("Set-Cookie") == ["a=1; Path=/", "b=2"]
    r = requests.get(url + "plain", timeout=10)
    assert r.status_code == 200 and r.json() == {"just": "data"}
    assert r.headers["content-type"] == "application/json"
    r = requests.get(url + "string", timeout=10)
    assert r.status_code == 200 and r.text == "hello there"
    r = requests.get(url + "boom", timeout=10)
    assert r.status_code == 502 and r.text == "Internal Server Error"


def test_keep_alive_serves_many_requests_on_one_connection(url_fn):
    _, url = url_fn
    with requests.Session() as s:
        for _ in range(20):
            assert s.get(url + "plain", timeout=10).json() == {"just": "data"}


def test_cors_preflight_and_response_headers(url_fn):
    _, url = url_fn
    pre = requests.options(url, headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert pre.status_code == 200
    assert pre.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    assert pre.headers["Access-Control-Max-Age"] == "60"
    other = requests.options(url, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}, timeout=10)
    assert "Access-Control-Allow-Origin" not in other.headers
    r = requests.get(url + "plain", headers={"Origin": "https://example.com"}, timeout=10)
    assert r.headers["Access-Control-Allow-Origin"] == "https://example.com"
    assert r.headers["Access-Control-Expose-Headers"] == "x-custom"


def test_aws_iam_auth(server, lam, deploy):
    name = deploy({"app.py": ECHO})
    url = lam.create_function_url_config(FunctionName=name, AuthType="AWS_IAM")["FunctionUrl"]
    assert requests.get(url + "plain", timeout=10).status_code == 403
    key, secret = server.credentials()
    req = AWSRequest(method="GET", url=url + "plain")
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    r = requests.get(url + "plain", headers=dict(req.prepare().headers), timeout=10)
    assert r.status_code == 200 and r.json() == {"just": "data"}
    req = AWSRequest(method="POST", url=url + "x", data=b"{}")
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    r = requests.post(url + "x", data=b'{"tampered": 1}', headers=dict(req.prepare().headers), timeout=10)
    assert r.status_code == 403


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_works_directly(url_fn):
    _, url = url_fn
    out = subprocess.run(["curl", "-sS", "-d", "hi", url + "plain"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"just": "data"}


def test_unknown_url_id(server):
    assert requests.get(server.url + "/lambda-url/" + "a" * 32 + "/", timeout=10).status_code == 404


# -- the sans-IO mapping, without a server -------------------------------------


def test_event_mapping_joins_repeated_headers_and_query():
    raw = url_events.request_event(
        method="GET",
        raw_path="/p",
        raw_query="a=1&a=2",
        headers=[("x-h", "1"), ("x-h", "2"), ("cookie", "k=v")],
        body=b"",
        source_ip="10.0.0.1",
        url_id="u" * 32,
        region="us-east-1",
        account="000000000000",
        request_id="r",
    )
    event = json.loads(raw)
    assert event["headers"]["x-h"] == "1,2"
    assert event["queryStringParameters"] == {"a": "1,2"}
    assert event["cookies"] == ["k=v"]
    assert "body" not in event and event["isBase64Encoded"] is False


@pytest.mark.parametrize(
    "payload,expected",
    [
        (b'{"statusCode": 404, "body": "nope"}', (404, b"nope")),
        (b'{"statusCode": 200, "body": {"nested": true}}', (200, b'{"nested":true}')),
        (b"[1, 2]", (200, b"[1, 2]")),
        (b'"text"', (200, b"text")),
        (b"null", (200, b"null")),
    ],
)
def test_response_mapping(payload, expected):
    status, _headers, body = url_events.response_from_result(payload)
    assert (status, body) == expected


@pytest.mark.parametrize(
    "payload",
    [
        b'{"statusCode": "200"}',
        b'{"statusCode": 99}',
        b'{"statusCode": 101}',
        b'{"statusCode": 200, "headers": {"x": "a\\r\\nb"}}',
        b'{"statusCode": 200, "headers": {"a\\r\\nb": "x"}}',
        b'{"statusCode": 200, "body": "%%", "isBase64Encoded": true}',
    ],
)
def test_bad_responses_are_refused(payload):
    """Each becomes a 502 at the URL; none may reach the HTTP layer."""
    with pytest.raises(url_events.BadResponse):
        url_events.response_from_result(payload)


def test_functions_cannot_set_framing_headers():
    status, headers, body = url_events.response_from_result(
        b'{"statusCode": 200, "headers": {"Content-Length": "0", "Transfer-Encoding": "chunked", "Connection": "close", "X-Ok": "1"}, "body": "abc"}'
    )
    assert (status, body) == (200, b"abc")
    assert [k for k, _ in headers if k.lower() != "content-type"] == ["X-Ok"]


def test_a_bad_header_from_the_function_is_a_502_and_the_server_lives_on(server, lam, deploy):
    name = deploy({"app.py": "def handler(e, c):\n    return {'statusCode': 200, 'headers': {'a\\r\\nb': 'x'}, 'body': 'no'}\n"})
    url = lam.create_function_url_config(FunctionName=name, AuthType="NONE")["FunctionUrl"]
    allow_public_url(lam, name)
    r = requests.get(url, timeout=10)
    assert r.status_code == 502
    assert requests.get(server.url + "/health", timeout=5).status_code == 200
