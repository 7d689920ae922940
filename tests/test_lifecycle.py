"""The control plane through a stock boto3 client, against a real server."""

from __future__ import annotations

import base64
import hashlib
import sys

import pytest
import requests
from botocore.exceptions import ClientError
from helpers import make_zip

HELLO = {"app.py": "def handler(event, context):\n    return {'ok': True, 'event': event}\n"}
PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def error_code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_create_returns_configuration_and_becomes_active(lam, fn_name):
    code = make_zip(HELLO)
    conf = lam.create_function(
        FunctionName=fn_name,
        Runtime=PY,
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": code},
        MemorySize=256,
        Timeout=7,
        Description="hello fn",
        Environment={"Variables": {"GREETING": "hi"}},
        EphemeralStorage={"Size": 1024},
        Architectures=["x86_64"],
    )
    assert conf["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert conf["FunctionName"] == fn_name
    assert conf["FunctionArn"].endswith(f":function:{fn_name}")
    assert conf["State"] == "Pending"
    assert conf["CodeSha256"] == base64.b64encode(hashlib.sha256(code).digest()).decode()
    assert conf["CodeSize"] == len(code)
    lam.get_waiter("function_active_v2").wait(FunctionName=fn_name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    got = lam.get_function_configuration(FunctionName=fn_name)
    assert got["State"] == "Active"
    assert got["LastUpdateStatus"] == "Successful"
    assert got["MemorySize"] == 256 and got["Timeout"] == 7
    assert got["Description"] == "hello fn"
    assert got["Environment"] == {"Variables": {"GREETING": "hi"}}
    assert got["EphemeralStorage"] == {"Size": 1024}
    assert got["Architectures"] == ["x86_64"]
    assert got["Version"] == "$LATEST"
    assert got["Runtime"] == PY and got["Handler"] == "app.handler"


def test_get_function_code_location_downloads_the_zip(lam, deploy):
    name = deploy(HELLO)
    out = lam.get_function(FunctionName=name)
    assert out["Configuration"]["FunctionName"] == name
    assert out["Code"]["RepositoryType"] == "S3"
    r = requests.get(out["Code"]["Location"], timeout=10)
    assert r.status_code == 200
    assert hashlib.sha256(r.content).digest() == base64.b64decode(out["Configuration"]["CodeSha256"])
    # A tampered link is refused.
    bad = requests.get(out["Code"]["Location"].replace("signature=", "signature=0"), timeout=10)
    assert bad.status_code == 403


def test_function_name_may_be_an_arn_or_partial_arn_or_qualified(lam, deploy):
    name = deploy(HELLO)
    arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
    assert lam.get_function_configuration(FunctionName=arn)["FunctionName"] == name
    partial = arn.split(":", 4)[4]  # 000000000000:function:name
    assert lam.get_function_configuration(FunctionName=partial)["FunctionName"] == name
    assert lam.get_function(FunctionName=name, Qualifier="$LATEST")["Configuration"]["FunctionName"] == name
    assert lam.get_function_configuration(FunctionName=f"{name}:$LATEST")["FunctionName"] == name
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=name, Qualifier="7")
    assert error_code(exc) == "ResourceNotFoundException"


def test_list_functions_paginates_with_marker_and_max_items(lam, deploy, fn_name):
    names = sorted(deploy(HELLO, name=f"{fn_name}-p{i}") for i in range(5))
    seen = []
    marker = None
    while True:
        kwargs = {"MaxItems": 2}
        if marker:
            kwargs["Marker"] = marker
        page = lam.list_functions(**kwargs)
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert [n for n in seen if n in names] == names
    assert len(seen) == len(set(seen))
    # boto3's paginator agrees.
    all_names = [
        f["FunctionName"] for p in lam.get_paginator("list_functions").paginate(PaginationConfig={"PageSize": 3}) for f in p["Functions"]
    ]
    assert set(names) <= set(all_names)


def test_update_code_and_configuration_with_revision_ids(lam, deploy):
    name = deploy(HELLO)
    rev = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    new_code = make_zip({"app.py": "def handler(e, c):\n    return 'v2'\n"})
    with pytest.raises(ClientError) as exc:
        lam.update_function_code(FunctionName=name, ZipFile=new_code, RevisionId="not-the-revision")
    assert error_code(exc) == "PreconditionFailedException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    out = lam.update_function_code(FunctionName=name, ZipFile=new_code, RevisionId=rev)
    assert out["RevisionId"] != rev
    assert out["LastUpdateStatus"] == "InProgress"
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    assert lam.invoke(FunctionName=name)["Payload"].read() == b'"v2"'

    rev2 = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    with pytest.raises(ClientError) as exc:
        lam.update_function_configuration(FunctionName=name, Timeout=9, RevisionId=rev)
    assert error_code(exc) == "PreconditionFailedException"
    out = lam.update_function_configuration(
        FunctionName=name, Timeout=9, MemorySize=512, Environment={"Variables": {"AB": "b"}}, RevisionId=rev2
    )
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    got = lam.get_function_configuration(FunctionName=name)
    assert (got["Timeout"], got["MemorySize"], got["Environment"]["Variables"]) == (9, 512, {"AB": "b"})


def test_delete_function(lam, deploy):
    name = deploy(HELLO)
    lam.invoke(FunctionName=name)  # leave a warm instance behind
    out = lam.delete_function(FunctionName=name)
    assert out["ResponseMetadata"]["HTTPStatusCode"] in (200, 204)
    with pytest.raises(ClientError) as exc:
        lam.get_function(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=name)
    assert error_code(exc) == "ResourceNotFoundException"


def test_duplicate_create_is_a_conflict(lam, deploy):
    name = deploy(HELLO)
    with pytest.raises(ClientError) as exc:
        lam.create_function(
            FunctionName=name, Runtime=PY, Role="arn:aws:iam::123456789012:role/r", Handler="app.handler", Code={"ZipFile": make_zip(HELLO)}
        )
    assert error_code(exc) == "ResourceConflictException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409


def test_account_settings(lam, deploy):
    deploy(HELLO)
    out = lam.get_account_settings()
    assert out["AccountLimit"]["ConcurrentExecutions"] == 1000
    assert out["AccountLimit"]["CodeSizeUnzipped"] == 262144000
    assert out["AccountUsage"]["FunctionCount"] >= 1
    assert out["AccountUsage"]["TotalCodeSize"] > 0
