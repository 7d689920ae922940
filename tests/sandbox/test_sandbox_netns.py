"""Pooled network namespaces: one per sandbox, never reused, lo only, and
out of the sandbox's reach."""

from __future__ import annotations

import os

import sandbox_probe

from lambdalet.sandbox import netns_pool

NET_SNIPPET = """
import socket, fcntl, struct
names = sorted(n for _, n in socket.if_nameindex())
# SIOCSIFFLAGS with lo down: needs CAP_NET_ADMIN over the namespace.
s = socket.socket()
try:
    fcntl.ioctl(s.fileno(), 0x8914, struct.pack('16sh22x', b'lo', 0))
    down = 0
except OSError as e:
    down = e.errno
report(ns=os.readlink('/proc/self/ns/net'), names=names, set_lo_down=down)
os.read(3, 1)
"""


def test_pool_fills_and_sandboxes_get_distinct_fresh_namespaces(backend, python, code_dir):
    pool = backend.netns_pool
    assert pool is not None and pool.wait_full()
    created_before = pool.created
    first = sandbox_probe.start(backend, python, code_dir, NET_SNIPPET)
    second = sandbox_probe.start(backend, python, code_dir, NET_SNIPPET)
    try:
        a = sandbox_probe.read_one(first)
        b = sandbox_probe.read_one(second)
    finally:
        first.destroy()
        second.destroy()
    assert a["ns"] != b["ns"]
    assert a["ns"] != os.readlink("/proc/self/ns/net")
    assert a["names"] == b["names"] == ["lo"]
    # The namespace belongs to the host's user namespace, not the sandbox's.
    assert a["set_lo_down"] == b["set_lo_down"] == 1  # EPERM
    # Both came from the pool (it refills behind them), none was handed out twice.
    assert pool.wait_full() and pool.created >= created_before + 2


def test_a_namespace_is_never_handed_out_twice():
    pool = netns_pool.NetnsPool(size=3)
    try:
        assert pool.wait_full()
        taken = [pool.take() for _ in range(3)]
        assert None not in taken
        inodes = {os.stat(f"/proc/self/fd/{fd}").st_ino for fd in taken}
        assert len(inodes) == 3
        for fd in taken:
            os.close(fd)
    finally:
        pool.close()


def test_statistics_and_the_clone_floor(backend):
    from lambdalet.sandbox import nsspawn

    stats = backend.statistics()
    assert set(stats) == {
        "netns_ready",
        "netns_created",
        "netns_pool_misses",
        "compiled_plans",
        "zygote",
        "zygote_restarts",
        "cgroup_stage_ready",
    }
    assert all(isinstance(v, int) for v in stats.values())
    nsspawn.clone_floor(nsspawn.CLONE_NEWUSER | nsspawn.CLONE_NEWPID | nsspawn.CLONE_NEWNS)
