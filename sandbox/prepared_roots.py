"""The prepared roots a backend holds: one detached mount tree per distinct
shared part of a root plan (rootfs.split), which every sandbox of that
runtime clones (csrc/mounts.c, ll_template_build).

A tree binds its host sources as they were when it was built. A sandbox
that builds its own root binds them anew, so a host file replaced rather
than changed in place (ldconfig renames a new /etc/ld.so.cache over the
old one, a package upgrade renames each file it installs) reaches the next
sandbox; here the sources are looked at again every RECHECK_S, and a tree
whose sources changed is replaced. A replaced tree's fd stays open for
RETIRED_GRACE_S, longer than any spawn that took it may still use it.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from . import nsspawn

log = logging.getLogger("lambdalet.sandbox")

RECHECK_S = 30.0
RETIRED_GRACE_S = 60.0  # a spawn's handshake times out after 10 s

_SOURCE_KINDS = (nsspawn.BIND_RO, nsspawn.BIND_DEV, nsspawn.VIEW_RO)

Fingerprint = tuple[tuple[int, int, int], ...]


def fingerprint(ops: tuple[nsspawn.MountOp, ...]) -> Fingerprint:
    """Which files the ops' sources are now: a source replaced (a new inode)
    or changed (its mtime; for a directory, its list of entries) changes it."""
    out = []
    for op in ops:
        if op.kind in _SOURCE_KINDS and op.src is not None:
            try:
                st = os.stat(op.src)
                out.append((st.st_dev, st.st_ino, st.st_mtime_ns))
            except OSError:
                out.append((-1, -1, -1))
    return tuple(out)


class _Tree:
    __slots__ = ("fd", "sources")

    def __init__(self, fd: int, sources: Fingerprint) -> None:
        self.fd = fd
        self.sources = sources


class PreparedRoots:
    """Thread-safe. owner: the host id the sandbox's root maps to (the
    files the trees make belong to it)."""

    def __init__(self, owner: int, *, enabled: bool) -> None:
        self._owner = owner
        self._enabled = enabled
        self._trees: dict[tuple[nsspawn.MountOp, ...], _Tree] = {}
        self._retired: list[tuple[int, float]] = []
        self._lock = threading.Lock()
        self._recheck_at = time.monotonic() + RECHECK_S

    def get(self, shared: list[nsspawn.MountOp]) -> int:
        """The tree holding shared, built on first use; -1 when prepared
        roots are off or cannot be built here (a sandbox then builds its
        whole root)."""
        key = tuple(shared)
        with self._lock:
            if not self._enabled:
                return -1
            tree = self._trees.get(key)
            if tree is None:
                sources = fingerprint(key)
                try:
                    fd = nsspawn.build_template(shared, self._owner, self._owner)
                except OSError as exc:
                    log.warning("no prepared root, each sandbox builds its own: %s", exc)
                    self._enabled = False
                    return -1
                tree = self._trees[key] = _Tree(fd, sources)
            return tree.fd

    def due(self) -> bool:
        """Whether recheck() has work: one comparison, for every spawn."""
        return time.monotonic() >= self._recheck_at

    def recheck(self) -> set[int]:
        """Replace every tree whose sources changed (each is built again by
        the next get()); returns the replaced trees' fds, for the caller to
        forget the plans that hold them."""
        now = time.monotonic()
        with self._lock:
            if now < self._recheck_at:
                return set()
            self._recheck_at = now + RECHECK_S
            stale = [key for key, tree in self._trees.items() if fingerprint(key) != tree.sources]
            replaced = {self._trees.pop(key).fd for key in stale}
            keep = []
            for fd, since in self._retired:
                if now - since >= RETIRED_GRACE_S:
                    os.close(fd)
                else:
                    keep.append((fd, since))
            self._retired = keep + [(fd, now) for fd in replaced]
            return replaced

    def close(self) -> None:
        with self._lock:
            self._enabled = False
            for tree in self._trees.values():
                os.close(tree.fd)
            for fd, _ in self._retired:
                os.close(fd)
            self._trees.clear()
            self._retired.clear()

    def __len__(self) -> int:
        return len(self._trees)
