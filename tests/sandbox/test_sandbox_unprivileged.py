"""The namespaced backend without root, end to end in Python.

Runs as nobody (setpriv) with a system interpreter of the same version,
from a world-readable copy of the package: what a user's edge box without
root gets. Isolation holds through an unprivileged user namespace; the
limits fall back to rlimits and every weaker protection is reported."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import msgspec
import pytest

import lambdalet.csrc
import lambdalet.runtime
import lambdalet.sandbox

SCRIPT = r"""
import json, os, pathlib, sys, tempfile
sys.path.insert(0, sys.argv[1])
from lambdalet.sandbox.select import choose_backend
from lambdalet.sandbox.runtime_root import RuntimeRoot
from lambdalet.sandbox.spec import SandboxSpec
rr = RuntimeRoot.create(pathlib.Path(tempfile.mkdtemp()) / "rt")
backend, reasons = choose_backend(rr, None)
probe = ("import json, os, resource;"
         "status = dict(l.split(':', 1) for l in open('/proc/self/status').read().splitlines());"
         "os.write(3, json.dumps([os.getuid(), status['Seccomp'].strip(), int(status['CapEff'], 16),"
         " resource.getrlimit(resource.RLIMIT_DATA)[0], sorted(os.listdir('/var/task'))]).encode())")
sandbox = backend.spawn_command(
    SandboxSpec(instance_id="unpriv", function_name="f", code_dir=sys.argv[2], memory_mb=64),
    [rr.python, "-I", "-S", "-c", probe])
inside = json.loads(sandbox.control.recv(4096))
sandbox.destroy()
# A Python worker, forked from the zygote (started by this first spawn).
worker = backend.spawn(SandboxSpec(instance_id="unpriv-worker", function_name="f", code_dir=sys.argv[2], memory_mb=64))
ready = worker.control.recv(64)
forked = backend.zygote is not None
worker.destroy()
# A custom runtime: the worker opens the Runtime API's listening socket in
# the sandbox's own network namespace (no setns, which takes root), hands
# it over, and execs the bootstrap, whose `next` then arrives on it.
import socket
from lambdalet.runtime.protocol import Bootstrap, FrameReader, encode
custom = backend.spawn(SandboxSpec(instance_id="unpriv-custom", function_name="f", code_dir=sys.argv[2], memory_mb=64))
reader = FrameReader("from_worker")
custom.control.sendall(encode(Bootstrap(["/var/task/bootstrap"], {"PATH": "/usr/bin:/bin"}, "/var/task", "127.0.0.1", 9001)))
fds, msgs = [], []
while not any(type(m).__name__ == "Launched" for m in msgs):
    data, got, _, _ = socket.recv_fds(custom.control, 65536, 2)
    fds += got
    msgs += reader.feed(data)
listener = socket.socket(fileno=fds[0])
os.close(fds[1])
listener.settimeout(30)
conn, _ = listener.accept()
conn.settimeout(30)
request = conn.recv(4096).split(b"\r\n")[0].decode()
conn.close()
listener.close()
custom.destroy()
print(json.dumps({"uid": os.getuid(), "backend": backend.name, "reasons": reasons,
                  "protections": backend.protections(), "inside": inside,
                  "worker_ready": ready.hex(), "zygote": forked,
                  "custom": [m.port for m in msgs if type(m).__name__ == "Launched"] + [request]}))
backend.close()
"""


def test_without_root_through_an_unprivileged_user_namespace(tmp_path):
    setpriv = shutil.which("setpriv")
    system_python = f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to become an ordinary user")
    if (
        not os.path.exists(system_python)
        or subprocess.run([system_python, "-c", "import _cffi_backend"], capture_output=True).returncode != 0
    ):
        pytest.skip(f"needs {system_python} with cffi's backend, reachable by an ordinary user")
    tree = pathlib.Path(tempfile.mkdtemp(prefix="lambdalet-unpriv-"))
    try:
        pkg = tree / "lambdalet"
        ignore = shutil.ignore_patterns("__pycache__", "*.c", "*.h", "build_native.py")
        for mod in (lambdalet.sandbox, lambdalet.runtime, lambdalet.csrc):
            shutil.copytree(pathlib.Path(mod.__file__).parent, pkg / mod.__name__.split(".")[-1], ignore=ignore)
        shutil.copytree(pathlib.Path(msgspec.__file__).parent, tree / "msgspec", ignore=ignore)
        code = tree / "code"
        code.mkdir()
        (code / "app.py").write_text("def handler(event, context):\n    return 1\n")
        (code / "bootstrap").write_text('#!/bin/sh\nexec curl -sS "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/invocation/next"\n')
        for path in [tree, *tree.rglob("*")]:
            executable = path.suffix == ".so" or path.name == "bootstrap"
            os.chmod(path, 0o755 if path.is_dir() else 0o644 | (0o111 if executable else 0))
        run = subprocess.run(
            [
                setpriv,
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
                "--bounding-set=-all",
                system_python,
                "-I",
                "-c",
                SCRIPT,
                str(tree),
                str(code),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            cwd="/",
        )
        assert run.returncode == 0, run.stderr
        seen = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tree)
    assert seen["uid"] == 65534 and seen["backend"] == "namespaced"
    uid, seccomp, cap_eff, data_limit, task = seen["inside"]
    assert (uid, seccomp, cap_eff, data_limit, task) == (993, "2", 0, 64 << 20, ["app.py", "bootstrap"])
    assert seen["custom"] == [9001, "GET /2018-06-01/runtime/invocation/next HTTP/1.1"]
    assert seen["zygote"] is True and seen["worker_ready"] != ""  # a Ready frame arrived
    off = {k for k, v in seen["protections"].items() if not v}
    assert off == {"memory_limit", "cpu_limit", "pids_limit", "host_pids_cap", "idle_freeze"}
    assert any("without root" in r for r in seen["reasons"])
    assert any("protections off: memory_limit, cpu_limit, pids_limit, host_pids_cap, idle_freeze" in r for r in seen["reasons"])
