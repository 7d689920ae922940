"""Telemetry delivery makes its socket in a sandbox's network namespace by
the sandbox's pidfd (sandbox/netns_socket.py), never by its pid: once the
sandbox is gone its pid may be another process's, in another namespace,
and the socket must then not be made at all."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess

import pytest

from lambdalet.sandbox.netns_socket import tcp_socket_in

SO_NETNS_COOKIE = 71  # Linux 5.14: which network namespace a socket is in


def _cookie(sock: socket.socket) -> bytes:
    return sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8)


def _netns_inode(pid: int) -> int:
    return os.stat(f"/proc/{pid}/ns/net").st_ino


def _in_own_netns() -> subprocess.Popen:
    # unshare(1) execs sleep in its own process: the pid is the namespace's holder.
    return subprocess.Popen(["unshare", "--net", "sleep", "60"])


def _wait_unshared(proc: subprocess.Popen) -> None:
    host = _netns_inode(os.getpid())
    for _ in range(1000):
        if _netns_inode(proc.pid) != host and os.readlink(f"/proc/{proc.pid}/exe").endswith("sleep"):
            return
        os.sched_yield()
    raise AssertionError("the child never entered its own namespace")


@pytest.fixture
def root():
    if os.geteuid() != 0:
        pytest.skip("entering another network namespace needs root")


def test_a_socket_is_made_in_the_namespace_of_the_pidfds_process(root):
    proc = _in_own_netns()
    pidfd = os.pidfd_open(proc.pid)
    try:
        _wait_unshared(proc)
        with tcp_socket_in(pidfd) as inside, socket.socket() as here:
            assert _cookie(inside) != _cookie(here)
    finally:
        proc.kill()
        proc.wait()
        os.close(pidfd)


def _reuse_pid(pid: int) -> subprocess.Popen | None:
    """A new process in its own namespace with pid, when the kernel hands
    it out (ns_last_pid; other processes of the host may take it first)."""
    for _ in range(50):
        with open("/proc/sys/kernel/ns_last_pid", "w") as f:
            f.write(str(pid - 1))
        proc = _in_own_netns()
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    return None


def test_a_dead_sandboxs_reused_pid_is_not_entered(root):
    gone = _in_own_netns()
    pidfd = os.pidfd_open(gone.pid)
    other = None
    try:
        _wait_unshared(gone)
        gone.send_signal(signal.SIGKILL)
        gone.wait()
        other = _reuse_pid(gone.pid)
        assert other is not None, "could not get the pid handed out again"
        _wait_unshared(other)
        # By pid, the dead sandbox's namespace is now another one's.
        assert _netns_inode(gone.pid) == _netns_inode(other.pid)
        with pytest.raises(OSError) as refused:
            tcp_socket_in(pidfd)
        assert refused.value.errno == errno.ESRCH
    finally:
        os.close(pidfd)
        if other is not None:
            other.kill()
            other.wait()
