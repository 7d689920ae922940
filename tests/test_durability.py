"""Once the server has said yes, a deployed function survives kill -9."""
from __future__ import annotations

import json
import signal
import sys

from helpers import ServerProcess, make_zip, wait_for

PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"
ROLE = "arn:aws:iam::123456789012:role/r"


def test_functions_survive_kill_9_and_restart(tmp_path):
    data = tmp_path / "data"
    srv = ServerProcess(data).start()
    lam = srv.client()
    lam.create_function(FunctionName="durable", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'v1'\n"})})
    lam.create_function(FunctionName="updated", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 'old'\n"})})
    lam.update_function_code(FunctionName="updated", ZipFile=make_zip({"app.py": "def handler(e, c):\n    return 'new'\n"}))
    lam.update_function_configuration(FunctionName="updated", Timeout=11)
    assert json.loads(lam.invoke(FunctionName="durable")["Payload"].read()) == "v1"
    workers = srv.worker_pids()
    assert workers, "a warm worker should exist"
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    # The workers notice their server is gone (their control socket closes)
    # and exit by themselves.
    wait_for(lambda: not srv.worker_pids(), timeout=10)

    again = ServerProcess(data).start()
    try:
        lam = again.client()
        assert json.loads(lam.invoke(FunctionName="durable")["Payload"].read()) == "v1"
        assert json.loads(lam.invoke(FunctionName="updated")["Payload"].read()) == "new"
        assert lam.get_function_configuration(FunctionName="updated")["Timeout"] == 11
    finally:
        assert again.stop() == 0
    assert again.worker_pids() == []


def test_sigterm_stops_every_worker(tmp_path):
    srv = ServerProcess(tmp_path / "data").start()
    lam = srv.client()
    lam.create_function(FunctionName="w", Runtime=PY, Role=ROLE, Handler="app.handler", Code={"ZipFile": make_zip({"app.py": "import os, subprocess\ndef handler(e, c):\n    # The task root is inside the data dir, so worker_pids() sees this child.\n    subprocess.Popen(['sh', '-c', 'sleep 300; true', os.environ['LAMBDA_TASK_ROOT']])\n    return 1\n"})})
    for _ in range(3):
        lam.invoke(FunctionName="w")
    assert len(srv.worker_pids()) >= 2  # the worker and its child
    assert srv.stop(signal.SIGTERM) == 0
    assert srv.worker_pids() == []
    assert "stopping" in "".join(srv.output)
