"""Choosing the backend at start-up: namespaced with nothing to report on a
root host with cgroups (this project's machines), and no silent fallback:
where no sandbox can start, the server refuses, says why and how to fix
it, and runs functions unisolated only with --sandbox process."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import pytest
import requests

from lambdalet.sandbox import select
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot


def test_full_isolation_here(runtime_root, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend, reasons = select.choose_backend(runtime_root, tmp_path)
    try:
        assert isinstance(backend, NamespacedBackend), reasons
        assert reasons == []  # every wall check passed, too
        assert all(backend.protections().values()), backend.protections()
    finally:
        backend.close()


def test_the_probe_looks_at_the_walls_from_inside(runtime_root, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = NamespacedBackend(runtime_root)
    try:
        checks = select.probe(backend, runtime_root)
    finally:
        backend.close()
    assert [c.name for c in checks if not c.ok] == []
    assert {c.name for c in checks} >= {
        "AF_VSOCK sockets refused",
        "/proc/cmdline is not the host's",
        "/proc/self/mountinfo names no host path",
    }


def test_a_weak_wall_is_reported(runtime_root):
    """What the probe saw, judged: a sandbox without the filter, with the
    host's command line and a bind naming a host path fails every check."""
    host = "BOOT_IMAGE=/vmlinuz root=/dev/vda\n"
    seen = {
        "vsock": 0,
        "cmdline": host,
        "status": "Seccomp:\t0\nNoNewPrivs:\t1\n",
        "mountinfo": "96 68 254:0 /srv/data/code/abc /var/task ro,nosuid - ext4 /dev/vda rw\n"
        "69 68 254:0 /usr /usr ro,nosuid - ext4 /dev/vda rw\n",
    }
    checks = select.check_walls(seen, host)
    assert [c.ok for c in checks] == [False, False, False, False]
    assert "/var/task <- /srv/data/code/abc" in checks[-1].seen


def test_a_failing_probe_refuses_to_run_functions_unisolated(runtime_root, tmp_path, monkeypatch):
    def broken(backend, root):
        raise OSError(1, "probe: pretend the kernel said no")

    monkeypatch.setattr(select, "probe", broken)
    with pytest.raises(select.SandboxUnavailable) as caught:
        select.choose_backend(runtime_root, tmp_path)
    text = str(caught.value)
    assert "pretend the kernel said no" in text and "lambdalet doctor" in text and "--sandbox process" in text


def _interpreter_under(directory: pathlib.Path) -> pathlib.Path:
    """A copy of this interpreter's binary under directory, as `python3 -m
    venv --copies` makes one (its libraries stay where they are)."""
    binary = pathlib.Path(os.path.realpath(sys._base_executable))
    copy = directory / "bin" / binary.name
    copy.parent.mkdir(parents=True)
    shutil.copy2(binary, copy)
    return copy


def test_an_interpreter_the_sandbox_cannot_mount_is_refused_with_a_fix(tmp_path):
    assert str(tmp_path).startswith("/tmp/")
    root = RuntimeRoot.create(tmp_path / "runtime")
    root.python = str(_interpreter_under(tmp_path / "py"))
    with pytest.raises(select.SandboxUnavailable) as caught:
        select.choose_backend(root, tmp_path)
    assert "hidden by the sandbox's /tmp" in caught.value.why
    assert "virtual environment elsewhere" in caught.value.fix and "--copies" in caught.value.fix


def _serve(
    python: str, data_dir: pathlib.Path, *extra: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`lambdalet serve` under python, with this venv's packages importable
    and no other site-packages (-S; site.addsitedir runs the editable
    install's .pth), stopped with SIGTERM once it has printed its banner."""
    boot = (
        f"import site, sys; site.addsitedir({sysconfig.get_paths()['purelib']!r}); "
        "from lambdalet.gateway.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.Popen(
        [python, "-S", "-c", boot, "serve", "--port", "0", "--data-dir", str(data_dir), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    out = []
    assert proc.stdout is not None
    for line in proc.stdout:
        out.append(line)
        if line.startswith("lambdalet serving the Lambda API on "):
            url = line.split()[-1]
        if line.startswith("  export AWS_ENDPOINT_URL="):
            assert requests.get(url + "/health", timeout=10).status_code == 200  # up, signals handled
            proc.terminate()
    stdout = "".join(out)
    stderr = proc.stderr.read() if proc.stderr else ""
    code = proc.wait(timeout=timeout)
    proc.stdout.close()
    if proc.stderr:
        proc.stderr.close()
    return subprocess.CompletedProcess(proc.args, code, stdout, stderr)


def test_the_server_refuses_to_start_without_isolation(tmp_path):
    """The user's case: an interpreter where no sandbox can mount it. The
    server must not fall back to plain root processes by itself."""
    python = _interpreter_under(tmp_path / "py")
    env = {"PYTHONHOME": sys.base_prefix}  # a bare copy finds its standard library here
    refused = _serve(str(python), tmp_path / "data", env=env)
    assert refused.returncode == 2, refused
    assert "serving the Lambda API" not in refused.stdout
    assert "functions cannot be isolated on this host" in refused.stderr
    assert "hidden by the sandbox's /tmp" in refused.stderr and "--sandbox process" in refused.stderr
    # Asked for explicitly, plain processes run, and the banner says so.
    unisolated = _serve(str(python), tmp_path / "data", "--sandbox", "process", env=env)
    assert unisolated.returncode == 0, unisolated
    assert "sandbox backend: process" in unisolated.stdout
    assert "functions are NOT isolated from this host" in unisolated.stdout
    assert "protections on: none" in unisolated.stdout


def test_a_venv_made_with_copies_under_tmp_is_isolated(tmp_path):
    """`python3 -m venv --copies` under /tmp: workers run the interpreter the
    venv was made from, which the sandbox can mount."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    venv = tmp_path / "venv"
    subprocess.run(
        [os.path.realpath(sys._base_executable), "-m", "venv", "--copies", "--without-pip", str(venv)], check=True, capture_output=True
    )
    started = _serve(str(venv / "bin" / "python"), tmp_path / "data")
    assert started.returncode == 0, started
    assert "sandbox backend: namespaced" in started.stdout, started.stdout
    assert "WARNING" not in started.stdout, started.stdout


def test_doctor_and_the_start_up_lines_report_the_walls(server, tmp_path):
    from helpers import lambdalet_argv

    banner = "".join(server.output)
    assert "seccomp_allow_list, socket_family_filter, proc_host_info_masked" in banner
    assert "seccomp allow-list: " in banner and "sockets: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (route only)" in banner
    doctor = subprocess.run(lambdalet_argv("--data-dir", str(tmp_path / "data"), "doctor"), capture_output=True, text=True, timeout=120)
    assert doctor.returncode == 0, doctor.stderr
    out = doctor.stdout
    for line in (
        "  on   seccomp_allow_list",
        "  on   socket_family_filter",
        "  on   proc_host_info_masked",
        "sockets: AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (route only)",
        "fixed text over /proc/cmdline, /proc/loadavg, /proc/sys/kernel/random/boot_id",
        "  ok   AF_VSOCK sockets refused (EAFNOSUPPORT)",
        "  ok   /proc/cmdline is not the host's",
        "  ok   /proc/self/mountinfo names no host path",
    ):
        assert line in out, out
    # No protection off and no wall check failed. (Runtime lines may say a
    # language CANNOT RUN on this host: that is about toolchains, not walls.)
    bad = [line for line in out.splitlines() if line.startswith(("WARNING", "  OFF", "  NOT ")) and "runtime" not in line]
    assert not bad, out
