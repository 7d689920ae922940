"""The server raises its soft limit on open files to the hard one: a warm
instance costs it a few descriptors, and 1,000 functions must not hit the
1,024 that many hosts give a process. Sandboxes keep their own 1,024."""

from __future__ import annotations

import json
import os
import resource
import sys

from helpers import ServerProcess, make_zip

LOW_SOFT = 512
RUNTIME = f"python{sys.version_info[0]}.{sys.version_info[1]}"

REPORT = """
import resource
def handler(event, context):
    return list(resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def _limits(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        line = next(line for line in f if line.startswith("Max open files"))
    soft, hard = line.split()[3:5]
    return int(soft), int(hard)


def test_the_server_raises_its_soft_open_files_limit_and_sandboxes_keep_theirs(tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Started as a host's default would start it: a soft limit well below the hard.
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT, hard))
    try:
        server = ServerProcess(tmp_path / "data", "--spare-sandboxes", "0").start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    try:
        assert _limits(server.proc.pid) == (hard, hard)
        lam = server.client()
        lam.create_function(
            FunctionName="limits",
            Role="arn:aws:iam::123456789012:role/x",
            Handler="app.handler",
            Runtime=RUNTIME,
            Code={"ZipFile": make_zip({"app.py": REPORT})},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName="limits", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        resp = lam.invoke(FunctionName="limits", Payload=b"{}")
        assert "FunctionError" not in resp, resp
        # Inside: what nsspawn sets, whatever the server's own limit is.
        if os.geteuid() == 0:  # the namespaced backend (the process one sets none)
            assert json.loads(resp["Payload"].read()) == [1024, 1024]
    finally:
        assert server.stop() == 0
