"""A pooled network namespace serves the next sandbox only if nothing of the
last one can be seen there. Each row runs a function that tries to leave
something behind (processes, files, sockets of every kind, TIME_WAIT, a
listener kept alive in flight, routes and addresses, multicast reports the
kernel sends after the function is gone), destroys it, and runs an
observer in the namespace the pool hands out next: the observer must find
nothing of it, whether the pool reused the namespace or closed it.

Reuse is off by default (netns_pool.py says why: the multicast rows pass
a check made at the moment the sandbox is gone, and only a second check
after the kernel's report timers catches them), so every row runs on a
default backend and on one that opted in to reuse."""

from __future__ import annotations

import json
import os
import socket
import textwrap

import pytest
import sandbox_probe

from lambdalet.sandbox.namespaced import NamespacedBackend

PORT = 4099
ABSTRACT = "lambdalet-left-behind"


@pytest.fixture(scope="module")
def backends(runtime_root):
    """Two backends with a pool of one namespace: one as the server makes
    it, and one that opted in to reuse (its pool keeps one fresh namespace
    and one given back, so that the next sandbox gets the namespace the
    last one had whenever the pool found it as it was made)."""
    if os.geteuid() != 0:
        pytest.skip("pooled network namespaces need root")
    fds_before = set(os.listdir("/proc/self/fd"))
    made = {
        "default": NamespacedBackend(runtime_root, netns_pool=1),
        "reuse": NamespacedBackend(runtime_root, netns_pool=1, netns_reuse=True),
    }
    for backend in made.values():
        assert backend.netns_pool is not None and backend.netns_pool.recycled_max == 2
    yield made
    for backend in made.values():
        backend.close()
    assert set(os.listdir("/proc/self/fd")) - fds_before == set(), "fds leaked by the pool"


@pytest.fixture(scope="module")
def pooled(backends):
    return backends["default"]


@pytest.fixture(scope="module")
def recycling(backends):
    return backends["reuse"]


def run_in_sandbox(backend, python, code_dir, snippet: str) -> list[dict]:
    outcome = sandbox_probe.run(backend, python, code_dir, snippet, timeout_s=20)
    assert not outcome.timed_out, outcome
    assert outcome.reports and "exception" not in outcome.reports[-1], outcome.reports
    pool = backend.netns_pool
    assert pool.wait_returned(), "the pool did not check the namespace given back"
    assert pool.wait_full(), "the pool did not refill"
    return outcome.reports


NS = "report(ns=os.readlink('/proc/self/ns/net'))\n"

# What the observer reports: everything a process can read about the
# network namespace and the sandbox around it. The interface and protocol
# counters first, before its own traffic moves them.
OBSERVER = NS + textwrap.dedent(
    f"""
    import socket
    counters = {{}}
    for name in ('dev', 'snmp', 'snmp6', 'netstat'):
        with open('/proc/self/net/' + name) as f:
            counters[name] = f.read()
    def table(name):
        with open('/proc/self/net/' + name) as f:
            return f.read().splitlines()[1:]
    def stat_counts(name):
        with open('/proc/self/net/' + name) as f:
            return {{line.split(':')[0]: line.split()[1:3] for line in f}}
    c = socket.socket()
    c.settimeout(2)
    try:
        c.connect(('127.0.0.1', {PORT}))
        connect = 0
    except OSError as e:
        connect = e.errno
    c.close()
    u = socket.socket(socket.AF_UNIX)
    try:
        u.bind('\\0{ABSTRACT}')
        abstract = 0
    except OSError as e:
        abstract = e.errno
    u.close()
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        d.bind(('127.0.0.1', {PORT}))
        udp = 0
    except OSError as e:
        udp = e.errno
    d.close()
    t = socket.socket()
    try:
        t.bind(('127.0.0.1', {PORT}))
        tcp_bind = 0
    except OSError as e:
        tcp_bind = e.errno
    t.close()
    report(
        connect=connect, abstract=abstract, udp=udp, tcp_bind=tcp_bind,
        tcp=table('tcp') + table('tcp6'), udp_table=table('udp') + table('udp6'),
        unix=[line for line in table('unix') if '@' in line],
        routes=table('route'), addresses=table('if_inet6'), counters=counters,
        pids=sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),
        tmp=sorted(os.listdir('/tmp')),
    )
    """
)

LISTEN = f"""
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', {PORT}))
s.listen()
"""

LEAVERS = {
    # A process that outlives the function, holding a listener.
    "daemon_with_listener": LISTEN
    + """
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        import time
        time.sleep(3600)
    os._exit(0)
""",
    # A connection closed by its initiator: TIME_WAIT, which no process holds.
    "time_wait": LISTEN
    + f"""
c = socket.create_connection(('127.0.0.1', {PORT}))
a, _ = s.accept()
c.sendall(b'x'); a.recv(1)
c.close(); a.close(); s.close()
""",
    # A listener kept alive by nothing but a unix socket in flight inside
    # itself: freed only when the kernel's unix garbage collector runs.
    "listener_in_flight": LISTEN
    + """
a, b = socket.socketpair()
socket.send_fds(a, [b'x'], [s.fileno(), b.fileno()])
s.close(); b.close(); a.close()
""",
    # Abstract unix socket and a bound UDP port held by a leftover process.
    "abstract_and_udp": f"""
import socket
u = socket.socket(socket.AF_UNIX)
u.bind('\\0{ABSTRACT}')
u.listen()
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d.bind(('127.0.0.1', {PORT}))
if os.fork() == 0:
    import time
    time.sleep(3600)
""",
    # A packet to a closed port: no socket left, but traffic happened.
    "one_udp_packet": f"""
import socket
d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
d.sendto(b'x', ('127.0.0.1', {PORT + 1}))
d.close()
""",
    # A multicast group joined and left on exit: no socket is left, and at
    # the moment the sandbox is gone every table is as made, but the kernel
    # sends the MLD reports of the join and the leave on timers, after
    # that moment, into whatever sandbox has the namespace next.
    "ipv6_multicast_join": """
import socket, struct
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_JOIN_GROUP, socket.inet_pton(socket.AF_INET6, 'ff05::1:3') + struct.pack('I', 1))
""",
    # The same over IPv4 (IGMPv3 reports).
    "ipv4_multicast_join": """
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_IP, socket.IP_ADD_MEMBERSHIP, struct.pack('4s4si', socket.inet_aton('239.1.2.3'), socket.inet_aton('0.0.0.0'), 1))
""",
    # Routes and addresses (refused: the namespace is the host's to change)
    # and a file in /tmp.
    "routes_addresses_files": """
import fcntl, socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
errs = {}
# SIOCADDRT: a default route via lo; SIOCSIFADDR: another address on lo.
rt = struct.pack('16s16s16sH', b'', b'', b'', 0) + bytes(80)
for name, req, arg in (('route', 0x890B, rt), ('address', 0x8916, struct.pack('16sH2s4s8x', b'lo', socket.AF_INET, b'', socket.inet_aton('10.9.9.9')))):
    try:
        fcntl.ioctl(s.fileno(), req, arg)
        errs[name] = 0
    except OSError as e:
        errs[name] = e.errno
with open('/tmp/left-behind', 'w') as f:
    f.write('x')
report(refused=errs)
""",
}


# Rows whose traces the kernel leaves on timers (a second or two): the
# observer looks once they would have fired.
LATE = {"ipv4_multicast_join", "ipv6_multicast_join"}
LATE_OBSERVER = "import time\ntime.sleep(2.5)\n" + OBSERVER


@pytest.fixture(scope="module")
def fresh(pooled, runtime_root, code_dir) -> dict:
    """What the observer sees in a namespace no function has used."""
    pool = pooled.netns_pool
    assert pool.wait_full()
    sandbox = sandbox_probe.start(pooled, runtime_root.python, code_dir, OBSERVER)
    try:
        reports, _ = sandbox_probe.read_reports(sandbox, 20)
    finally:
        sandbox.destroy()
    assert pool.wait_returned()
    return reports[-1]


@pytest.fixture(params=["default", "reuse"])
def either(request):
    """The default backend, then the one that opted in to reuse."""
    return request.getfixturevalue({"default": "pooled", "reuse": "recycling"}[request.param])


@pytest.mark.parametrize("row", sorted(LEAVERS))
def test_nothing_left_behind_is_seen_by_the_next_sandbox(either, python, code_dir, fresh, row):
    pooled = either
    left = run_in_sandbox(pooled, python, code_dir, NS + LEAVERS[row])
    observer = LATE_OBSERVER if row in LATE else OBSERVER
    seen = {k: v for r in run_in_sandbox(pooled, python, code_dir, observer) for k, v in r.items()}
    reused = seen["ns"] == left[0]["ns"]
    assert seen["connect"] == 111, seen  # ECONNREFUSED: no listener survived
    assert seen["abstract"] == seen["udp"] == seen["tcp_bind"] == 0, seen  # names and ports free
    assert seen["tcp"] == [] and seen["udp_table"] == [] and seen["unix"] == [], seen
    assert seen["routes"] == fresh["routes"] and seen["addresses"] == fresh["addresses"], seen
    assert seen["pids"] == fresh["pids"], seen  # only the observer's own processes
    assert seen["tmp"] == [], seen
    assert seen["counters"] == fresh["counters"], "traffic of the last sandbox is seen by the next"
    if row in ("time_wait", "one_udp_packet", "ipv4_multicast_join", "ipv6_multicast_join"):
        assert not reused, "a namespace that carried traffic was reused"
    if row == "routes_addresses_files":
        assert left[-1]["refused"] == {"route": 1, "address": 1}, left  # EPERM


def test_a_namespace_serves_one_sandbox_unless_reuse_is_asked_for(pooled, python, code_dir):
    pool = pooled.netns_pool
    assert not pool.reuse
    first = run_in_sandbox(pooled, python, code_dir, NS)
    second = run_in_sandbox(pooled, python, code_dir, NS)
    assert first[0]["ns"] != second[0]["ns"]
    assert pool.recycled == 0


def test_a_namespace_left_as_made_is_reused(recycling, python, code_dir):
    pool = recycling.netns_pool
    assert pool.reuse and pool.wait_full()
    recycled_before = pool.recycled
    first = run_in_sandbox(recycling, python, code_dir, NS)
    assert pool.recycled == recycled_before + 1
    second = run_in_sandbox(recycling, python, code_dir, NS)
    assert second[0]["ns"] == first[0]["ns"]  # given back, checked, handed out again


def test_a_socket_held_outside_the_sandbox_keeps_its_namespace_from_serving_again(recycling, python, code_dir):
    """The gateway keeps fds a worker sends it (its log memfd, the Runtime
    API's listener), and a hostile worker chooses what it sends: here a TCP
    socket bound to a port but not listening, which no table lists. While
    anything holds it, its namespace must not serve another sandbox, which
    would find the port taken."""
    pool = recycling.netns_pool
    assert pool.wait_full()
    discarded_before = pool.discarded
    snippet = (
        NS
        + f"""
import socket
t = socket.socket()
t.bind(('127.0.0.1', {PORT}))
socket.send_fds(socket.socket(fileno=os.dup(3)), [b'x'], [t.fileno()])
"""
    )
    sandbox = sandbox_probe.start(recycling, python, code_dir, snippet)
    held: list[int] = []
    try:
        first = b""
        while not held:  # past the report that comes first
            msg, held, _flags, _addr = socket.recv_fds(sandbox.control, 4096, 1)
            assert msg, "the sandbox sent no socket"
            first += msg
        sandbox_probe.read_reports(sandbox, 20)
    finally:
        sandbox.destroy()
    try:
        assert pool.wait_returned(), "the pool did not check the namespace given back"
        seen = {k: v for r in run_in_sandbox(recycling, python, code_dir, OBSERVER) for k, v in r.items()}
    finally:
        for fd in held:
            os.close(fd)
    assert seen["tcp_bind"] == 0, seen
    assert seen["ns"] != json.loads(first.split(b"\n")[0])["ns"]
    assert pool.discarded > discarded_before
