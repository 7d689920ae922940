"""The prepared roots a backend holds: one detached mount tree per distinct
shared part of a root plan (rootfs.split), which every sandbox of that
runtime clones (csrc/mounts.c, ll_template_build).

A tree binds its host sources as they were when it was built. A sandbox
that builds its own root binds them anew, so a host file replaced rather
than changed in place (ldconfig renames a new /etc/ld.so.cache over the
old one, a package upgrade renames each file it installs) reaches the next
sandbox; here the sources are looked at again every RECHECK_S, and a tree
whose sources changed is replaced and closed at once.

A spawn never uses a tree's fd itself: hold() gives it a duplicate, taken
under the lock while the tree is current, which the spawn closes when it is
done (a zygote's queued spawn may wait for seconds). A closed fd's number
is soon another file's, another runtime's tree, say, and must never reach a
sandbox; a tree also carries its root's st_dev and st_ino, which the
sandbox checks the clone against (csrc/mounts.c, ll_mounts_begin_from).
"""

from __future__ import annotations

import logging
import os
import threading
import time

from . import nsspawn

log = logging.getLogger("lambdalet.sandbox")

RECHECK_S = 30.0

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


class Tree:
    """One prepared root. fd is -1 once it is closed; dev and ino are its
    root's, what a sandbox's clone of it must show."""

    __slots__ = ("fd", "dev", "ino", "sources")

    def __init__(self, fd: int, sources: Fingerprint) -> None:
        st = os.fstat(fd)
        self.fd = fd
        self.dev = st.st_dev
        self.ino = st.st_ino
        self.sources = sources


class PreparedRoots:
    """Thread-safe. owner: the host id the sandbox's root maps to (the
    files the trees make belong to it)."""

    def __init__(self, owner: int, *, enabled: bool) -> None:
        self._owner = owner
        self._enabled = enabled
        self._trees: dict[tuple[nsspawn.MountOp, ...], Tree] = {}
        # The plans whose build failed, with their sources as they were then:
        # those plans' sandboxes build their own roots (and the plan is tried
        # again once its sources change); every other plan keeps its tree.
        self._refused: dict[tuple[nsspawn.MountOp, ...], Fingerprint] = {}
        # Two locks: _lock for building and rechecking (a build forks a
        # probe, a recheck stats every source: milliseconds), _fds for a
        # tree's fd alone, which every spawn takes in hold(), so that no
        # spawn of a runtime already built waits behind another's build.
        self._lock = threading.Lock()
        self._fds = threading.Lock()
        self._recheck_at = time.monotonic() + RECHECK_S

    def get(self, shared: list[nsspawn.MountOp]) -> Tree | None:
        """The tree holding shared, built on first use; None when prepared
        roots are off or this plan's tree cannot be built (a sandbox then
        builds its whole root). One plan refused (a path of its runtime's
        sources that leads nowhere inside the tree, say) leaves the others'
        trees alone."""
        key = tuple(shared)
        tree = self._trees.get(key)  # a dict lookup is atomic: no lock for a built tree
        if tree is not None and self._enabled:
            return tree
        if key in self._refused:  # likewise: a refused plan's spawns take no lock
            return None
        with self._lock:
            if not self._enabled or key in self._refused:
                return None
            tree = self._trees.get(key)
            if tree is None:
                sources = fingerprint(key)
                try:
                    fd = nsspawn.build_template(shared, self._owner, self._owner)
                except OSError as exc:
                    log.warning("no prepared root for this runtime, each of its sandboxes builds its own: %s", exc)
                    self._refused[key] = sources
                    return None
                tree = self._trees[key] = Tree(fd, sources)
            return tree

    def hold(self, tree: Tree) -> int:
        """A duplicate of the tree's fd, the caller's to close once its spawn
        is done; -1 if the tree has been replaced (plan again)."""
        with self._fds:
            return os.dup(tree.fd) if tree.fd >= 0 else -1

    def due(self) -> bool:
        """Whether recheck() has work: one comparison, for every spawn."""
        return time.monotonic() >= self._recheck_at

    def recheck(self) -> set[Tree]:
        """Replace (close) every tree whose sources changed; each is built
        again by the next get(). Returns the replaced trees, for the caller
        to forget the plans that hold them."""
        now = time.monotonic()
        with self._lock:
            if now < self._recheck_at:
                return set()
            self._recheck_at = now + RECHECK_S
            stale = [key for key, tree in self._trees.items() if fingerprint(key) != tree.sources]
            replaced = {self._trees.pop(key) for key in stale}
            for key in [key for key, sources in self._refused.items() if fingerprint(key) != sources]:
                del self._refused[key]  # its sources changed: the next get() tries again
            for tree in replaced:
                self._close(tree)
            return replaced

    def close(self) -> None:
        with self._lock:
            self._enabled = False
            for tree in self._trees.values():
                self._close(tree)
            self._trees.clear()
            self._refused.clear()

    def _close(self, tree: Tree) -> None:
        with self._fds:
            fd, tree.fd = tree.fd, -1
        if fd >= 0:
            os.close(fd)

    def __len__(self) -> int:
        return len(self._trees)
