"""A deployment package near Lambda's 50 MB direct-upload limit goes in
through CreateFunction and UpdateFunctionCode: its base64 inside JSON is
~67 MB, within the control plane's body limit (router.CONTROL_BODY_MAX),
and the framework behind it must not refuse it with a smaller one."""

from __future__ import annotations

import io
import os
import sys
import zipfile

import boto3
import botocore.config
from helpers import ServerProcess


def _package(size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("app.py", "def handler(event, context):\n    return 'big'\n")
        zf.writestr("blob.bin", os.urandom(size))  # incompressible
    return buf.getvalue()


def test_a_45_mb_package_deploys(tmp_path):
    code = _package(45 * 1024 * 1024)
    with ServerProcess(tmp_path / "d").start() as srv:
        key, secret = srv.credentials()
        lam = boto3.client(
            "lambda",
            endpoint_url=srv.url,
            region_name="us-east-1",
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            config=botocore.config.Config(retries={"max_attempts": 1}, read_timeout=120),
        )
        conf = lam.create_function(
            FunctionName="big",
            Role="arn:aws:iam::123456789012:role/r",
            Handler="app.handler",
            Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
            Code={"ZipFile": code},
        )
        assert conf["CodeSize"] == len(code)
        lam.update_function_code(FunctionName="big", ZipFile=_package(44 * 1024 * 1024))
        assert lam.invoke(FunctionName="big")["Payload"].read() == b'"big"'
