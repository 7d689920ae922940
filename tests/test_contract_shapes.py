"""The shapes of Lambda's answers, member for member as AWS fills them."""

from __future__ import annotations

import sys

import pytest
from helpers import make_zip

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
P = "arn:aws:lambda:us-east-1:000000000000:function:"
STATE_FIELDS = {"State", "StateReason", "StateReasonCode", "LastUpdateStatus", "LastUpdateStatusReason", "LastUpdateStatusReasonCode"}


@pytest.fixture(scope="module")
def shaped(lam):
    name = "contract-shapes"
    created = lam.create_function(
        FunctionName=name,
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
    )
    lam.publish_version(FunctionName=name)
    yield name, created
    lam.delete_function(FunctionName=name)


def test_create_answers_pending_without_an_update_status(shaped):
    """AWS: CreateFunction says State Pending (Creating) and has no
    LastUpdateStatus yet."""
    _name, created = shaped
    assert (created["State"], created["StateReasonCode"]) == ("Pending", "Creating")
    assert "LastUpdateStatus" not in created


def test_configuration_always_has_environment_and_runtime_version(lam, shaped):
    """AWS includes Environment {"Variables": {}} when no variable is set,
    and RuntimeVersionConfig naming the runtime version that runs."""
    name, created = shaped
    conf = lam.get_function_configuration(FunctionName=name)
    for doc in (created, conf, lam.get_function(FunctionName=name)["Configuration"]):
        assert doc["Environment"] == {"Variables": {}}
        arn = doc["RuntimeVersionConfig"]["RuntimeVersionArn"]
        # arn:aws:lambda:<region>::runtime:<id>, the id naming the interpreter.
        assert arn == f"arn:aws:lambda:us-east-1::runtime:python:{sys.version.split()[0]}"
    assert (conf["State"], conf["LastUpdateStatus"]) == ("Active", "Successful")


def test_list_functions_entries_have_no_state(lam, shaped):
    """AWS lists functions without State, LastUpdateStatus or
    RuntimeVersionConfig, and with their unqualified ARN."""
    name, _ = shaped
    entries = [f for f in _all(lam) if f["FunctionName"] == name]
    assert len(entries) == 1
    assert not (STATE_FIELDS | {"RuntimeVersionConfig"}) & set(entries[0])
    assert entries[0]["FunctionArn"] == P + name
    assert entries[0]["Environment"] == {"Variables": {}}


def test_list_functions_all_versions_qualifies_latest(lam, shaped):
    """AWS: with FunctionVersion=ALL, $LATEST is listed by its qualified ARN
    (…:$LATEST), beside each published version."""
    name, _ = shaped
    entries = [f for f in _all(lam, FunctionVersion="ALL") if f["FunctionName"] == name]
    assert [(e["Version"], e["FunctionArn"]) for e in entries] == [("$LATEST", P + name + ":$LATEST"), ("1", P + name + ":1")]
    assert all(not STATE_FIELDS & set(e) for e in entries)


def test_list_versions_qualifies_latest(lam, shaped):
    name, _ = shaped
    versions = lam.list_versions_by_function(FunctionName=name)["Versions"]
    assert [v["FunctionArn"] for v in versions] == [P + name + ":$LATEST", P + name + ":1"]
    assert all(not STATE_FIELDS & set(v) for v in versions)


def _all(lam, **kwargs):
    return [f for page in lam.get_paginator("list_functions").paginate(**kwargs) for f in page["Functions"]]
