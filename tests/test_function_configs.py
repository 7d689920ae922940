"""Get/PutFunctionRecursionConfig and Get/PutRuntimeManagementConfig as AWS
answers them, with runtime version ARNs naming the interpreter that runs."""

from __future__ import annotations

import json
import sys

import pytest
from botocore.exceptions import ClientError
from helpers import ServerProcess, make_zip

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
P = "arn:aws:lambda:us-east-1:000000000000:function:"
RUNS = f"arn:aws:lambda:us-east-1::runtime:python:{sys.version.split()[0]}"


@pytest.fixture
def fn(lam, fn_name):
    lam.create_function(
        FunctionName=fn_name,
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'ran'\n"})},
    )
    yield fn_name
    lam.delete_function(FunctionName=fn_name)


def refused(call) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call()
    return exc.value.response["Error"]["Code"], exc.value.response["Error"]["Message"]


def test_recursion_config(server, lam, fn):
    raw = server.client(parameter_validation=False)
    assert lam.get_function_recursion_config(FunctionName=fn)["RecursiveLoop"] == "Terminate"  # AWS's default
    assert lam.put_function_recursion_config(FunctionName=fn, RecursiveLoop="Allow")["RecursiveLoop"] == "Allow"
    assert lam.get_function_recursion_config(FunctionName=fn)["RecursiveLoop"] == "Allow"
    assert refused(lambda: raw.put_function_recursion_config(FunctionName=fn, RecursiveLoop="InvalidValue")) == (
        "ValidationException",
        "1 validation error detected: Value 'InvalidValue' at 'recursiveLoop' failed to satisfy constraint: "
        "Member must satisfy enum value set: [Terminate, Allow]",
    )
    assert refused(lambda: lam.get_function_recursion_config(FunctionName="contract-nobody")) == (
        "ResourceNotFoundException",
        f"Function not found: {P}contract-nobody",
    )


def test_runtime_management_config(lam, fn):
    got = lam.get_runtime_management_config(FunctionName=fn)
    assert (got["UpdateRuntimeOn"], got["FunctionArn"]) == ("Auto", P + fn + ":$LATEST")
    assert "RuntimeVersionArn" not in got
    # The runtime version in the configuration names the interpreter that runs.
    assert lam.get_function_configuration(FunctionName=fn)["RuntimeVersionConfig"]["RuntimeVersionArn"] == RUNS
    pinned = lam.put_runtime_management_config(FunctionName=fn, UpdateRuntimeOn="Manual", RuntimeVersionArn=RUNS)
    assert (pinned["UpdateRuntimeOn"], pinned["RuntimeVersionArn"]) == ("Manual", RUNS)
    assert lam.get_runtime_management_config(FunctionName=fn)["RuntimeVersionArn"] == RUNS
    assert json.loads(lam.invoke(FunctionName=fn)["Payload"].read()) == "ran"
    # A version this host does not run cannot be pinned.
    other = "arn:aws:lambda:us-east-1::runtime:python:3.0.1"
    code, message = refused(lambda: lam.put_runtime_management_config(FunctionName=fn, UpdateRuntimeOn="Manual", RuntimeVersionArn=other))
    assert code == "InvalidParameterValueException" and RUNS in message
    assert (
        refused(lambda: lam.put_runtime_management_config(FunctionName=fn, UpdateRuntimeOn="Manual"))[0] == "InvalidParameterValueException"
    )
    assert lam.put_runtime_management_config(FunctionName=fn, UpdateRuntimeOn="FunctionUpdate")["UpdateRuntimeOn"] == "FunctionUpdate"
    # Versions have their own.
    lam.publish_version(FunctionName=fn)
    assert lam.get_runtime_management_config(FunctionName=fn, Qualifier="1")["FunctionArn"] == P + fn + ":1"
    assert refused(lambda: lam.get_runtime_management_config(FunctionName=fn, Qualifier="9"))[0] == "ResourceNotFoundException"


def test_a_pin_to_a_version_the_host_no_longer_runs_refuses_to_run(tmp_path):
    """Manual pins a function to its runtime version: a server started later
    with another interpreter for that runtime refuses to run it
    (InvalidRuntimeException) rather than run it on a version it was not
    pinned to."""
    import sqlite3

    srv = ServerProcess(tmp_path / "data").start()
    try:
        lam = srv.client()
        lam.create_function(
            FunctionName="pinned",
            Runtime=PY,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'ran'\n"})},
        )
        lam.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Manual", RuntimeVersionArn=RUNS)
    finally:
        assert srv.stop() == 0
    # As if the interpreter had been upgraded since: the stored pin names
    # another patch release than the one this host runs.
    db = sqlite3.connect(tmp_path / "data" / "lambdalet.db")
    with db:
        (record,) = db.execute("SELECT record FROM functions WHERE name='pinned'").fetchone()
        doc = json.loads(record)
        doc["runtime_management"]["RuntimeVersionArn"] = RUNS + "-older"
        db.execute("UPDATE functions SET record=? WHERE name='pinned'", (json.dumps(doc),))
    db.close()
    srv = ServerProcess(tmp_path / "data").start()
    try:
        lam = srv.client()
        code, message = refused(lambda: lam.invoke(FunctionName="pinned"))
        assert code == "InvalidRuntimeException" and "pinned to runtime version" in message
        lam.put_runtime_management_config(FunctionName="pinned", UpdateRuntimeOn="Auto")
        assert json.loads(lam.invoke(FunctionName="pinned")["Payload"].read()) == "ran"
    finally:
        assert srv.stop() == 0
