"""The data directory: one server at a time, and nobody else may read it."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import pytest
from helpers import ServerProcess, lambdalet_argv, make_zip, still_running, wait_for

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"


def _serve_fails(data_dir) -> subprocess.CompletedProcess:
    return subprocess.run(lambdalet_argv("serve", "--port", "0", "--data-dir", str(data_dir)), capture_output=True, text=True, timeout=30)


def test_a_second_server_on_one_data_dir_is_refused_naming_the_first(tmp_path):
    data = tmp_path / "data"
    first = ServerProcess(data).start()
    try:
        second = _serve_fails(data)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"in use by another lambdalet server (pid {first.proc.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        # The first one carries on, and still owns its schedules and queue.
        assert first.proc.poll() is None
        assert first.client().list_functions()["Functions"] == []
        procs = first.descendants()
    finally:
        code = first.stop(signal.SIGKILL)
    assert code == -signal.SIGKILL
    # The kernel dropped the lock with the process: a successor starts at once
    # (even if a worker of the killed server has not noticed yet).
    second = ServerProcess(data).start()
    try:
        assert second.client().list_functions()["Functions"] == []
    finally:
        assert second.stop() == 0
    wait_for(lambda: not still_running(procs), timeout=30)


PY = f"python{sys.version_info[0]}.{sys.version_info[1]}"


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _loose(data_dir) -> list[str]:
    """Everything in data_dir that is not 0600 (files) or 0700 (directories),
    outside the trees sandboxes mount."""
    from lambdalet.gateway.app.datadir import SHARED_WITH_SANDBOXES

    bad = []
    for dirpath, dirnames, filenames in os.walk(data_dir):
        rel = os.path.relpath(dirpath, data_dir)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d)) not in SHARED_WITH_SANDBOXES]
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                continue
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{os.path.relpath(path, data_dir)} {oct(stat.S_IMODE(st.st_mode))}")
    return bad


@pytest.mark.parametrize("history", ["fresh", "left_open"])
def test_the_data_dir_is_0700_and_every_file_in_it_0600(tmp_path, history):
    data = tmp_path / "data"
    if history == "left_open":
        # As an earlier version (or a 022 umask) left it: a used data dir, opened up.
        srv = ServerProcess(data).start()
        name = "perm-old"
        lam = srv.client()
        lam.create_function(
            FunctionName=name,
            Runtime=PY,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    return 1\n"})},
            Environment={"Variables": {"SECRET": "s3cr3t"}},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        assert srv.stop() == 0
        for dirpath, dirnames, filenames in os.walk(data):
            for d in dirnames:
                os.chmod(os.path.join(dirpath, d), 0o755)
            for f in filenames:
                if not os.path.islink(os.path.join(dirpath, f)):
                    os.chmod(os.path.join(dirpath, f), 0o644)
        os.chmod(data, 0o755)
        assert _loose(data)
    srv = ServerProcess(data).start()
    try:
        lam = srv.client()
        name = f"perm-{history}"
        lam.create_function(
            FunctionName=name,
            Runtime=PY,
            Role=ROLE,
            Handler="app.handler",
            Code={"ZipFile": make_zip({"app.py": "def handler(e, c):\n    print('logged')\n    return 1\n"})},
            Environment={"Variables": {"SECRET": "s3cr3t"}},
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        assert lam.invoke(FunctionName=name)["StatusCode"] == 200
        assert lam.invoke(FunctionName=name, InvocationType="Event")["StatusCode"] == 202
        # A function still runs from its code: sandboxes read what they mount.
        assert lam.invoke(FunctionName=name)["Payload"].read() == b"1"
        assert _mode(data) == 0o700
        names = {p.name for p in data.iterdir()}
        # The files the issue names are there, and private.
        for must in (
            "lambdalet.db",
            "lambdalet.db-wal",
            "lambdalet.db-shm",
            "queue.db",
            "queue.db-wal",
            "meter.bin",
            "credentials",
            "server.lock",
        ):
            assert must in names, sorted(names)
        assert list((data / "code" / "blobs").iterdir())
        assert list((data / "calls-journal").iterdir()) or (data / "usage.db").exists()
        assert _loose(data) == []
    finally:
        assert srv.stop() == 0
    assert _loose(data) == []
