"""Opt-in egress: a veth pair and NAT, set up with pyroute2.

A function whose SandboxSpec.network is "egress" gets eth0 in its network
namespace (10.200.x.y/30, default route via the host end) and leaves the
host through nftables masquerade. Three rules keep that egress away from
everything local:

- input:   nothing from the sandbox subnet is delivered to the host itself,
           so no host service (the server's port included) is reachable on
           any of the host's addresses;
- forward: nothing to 169.254.0.0/16 (cloud metadata), 127.0.0.0/8 or
           another sandbox;
- IPv6 is off on the host end, so there is no link-local way around them.

The sandbox's own 127.0.0.1 is its own loopback, as without egress. The
namespace is a fresh one owned by the host's user namespace, so nothing
inside can change its address, routes or interfaces.

Turning egress on sets net.ipv4.ip_forward=1 on the host, as any router or
container runtime must; the server restores the old value when it stops.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import threading

from lambdalet.csrc._native import ffi, lib

SUBNET = ipaddress.ip_network("10.200.0.0/16")
TABLE_PREFIX = "lambdalet_"
NF_DROP, NF_ACCEPT = 0, 1


class Lease:
    """One sandbox's veth pair and addresses."""

    def __init__(self, slot: int, host_if: str, host_ip: str, sandbox_ip: str) -> None:
        self.slot = slot
        self.host_if = host_if
        self.host_ip = host_ip
        self.sandbox_ip = sandbox_ip


def _in_netns(netns_fd: int, fn):
    """Run fn() with this thread inside netns_fd; sockets it opens stay there."""
    saved = ffi.new("int *")
    rc = lib.ll_netns_enter(netns_fd, saved)
    if rc < 0:
        raise OSError(-rc, f"enter network namespace: {os.strerror(-rc)}")
    try:
        return fn()
    finally:
        rc = lib.ll_netns_leave(saved[0])
        if rc < 0:
            raise OSError(-rc, f"leave network namespace: {os.strerror(-rc)}")


def host_nameservers() -> str:
    """resolv.conf for a sandbox with egress: the host's upstream servers.
    A loopback resolver (systemd-resolved's stub) is out of reach by design,
    so its upstream list is used instead where there is one."""
    for path in ("/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"):
        try:
            with open(path) as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        servers = []
        for line in lines:
            parts = line.split()
            if len(parts) >= 2 and parts[0] == "nameserver":
                try:
                    if not ipaddress.ip_address(parts[1]).is_loopback:
                        servers.append(parts[1])
                except ValueError:
                    pass
        if servers:
            return "".join(f"nameserver {s}\n" for s in servers)
    return "# no upstream nameserver found on the host\n"


class Egress:
    def __init__(self) -> None:
        from pyroute2 import IPRoute  # imported only when egress is used

        self._IPRoute = IPRoute
        self._lock = threading.Lock()
        self._free = list(range(SUBNET.num_addresses // 4 - 1, 0, -1))  # slot 0 unused
        self.table = f"{TABLE_PREFIX}{os.getpid()}"
        self._ip_forward_before = _read("/proc/sys/net/ipv4/ip_forward")
        remove_stale_tables()
        self._install_rules()
        _write("/proc/sys/net/ipv4/ip_forward", "1")

    def _install_rules(self) -> None:
        from pyroute2.nftables.expressions import ipv4addr, masq, verdict
        from pyroute2.nftables.main import NFTables

        src = str(SUBNET)
        with NFTables(nfgen_family=2) as nft:  # NFPROTO_IPV4
            nft.table("add", name=self.table)
            nft.chain("add", table=self.table, name="postrouting", hook="postrouting", type="nat", priority=100)
            nft.chain("add", table=self.table, name="forward", hook="forward", type="filter", priority=0)
            nft.chain("add", table=self.table, name="input", hook="input", type="filter", priority=0)
            nft.rule("add", table=self.table, chain="input", expressions=(ipv4addr(src=src), verdict(NF_DROP)))
            for blocked in ("169.254.0.0/16", "127.0.0.0/8", src):
                nft.rule("add", table=self.table, chain="forward", expressions=(ipv4addr(src=src, dst=blocked), verdict(NF_DROP)))
            nft.rule("add", table=self.table, chain="postrouting", expressions=(ipv4addr(src=src), masq()))

    def attach(self, netns_fd: int) -> Lease:
        """Give the namespace eth0 with a default route through the host."""
        with self._lock:
            if not self._free:
                raise OSError(errno.EADDRNOTAVAIL, "egress: no free addresses")
            slot = self._free.pop()
        base = SUBNET.network_address + 4 * slot
        lease = Lease(slot, f"llv{slot}", str(base + 1), str(base + 2))
        try:
            with self._IPRoute() as ipr:
                ipr.link("add", ifname=lease.host_if, kind="veth", peer={"ifname": "eth0", "net_ns_fd": netns_fd})
                idx = ipr.link_lookup(ifname=lease.host_if)[0]
                _write(f"/proc/sys/net/ipv6/conf/{lease.host_if}/disable_ipv6", "1")
                ipr.addr("add", index=idx, address=lease.host_ip, prefixlen=30)
                ipr.link("set", index=idx, state="up")

            def inside():
                _write("/proc/sys/net/ipv6/conf/eth0/disable_ipv6", "1")
                with self._IPRoute() as ipr:
                    idx = ipr.link_lookup(ifname="eth0")[0]
                    ipr.addr("add", index=idx, address=lease.sandbox_ip, prefixlen=30)
                    ipr.link("set", index=idx, state="up")
                    ipr.route("add", dst="0.0.0.0/0", gateway=lease.host_ip)

            _in_netns(netns_fd, inside)
        except Exception as exc:
            self.release(lease)
            if isinstance(exc, OSError):
                raise OSError(exc.errno, f"egress set-up: {exc}") from exc
            raise OSError(errno.EIO, f"egress set-up: {exc}") from exc
        return lease

    def release(self, lease: Lease) -> None:
        """Delete the pair (deleting one end deletes both) and free the slot."""
        try:
            with self._IPRoute() as ipr:
                found = ipr.link_lookup(ifname=lease.host_if)
                if found:
                    ipr.link("del", index=found[0])
        except Exception:
            pass  # it also goes when the namespace dies
        with self._lock:
            self._free.append(lease.slot)

    def close(self) -> None:
        drop_table(self.table)
        if self._ip_forward_before is not None:
            _write("/proc/sys/net/ipv4/ip_forward", self._ip_forward_before)


def drop_table(name: str) -> None:
    from pyroute2.nftables.main import NFTables

    try:
        with NFTables(nfgen_family=2) as nft:
            nft.table("del", name=name)
    except Exception:
        pass


def remove_stale_tables() -> None:
    """Tables of servers that no longer run (kill -9) are removed at start-up."""
    from pyroute2.nftables.main import NFTables

    try:
        with NFTables(nfgen_family=2) as nft:
            names = [t.get_attr("NFTA_TABLE_NAME") for t in nft.get_tables()]
    except Exception:
        return
    for name in names:
        if name and name.startswith(TABLE_PREFIX):
            pid = name[len(TABLE_PREFIX) :]
            if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
                drop_table(name)


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)
