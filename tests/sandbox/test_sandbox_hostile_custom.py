"""The hostile-function table against custom runtimes (provided.al2023).

A custom runtime's processes are not forks of the Python worker: its
`bootstrap` is exec'd, then execs or forks whatever it likes. Every
protection must hold for them all the same. So:

- every row of hostile_rows.py runs again behind a shell-script bootstrap
  that execs a small Runtime API client (tests/custom_runtimes/
  probe_runtime.py, mode `handler`), which calls the row's handler;
- the resource rows are written in /bin/sh itself: a memory hog, a CPU
  spin, a fork bomb, kill(-1) and a daemonised child, each with its safe
  outcome (Runtime.OutOfMemory, a timeout and a fresh sandbox, contained,
  only its own child killed, killed with its sandbox).

The server is the session's; a bystander function must keep answering.
"""

from __future__ import annotations

import json
import os
import pathlib
import platform
import time

import pytest
import sandbox_probe
from helpers import make_zip, wait_for
from hostile_rows import ROWS

from lambdalet.sandbox.runtime_root import python_executable

ROLE = "arn:aws:iam::123456789012:role/lambdalet-test"
PROBE = (pathlib.Path(__file__).parents[1] / "custom_runtimes" / "probe_runtime.py").read_text()
PYTHON = python_executable()

# A Runtime API client in /bin/sh and curl; each event (a JSON string)
# names what to do.
SHELL_RUNTIME = r"""#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation"
while true; do
  HEADERS=/tmp/headers
  EVENT=$(curl -sS -D "$HEADERS" "$API/next")
  RID=$(tr -d '\r' < "$HEADERS" | sed -n 's/^[Ll]ambda-[Rr]untime-[Aa]ws-[Rr]equest-[Ii]d: *//p')
  case "$EVENT" in
    '"hog"') X=$(head -c 200000000 /dev/zero | tr '\000' a); RESULT="\"survived ${#X}\"";;
    '"spin"') echo x > /tmp/marker; while :; do :; done;;
    '"look"') if [ -e /tmp/marker ]; then RESULT=true; else RESULT=false; fi;;
    '"ns"') RESULT="\"$(readlink /proc/self/ns/pid)\"";;
    '"bomb"') bomb() { bomb | bomb & }; bomb; sleep 600;;
    '"daemon"') setsid sleep 3600 </dev/null >/dev/null 2>&1 & RESULT="\"$(readlink /proc/self/ns/pid)\"";;
    '"kill"') sleep 3600 & CHILD=$!; kill -9 -1; wait $CHILD; RESULT=$?;;
    *) RESULT='"still here"';;
  esac
  curl -sS -X POST "$API/$RID/response" -d "$RESULT" > /dev/null
done
"""

BYSTANDER = "def handler(event, context):\n    return 'still here'\n"


@pytest.fixture(scope="module")
def bystander(lam):
    import sys

    name = "hostile-custom-bystander"
    lam.create_function(
        FunctionName=name,
        Role=ROLE,
        Handler="app.handler",
        Runtime=f"python{sys.version_info[0]}.{sys.version_info[1]}",
        Code={"ZipFile": make_zip({"app.py": BYSTANDER})},
    )
    lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    yield name
    lam.delete_function(FunctionName=name)


@pytest.fixture
def deploy(lam, fn_name):
    made: list[str] = []

    def _deploy(files: dict, **kwargs) -> str:
        name = f"{fn_name}-{len(made)}"
        lam.create_function(
            FunctionName=name,
            Role=ROLE,
            Runtime="provided.al2023",
            Handler="hostile",
            Code={"ZipFile": make_zip(files, {"bootstrap": 0o755})},
            **kwargs,
        )
        lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
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
    assert resp["ResponseMetadata"]["RetryAttempts"] == 0, resp["ResponseMetadata"]
    return resp, json.loads(resp["Payload"].read())


def _still_serving(lam, bystander: str) -> None:
    resp, body = _invoke(lam, bystander)
    assert "FunctionError" not in resp and body == "still here"


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_row_behind_a_shell_bootstrap(row, lam, server, deploy, bystander):
    if row.x86_64_only and platform.machine() != "x86_64":
        pytest.skip("x86_64 ABI row")
    event = dict(row.event or {})
    if "port" in event:
        event["port"] = server.port
    if "data_dir" in event:
        event["data_dir"] = str(server.data_dir)
    bootstrap = f"#!/bin/sh\nexec {PYTHON} -I -S /var/task/probe_runtime.py handler\n"
    name = deploy({"bootstrap": bootstrap, "probe_runtime.py": PROBE, "app.py": sandbox_probe.as_handler(row.snippet)}, Timeout=30)
    resp, reports = _invoke(lam, name, event)
    assert "FunctionError" not in resp, reports
    assert reports and "exception" not in reports[-1], reports
    row.check(reports)
    _still_serving(lam, bystander)


def test_memory_hog_in_sh_is_runtime_out_of_memory(lam, deploy, bystander):
    name = deploy({"bootstrap": SHELL_RUNTIME}, MemorySize=128, Timeout=60)
    resp, body = _invoke(lam, name, "hog")
    assert resp.get("FunctionError") == "Unhandled", body
    assert body["errorType"] == "Runtime.OutOfMemory"
    _still_serving(lam, bystander)


def test_cpu_spin_in_sh_times_out_and_the_next_call_gets_a_fresh_sandbox(lam, deploy, bystander):
    name = deploy({"bootstrap": SHELL_RUNTIME}, Timeout=1)
    resp, body = _invoke(lam, name, "spin")
    assert resp.get("FunctionError") == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 1.00 seconds")
    resp, body = _invoke(lam, name, "look")
    assert "FunctionError" not in resp and body is False
    _still_serving(lam, bystander)


def test_fork_bomb_in_sh_is_contained_and_ends_with_its_sandbox(lam, deploy, bystander):
    name = deploy({"bootstrap": SHELL_RUNTIME}, Timeout=3, MemorySize=512)
    _, ns = _invoke(lam, name, "ns")
    resp, body = _invoke(lam, name, "bomb")
    assert resp.get("FunctionError") == "Unhandled"
    assert body["errorMessage"].endswith("Task timed out after 3.00 seconds")
    _still_serving(lam, bystander)
    wait_for(lambda: not _pids_in_pid_namespace(ns), timeout=30)


def test_kill_minus_one_in_sh_only_reaches_its_own_child(lam, deploy, bystander):
    name = deploy({"bootstrap": SHELL_RUNTIME})
    resp, status = _invoke(lam, name, "kill")
    assert "FunctionError" not in resp and status == 128 + 9
    resp, body = _invoke(lam, name, "other")  # the runtime itself survived
    assert body == "still here"
    _still_serving(lam, bystander)


def test_daemonised_child_of_a_shell_bootstrap_dies_with_its_sandbox(lam, deploy, bystander):
    name = deploy({"bootstrap": SHELL_RUNTIME})
    resp, ns = _invoke(lam, name, "daemon")
    assert "FunctionError" not in resp, ns
    # The shell answers once it has forked the daemon, which may not have
    # exec'd sleep yet: look for it for a while.
    deadline = time.monotonic() + 10
    while not (daemons := [pid for pid in _pids_in_pid_namespace(ns) if _comm(pid) == "sleep"]):
        assert time.monotonic() < deadline, "the daemon should be running while its sandbox lives"
        time.sleep(0.05)
    lam.delete_function(FunctionName=name)
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") and _comm(pid) == "sleep" for pid in daemons):
        assert time.monotonic() < deadline, "a daemonised child outlived its sandbox"
        time.sleep(0.05)
    _still_serving(lam, bystander)


# What a runtime can try against the Runtime API itself, from inside its
# sandbox: the API is the gateway's, so each must stay the runtime's problem.
API_ABUSE = """
import errno, os, socket, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
out = {}
# Take the port over: it is bound and listening, without SO_REUSEPORT.
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((host, int(port)))
    out["bind"] = 0
except OSError as e:
    out["bind"] = e.errno
s.close()
# Many connections: the gateway keeps a few dozen, closes the rest.
conns = []
for _ in range(200):
    c = socket.create_connection((host, int(port)))
    conns.append(c)
time.sleep(0.3)
closed = 0
for c in conns:
    c.settimeout(0.01)
    try:
        if c.recv(1) == b"":
            closed += 1
    except (socket.timeout, BlockingIOError):
        pass
    except OSError:
        closed += 1
out["closed_of_200"] = closed
for c in conns:
    c.close()
# A head past 64 KiB, and bytes that are not HTTP.
big = socket.create_connection((host, int(port)))
big.sendall(b"GET /2018-06-01/ping HTTP/1.1\\r\\nX: " + b"a" * 70000)
big.settimeout(5)
out["big_head"] = big.recv(64).split(b"\\r\\n")[0].decode()
big.close()
junk = socket.create_connection((host, int(port)))
junk.sendall(b"\\x16\\x03\\x01 not http at all\\r\\n\\r\\n")
junk.settimeout(5)
out["junk"] = junk.recv(64).split(b"\\r\\n")[0].decode()
junk.close()
report(**out)
"""


def test_runtime_api_abuse_stays_the_runtimes_problem(lam, deploy, bystander):
    bootstrap = f"#!/bin/sh\nexec {PYTHON} -I -S /var/task/probe_runtime.py handler\n"
    name = deploy({"bootstrap": bootstrap, "probe_runtime.py": PROBE, "app.py": sandbox_probe.as_handler(API_ABUSE)}, Timeout=30)
    resp, reports = _invoke(lam, name, {})
    assert "FunctionError" not in resp, reports
    seen = reports[-1]
    assert "exception" not in seen, seen
    assert seen["bind"] == 98  # EADDRINUSE
    assert seen["closed_of_200"] >= 200 - 32
    assert seen["big_head"] == "HTTP/1.1 431 Request Header Fields Too Large"
    assert seen["junk"] == "HTTP/1.1 400 Bad Request"
    resp, reports = _invoke(lam, name, {})  # and the runtime's own connection still serves it
    assert "FunctionError" not in resp
    _still_serving(lam, bystander)


def _pids_in_pid_namespace(ns_link: str) -> list[int]:
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
