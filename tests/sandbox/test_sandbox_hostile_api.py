"""The hostile-function table through the real server and the Lambda API.

Each row of hostile_rows.py is deployed as a function (its snippet wrapped
by sandbox_probe.as_handler) and invoked with boto3; the payload is the
row's report list, checked by the same check as the direct run. Resource
rows check Lambda's own outcome (Runtime.OutOfMemory, a timeout). The
server must keep serving a bystander function throughout.

The server is the session's (tests/conftest.py), with the default sandbox:
namespaced on this machine, as `lambdalet doctor` reports."""

from __future__ import annotations

import json
import platform

import pytest
import sandbox_probe
from hostile_rows import ROWS

BYSTANDER = "def handler(event, context):\n    return 'still here'\n"


@pytest.fixture(scope="module")
def bystander(lam, server):
    import sys

    from helpers import make_zip

    name = "hostile-bystander"
    lam.create_function(
        FunctionName=name,
        Role="arn:aws:iam::123456789012:role/lambdalet-test",
        Handler="app.handler",
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Code={"ZipFile": make_zip({"app.py": BYSTANDER})},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield name
    lam.delete_function(FunctionName=name)


@pytest.fixture
def deploy(deploy, lam):
    """The session's deploy, deleting what it made afterwards: these tests
    share the session's server with the rest of the suite."""
    made: list[str] = []

    def _deploy(*args, **kwargs):
        name = deploy(*args, **kwargs)
        made.append(name)
        return name

    yield _deploy
    for name in made:
        try:
            lam.delete_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            pass


def _invoke(lam, name: str, event=None) -> tuple[dict, object]:
    resp = lam.invoke(FunctionName=name, Payload=json.dumps(event).encode())
    # botocore quietly retries a 500; a function's behaviour must never cause one.
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0, resp["ResponseMetadata"]
    return resp, json.loads(resp["Payload"].read())


@pytest.fixture(scope="module", autouse=True)
def bystander_traffic(server, bystander):
    """Calls the bystander over and over on its own connection while the
    rows run; at the end every one of those calls must have succeeded."""
    import threading

    client = server.client()
    stop = threading.Event()
    results: list[object] = []

    def loop():
        while not stop.is_set():
            try:
                resp = client.invoke(FunctionName=bystander, Payload=b"null")
                body = json.loads(resp["Payload"].read())
                results.append(resp.get("FunctionError", body))
            except Exception as exc:  # collected and asserted below
                results.append(repr(exc))
            stop.wait(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(timeout=60)
    assert results, "the bystander was never called"
    assert all(r == "still here" for r in results), [r for r in results if r != "still here"][:5]


def _still_serving(lam, bystander: str) -> None:
    resp, body = _invoke(lam, bystander)
    assert "FunctionError" not in resp and body == "still here"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_row_through_the_api(row, lam, server, deploy, bystander):
    if row.x86_64_only and platform.machine() != "x86_64":
        pytest.skip("x86_64 ABI row")
    event = dict(row.event or {})
    if "port" in event:
        event["port"] = server.port  # the server's own port
    if "data_dir" in event:
        event["data_dir"] = str(server.data_dir)
    name = deploy({"app.py": sandbox_probe.as_handler(row.snippet)}, Timeout=30)
    resp, reports = _invoke(lam, name, event)
    assert "FunctionError" not in resp, reports
    assert reports and "exception" not in reports[-1], reports
    row.check(reports)
    _still_serving(lam, bystander)


def test_memory_hog_is_runtime_out_of_memory(lam, deploy, bystander):
    name = deploy(
        {
            "app.py": "def handler(event, context):\n"
            "    hog = bytearray(256 * 1024 * 1024)\n"
            "    for i in range(0, len(hog), 4096):\n"
            "        hog[i] = 1\n"
            "    return 'survived'\n"
        },
        MemorySize=128,
    )
    resp, body = _invoke(lam, name)
    assert resp.get("FunctionError") == "Unhandled"
    assert body["errorType"] == "Runtime.OutOfMemory"
    _still_serving(lam, bystander)


def test_cpu_spin_times_out_and_the_next_call_gets_a_fresh_instance(lam, deploy, bystander):
    name = deploy(
        {
            "app.py": "import os\n"
            "def handler(event, context):\n"
            "    if event == 'spin':\n"
            "        open('/tmp/marker', 'w').write('x')\n"
            "        while True:\n"
            "            pass\n"
            "    return os.path.exists('/tmp/marker')\n"
        },
        Timeout=1,
    )
    resp, body = _invoke(lam, name, "spin")
    assert resp.get("FunctionError") == "Unhandled"
    assert "timed out" in body["errorMessage"]
    # A fresh instance: the previous tenant's /tmp is gone.
    resp, body = _invoke(lam, name, "look")
    assert "FunctionError" not in resp and body is False
    _still_serving(lam, bystander)


def test_fork_bomb_is_contained(lam, deploy, bystander):
    name = deploy(
        {
            "app.py": sandbox_probe.as_handler("""
import signal
children = 0
try:
    while True:
        pid = os.fork()
        if pid == 0:
            try:
                signal.pause()
            finally:
                os._exit(0)
        children += 1
except OSError as e:
    report(children=children, errno=e.errno)
""")
        },
        MemorySize=1024,
        Timeout=30,
    )
    resp, reports = _invoke(lam, name)
    assert "FunctionError" not in resp, reports
    assert reports[-1]["errno"] == 11 and reports[-1]["children"] < 1024
    _still_serving(lam, bystander)


def test_kill_minus_one_only_reaches_its_own_sandbox(lam, deploy, bystander):
    # kill(-1) spares the caller and PID 1: only the function's own child dies.
    name = deploy(
        {
            "app.py": sandbox_probe.as_handler("""
import subprocess
child = subprocess.Popen(['sleep', '3600'])
os.kill(-1, 9)
report(child_status=child.wait())
""")
        }
    )
    resp, reports = _invoke(lam, name)
    assert "FunctionError" not in resp, reports
    assert reports == [{"child_status": -9}]
    _still_serving(lam, bystander)


def test_a_daemonised_child_dies_with_its_sandbox(lam, deploy, bystander):
    import os
    import time

    name = deploy(
        {
            "app.py": sandbox_probe.as_handler("""
import subprocess
p = subprocess.Popen(['sleep', '3600'], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
report(pid=p.pid, ns=os.readlink('/proc/self/ns/pid'))
""")
        }
    )
    resp, reports = _invoke(lam, name)
    assert "FunctionError" not in resp, reports
    ns = reports[-1]["ns"]
    daemons = [pid for pid in _pids_in_pid_namespace(ns) if _comm(pid) == "sleep"]
    assert daemons, "the daemon should be running while its sandbox lives"
    lam.delete_function(FunctionName=name)
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") and _comm(pid) == "sleep" for pid in daemons):
        assert time.monotonic() < deadline, "a daemonised child outlived its sandbox"
        time.sleep(0.05)
    _still_serving(lam, bystander)


def _pids_in_pid_namespace(ns_link: str) -> list[int]:
    import os

    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns_link:
                    out.append(int(entry))
            except OSError:
                pass
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def test_a_worker_that_exits_after_returning_is_replaced_before_the_next_call(lam, deploy, bystander):
    from helpers import wait_for
    from hostile_rows import EXIT_AFTER_RETURNING

    name = deploy({"app.py": EXIT_AFTER_RETURNING})
    resp, first = _invoke(lam, name, "exit-after")
    assert "FunctionError" not in resp and first["calls"] == 1, first
    # The worker is gone, and with it its sandbox (its PID 1 leaves with it).
    wait_for(lambda: not _pids_in_pid_namespace(first["pid_ns"]))
    # The next call goes to a fresh instance, as on AWS: no error at all.
    resp, second = _invoke(lam, name, "again")
    assert "FunctionError" not in resp, second
    assert second["calls"] == 1 and second["pid_ns"] != first["pid_ns"]
    _still_serving(lam, bystander)


def test_a_worker_that_exits_during_a_call_is_a_runtime_exit_error(lam, deploy, bystander):
    from hostile_rows import EXIT_AFTER_RETURNING

    name = deploy({"app.py": EXIT_AFTER_RETURNING})
    _invoke(lam, name, "warm")
    resp, body = _invoke(lam, name, "exit-now")
    request_id = resp["ResponseMetadata"]["RequestId"]
    assert resp["FunctionError"] == "Unhandled"
    assert body == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 1",
    }
    resp, body = _invoke(lam, name, "again")
    assert "FunctionError" not in resp and body["calls"] == 1
    _still_serving(lam, bystander)


def test_a_function_finds_no_other_functions_code_digest_in_its_memory(lam, deploy, bystander):
    import base64

    from hostile_rows import SCAN_MEMORY

    # Sandboxes of their own (no spare: /tmp sizes a spare does not have),
    # so the zygote handles each spawn request with its code path in it.
    digests = []
    for i in range(8):
        other = deploy(
            {"app.py": f"def handler(event, context):\n    return {i}\n"}, name=f"digest-other-{i}", EphemeralStorage={"Size": 600 + 97 * i}
        )
        _invoke(lam, other)
        code = lam.get_function(FunctionName=other)["Configuration"]["CodeSha256"]
        digests.append(base64.b64decode(code).hex())
    scanner = deploy(
        {"app.py": sandbox_probe.as_handler(SCAN_MEMORY)}, name="digest-scanner", EphemeralStorage={"Size": 1024}, MemorySize=256
    )
    _, mine = _invoke(lam, scanner, {"a": "lambdalet.runtime", "b": ".worker"})
    assert mine[-1]["found"], mine  # the scan works
    for digest in digests:
        resp, reports = _invoke(lam, scanner, {"a": digest[:32], "b": digest[32:]})
        assert "FunctionError" not in resp, reports
        assert reports[-1]["found"] == [], (digest, reports)
    _still_serving(lam, bystander)
