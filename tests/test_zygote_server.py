"""The runtime zygote seen from a real server: workers come from it unless
--no-zygote, and a kill -9 of the server leaves nothing of it running."""
from __future__ import annotations

import os
import signal
import sys

import pytest

from helpers import ServerProcess, make_zip, still_running, wait_for


def _zygotes_among(procs) -> list[int]:
    """The zygote and the workers forked from it: they share its argv."""
    found = []
    for pid, _ in procs:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"lambdalet.sandbox.zygote" in f.read():
                    found.append(pid)
        except OSError:
            pass
    return found


@pytest.mark.parametrize("flags, forked", [((), True), (("--no-zygote",), False)])
def test_the_server_forks_workers_from_a_zygote_unless_told_not_to(tmp_path, flags, forked):
    if os.geteuid() != 0:
        pytest.skip("runs the namespaced backend as root")
    srv = ServerProcess(tmp_path, "--spare-sandboxes", "0", *flags).start()
    try:
        lam = srv.client()
        lam.create_function(FunctionName="f", Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                            Role="arn:aws:iam::123456789012:role/r", Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": "import os\ndef handler(e, c):\n    return os.getpid()\n"})})
        assert lam.invoke(FunctionName="f")["Payload"].read() == b"2"  # PID 2 under its own PID 1 either way
        # The zygote and its forks (the worker) carry its command line.
        assert bool(_zygotes_among(srv.descendants())) is forked
    finally:
        srv.stop()


def test_kill_9_of_the_server_takes_the_zygote_and_every_sandbox_with_it(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("runs the namespaced backend as root")
    srv = ServerProcess(tmp_path, "--spare-sandboxes", "0").start()
    try:
        lam = srv.client()
        lam.create_function(FunctionName="f", Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
                            Role="arn:aws:iam::123456789012:role/r", Handler="app.handler",
                            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})})
        assert lam.invoke(FunctionName="f")["Payload"].read() == b"1"
        procs = srv.descendants()
        assert len(procs) >= 3  # the zygote, PID 1 and the worker
    finally:
        srv.stop(signal.SIGKILL)
    wait_for(lambda: not still_running(procs), timeout=10)
