"""network="egress": out through a veth pair and NAT, never to the host.

An "outside" network is simulated by one more namespace behind its own veth
pair, so the test needs no internet: the sandbox must reach it, and must not
reach the host's services on any address, the metadata address or another
sandbox."""

from __future__ import annotations

import os
import socket
import threading

import pytest
import sandbox_probe

from lambdalet.sandbox import egress, netns_pool

OUTSIDE_HOST, OUTSIDE_PEER = "10.201.77.1", "10.201.77.2"

PROBE = """
import socket
def attempt(host, port):
    s = socket.socket()
    s.settimeout(1.0)
    try:
        s.connect((host, port))
        return 0
    except socket.timeout:
        return 'timeout'
    except OSError as e:
        return e.errno
    finally:
        s.close()
report(names=sorted(n for _, n in socket.if_nameindex()),
       results={name: attempt(host, port) for name, (host, port) in event['targets'].items()},
       resolv=open('/etc/resolv.conf').read())
"""


@pytest.fixture
def outside():
    """A namespace standing in for the internet, with a TCP service."""
    from pyroute2 import IPRoute

    fd = netns_pool.create()
    with IPRoute() as ipr:
        ipr.link("add", ifname="llt-out", kind="veth", peer={"ifname": "eth0", "net_ns_fd": fd})
        idx = ipr.link_lookup(ifname="llt-out")[0]
        ipr.addr("add", index=idx, address=OUTSIDE_HOST, prefixlen=24)
        ipr.link("set", index=idx, state="up")

    def inside():
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname="eth0")[0]
            ipr.addr("add", index=idx, address=OUTSIDE_PEER, prefixlen=24)
            ipr.link("set", index=idx, state="up")
        srv = socket.socket()
        srv.bind((OUTSIDE_PEER, 0))
        srv.listen(16)
        return srv

    srv = egress._in_netns(fd, inside)
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
                conn.close()
            except OSError:
                pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    thread.join()
    srv.close()
    with IPRoute() as ipr:
        ipr.link("del", index=ipr.link_lookup(ifname="llt-out")[0])
    os.close(fd)


def test_egress_reaches_outside_but_not_the_host(backend, python, code_dir, outside):
    host_service = socket.socket()
    host_service.bind(("0.0.0.0", 0))
    host_service.listen(8)
    port = host_service.getsockname()[1]
    host_ip = _host_address()
    try:
        outcome = sandbox_probe.run(
            backend,
            python,
            code_dir,
            PROBE,
            network="egress",
            event={
                "targets": {
                    "outside": (OUTSIDE_PEER, outside),
                    "host-address": (host_ip, port),
                    "host-veth-end": ("10.200.0.1", port),
                    "host-loopback-via-own-lo": ("127.0.0.1", port),
                    "metadata": ("169.254.169.254", 80),
                }
            },
        )
    finally:
        host_service.close()
    results = outcome.last["results"]
    assert outcome.last["names"] == ["eth0", "lo"]
    assert results["outside"] == 0, results
    for name in ("host-address", "host-veth-end", "host-loopback-via-own-lo", "metadata"):
        assert results[name] != 0, (name, results)
    assert "127.0.0" not in outcome.last["resolv"]
    # The lease is gone with the sandbox.
    assert not [n for n in os.listdir("/sys/class/net") if n.startswith("llv")]


def test_without_egress_only_lo(backend, python, code_dir, outside):
    outcome = sandbox_probe.run(backend, python, code_dir, PROBE, event={"targets": {"outside": (OUTSIDE_PEER, outside)}})
    assert outcome.last["names"] == ["lo"]
    assert outcome.last["results"]["outside"] != 0


def _host_address() -> str:
    """A non-loopback address of this host (the server may listen on it)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect((OUTSIDE_PEER, 9))
        return s.getsockname()[0]
    finally:
        s.close()
