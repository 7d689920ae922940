"""The API over TLS and HTTP/2, through hypercorn, beside the plain port."""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
import sys

import boto3
import botocore.config
import pytest
from helpers import ServerProcess, allow_public_url, free_port, make_test_cert, make_zip

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a test certificate")


@pytest.fixture
def cert(tmp_path):
    key, crt = make_test_cert(tmp_path)
    return str(crt), str(key)


def test_boto3_and_http2_over_tls(tmp_path, cert):
    crt, key = cert
    tls_port = free_port()
    srv = ServerProcess(tmp_path / "d", "--tls-port", str(tls_port), "--tls-cert", crt, "--tls-key", key).start()
    try:
        assert re.search(rf"TLS \+ HTTP/2 on https://127\.0\.0\.1:{tls_port}", "".join(srv.output))
        key_id, secret = srv.credentials()
        lam = boto3.client(
            "lambda",
            endpoint_url=f"https://127.0.0.1:{tls_port}",
            region_name="us-east-1",
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
            verify=crt,
            config=botocore.config.Config(retries={"max_attempts": 1}),
        )
        lam.create_function(
            FunctionName="tls",
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Role="arn:aws:iam::123456789012:role/r",
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return {'statusCode': 200, 'body': 'secure'}\n"})},
        )
        assert json.loads(lam.invoke(FunctionName="tls", Payload=b"{}")["Payload"].read())["body"] == "secure"
        url = lam.create_function_url_config(FunctionName="tls", AuthType="NONE")["FunctionUrl"]
        allow_public_url(lam, "tls")
        path = url.split("/", 3)[3]
        # HTTP/2 negotiated by ALPN, against the same function URL.
        import socket

        import h2.connection
        import h2.events

        ctx = ssl.create_default_context(cafile=crt)
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", tls_port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.selected_alpn_protocol() == "h2"
            conn = h2.connection.H2Connection()
            conn.initiate_connection()
            conn.send_headers(
                1,
                [(":method", "GET"), (":path", "/" + path), (":authority", f"127.0.0.1:{tls_port}"), (":scheme", "https")],
                end_stream=True,
            )
            s.sendall(conn.data_to_send())
            status, body, done = None, b"", False
            while not done:
                for event in conn.receive_data(s.recv(65536)):
                    if isinstance(event, h2.events.ResponseReceived):
                        status = dict(event.headers)[b":status"]
                    elif isinstance(event, h2.events.DataReceived):
                        body += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        done = True
                s.sendall(conn.data_to_send())
        assert (status, body) == (b"200", b"secure")
    finally:
        assert srv.stop() == 0


def test_tls_flags_go_together(tmp_path):
    from helpers import lambdalet_argv

    out = subprocess.run(
        lambdalet_argv("serve", "--port", "0", "--data-dir", str(tmp_path), "--tls-port", "1"), capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0 and "go together" in out.stderr and "Traceback" not in out.stderr
