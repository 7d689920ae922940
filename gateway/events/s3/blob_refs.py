"""Which blobs the object store's rows name, and how many bytes they take.

Every blob has a reference count in s3.db (objects and upload parts naming
it), changed in the same transactions as the rows. Bytes written for a
request that has not committed yet are *staged*: held against removal
(another request may be writing the same bytes, which share one file) and
counted against the quota until the commit that names them, or until the
request gives them up. A blob that nothing names any more is unlinked
after the commit that stopped naming it.

The store's lock guards all of it: the methods that say "the caller holds
the lock" run inside the store's transactions.
"""

from __future__ import annotations

import collections
import hashlib
import sqlite3
import threading
from collections.abc import Iterable

from .blobs import BlobStore, WrittenBlob
from .errors import S3Error


class Staged:
    """Bytes written to a blob and not yet named by a committed row. Holds
    the blob against removal and its size against the quota until the
    commit that names it, or ``ObjectStore.release``."""

    __slots__ = ("blob", "released")

    def __init__(self, blob: WrittenBlob) -> None:
        self.blob = blob
        self.released = False

    @property
    def sha256(self) -> str:
        return self.blob.sha256

    @property
    def md5(self) -> str:
        return self.blob.md5

    @property
    def size(self) -> int:
        return self.blob.size


class BlobRefs:
    def __init__(self, blobs: BlobStore, db: sqlite3.Connection, lock: threading.Lock, *, max_object_bytes: int, quota_bytes: int) -> None:
        """Reads the bytes in use from ``db`` (its schema exists)."""
        self.blobs = blobs
        self._db = db
        self._lock = lock
        self.max_object_bytes = max_object_bytes
        self.quota_bytes = quota_bytes  # 0: no quota
        # Blob digest -> writes of those bytes not yet committed.
        self._staging: collections.Counter[str] = collections.Counter()
        self._reserved = 0  # bytes promised to uploads in flight, for the quota
        self.used = db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE refs > 0").fetchone()[0]

    def check_size(self, size: int) -> None:
        """Refuses an upload of ``size`` bytes before a byte is stored."""
        if size > self.max_object_bytes:
            raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(self.max_object_bytes))
        if self.quota_bytes:
            with self._lock:
                free = self.quota_bytes - self.used - self._reserved
            if size > free:
                raise S3Error(
                    "EntityTooLarge",
                    f"Your proposed upload exceeds the quota of this server's object store ({self.quota_bytes} bytes, {max(0, free)} free)",
                    ProposedSize=str(size),
                    MaxSizeAllowed=str(max(0, free)),
                )

    def stage(self, data: bytes | memoryview) -> Staged:
        """Writes bytes durably as a blob, to be named by the next commit."""
        size = len(data)
        self.check_size(size)
        sha = hashlib.sha256(data).hexdigest()
        with self._lock:
            self._staging[sha] += 1
            self._reserved += size
        try:
            blob = self.blobs.write(data)
        except BaseException:
            with self._lock:
                self._unstage_locked(sha, size)
            raise
        return Staged(blob)

    def release(self, staged: Staged) -> None:
        """Gives up a staged blob that no commit named (the request failed)."""
        with self._lock:
            if staged.released:
                return
            self._unstage_locked(staged.sha256, staged.size)
            staged.released = True
            refs = self._db.execute("SELECT refs FROM blobs WHERE sha=?", (staged.sha256,)).fetchone()
            if (refs is None or refs[0] <= 0) and not self._staging[staged.sha256]:
                self._db.execute("DELETE FROM blobs WHERE sha=? AND refs <= 0", (staged.sha256,))
                self.blobs.unlink(staged.sha256)

    def _unstage_locked(self, sha: str, size: int) -> None:
        self._staging[sha] -= 1
        if self._staging[sha] <= 0:
            del self._staging[sha]
        self._reserved -= size

    def ref(self, db: sqlite3.Connection, sha: str, size: int, by: int = 1) -> None:
        """In the caller's transaction: one more row names the blob."""
        row = db.execute("SELECT refs FROM blobs WHERE sha=?", (sha,)).fetchone()
        if row is None:
            db.execute("INSERT INTO blobs(sha, size, refs) VALUES(?, ?, ?)", (sha, size, by))
            self.used += size
        else:
            if row[0] <= 0:
                self.used += size
            db.execute("UPDATE blobs SET refs=refs+? WHERE sha=?", (by, sha))

    def unref(self, db: sqlite3.Connection, parts: Iterable[tuple[str, int]], orphans: list[str]) -> None:
        """In the caller's transaction: one row fewer names each blob; those
        named by none are added to ``orphans``, for ``remove_orphans``."""
        for sha, size in parts:
            db.execute("UPDATE blobs SET refs=refs-1 WHERE sha=?", (sha,))
            row = db.execute("SELECT refs FROM blobs WHERE sha=?", (sha,)).fetchone()
            if row is not None and row[0] <= 0:
                self.used -= size
                orphans.append(sha)

    def committed(self, staged: Iterable[Staged]) -> None:
        """The caller holds the lock: a commit now names these blobs."""
        for s in staged:
            if not s.released:
                self._unstage_locked(s.sha256, s.size)
                s.released = True

    def remove_orphans(self, orphans: list[str]) -> None:
        """After the commit that stopped naming them. The caller holds the
        lock, so no stage() of the same bytes can slip in between the check
        and the unlink."""
        for sha in orphans:
            if self._staging[sha]:
                continue  # a write of the same bytes will name it again
            cur = self._db.execute("DELETE FROM blobs WHERE sha=? AND refs <= 0", (sha,))
            if cur.rowcount:
                self.blobs.unlink(sha)
