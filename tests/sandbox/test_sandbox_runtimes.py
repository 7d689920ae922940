"""Real runtimes start and work under the seccomp allow-list.

Each runtime runs a probe (tests/sandbox/runtimes/) in a sandbox: threads,
a child process, loopback networking and whatever its runtime does at
start-up (the JVM's threads and GC, V8's JIT and libuv's thread pool, Go's
scheduler and network poller). The probe writes one JSON line to fd 3.
These runtimes are installed on the project's machines: a missing one
fails the test rather than skipping it. Mono comes from Debian's packages
and is not preinstalled, so it alone is skipped, saying so, when absent.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import sandbox_probe

from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot

PROBES = pathlib.Path(__file__).with_name("runtimes")
TOOL_DIRS = ("/usr/local/go/bin", os.path.expanduser("~/.cargo/bin"), "/usr/local/bin", "/usr/bin")


def _tool(name: str, required: bool = True) -> str:
    found = shutil.which(name) or next((f"{d}/{name}" for d in TOOL_DIRS if os.access(f"{d}/{name}", os.X_OK)), None)
    if found is None:
        if required:
            pytest.fail(f"{name} is not installed: this host is meant to have it (docs/architecture.md)")
        pytest.skip(f"{name} is not installed on this host")
    return found


def _build(args: list[str], cwd: pathlib.Path, **env: str) -> None:
    run = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=600, env={**os.environ, **env})
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> pathlib.Path:
    """The code directory the probes run from, as /var/task."""
    path = tmp_path_factory.mktemp("runtimes")
    for probe in PROBES.iterdir():
        shutil.copy(probe, path / probe.name)
    os.chmod(path, 0o755)
    for entry in path.iterdir():
        os.chmod(entry, 0o755)
    return path


def _output(backend, task: pathlib.Path, argv: list[str], env: dict[str, str] | None = None) -> str:
    """What the program wrote to fd 3 before it exited with status 0."""
    spec = sandbox_probe.make_spec(str(task), memory_mb=1024)
    sandbox = backend.spawn_command(spec, argv, env)
    out = b""
    try:
        sandbox.control.settimeout(120)
        while chunk := sandbox.control.recv(65536):
            out += chunk
    finally:
        status = sandbox.destroy()
    assert status == 0, (status, out)
    return out.decode()


def _run(backend, task: pathlib.Path, argv: list[str], env: dict[str, str] | None = None) -> dict:
    """The probe's JSON line."""
    lines = _output(backend, task, argv, env).splitlines()
    assert lines, f"{argv} reported nothing"
    return json.loads(lines[-1])


def _made_executable(task: pathlib.Path, name: str) -> str:
    os.chmod(task / name, 0o755)
    return f"/var/task/{name}"


def test_bin_sh(backend, task):
    assert _run(backend, task, ["/bin/sh", "/var/task/probe.sh"]) == {"sorted": "a b c ", "subshell": "sub", "count": 3, "uid": 993}


def test_node(backend, task):
    node = os.path.realpath(_tool("node"))
    assert _run(backend, task, [node, "/var/task/probe.js"]) == {
        "read": "hello",
        "worker": 42,
        "child": "child",
        "http": "pong",
        "gzip": "zz",
        "random": 8,
        "ifaces": ["lo"],
        "cpus": True,
        "loadavg": 3,
    }


def test_java(backend, task):
    java = os.path.realpath(_tool("java"))  # /etc/alternatives is not in the sandbox
    _build([os.path.join(os.path.dirname(java), "javac"), "-d", ".", "Probe.java"], task)
    os.chmod(task / "Probe.class", 0o644)
    version = _output(backend, task, ["/bin/sh", "-c", f'exec "{java}" -version 2>&3'])
    assert version.startswith(("openjdk version", "java version")) and "Server VM" in version, version
    probe = _run(backend, task, ["/bin/sh", "-c", f'exec "{java}" -cp /var/task Probe >&3'])
    assert probe == {"sum": 140, "loopback": "x", "ifaces": "[lo]", "child": "child", "cpus": probe["cpus"]}
    assert probe["cpus"] >= 1


def test_go_static_binary(backend, task):
    _build([_tool("go"), "build", "-o", "probe-go", "probe.go"], task, CGO_ENABLED="0")
    assert b"statically linked" in subprocess.run(["file", str(task / "probe-go")], capture_output=True).stdout
    assert _run(backend, task, [_made_executable(task, "probe-go")]) == {
        "goroutines": 8,
        "loopback": "x",
        "ifaces": ["lo"],
        "child": "child",
    }


def test_rust_static_binary(backend, task):
    _build([_tool("rustc"), "-O", "-C", "target-feature=+crt-static", "-o", "probe-rs", "probe.rs"], task)
    assert _run(backend, task, [_made_executable(task, "probe-rs")]) == {"sum": 14, "loopback": "x", "child": "child"}


def test_mono(backend, task):
    mono = _tool("mono", required=False)
    _build([_tool("mcs", required=False), "-out:probe.exe", "Probe.cs"], task)
    os.chmod(task / "probe.exe", 0o644)
    # Mono's dllmap lives in /etc/mono, which the sandbox does not bind.
    shutil.copytree("/etc/mono", task / "monocfg" / "mono", dirs_exist_ok=True)
    for path in [task / "monocfg", *(task / "monocfg").rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    assert _run(backend, task, ["/bin/sh", "-c", f'exec "{mono}" /var/task/probe.exe >&3'], {"MONO_CFG_DIR": "/var/task/monocfg"}) == {
        "sum": 140,
        "loopback": "x",
        "child": "child",
    }


def _python(version: str) -> str | None:
    candidates = [shutil.which(f"python{version}"), f"/usr/bin/python{version}", f"/usr/local/bin/python{version}"]
    pyenv = pathlib.Path(os.path.expanduser("~/.pyenv/versions"))
    if pyenv.is_dir():
        candidates += [str(p / "bin" / f"python{version}") for p in sorted(pyenv.glob(f"{version}.*"))]
    for path in candidates:
        if path and os.access(path, os.X_OK):
            real = os.path.realpath(path)
            with open(real, "rb") as f:
                script = f.read(2) == b"#!"  # pyenv's shims need the host's PATH and HOME
            if not script:
                return real
    return None


@pytest.mark.parametrize("version", ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"])
def test_cpython(version, task, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the namespaced backend's full isolation tests run as root")
    python = _python(version)
    if python is None:
        if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
            pytest.fail(f"the running interpreter's version {version} was not found")
        pytest.skip(f"python{version} is not installed on this host")
    root = RuntimeRoot.create(tmp_path / "runtime")
    root.python = python  # its prefix is what the sandbox binds
    backend = NamespacedBackend(root, netns_pool=1)
    try:
        seen = _run(backend, task, [python, "-I", "-S", "/var/task/probe.py"])
    finally:
        backend.close()
    assert seen == {
        "threads": 140,
        "fork": True,
        "subprocess": "hi",
        "asyncio": "x",
        "tls": True,
        "getaddrinfo": 443,
        "interfaces": ["lo"],
        "uuid": 36,
        "loadavg": seen["loadavg"],
        "memory": True,
    }
    # glibc's getloadavg asks sysinfo(), which the filter must allow (glibc's
    # sysconf and the JVM need it) and which reports the host's load.
    assert len(seen["loadavg"]) == 3


def test_awslambdaric(backend, task, runtime_root):
    """AWS's own Python runtime client (a C++ extension on libcurl), from the
    test dependencies, copied into the task for the sandbox's interpreter."""
    import importlib.util

    ric = task / "ric"
    for name in ("awslambdaric", "runtime_client", "simplejson", "snapshot_restore_py"):
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is a test dependency (pip install -e '.[test]')"
        origin = pathlib.Path(spec.origin)
        if spec.submodule_search_locations:
            shutil.copytree(origin.parent, ric / origin.parent.name, dirs_exist_ok=True)
        else:
            ric.mkdir(exist_ok=True)
            shutil.copy(origin, ric / origin.name)
    for path in [ric, *ric.rglob("*")]:
        os.chmod(path, 0o755)
    seen = _run(backend, task, [runtime_root.python, "-I", "/var/task/probe_ric.py"])
    assert seen["posted"] == {"/2018-06-01/runtime/invocation/req-1/response": {"echo": {"hello": "ric"}, "request_id": "req-1"}}, seen[
        "log"
    ]
