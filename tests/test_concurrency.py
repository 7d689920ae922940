"""Concurrency limits: account, reserved, memory-aware admission, bursts."""

from __future__ import annotations

import concurrent.futures
import json
import sys

import pytest
from botocore.exceptions import ClientError
from helpers import ServerProcess, make_zip

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"
SLOW = {"app.py": "import time\ndef handler(e, c):\n    time.sleep(e.get('sleep', 0))\n    return 'done'\n"}


def test_reserved_concurrency_api_and_zero_throttles(lam, deploy):
    name = deploy(SLOW)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    out = lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
    assert out["ReservedConcurrentExecutions"] == 0
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 0
    before = lam.get_account_settings()["AccountLimit"]
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName=name)
    err = exc.value.response
    assert err["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert err["Error"]["Code"] == "TooManyRequestsException"
    assert err["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=5)
    after = lam.get_account_settings()["AccountLimit"]
    assert after["UnreservedConcurrentExecutions"] == before["UnreservedConcurrentExecutions"] - 5
    assert json.loads(lam.invoke(FunctionName=name)["Payload"].read()) == "done"
    lam.delete_function_concurrency(FunctionName=name)
    assert "ReservedConcurrentExecutions" not in lam.get_function_concurrency(FunctionName=name)
    with pytest.raises(ClientError) as exc:
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=10_000)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"


def _burst(client, name: str, n: int, payload: dict) -> list:
    def call(_):
        try:
            resp = client.invoke(FunctionName=name, Payload=json.dumps(payload).encode())
            return ("ok", resp.get("FunctionError"), json.loads(resp["Payload"].read()))
        except ClientError as exc:
            return ("err", exc.response["Error"]["Code"], exc.response.get("Reason"))

    with concurrent.futures.ThreadPoolExecutor(n) as ex:
        return list(ex.map(call, range(n)))


def test_deleting_a_function_returns_its_reservation(tmp_path):
    srv = ServerProcess(tmp_path / "d", "--concurrency-limit", "20").start()
    try:
        lam = srv.client(max_pool_connections=20)
        for name in ("hog", "other"):
            lam.create_function(FunctionName=name, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip(SLOW)})
        lam.put_function_concurrency(FunctionName="hog", ReservedConcurrentExecutions=18)
        results = _burst(lam, "other", 4, {"sleep": 1})
        assert sum(r[0] == "err" for r in results) >= 2  # only 2 unreserved
        lam.delete_function(FunctionName="hog")
        assert lam.get_account_settings()["AccountLimit"]["UnreservedConcurrentExecutions"] == 20
        results = _burst(lam, "other", 4, {"sleep": 1})
        assert [r for r in results if r[0] != "ok"] == []
    finally:
        assert srv.stop() == 0


def test_account_limit_throttles_with_reason_and_never_hangs(tmp_path):
    srv = ServerProcess(tmp_path / "d", "--concurrency-limit", "2").start()
    try:
        lam = srv.client(max_pool_connections=20)
        assert lam.get_account_settings()["AccountLimit"]["ConcurrentExecutions"] == 2
        lam.create_function(FunctionName="slow", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip(SLOW)})
        results = _burst(lam, "slow", 6, {"sleep": 2})
        oks = [r for r in results if r[0] == "ok"]
        throttled = [r for r in results if r[0] == "err"]
        assert 1 <= len(oks) <= 2
        assert throttled and all(r[1:] == ("TooManyRequestsException", "ConcurrentInvocationLimitExceeded") for r in throttled)
    finally:
        assert srv.stop() == 0


def test_memory_aware_admission(tmp_path):
    srv = ServerProcess(tmp_path / "d", "--memory-budget-mb", "256").start()
    try:
        lam = srv.client(max_pool_connections=20)
        for name in ("a", "b"):
            lam.create_function(
                FunctionName=name, Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip(SLOW)}, MemorySize=128
            )
        results = _burst(lam, "a", 3, {"sleep": 2})
        assert sorted(r[0] for r in results) == ["err", "ok", "ok"]
        assert [r for r in results if r[0] == "err"][0][1] == "TooManyRequestsException"
        # Two idle instances of "a" now fill the budget; "b" evicts one.
        assert json.loads(lam.invoke(FunctionName="b", Payload=b"{}")["Payload"].read()) == "done"
    finally:
        assert srv.stop() == 0


def test_burst_of_100_to_a_cold_function(lam, deploy, server):
    name = deploy({"app.py": "import os\ndef handler(e, c):\n    return os.getpid()\n"})
    client = server.client(max_pool_connections=100)
    results = _burst(client, name, 100, {})
    assert [r for r in results if r[0] != "ok" or r[1]] == []
    assert len(results) == 100
