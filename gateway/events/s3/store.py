"""The object store: buckets, objects, multipart uploads and the event
outbox in one SQLite (WAL, synchronous=FULL) file, ``<data-dir>/s3/s3.db``,
beside the content-addressed blobs (``<data-dir>/s3/blobs``).

One file, so that what must happen together happens in one transaction:
an object's row, the reference counts of the blobs it is made of and the
notification events it causes (rows of ``outbox``) commit together. An
object exists exactly when its events do; outbox.py moves the events on
into the async queue.

An object is a list of blobs (one for a PUT, one per part for a multipart
upload), so completing an upload or copying an object writes no bytes:
it names blobs that are stored already. Blobs are reference counted in
the same transactions; one that is no longer named is unlinked after the
commit, unless a write of the same bytes is under way, in which case that
write's commit names it again (blob_refs.py).

This module holds buckets, objects and the outbox; the tables are
schema.py's, listings listing.py's, multipart uploads multipart.py's, the
records records.py's.
Every method is synchronous and may fsync; the HTTP layer calls them from
worker threads. Refusals are S3Error.
"""

from __future__ import annotations

import contextlib
import pathlib
import sqlite3
import threading
import time
from collections.abc import Callable

import msgspec

from . import notifications
from .blob_refs import BlobRefs, Staged
from .blobs import BlobStore
from .errors import S3Error
from .listing import list_page
from .multipart import MultipartUploads
from .records import OBJECT_COLUMNS, BucketInfo, Listing, ObjectInfo, ObjectMeta, OutboxRow, meta_enc, parts_dec, row_to_info
from .schema import SCHEMA

_NO_QUOTA = 0


class ObjectStore(MultipartUploads):
    def __init__(
        self,
        root: pathlib.Path,
        *,
        max_object_bytes: int,
        quota_bytes: int = _NO_QUOTA,
        region: str = "us-east-1",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.blobs = BlobStore(root / "blobs")
        self.max_object_bytes = max_object_bytes
        self.quota_bytes = quota_bytes
        self.region = region
        self.clock = clock
        self._db = sqlite3.connect(root / "s3.db", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a 200 for a PUT promises the object (and its events)
            # survive power loss, not only a crash of this process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(SCHEMA)
            self.refs = BlobRefs(self.blobs, self._db, self._lock, max_object_bytes=max_object_bytes, quota_bytes=quota_bytes)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> int:
        """At start-up, before any request: forget blobs nothing names and
        remove files a crash left unnamed. Returns the files removed."""
        with self._lock:
            self._db.execute("DELETE FROM blobs WHERE refs <= 0")
            keep = [r[0] for r in self._db.execute("SELECT sha FROM blobs")]
        return self.blobs.sweep(keep)

    @contextlib.contextmanager
    def _transaction(self):
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- blobs and the quota --------------------------------------------------

    def check_size(self, size: int) -> None:
        """Refuses an upload of ``size`` bytes before a byte is stored."""
        self.refs.check_size(size)

    def stage(self, data: bytes | memoryview) -> Staged:
        """Writes bytes durably as a blob, to be named by the next commit."""
        return self.refs.stage(data)

    def release(self, staged: Staged) -> None:
        """Gives up a staged blob that no commit named (the request failed)."""
        self.refs.release(staged)

    def usage(self) -> dict[str, int]:
        with self._lock:
            objects, logical = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects").fetchone()
            buckets = self._db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0]
            return {
                "buckets": buckets,
                "objects": objects,
                "object_bytes": logical,
                "stored_bytes": self.refs.used,
                "quota_bytes": self.quota_bytes,
            }

    # -- buckets --------------------------------------------------------------

    def create_bucket(self, name: str) -> bool:
        """False when the bucket exists already."""
        with self._transaction() as db:
            cur = db.execute("INSERT OR IGNORE INTO buckets(name, created_s) VALUES(?, ?)", (name, self.clock()))
            return cur.rowcount == 1

    def bucket(self, name: str) -> BucketInfo | None:
        with self._lock:
            row = self._db.execute("SELECT name, created_s FROM buckets WHERE name=?", (name,)).fetchone()
        return None if row is None else BucketInfo(*row)

    def list_buckets(self) -> list[BucketInfo]:
        with self._lock:
            rows = self._db.execute("SELECT name, created_s FROM buckets ORDER BY name").fetchall()
        return [BucketInfo(*r) for r in rows]

    def delete_bucket(self, name: str) -> None:
        orphans: list[str] = []
        with self._transaction() as db:
            self._need_bucket(db, name)
            if db.execute("SELECT 1 FROM objects WHERE bucket=? LIMIT 1", (name,)).fetchone():
                raise S3Error("BucketNotEmpty", BucketName=name)
            # Unfinished multipart uploads go with their bucket.
            for (upload,) in db.execute("SELECT id FROM uploads WHERE bucket=?", (name,)).fetchall():
                self._drop_upload(db, upload, orphans)
            db.execute("DELETE FROM buckets WHERE name=?", (name,))
        with self._lock:
            self.refs.remove_orphans(orphans)

    def _need_bucket(self, db: sqlite3.Connection, name: str) -> bytes | None:
        row = db.execute("SELECT notification FROM buckets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise S3Error("NoSuchBucket", BucketName=name)
        return row[0]

    def put_notification(self, name: str, config: notifications.NotificationConfig) -> None:
        with self._transaction() as db:
            self._need_bucket(db, name)
            blob = msgspec.json.encode(config) if config.functions else None
            db.execute("UPDATE buckets SET notification=? WHERE name=?", (blob, name))

    def get_notification(self, name: str) -> notifications.NotificationConfig:
        with self._lock:
            blob = self._need_bucket(self._db, name)
        return notifications.decode_config(blob)

    # -- objects --------------------------------------------------------------

    def head(self, bucket: str, key: str) -> ObjectInfo:
        with self._lock:
            self._need_bucket(self._db, bucket)
            row = self._db.execute(f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
        if row is None:
            raise S3Error("NoSuchKey", Key=key)
        return row_to_info(row)

    def _write_object(self, db: sqlite3.Connection, info: ObjectInfo, orphans: list[str]) -> None:
        old = db.execute("SELECT parts FROM objects WHERE bucket=? AND key=?", (info.bucket, info.key)).fetchone()
        # Reference the new blobs before releasing the old ones: an object
        # overwritten with its own bytes must not lose them in between.
        for sha, size in info.parts:
            self.refs.ref(db, sha, size)
        if old is not None:
            self.refs.unref(db, parts_dec.decode(old[0]), orphans)
        db.execute(
            "INSERT INTO objects(bucket, key, size, etag, modified_s, content_type, meta, parts) VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(bucket, key) DO UPDATE SET size=excluded.size, etag=excluded.etag, modified_s=excluded.modified_s, "
            "content_type=excluded.content_type, meta=excluded.meta, parts=excluded.parts",
            (
                info.bucket,
                info.key,
                info.size,
                info.etag,
                info.modified_s,
                info.content_type,
                meta_enc.encode(info.meta),
                meta_enc.encode(info.parts),
            ),
        )

    def _sequence(self, db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO counters(name, value) VALUES('sequencer', 1) ON CONFLICT(name) DO UPDATE SET value=value+1")
        return db.execute("SELECT value FROM counters WHERE name='sequencer'").fetchone()[0]

    def _emit(
        self,
        db: sqlite3.Connection,
        notification: bytes | None,
        event_name: str,
        info: ObjectInfo | None,
        bucket: str,
        key: str,
        ctx: notifications.RequestContext,
    ) -> int:
        """Queues the events this change causes, in the caller's transaction."""
        seq = self._sequence(db)
        if notification is None:
            return 0
        config = notifications.decode_config(notification)
        rows = notifications.events_for(
            config, event_name, bucket, key, info.size if info else None, info.etag if info else None, seq, ctx, self.region, self.clock()
        )
        for r in rows:
            db.execute(
                "INSERT INTO outbox(id, created_s, function, qualifier, payload, source_arn) VALUES(?, ?, ?, ?, ?, ?)",
                (r.id, r.created_s, r.function, r.qualifier, r.payload, r.source_arn),
            )
        return len(rows)

    def put_object(
        self,
        bucket: str,
        key: str,
        staged: Staged,
        content_type: str,
        meta: ObjectMeta,
        ctx: notifications.RequestContext,
        event_name: str = "ObjectCreated:Put",
        check: Callable[[ObjectInfo | None], None] = lambda current: None,
    ) -> tuple[ObjectInfo, int]:
        """Commits an object made of one staged blob, with its events.
        ``check`` may refuse on the object as it is (conditional writes).
        Returns the object and how many events it queued."""
        info = ObjectInfo(bucket, key, staged.size, staged.md5, self.clock(), content_type, meta, [(staged.sha256, staged.size)])
        orphans: list[str] = []
        try:
            with self._transaction() as db:
                notification = self._need_bucket(db, bucket)
                row = db.execute(f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
                check(None if row is None else row_to_info(row))
                self._write_object(db, info, orphans)
                queued = self._emit(db, notification, event_name, info, bucket, key, ctx)
        except BaseException:
            self.release(staged)
            raise
        with self._lock:
            self.refs.committed([staged])
            self.refs.remove_orphans(orphans)
        return info, queued

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        content_type: str | None,
        meta: ObjectMeta | None,
        ctx: notifications.RequestContext,
        check: Callable[[ObjectInfo], None] = lambda info: None,
        keep_checksums: bool = True,
    ) -> tuple[ObjectInfo, int]:
        """A new object naming the source's blobs (no bytes are copied).
        content_type and meta None keep the source's (COPY directive); with
        new meta, ``keep_checksums`` keeps the source's checksums (the bytes
        are the same). ``check`` may refuse on the source (preconditions)."""
        orphans: list[str] = []
        with self._transaction() as db:
            self._need_bucket(db, src_bucket)
            row = db.execute(f"SELECT {OBJECT_COLUMNS} FROM objects WHERE bucket=? AND key=?", (src_bucket, src_key)).fetchone()
            if row is None:
                raise S3Error("NoSuchKey", Key=src_key)
            src = row_to_info(row)
            check(src)
            notification = self._need_bucket(db, dst_bucket)
            if meta is not None and keep_checksums:
                meta = ObjectMeta(meta.user, meta.headers, src.meta.checksums)
            info = ObjectInfo(
                dst_bucket,
                dst_key,
                src.size,
                src.etag,
                self.clock(),
                src.content_type if content_type is None else content_type,
                src.meta if meta is None else meta,
                src.parts,
            )
            self._write_object(db, info, orphans)
            queued = self._emit(db, notification, "ObjectCreated:Copy", info, dst_bucket, dst_key, ctx)
        with self._lock:
            self.refs.remove_orphans(orphans)
        return info, queued

    def delete_objects(self, bucket: str, keys: list[str], ctx: notifications.RequestContext) -> list[bool]:
        """Deletes keys in one commit; for each, whether it existed. A key
        that did not exist is not an error (S3 answers 204 for it too)."""
        orphans: list[str] = []
        existed = []
        with self._transaction() as db:
            notification = self._need_bucket(db, bucket)
            for key in keys:
                row = db.execute("SELECT parts FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
                if row is None:
                    existed.append(False)
                    continue
                db.execute("DELETE FROM objects WHERE bucket=? AND key=?", (bucket, key))
                self.refs.unref(db, parts_dec.decode(row[0]), orphans)
                self._emit(db, notification, "ObjectRemoved:Delete", None, bucket, key, ctx)
                existed.append(True)
        with self._lock:
            self.refs.remove_orphans(orphans)
        return existed

    def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000) -> Listing:
        """Keys (and common prefixes, with a delimiter) after ``after``, in
        UTF-8 byte order, as ListObjects(V2) pages them (listing.py)."""
        with self._lock:
            self._need_bucket(self._db, bucket)
            return list_page(self._db, bucket, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)

    # -- the outbox -----------------------------------------------------------

    def outbox(self, limit: int = 256) -> list[OutboxRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, created_s, function, qualifier, payload, source_arn FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [OutboxRow(r[0], r[1], r[2], r[3], bytes(r[4]), r[5]) for r in rows]

    def outbox_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT id FROM outbox")}

    def forget_outbox(self, ids: list[str]) -> None:
        """Removes events the async queue holds now (durably: outbox.py
        forgets its own record of them only after this commit)."""
        with self._transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id=?", [(i,) for i in ids])
