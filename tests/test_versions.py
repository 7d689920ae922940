"""Published versions, aliases and provisioned concurrency through boto3."""

from __future__ import annotations

import base64
import json

import pytest
from botocore.exceptions import ClientError
from helpers import make_zip, wait_for

SOURCE = """
import os
def handler(event, context):
    return {'says': '%s', 'version': context.function_version, 'arn': context.invoked_function_arn,
            'env_version': os.environ['AWS_LAMBDA_FUNCTION_VERSION'], 'init': os.environ['AWS_LAMBDA_INITIALIZATION_TYPE']}
"""


def code(word: str) -> bytes:
    return make_zip({"app.py": SOURCE % word})


def invoke(lam, name, qualifier=None, **kwargs):
    args = {"FunctionName": name, "Payload": b"{}", **kwargs}
    if qualifier:
        args["Qualifier"] = qualifier
    resp = lam.invoke(**args)
    return resp, json.loads(resp["Payload"].read())


def test_publish_invoke_and_delete_versions(lam, deploy):
    name = deploy({"app.py": SOURCE % "one"})
    v1 = lam.publish_version(FunctionName=name, Description="first")
    assert v1["Version"] == "1" and v1["FunctionArn"].endswith(f":{name}:1") and v1["Description"] == "first"
    # Nothing changed: publishing again returns the same version.
    assert lam.publish_version(FunctionName=name)["Version"] == "1"
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    v2 = lam.publish_version(FunctionName=name)
    assert v2["Version"] == "2"
    assert [v["Version"] for v in lam.list_versions_by_function(FunctionName=name)["Versions"]] == ["$LATEST", "1", "2"]
    every = [
        (f["FunctionName"], f["Version"])
        for p in lam.get_paginator("list_functions").paginate(FunctionVersion="ALL")
        for f in p["Functions"]
    ]
    assert [(name, "$LATEST"), (name, "1"), (name, "2")] == [e for e in every if e[0] == name]

    resp, out = invoke(lam, name, "1")
    assert out["says"] == "one" and out["version"] == "1" and out["env_version"] == "1"
    assert resp["ExecutedVersion"] == "1"
    _, out = invoke(lam, name)
    assert out["says"] == "two" and out["version"] == "$LATEST"
    _, out = invoke(lam, f"{name}:2")
    assert out["says"] == "two" and out["version"] == "2"
    # Both versions stay warm side by side.
    resp, _ = invoke(lam, name, "1", LogType="Tail")
    assert "Init Duration" not in base64.b64decode(resp["LogResult"]).decode()
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Version"] == "1"
    lam.delete_function(FunctionName=name, Qualifier="1")
    with pytest.raises(ClientError) as exc:
        invoke(lam, name, "1")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as exc:
        invoke(lam, name, "9")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_publish_on_create_and_revision_checks(lam, fn_name):
    import sys

    conf = lam.create_function(
        FunctionName=fn_name,
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Role="arn:aws:iam::123456789012:role/r",
        Handler="app.handler",
        Code={"ZipFile": code("x")},
        Publish=True,
    )
    assert conf["Version"] == "1"
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=fn_name, RevisionId="stale")
    assert exc.value.response["Error"]["Code"] == "PreconditionFailedException"
    with pytest.raises(ClientError) as exc:
        lam.publish_version(FunctionName=fn_name, CodeSha256="bm9wZQ==")
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"


def test_aliases(lam, deploy):
    name = deploy({"app.py": SOURCE % "one"})
    lam.publish_version(FunctionName=name)
    lam.update_function_code(FunctionName=name, ZipFile=code("two"))
    lam.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    lam.publish_version(FunctionName=name)
    alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1", Description="prod")
    assert alias["AliasArn"].endswith(f":{name}:live") and alias["FunctionVersion"] == "1"
    _, out = invoke(lam, name, "live")
    assert out["says"] == "one"
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.create_alias(FunctionName=name, Name="123", FunctionVersion="1")
    # AWS: an all-digit alias name breaks the model's pattern.
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2", RevisionId="stale")
    assert exc.value.response["Error"]["Code"] == "PreconditionFailedException"
    lam.update_alias(FunctionName=name, Name="live", FunctionVersion="2")
    _, out = invoke(lam, name, "live")
    assert out["says"] == "two"
    # All of the calls go to version 1 when it weighs 1.0.
    lam.update_alias(FunctionName=name, Name="live", RoutingConfig={"AdditionalVersionWeights": {"1": 1.0}})
    assert {invoke(lam, name, "live")[1]["says"] for _ in range(3)} == {"one"}
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["live"]
    with pytest.raises(ClientError) as exc:
        lam.delete_function(FunctionName=name, Qualifier="1")
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    lam.delete_alias(FunctionName=name, Name="live")
    with pytest.raises(ClientError) as exc:
        lam.get_alias(FunctionName=name, Name="live")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_provisioned_concurrency_keeps_instances_initialised(lam, deploy):
    name = deploy({"app.py": SOURCE % "one"})
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")
    with pytest.raises(ClientError) as exc:
        lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="$LATEST", ProvisionedConcurrentExecutions=1)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    out = lam.put_provisioned_concurrency_config(FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=2)
    assert out["RequestedProvisionedConcurrentExecutions"] == 2
    wait_for(lambda: lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] == "READY", timeout=30)
    got = lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert got["AvailableProvisionedConcurrentExecutions"] == 2
    # A call lands on an instance that was initialised ahead of it.
    resp, out = invoke(lam, name, "live", LogType="Tail")
    assert out["init"] == "provisioned-concurrency"
    assert "Init Duration" not in base64.b64decode(resp["LogResult"]).decode()
    listed = lam.list_provisioned_concurrency_configs(FunctionName=name)["ProvisionedConcurrencyConfigs"]
    assert [c["FunctionArn"].rsplit(":", 1)[1] for c in listed] == ["live"]
    lam.delete_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    with pytest.raises(ClientError) as exc:
        lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")
    assert exc.value.response["Error"]["Code"] == "ProvisionedConcurrencyConfigNotFoundException"


def test_versions_are_immutable_and_alias_writes_do_not_race(lam, deploy):
    import concurrent.futures

    name = deploy({"app.py": SOURCE % "one"})
    lam.publish_version(FunctionName=name)
    for ref in (f"{name}:1",):
        with pytest.raises(ClientError) as exc:
            lam.update_function_configuration(FunctionName=ref, Timeout=9)
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert lam.get_function_configuration(FunctionName=name, Qualifier="1")["Timeout"] == 3
    assert lam.get_function_configuration(FunctionName=name)["Version"] == "$LATEST"
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        list(ex.map(lambda a: lam.create_alias(FunctionName=name, Name=a, FunctionVersion="1"), ["a", "b", "c", "d"]))
    assert [a["Name"] for a in lam.list_aliases(FunctionName=name)["Aliases"]] == ["a", "b", "c", "d"]
