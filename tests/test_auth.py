"""SigV4 at the server: generated keys, refusals of Lambda's shape, --no-auth rules."""

from __future__ import annotations

import os
import stat
import subprocess

import boto3
import botocore.config
import pytest
import requests
from botocore import UNSIGNED
from botocore.exceptions import ClientError
from helpers import ServerProcess, lambdalet_argv


def test_credentials_file_is_generated_with_mode_0600(server):
    path = server.data_dir / "credentials"
    mode = stat.S_IMODE(os.stat(path).st_mode)
    assert mode == 0o600
    text = path.read_text()
    assert text.startswith("[default]")
    key, secret = server.credentials()
    assert len(key) >= 16 and len(secret) >= 40


def test_aws_shared_credentials_file_works_as_printed(server, monkeypatch):
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(server.data_dir / "credentials"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    client = boto3.session.Session().client("lambda", region_name="us-east-1")
    assert "Functions" in client.list_functions()


@pytest.mark.parametrize(
    "make_client,code",
    [
        pytest.param(
            lambda url, key, secret: boto3.client(
                "lambda", endpoint_url=url, region_name="us-east-1", config=botocore.config.Config(signature_version=UNSIGNED)
            ),
            "MissingAuthenticationTokenException",
            id="unsigned",
        ),
        pytest.param(
            lambda url, key, secret: boto3.client(
                "lambda",
                endpoint_url=url,
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key=secret[:-1] + ("A" if secret[-1] != "A" else "B"),
            ),
            "InvalidSignatureException",
            id="wrong-secret",
        ),
        pytest.param(
            lambda url, key, secret: boto3.client(
                "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id="AKIANOTAREALKEY00000", aws_secret_access_key=secret
            ),
            "UnrecognizedClientException",
            id="unknown-key",
        ),
    ],
)
def test_bad_signatures_get_403(server, make_client, code):
    key, secret = server.credentials()
    client = make_client(server.url, key, secret)
    with pytest.raises(ClientError) as exc:
        client.list_functions()
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert exc.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError) as exc:
        client.invoke(FunctionName="anything")
    assert exc.value.response["Error"]["Code"] == code


def test_plain_http_without_signature_is_refused(server):
    r = requests.post(server.url + "/2015-03-31/functions/x/invocations", data=b"{}", timeout=5)
    assert r.status_code == 403
    assert r.headers["x-amzn-ErrorType"] == "MissingAuthenticationTokenException"
    assert r.json()["message"]


def test_no_auth_requires_a_loopback_bind(tmp_path):
    proc = subprocess.run(
        lambdalet_argv("serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    assert "--no-auth is only allowed with a loopback --host" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_no_auth_on_loopback_accepts_unsigned(tmp_path):
    srv = ServerProcess(tmp_path / "d", "--no-auth").start()
    try:
        assert "authentication is OFF" in "".join(srv.output)
        client = boto3.client(
            "lambda", endpoint_url=srv.url, region_name="us-east-1", config=botocore.config.Config(signature_version=UNSIGNED)
        )
        assert client.list_functions()["Functions"] == []
    finally:
        assert srv.stop() == 0
