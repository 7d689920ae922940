"""Once the server has said yes, a deployed function survives kill -9."""

from __future__ import annotations

import json
import signal
import sys

from helpers import ServerProcess, make_zip, still_running, wait_for

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"


def test_functions_survive_kill_9_and_restart(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data).start()
    lam = srv.client()
    lam.create_function(
        FunctionName="durable",
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'v1'\n"})},
    )
    lam.create_function(
        FunctionName="updated",
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'old'\n"})},
    )
    lam.update_function_code(FunctionName="updated", ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 'new'\n"}))
    lam.update_function_configuration(FunctionName="updated", Timeout=11)
    assert json.loads(lam.invoke(FunctionName="durable")["Payload"].read()) == "v1"
    workers = srv.descendants()
    assert workers, "a warm worker should exist"
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    # The workers notice their server is gone (their control socket closes,
    # or the sandbox's parent-death signal fires) and exit by themselves.
    wait_for(lambda: not still_running(workers), timeout=10)

    again = ServerProcess(data).start()
    try:
        lam = again.client()
        assert json.loads(lam.invoke(FunctionName="durable")["Payload"].read()) == "v1"
        assert json.loads(lam.invoke(FunctionName="updated")["Payload"].read()) == "new"
        assert lam.get_function_configuration(FunctionName="updated")["Timeout"] == 11
        procs = again.descendants()
    finally:
        assert again.stop() == 0
    assert still_running(procs) == set()


def test_sigterm_stops_every_worker(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    lam = srv.client()
    lam.create_function(
        FunctionName="w",
        Runtime=PY,
        Role=ROLE,
        Handler="app.handler",
        Code={
            "ZipFile": make_zip(
                {
                    "app.py": "import subprocess\ndef handler(e, c):\n    subprocess.Popen(['sleep', '300'], start_new_session=True)\n    return 1\n"
                }
            )
        },
    )
    for _ in range(3):
        lam.invoke(FunctionName="w")
    procs = srv.descendants()
    assert len(procs) >= 2  # the worker and its detached child
    assert srv.stop(signal.SIGTERM) == 0
    assert still_running(procs) == set()
    assert "stopping" in "".join(srv.output)
