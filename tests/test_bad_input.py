"""Each bad input gets a clear error of Lambda's shape, and nothing breaks."""

from __future__ import annotations

import base64
import io
import json
import socket
import sys
import zipfile

import pytest
import requests
from botocore.exceptions import ClientError
from helpers import make_zip

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
HELLO = {"app.py": "def handler(e, c):\n    return 'hi'\n"}


def create_error(lam, **overrides):
    kwargs = dict(FunctionName="bad-input-fn", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip(HELLO)})
    kwargs.update(overrides)
    with pytest.raises(ClientError) as exc:
        lam.create_function(**kwargs)
    return exc.value.response


def assert_invalid(resp, code="InvalidParameterValueException", status=400):
    assert resp["Error"]["Code"] == code, resp
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == status
    assert resp["Error"]["Message"]


# What the model's constraints refuse is ValidationException, checked before
# anything else; what only the operation can judge is
# InvalidParameterValueException (tests/test_contract_validation.py pins the
# messages).
VALIDATION = "ValidationException"
PARAMETER = "InvalidParameterValueException"


@pytest.mark.parametrize(
    "overrides,code",
    [
        pytest.param({"FunctionName": "has space"}, VALIDATION, id="name-space"),
        pytest.param({"FunctionName": "x" * 65}, PARAMETER, id="name-too-long"),
        pytest.param({"FunctionName": "bad!name"}, VALIDATION, id="name-bang"),
        pytest.param({"Runtime": "python2.7"}, PARAMETER, id="runtime-old"),
        pytest.param({"Runtime": "cobol85"}, PARAMETER, id="runtime-unknown"),
        pytest.param({"Handler": "nodot"}, PARAMETER, id="handler-no-dot"),
        pytest.param({"Handler": "has space.fn"}, VALIDATION, id="handler-space"),
        pytest.param({"Role": "not-an-arn"}, VALIDATION, id="role"),
        pytest.param({"MemorySize": 20000}, PARAMETER, id="memory-high"),
        pytest.param({"Timeout": 901}, PARAMETER, id="timeout-high"),
        pytest.param({"EphemeralStorage": {"Size": 20000}}, PARAMETER, id="ephemeral"),
        pytest.param({"Architectures": ["sparc"]}, VALIDATION, id="arch"),
        pytest.param({"Environment": {"Variables": {"AWS_REGION": "x"}}}, PARAMETER, id="env-reserved"),
        pytest.param({"Environment": {"Variables": {"1BAD": "x"}}}, VALIDATION, id="env-key"),
        pytest.param({"Environment": {"Variables": {"BIG": "x" * 5000}}}, PARAMETER, id="env-4kb"),
        pytest.param({"Code": {"S3Bucket": "bucket", "S3Key": "key.zip"}}, PARAMETER, id="code-s3"),
        pytest.param({"Code": {"ZipFile": b"this is not a zip"}}, PARAMETER, id="not-a-zip"),
        pytest.param({"Layers": ["arn:aws:lambda:us-east-1:123456789012:layer:l:1"]}, PARAMETER, id="layer-unknown"),
        pytest.param({"VpcConfig": {"SubnetIds": ["subnet-1"], "SecurityGroupIds": ["sg-1"]}}, PARAMETER, id="vpc-unsupported"),
        pytest.param(
            {
                "FileSystemConfigs": [
                    {
                        "Arn": "arn:aws:elasticfilesystem:us-east-1:123456789012:access-point/fsap-0123456789abcdef0",
                        "LocalMountPath": "/mnt/x",
                    }
                ]
            },
            PARAMETER,
            id="efs-unsupported",
        ),
        pytest.param({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:123456789012:q"}}, PARAMETER, id="dlq-config-unsupported"),
    ],
)
def test_create_rejects(lam, overrides, code):
    assert_invalid(create_error(lam, **overrides), code)


@pytest.mark.parametrize(
    "field,value,code",
    [
        ("MemorySize", 64, VALIDATION),
        ("Timeout", 0, VALIDATION),
        ("EphemeralStorage", {"Size": 100}, VALIDATION),
        # A value of the wrong JSON type cannot even be read.
        ("MemorySize", "lots", "InvalidRequestContentException"),
        ("Timeout", True, "InvalidRequestContentException"),
    ],
)
def test_create_rejects_values_boto3_would_not_send(server, field, value, code):
    # boto3 validates minimums client-side; other clients do not.
    doc = {
        "FunctionName": "raw-bad",
        "Runtime": PY,
        "Role": ROLE,
        "Handler": "app.handler",
        "Code": {"ZipFile": base64.b64encode(make_zip(HELLO)).decode()},
        field: value,
    }
    r = _signed(server, "POST", "/2015-03-31/functions", json.dumps(doc).encode())
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == code


def _zip_with(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for info, data in entries:
            zf.writestr(info, data)
    return buf.getvalue()


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = (0o120777) << 16
    return info, target.encode()


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param([(zipfile.ZipInfo("../escape.py"), b"x")], id="zip-slip"),
        pytest.param([(zipfile.ZipInfo("a/../../escape.py"), b"x")], id="zip-slip-nested"),
        pytest.param([(zipfile.ZipInfo("/etc/evil.py"), b"x")], id="absolute"),
        pytest.param([_symlink("link", "/etc/passwd")], id="symlink-absolute"),
        pytest.param([_symlink("link", "../../outside")], id="symlink-escape"),
    ],
)
def test_malicious_zips_write_nothing_outside(lam, server, entries, tmp_path):
    before = set(p for p in server.data_dir.parent.iterdir())
    entries = entries + [(zipfile.ZipInfo("app.py"), HELLO["app.py"].encode())]
    assert_invalid(create_error(lam, Code={"ZipFile": _zip_with(entries)}))
    assert set(server.data_dir.parent.iterdir()) == before
    assert not (server.data_dir / "code" / "escape.py").exists()
    assert not (server.data_dir / "escape.py").exists()


def test_zip_bomb_is_refused(lam):
    # 300 MB of zeros compresses to ~300 KB: past the 250 MB unzipped limit.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        info = zipfile.ZipInfo("bomb.bin")
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=True) as f:
            chunk = b"\0" * (1 << 20)
            for _ in range(300):
                f.write(chunk)
        zf.writestr("app.py", HELLO["app.py"])
    assert len(buf.getvalue()) < 2 * 1024 * 1024
    resp = create_error(lam, Code={"ZipFile": buf.getvalue()})
    assert_invalid(resp)
    assert "262144000" in resp["Error"]["Message"]


def test_malformed_json_body_to_the_control_plane(server):
    r = _signed(server, "POST", "/2015-03-31/functions", b'{"FunctionName": ')
    assert r.status_code == 400
    assert r.headers["x-amzn-ErrorType"] == "InvalidRequestContentException"
    assert "message" in r.json()


def test_payload_over_6mb_gets_413(lam, deploy):
    name = deploy(HELLO)
    big = b'"' + b"a" * (6 * 1024 * 1024) + b'"'
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=big)
    assert exc.value.response["Error"]["Code"] == "RequestTooLargeException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


def test_413_is_sent_before_the_body_is_read(server, deploy):
    """The server answers from the declared length and never reads the body."""
    name = deploy(HELLO)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        head = (
            f"POST /2015-03-31/functions/{name}/invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n"
        ).encode()
        s.sendall(head)  # and not one byte of the 50 MB body
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ")
    assert b"RequestTooLargeException" in reply


def test_async_payload_over_1mb_gets_413(lam, deploy):
    name = deploy(HELLO)
    big = b'"' + b"a" * (1024 * 1024 + 10) + b'"'
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, InvocationType="Event", Payload=big)
    assert exc.value.response["Error"]["Code"] == "RequestTooLargeException"


@pytest.mark.parametrize(
    "kwargs,code",
    [
        pytest.param({"InvocationType": "Sometimes"}, VALIDATION, id="invocation-type"),
        pytest.param({"LogType": "Everything"}, VALIDATION, id="log-type"),
        pytest.param({"ClientContext": "%%%not base64"}, PARAMETER, id="client-context"),
    ],
)
def test_invoke_rejects_bad_parameters(lam, deploy, kwargs, code):
    name = deploy(HELLO)
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    assert exc.value.response["Error"]["Code"] == code


def test_garbage_http_gets_400_and_the_server_keeps_serving(server):
    cases = [
        (b"\x00\x01\x02 garbage\r\n\r\n", b"400"),
        (b"GET / HTTP/9.9\r\n\r\n", b"505"),
        (b"GET /x HTTP/1.1\r\nBad Header\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", b"501"),
    ]
    for junk, status in cases:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(junk)
            assert s.recv(100).startswith(b"HTTP/1.1 " + status + b" "), junk
    assert requests.get(server.url + "/health", timeout=5).status_code == 200


def test_unknown_route(server):
    r = _signed(server, "GET", "/2099-01-01/nothing", b"")
    assert r.status_code == 404
    assert r.headers["x-amzn-ErrorType"] == "UnknownOperationException"


def _signed(server, method: str, path: str, body: bytes) -> requests.Response:
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    key, secret = server.credentials()
    req = AWSRequest(method=method, url=server.url + path, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(req)
    prepared = req.prepare()
    return requests.request(method, prepared.url, headers=dict(prepared.headers), data=body, timeout=10)


def test_bad_input_leaves_existing_functions_working(lam, deploy):
    name = deploy(HELLO)
    create_error(lam, Code={"ZipFile": b"junk"})
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "hi"
