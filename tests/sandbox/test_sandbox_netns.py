"""Pooled network namespaces: one per sandbox at a time, lo only, and out of
the sandbox's reach. Reuse, and what it must never carry over, is
test_sandbox_netns_reuse.py's."""

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
        "netns_recycled",
        "netns_discarded",
        "compiled_plans",
        "zygote",
        "zygote_restarts",
        "cgroup_stage_ready",
    }
    assert all(isinstance(v, int) for v in stats.values())
    nsspawn.clone_floor(nsspawn.CLONE_NEWUSER | nsspawn.CLONE_NEWPID | nsspawn.CLONE_NEWNS)


def test_only_the_namespaces_own_socket_counts_are_compared():
    # sockstat as a 6.x kernel writes it: orphan, alloc and mem are the
    # whole host's and change with every other tenant; "sockets: used" is
    # the namespace's own (every socket a process made there).
    text = b"sockets: used 431\nTCP: inuse 0 orphan 3 tw 2 alloc 40 mem 7\nUDP: inuse 1 mem 5\nFRAG: inuse 0 memory 0\nNEWPROTO: inuse 9\n"
    assert netns_pool._own_counts(text) == b"sockets: used 431\nTCP: inuse 0 tw 2\nUDP: inuse 1\nFRAG: inuse 0 memory 0\nNEWPROTO: inuse 9"
    assert netns_pool._own_counts(text.replace(b"used 431", b"used 432")) != netns_pool._own_counts(text)
    busier_host = text.replace(b"orphan 3", b"orphan 0").replace(b"alloc 40", b"alloc 1").replace(b"mem 5", b"mem 50")
    assert netns_pool._own_counts(busier_host) == netns_pool._own_counts(text)
    assert netns_pool._own_counts(text.replace(b"tw 2", b"tw 3")) != netns_pool._own_counts(text)


def test_a_reusing_pool_forgets_the_namespaces_that_do_not_come_back():
    # Egress, a failed spawn or a sandbox reaped elsewhere: the fd is
    # dropped, not given back, and its digest must not stay behind.
    pool = netns_pool.NetnsPool(size=2, reuse=True)
    try:
        assert pool.wait_full()
        taken = [pool.take() for _ in range(2)]
        assert None not in taken and pool.wait_full()
        for fd in taken:
            pool.drop(fd)
        assert len(pool._pristine) == pool.ready() == 2
    finally:
        pool.close()


# Every way a process may ask to change its network namespace, tried from
# a sandbox in a pooled one: sysctls, ioctls and rtnetlink requests (other
# netlink protocols are refused by the seccomp filter).
CHANGE_SNIPPET = r"""
import fcntl, socket, struct
res = {}
for name in ('ipv4/ip_forward', 'core/somaxconn', 'ipv4/ping_group_range', 'ipv6/conf/lo/disable_ipv6'):
    try:
        fd = os.open('/proc/sys/net/' + name, os.O_WRONLY)
        os.write(fd, b'1')
        os.close(fd)
        res['sysctl ' + name] = 0
    except OSError as e:
        res['sysctl ' + name] = e.errno
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for name, req, arg in (('SIOCSIFMTU', 0x8922, struct.pack('16si12x', b'lo', 1280)),
                       ('SIOCSIFFLAGS', 0x8914, struct.pack('16sH14x', b'lo', 0))):
    try:
        fcntl.ioctl(s.fileno(), req, arg)
        res[name] = 0
    except OSError as e:
        res[name] = e.errno
def rta(kind, value):
    size = 4 + len(value)
    return struct.pack('=HH', size, kind) + value + bytes(-size % 4)
def rtnl(kind, flags, body):
    n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    n.bind((0, 0))
    n.send(struct.pack('=LHHLL', 16 + len(body), kind, flags | 0x5, 1, 0) + body)  # REQUEST | ACK
    data = n.recv(65536)
    n.close()
    return -struct.unpack_from('=i', data, 16)[0] if struct.unpack_from('=H', data, 4)[0] == 2 else 'no error message'
CREATE = 0x600  # NLM_F_CREATE | NLM_F_EXCL
lo = struct.pack('=BxHiII', 0, 0, 1, 0, 0)
res['link mtu'] = rtnl(16, 0, lo + rta(4, struct.pack('=I', 1280)))
res['link dummy'] = rtnl(16, CREATE, struct.pack('=BxHiII', 0, 0, 0, 0, 0) + rta(3, b'dum0\0') + rta(18, rta(1, b'dummy\0')))
res['address'] = rtnl(20, CREATE, struct.pack('=BBBBI', 2, 8, 0, 0, 1) + rta(2, socket.inet_aton('10.9.9.9')) + rta(1, socket.inet_aton('10.9.9.9')))
res['route'] = rtnl(24, CREATE, struct.pack('=BBBBBBBBI', 2, 0, 0, 0, 254, 3, 0, 1, 0) + rta(4, struct.pack('=i', 1)))
res['rule'] = rtnl(32, CREATE, struct.pack('=BBBBBBBBI', 2, 0, 0, 0, 100, 0, 0, 1, 0) + rta(6, struct.pack('=I', 1000)))
res['neighbour'] = rtnl(28, CREATE, struct.pack('=BxxxiHBB', 2, 1, 0x80, 0, 0) + rta(1, socket.inet_aton('127.0.0.9')))
res['qdisc'] = rtnl(36, CREATE, struct.pack('=BxxxiIII', 0, 1, 0, 0xFFFFFFFF, 0) + rta(1, b'pfifo\0'))
res['nsid'] = rtnl(88, 0, bytes(4) + rta(1, struct.pack('=i', 5)) + rta(3, struct.pack('=I', os.getpid())))
for proto, name in ((12, 'netfilter'), (6, 'xfrm'), (16, 'generic'), (4, 'sock_diag')):
    try:
        socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, proto).close()
        res['netlink ' + name] = 0
    except OSError as e:
        res['netlink ' + name] = e.errno
report(res=res)
"""


def test_the_sandbox_cannot_change_its_pooled_namespace(backend, python, code_dir):
    import errno

    assert backend.netns_pool is not None and backend.netns_pool.wait_full()
    outcome = sandbox_probe.run(backend, python, code_dir, CHANGE_SNIPPET, timeout_s=20)
    res = outcome.last["res"]
    expected = {name: errno.EACCES for name in res if name.startswith("sysctl ")}  # owned by the host's root
    expected.update({name: errno.EPROTONOSUPPORT for name in res if name.startswith("netlink ")})  # seccomp
    expected.update({name: errno.EPERM for name in res if name not in expected})  # no CAP_NET_ADMIN over it
    assert res == expected
