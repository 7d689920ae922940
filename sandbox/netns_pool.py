"""Network namespaces made ahead of time, so a cold start does not pay for one.

Creating a network namespace costs 0.4-0.7 ms here, with a p99 of several
ms, and tearing one down costs the kernel as much again. A background
thread keeps a few ready (lo up, nothing else), and a spawn clones its
sandbox straight into one. When the pool is empty the spawn creates its own
with CLONE_NEWNET, as without a pool.

A namespace serves one sandbox and dies with it, unless the pool is made
with reuse=True. Reuse is off by default because it cannot be proved safe:
a check compares the namespace at one instant, and the kernel keeps acting
for a namespace after every process in it is gone. A sandbox that joins a
multicast group (IPv4 or IPv6) and exits leaves IGMP or MLD reports queued
on timers; they go out after a check made at that moment has passed, and
the next sandbox finds their traffic in its counters and a neighbour entry
(tests/sandbox/test_sandbox_netns_reuse.py, the multicast rows). Those
timers are known and bounded (SETTLE_S), so a namespace given back is
checked twice, at once and again after resting SETTLE_S; a kernel timer
nobody here knows of would pass both checks the same way.

With reuse=True, a namespace given back (give_back, once every process of
its sandbox is gone) serves another only if every table a process can read
about its network namespace (live sockets of every family, TIME_WAIT
included, routes, addresses, multicast groups, flow labels, interface and
protocol counters) is byte for byte what it was when the namespace was
created, at both checks. A sandbox that sent a single packet, or left a
socket behind, changes one of them, and its namespace is closed instead.
Pooled namespaces belong to the host's user namespace, so the sandbox, root
only in its own user namespace and with no capabilities, cannot change
their interfaces, routes, addresses, rules, queueing disciplines,
neighbours, firewall or sysctls. The checks run on the pool's thread, off
the spawn path.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
import threading
import time

from lambdalet.csrc._native import ffi, lib

log = logging.getLogger("lambdalet.sandbox")

# Per-namespace tables in /proc/<tid>/net. Live sockets of TCP, UDP and
# raw are counted in sockstat(6) (TIME_WAIT included) rather than listed
# from tcp, udp and their kin, whose readers walk the whole host's socket
# tables (about 2 ms each here); any packet at all moves the counters in
# dev, snmp, snmp6 and netstat, and so does every conntrack entry.
NET_TABLES = (
    "sockstat",
    "sockstat6",
    "raw",
    "raw6",
    "icmp",
    "icmp6",
    "unix",
    "packet",
    "netlink",
    "dev",
    "dev_mcast",
    "snmp",
    "snmp6",
    "netstat",
    "route",
    "ipv6_route",
    "rt6_stats",
    "fib_trie",
    "if_inet6",
    "anycast6",
    "igmp",
    "igmp6",
    "mcfilter",
    "mcfilter6",
    "arp",
    "ip6_flowlabel",
    "nf_conntrack_expect",
)
# What sockstat(6) counts per namespace; the rest of those files (orphans,
# allocated, memory) is the whole host's. "sockets: used" counts every
# socket of the namespace that a process made, of any family and bound or
# not: one the sandbox handed out (to the gateway, or in flight) and that
# is still open keeps the namespace from serving again.
PER_NAMESPACE_COUNTS = {
    b"sockets:": (b"used",),
    b"TCP:": (b"inuse", b"tw"),
    b"UDP:": (b"inuse",),
    b"UDPLITE:": (b"inuse",),
    b"RAW:": (b"inuse",),
    b"FRAG:": (b"inuse", b"memory"),
    b"TCP6:": (b"inuse",),
    b"UDP6:": (b"inuse",),
    b"UDPLITE6:": (b"inuse",),
    b"RAW6:": (b"inuse",),
    b"FRAG6:": (b"inuse", b"memory"),
}


def _own_counts(sockstat: bytes) -> bytes:
    """The per-namespace counts of a sockstat file, one "PROTO: key value"
    per line; any line this does not know is kept whole (a newer kernel's)."""
    out = []
    for line in sockstat.splitlines():
        words = line.split()
        if not words:
            continue
        keys = PER_NAMESPACE_COUNTS.get(words[0])
        if keys is None:
            out.append(line)
            continue
        pairs = dict(zip(words[1::2], words[2::2]))
        out.append(b" ".join([words[0], *(b"%s %s" % (k, pairs.get(k, b"?")) for k in keys)]))
    return b"\n".join(out)


def create() -> int:
    """One new namespace holding only lo, up. Returns its fd."""
    fd = lib.ll_netns_create()
    if fd < 0:
        raise OSError(-fd, f"create network namespace: {os.strerror(-fd)}")
    return fd


def fingerprint(netns_fd: int) -> bytes:
    """A digest of every table in NET_TABLES as seen inside the namespace.
    Enters it on the calling thread only, and leaves again. Plain fds, not
    file objects: a third of the time (~0.25 ms in all)."""
    saved = ffi.new("int *")
    rc = lib.ll_netns_enter(netns_fd, saved)
    if rc < 0:
        raise OSError(-rc, f"enter network namespace: {os.strerror(-rc)}")
    digest = hashlib.sha256()
    try:
        # Opened once inside: its entries are this namespace's tables.
        tables = os.open("/proc/thread-self/net", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in NET_TABLES:
                data = _read_table(tables, name)
                if name.startswith("sockstat"):
                    data = _own_counts(data)
                digest.update(b"%s %d\n" % (name.encode(), len(data)))
                digest.update(data)
        finally:
            os.close(tables)
    finally:
        back = lib.ll_netns_leave(saved[0])
        if back < 0:
            # Stranded in the sandbox's namespace: nothing this thread does
            # after this could be trusted. The caller stops the pool.
            raise OSError(-back, f"leave network namespace: {os.strerror(-back)}")
    return digest.digest()


def _read_table(tables: int, name: str) -> bytes:
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=tables)
    except FileNotFoundError:
        return b"(absent)"  # not built into this kernel
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


# How long a namespace given back rests before its last check. The kernel
# sends the IGMPv3 and MLDv2 reports of a group joined or left at random
# within the unsolicited report interval (1 s) and repeats them once
# (robustness 2): all out within ~2 s of the sandbox's end, where the check
# sees them. Only those known timers; see the module's docstring.
SETTLE_S = 3.0


class NetnsPool:
    def __init__(
        self,
        size: int = 8,
        recycled_max: int | None = None,
        *,
        reuse: bool = False,
        settle_s: float = SETTLE_S,
    ) -> None:
        """size: fresh namespaces kept ready; reuse: whether a namespace
        given back may serve again (see the module's docstring for why not
        by default); recycled_max: how many there may be at most, ready or
        given back and not yet checked (2 * size); settle_s: how long one
        given back rests between its first check and its last."""
        self.size = size
        self.reuse = reuse
        self.settle_s = settle_s
        self.recycled_max = max(size, recycled_max if recycled_max is not None else 2 * size)
        self._ready: collections.deque[int] = collections.deque()
        # Given back, for their first check; found as made at their first
        # check, resting until the monotonic time beside them.
        self._returned: collections.deque[int] = collections.deque()
        self._settling: collections.deque[tuple[float, int]] = collections.deque()
        # Namespace inode -> its tables' digest when it was made.
        self._pristine: dict[int, bytes] = {}
        self._cond = threading.Condition()
        self._closed = False
        self._checking = False
        self.created = 0
        self.misses = 0
        self.recycled = 0  # given back, found as made twice, and ready again
        self.discarded = 0  # given back but changed (or not needed): closed
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._refill, name="lambdalet-netns-pool", daemon=True)
        self._thread.start()

    def take(self) -> int | None:
        """A ready namespace fd, now owned by the caller, or None if empty.
        Recycled ones first, so that fresh ones stay in reserve."""
        with self._cond:
            if self._ready:
                fd = self._ready.popleft()
                self._cond.notify()
                return fd
            self.misses += 1
            self._cond.notify()
            return None

    def give_back(self, fd: int) -> None:
        """The namespace fd of a sandbox whose processes are all gone. The
        pool owns it from now on: checked on its thread at once and again
        settle_s later, made ready again if it is as it was made both
        times, else closed."""
        with self._cond:
            held = len(self._ready) + len(self._returned) + len(self._settling) + int(self._checking)
            if self.reuse and not self._closed and self.error is None and held < self.recycled_max:
                self._returned.append(fd)
                self._cond.notify_all()
                return
            self.discarded += 1
        self.drop(fd)

    def drop(self, fd: int) -> None:
        """Closes a namespace fd this pool handed out that will not come
        back (its digest is forgotten)."""
        try:
            key = os.fstat(fd).st_ino
            with self._cond:
                self._pristine.pop(key, None)
        finally:
            os.close(fd)

    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def wait_full(self, timeout_s: float = 10.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self._ready) >= self.size or self._closed or self.error is not None, timeout_s)

    def wait_returned(self, timeout_s: float = 10.0) -> bool:
        """Until every namespace given back so far has had its last check."""
        with self._cond:
            return self._cond.wait_for(
                lambda: (not self._returned and not self._settling and not self._checking) or self._closed, timeout_s
            )

    def _next(self) -> tuple[int | None, bool] | None:
        """(fd to check or None to create one, whether it is its last
        check), once there is something to do; None once closed."""
        with self._cond:
            while not self._closed:
                if self._returned:
                    self._checking = True
                    return self._returned.popleft(), False
                now = time.monotonic()
                if self._settling and self._settling[0][0] <= now:
                    self._checking = True
                    return self._settling.popleft()[1], True
                if len(self._ready) < self.size:
                    return None, False
                self._cond.wait(self._settling[0][0] - now if self._settling else None)
            return None

    def _refill(self) -> None:
        while True:
            job = self._next()
            if job is None:
                return
            returned, last = job
            try:
                if returned is not None:
                    self._recycle(returned, last)
                else:
                    self._create()
            except OSError as exc:
                with self._cond:
                    self.error = exc
                    self._checking = False
                    self._cond.notify_all()
                log.warning("network namespace pool stopped: %s", exc)
                return

    def _create(self) -> None:
        fd = create()
        try:
            key, digest = os.fstat(fd).st_ino, fingerprint(fd) if self.reuse else b""
        except OSError:
            os.close(fd)
            raise
        with self._cond:
            if self._closed:
                os.close(fd)
                return
            if self.reuse:
                self._pristine[key] = digest
            self._ready.append(fd)
            self.created += 1
            self._cond.notify_all()

    def _recycle(self, fd: int, last: bool) -> None:
        """One check of a namespace given back: the first (at once) sends it
        to rest if it is as made, the last makes it ready if it still is."""
        key = os.fstat(fd).st_ino
        with self._cond:
            made = self._pristine.get(key)
        clean = False
        if made is not None:
            try:
                clean = fingerprint(fd) == made
            except OSError:
                with self._cond:
                    self._checking = False
                self.drop(fd)
                raise
        with self._cond:
            self._checking = False
            if clean and not self._closed and not last:
                self._settling.append((time.monotonic() + self.settle_s, fd))
                fd = -1
            elif clean and not self._closed and len(self._ready) < self.recycled_max:
                self._ready.appendleft(fd)
                self.recycled += 1
                fd = -1
            else:
                self.discarded += 1
            self._cond.notify_all()
        if fd >= 0:
            self.drop(fd)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        while self._ready:
            os.close(self._ready.popleft())
        while self._returned:
            os.close(self._returned.popleft())
        while self._settling:
            os.close(self._settling.popleft()[1])
        self._pristine.clear()
