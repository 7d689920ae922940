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
commit, unless a write of the same bytes is under way (``_staging``), in
which case that write's commit names it again.

Every method is synchronous and may fsync; the HTTP layer calls them from
worker threads. Refusals are S3Error.
"""
from __future__ import annotations

import base64
import collections
import contextlib
import hashlib
import pathlib
import secrets
import sqlite3
import threading
import time
from typing import Callable, Iterable

import msgspec

from . import notifications
from .blobs import BlobStore, WrittenBlob
from .errors import S3Error

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000
_NO_QUOTA = 0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    created_s REAL NOT NULL,
    notification BLOB               -- the bucket's notification configuration, as JSON
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,              -- compared as UTF-8 bytes, S3's listing order
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,             -- without quotes
    modified_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    meta BLOB NOT NULL,             -- user metadata, stored headers, checksums (JSON)
    parts BLOB NOT NULL,            -- [[sha256, size], ...]: the blobs, in order
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
    sha TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    refs INTEGER NOT NULL           -- objects and upload parts naming it
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key TEXT NOT NULL,
    created_s REAL NOT NULL,
    content_type TEXT NOT NULL,
    meta BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS uploads_bucket ON uploads(bucket, key);
CREATE TABLE IF NOT EXISTS parts (
    upload TEXT NOT NULL,
    number INTEGER NOT NULL,
    sha TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    modified_s REAL NOT NULL,
    checksums BLOB NOT NULL,
    PRIMARY KEY (upload, number)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,        -- becomes the async event's request id
    created_s REAL NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    payload BLOB NOT NULL,          -- the S3 event, {"Records": [...]}
    source_arn TEXT NOT NULL        -- arn:aws:s3:::bucket, for the permission check
);
CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""


class ObjectMeta(msgspec.Struct, frozen=True):
    """What an upload says about the object besides its bytes."""

    user: dict[str, str] = {}  # x-amz-meta-*, names lower-cased
    headers: dict[str, str] = {}  # Cache-Control, Content-Disposition, ... as sent
    checksums: dict[str, str] = {}  # e.g. {"CRC32": "base64"}, full-object only


class ObjectInfo(msgspec.Struct, frozen=True):
    bucket: str
    key: str
    size: int
    etag: str
    modified_s: float
    content_type: str
    meta: ObjectMeta
    parts: list[tuple[str, int]]

    @property
    def quoted_etag(self) -> str:
        return f'"{self.etag}"'


class BucketInfo(msgspec.Struct, frozen=True):
    name: str
    created_s: float


class PartInfo(msgspec.Struct, frozen=True):
    number: int
    sha: str
    size: int
    etag: str
    modified_s: float
    checksums: dict[str, str]


class UploadInfo(msgspec.Struct, frozen=True):
    id: str
    bucket: str
    key: str
    created_s: float
    content_type: str
    meta: ObjectMeta


class Listing(msgspec.Struct, frozen=True):
    objects: list[ObjectInfo]
    prefixes: list[str]
    truncated: bool
    next_marker: str | None  # the last key or prefix returned, when truncated


class OutboxRow(msgspec.Struct, frozen=True):
    id: str
    created_s: float
    function: str
    qualifier: str
    payload: bytes
    source_arn: str


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


_meta_enc = msgspec.json.Encoder()
_meta_dec = msgspec.json.Decoder(ObjectMeta)
_parts_dec = msgspec.json.Decoder(list[tuple[str, int]])
_dict_dec = msgspec.json.Decoder(dict[str, str])


def _successor(prefix: str) -> str:
    """The least string greater than every string that starts with prefix
    (code point order, which is also UTF-8 byte order)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return prefix[:-1] + chr(nxt)
        prefix = prefix[:-1]
    return "\U0010ffff" * 2


def _upload_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(30)).decode()


class ObjectStore:
    def __init__(self, root: pathlib.Path, *, max_object_bytes: int, quota_bytes: int = _NO_QUOTA,
                 region: str = "us-east-1", clock: Callable[[], float] = time.time) -> None:
        self.root = root
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.blobs = BlobStore(root / "blobs")
        self.max_object_bytes = max_object_bytes
        self.quota_bytes = quota_bytes
        self.region = region
        self.clock = clock
        self._db = sqlite3.connect(root / "s3.db", check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        # Blob digest -> writes of those bytes not yet committed.
        self._staging: collections.Counter[str] = collections.Counter()
        self._reserved = 0  # bytes promised to uploads in flight, for the quota
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a 200 for a PUT promises the object (and its events)
            # survive power loss, not only a crash of this process.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            self._used = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs WHERE refs > 0").fetchone()[0]

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
        if size > self.max_object_bytes:
            raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(self.max_object_bytes))
        if self.quota_bytes:
            with self._lock:
                free = self.quota_bytes - self._used - self._reserved
            if size > free:
                raise S3Error("EntityTooLarge", f"Your proposed upload exceeds the quota of this server's object store ({self.quota_bytes} bytes, {max(0, free)} free)",
                              ProposedSize=str(size), MaxSizeAllowed=str(max(0, free)))

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

    def _ref(self, db: sqlite3.Connection, sha: str, size: int, by: int = 1) -> None:
        row = db.execute("SELECT refs FROM blobs WHERE sha=?", (sha,)).fetchone()
        if row is None:
            db.execute("INSERT INTO blobs(sha, size, refs) VALUES(?, ?, ?)", (sha, size, by))
            self._used += size
        else:
            if row[0] <= 0:
                self._used += size
            db.execute("UPDATE blobs SET refs=refs+? WHERE sha=?", (by, sha))

    def _unref(self, db: sqlite3.Connection, parts: Iterable[tuple[str, int]], orphans: list[str]) -> None:
        for sha, size in parts:
            db.execute("UPDATE blobs SET refs=refs-1 WHERE sha=?", (sha,))
            row = db.execute("SELECT refs FROM blobs WHERE sha=?", (sha,)).fetchone()
            if row is not None and row[0] <= 0:
                self._used -= size
                orphans.append(sha)

    def _committed(self, staged: Iterable[Staged]) -> None:
        for s in staged:
            if not s.released:
                self._unstage_locked(s.sha256, s.size)
                s.released = True

    def _remove_orphans(self, orphans: list[str]) -> None:
        """After the commit that stopped naming them. Under the lock, so no
        stage() of the same bytes can slip in between the check and the unlink."""
        for sha in orphans:
            if self._staging[sha]:
                continue  # a write of the same bytes will name it again
            cur = self._db.execute("DELETE FROM blobs WHERE sha=? AND refs <= 0", (sha,))
            if cur.rowcount:
                self.blobs.unlink(sha)

    def usage(self) -> dict[str, int]:
        with self._lock:
            objects, logical = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM objects").fetchone()
            buckets = self._db.execute("SELECT COUNT(*) FROM buckets").fetchone()[0]
            return {"buckets": buckets, "objects": objects, "object_bytes": logical, "stored_bytes": self._used, "quota_bytes": self.quota_bytes}

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
            self._remove_orphans(orphans)

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

    def _row_to_info(self, row) -> ObjectInfo:
        bucket, key, size, etag, modified_s, content_type, meta, parts = row
        return ObjectInfo(bucket, key, size, etag, modified_s, content_type, _meta_dec.decode(meta), _parts_dec.decode(parts))

    _COLUMNS = "bucket, key, size, etag, modified_s, content_type, meta, parts"

    def head(self, bucket: str, key: str) -> ObjectInfo:
        with self._lock:
            self._need_bucket(self._db, bucket)
            row = self._db.execute(f"SELECT {self._COLUMNS} FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
        if row is None:
            raise S3Error("NoSuchKey", Key=key)
        return self._row_to_info(row)

    def _write_object(self, db: sqlite3.Connection, info: ObjectInfo, orphans: list[str]) -> None:
        old = db.execute("SELECT parts FROM objects WHERE bucket=? AND key=?", (info.bucket, info.key)).fetchone()
        # Reference the new blobs before releasing the old ones: an object
        # overwritten with its own bytes must not lose them in between.
        for sha, size in info.parts:
            self._ref(db, sha, size)
        if old is not None:
            self._unref(db, _parts_dec.decode(old[0]), orphans)
        db.execute(
            "INSERT INTO objects(bucket, key, size, etag, modified_s, content_type, meta, parts) VALUES(?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(bucket, key) DO UPDATE SET size=excluded.size, etag=excluded.etag, modified_s=excluded.modified_s, "
            "content_type=excluded.content_type, meta=excluded.meta, parts=excluded.parts",
            (info.bucket, info.key, info.size, info.etag, info.modified_s, info.content_type, _meta_enc.encode(info.meta), _meta_enc.encode(info.parts)),
        )

    def _sequence(self, db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO counters(name, value) VALUES('sequencer', 1) ON CONFLICT(name) DO UPDATE SET value=value+1")
        return db.execute("SELECT value FROM counters WHERE name='sequencer'").fetchone()[0]

    def _emit(self, db: sqlite3.Connection, notification: bytes | None, event_name: str, info: ObjectInfo | None,
              bucket: str, key: str, ctx: notifications.RequestContext) -> int:
        """Queues the events this change causes, in the caller's transaction."""
        seq = self._sequence(db)
        if notification is None:
            return 0
        config = notifications.decode_config(notification)
        rows = notifications.events_for(config, event_name, bucket, key, info.size if info else None,
                                        info.etag if info else None, seq, ctx, self.region, self.clock())
        for r in rows:
            db.execute("INSERT INTO outbox(id, created_s, function, qualifier, payload, source_arn) VALUES(?, ?, ?, ?, ?, ?)",
                       (r.id, r.created_s, r.function, r.qualifier, r.payload, r.source_arn))
        return len(rows)

    def put_object(self, bucket: str, key: str, staged: Staged, content_type: str, meta: ObjectMeta,
                   ctx: notifications.RequestContext, event_name: str = "ObjectCreated:Put",
                   check: Callable[[ObjectInfo | None], None] = lambda current: None) -> tuple[ObjectInfo, int]:
        """Commits an object made of one staged blob, with its events.
        ``check`` may refuse on the object as it is (conditional writes).
        Returns the object and how many events it queued."""
        info = ObjectInfo(bucket, key, staged.size, staged.md5, self.clock(), content_type, meta, [(staged.sha256, staged.size)])
        orphans: list[str] = []
        try:
            with self._transaction() as db:
                notification = self._need_bucket(db, bucket)
                row = db.execute(f"SELECT {self._COLUMNS} FROM objects WHERE bucket=? AND key=?", (bucket, key)).fetchone()
                check(None if row is None else self._row_to_info(row))
                self._write_object(db, info, orphans)
                queued = self._emit(db, notification, event_name, info, bucket, key, ctx)
        except BaseException:
            self.release(staged)
            raise
        with self._lock:
            self._committed([staged])
            self._remove_orphans(orphans)
        return info, queued

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
                    content_type: str | None, meta: ObjectMeta | None, ctx: notifications.RequestContext,
                    check: Callable[[ObjectInfo], None] = lambda info: None, keep_checksums: bool = True) -> tuple[ObjectInfo, int]:
        """A new object naming the source's blobs (no bytes are copied).
        content_type and meta None keep the source's (COPY directive); with
        new meta, ``keep_checksums`` keeps the source's checksums (the bytes
        are the same). ``check`` may refuse on the source (preconditions)."""
        orphans: list[str] = []
        with self._transaction() as db:
            self._need_bucket(db, src_bucket)
            row = db.execute(f"SELECT {self._COLUMNS} FROM objects WHERE bucket=? AND key=?", (src_bucket, src_key)).fetchone()
            if row is None:
                raise S3Error("NoSuchKey", Key=src_key)
            src = self._row_to_info(row)
            check(src)
            notification = self._need_bucket(db, dst_bucket)
            if meta is not None and keep_checksums:
                meta = ObjectMeta(meta.user, meta.headers, src.meta.checksums)
            info = ObjectInfo(dst_bucket, dst_key, src.size, src.etag, self.clock(),
                              src.content_type if content_type is None else content_type,
                              src.meta if meta is None else meta, src.parts)
            self._write_object(db, info, orphans)
            queued = self._emit(db, notification, "ObjectCreated:Copy", info, dst_bucket, dst_key, ctx)
        with self._lock:
            self._remove_orphans(orphans)
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
                self._unref(db, _parts_dec.decode(row[0]), orphans)
                self._emit(db, notification, "ObjectRemoved:Delete", None, bucket, key, ctx)
                existed.append(True)
        with self._lock:
            self._remove_orphans(orphans)
        return existed

    def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str = "", after: str = "", max_keys: int = 1000) -> Listing:
        """Keys (and common prefixes, with a delimiter) after ``after``, in
        UTF-8 byte order, as ListObjects(V2) pages them. ``after`` may be a
        common prefix returned on the previous page: its keys are skipped."""
        objects: list[ObjectInfo] = []
        prefixes: list[str] = []
        truncated = False
        last: str | None = None
        cursor, inclusive = after, False
        if prefix > after:
            cursor, inclusive = prefix, True
        elif delimiter and after.startswith(prefix) and after.endswith(delimiter) and after.find(delimiter, len(prefix)) == len(after) - len(delimiter):
            cursor, inclusive = _successor(after), True
        batch = 256
        with self._lock:
            self._need_bucket(self._db, bucket)
            done = max_keys <= 0
            while not done:
                rows = self._db.execute(
                    f"SELECT {self._COLUMNS} FROM objects WHERE bucket=? AND key {'>=' if inclusive else '>'} ? ORDER BY key LIMIT ?",
                    (bucket, cursor, batch),
                ).fetchall()
                done = len(rows) < batch
                reseek = None
                for row in rows:
                    key = row[1]
                    if not key.startswith(prefix):
                        done = True
                        break
                    if len(objects) + len(prefixes) >= max_keys:
                        truncated = done = True
                        break
                    if delimiter:
                        at = key.find(delimiter, len(prefix))
                        if at >= 0:
                            common = key[: at + len(delimiter)]
                            prefixes.append(common)
                            last = common
                            # Every key under this prefix rolls up into it: seek past them.
                            reseek = _successor(common)
                            break
                    objects.append(self._row_to_info(row))
                    last = key
                if reseek is not None:
                    cursor, inclusive, done = reseek, True, False
                elif rows and not done:
                    cursor, inclusive = rows[-1][1], False
        return Listing(objects, prefixes, truncated, last if truncated else None)

    # -- multipart uploads ----------------------------------------------------

    def create_upload(self, bucket: str, key: str, content_type: str, meta: ObjectMeta) -> str:
        upload = _upload_id()
        with self._transaction() as db:
            self._need_bucket(db, bucket)
            db.execute("INSERT INTO uploads(id, bucket, key, created_s, content_type, meta) VALUES(?, ?, ?, ?, ?, ?)",
                       (upload, bucket, key, self.clock(), content_type, _meta_enc.encode(meta)))
        return upload

    def upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        with self._lock:
            self._need_bucket(self._db, bucket)
            row = self._db.execute("SELECT id, bucket, key, created_s, content_type, meta FROM uploads WHERE id=?", (upload_id,)).fetchone()
        if row is None or row[1] != bucket or row[2] != key:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return UploadInfo(row[0], row[1], row[2], row[3], row[4], _meta_dec.decode(row[5]))

    def put_part(self, bucket: str, key: str, upload_id: str, number: int, staged: Staged, checksums: dict[str, str]) -> PartInfo:
        part = PartInfo(number, staged.sha256, staged.size, staged.md5, self.clock(), checksums)
        orphans: list[str] = []
        try:
            with self._transaction() as db:
                self._need_bucket(db, bucket)
                row = db.execute("SELECT bucket, key FROM uploads WHERE id=?", (upload_id,)).fetchone()
                if row is None or row != (bucket, key):
                    raise S3Error("NoSuchUpload", UploadId=upload_id)
                old = db.execute("SELECT sha, size FROM parts WHERE upload=? AND number=?", (upload_id, number)).fetchone()
                self._ref(db, part.sha, part.size)
                if old is not None:
                    self._unref(db, [old], orphans)
                db.execute(
                    "INSERT INTO parts(upload, number, sha, size, etag, modified_s, checksums) VALUES(?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(upload, number) DO UPDATE SET sha=excluded.sha, size=excluded.size, etag=excluded.etag, "
                    "modified_s=excluded.modified_s, checksums=excluded.checksums",
                    (upload_id, number, part.sha, part.size, part.etag, part.modified_s, _meta_enc.encode(checksums)),
                )
        except BaseException:
            self.release(staged)
            raise
        with self._lock:
            self._committed([staged])
            self._remove_orphans(orphans)
        return part

    def list_parts(self, bucket: str, key: str, upload_id: str, after: int = 0, limit: int = 1000) -> tuple[list[PartInfo], bool]:
        self.upload(bucket, key, upload_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT number, sha, size, etag, modified_s, checksums FROM parts WHERE upload=? AND number>? ORDER BY number LIMIT ?",
                (upload_id, after, limit + 1),
            ).fetchall()
        parts = [PartInfo(r[0], r[1], r[2], r[3], r[4], _dict_dec.decode(r[5])) for r in rows]
        return parts[:limit], len(parts) > limit

    def list_uploads(self, bucket: str, prefix: str = "", limit: int = 1000) -> tuple[list[UploadInfo], bool]:
        with self._lock:
            self._need_bucket(self._db, bucket)
            rows = self._db.execute(
                "SELECT id, bucket, key, created_s, content_type, meta FROM uploads WHERE bucket=? AND substr(key, 1, ?)=? ORDER BY key, created_s LIMIT ?",
                (bucket, len(prefix), prefix, limit + 1),
            ).fetchall()
        ups = [UploadInfo(r[0], r[1], r[2], r[3], r[4], _meta_dec.decode(r[5])) for r in rows]
        return ups[:limit], len(ups) > limit

    def _drop_upload(self, db: sqlite3.Connection, upload_id: str, orphans: list[str]) -> None:
        parts = db.execute("SELECT sha, size FROM parts WHERE upload=?", (upload_id,)).fetchall()
        self._unref(db, parts, orphans)
        db.execute("DELETE FROM parts WHERE upload=?", (upload_id,))
        db.execute("DELETE FROM uploads WHERE id=?", (upload_id,))

    def abort_upload(self, bucket: str, key: str, upload_id: str) -> None:
        orphans: list[str] = []
        with self._transaction() as db:
            self._need_bucket(db, bucket)
            row = db.execute("SELECT bucket, key FROM uploads WHERE id=?", (upload_id,)).fetchone()
            if row is None or row != (bucket, key):
                raise S3Error("NoSuchUpload", UploadId=upload_id)
            self._drop_upload(db, upload_id, orphans)
        with self._lock:
            self._remove_orphans(orphans)

    def complete_upload(self, bucket: str, key: str, upload_id: str, wanted: list[tuple[int, str]],
                        ctx: notifications.RequestContext) -> tuple[ObjectInfo, int]:
        """Makes the object from the listed parts (number, ETag without
        quotes), in one commit with its events; the upload and the parts it
        did not list go. S3's rules: ascending numbers, each part uploaded
        with that ETag, every part but the last at least 5 MiB."""
        if not wanted:
            raise S3Error("MalformedXML")
        numbers = [n for n, _ in wanted]
        if any(b <= a for a, b in zip(numbers, numbers[1:])):
            raise S3Error("InvalidPartOrder")
        orphans: list[str] = []
        with self._transaction() as db:
            notification = self._need_bucket(db, bucket)
            up = db.execute("SELECT bucket, key, content_type, meta FROM uploads WHERE id=?", (upload_id,)).fetchone()
            if up is None or up[:2] != (bucket, key):
                raise S3Error("NoSuchUpload", UploadId=upload_id)
            stored = {r[0]: r[1:] for r in db.execute("SELECT number, sha, size, etag FROM parts WHERE upload=?", (upload_id,))}
            chosen: list[tuple[str, int, str]] = []
            for i, (number, etag) in enumerate(wanted):
                part = stored.get(number)
                if part is None or part[2] != etag:
                    raise S3Error("InvalidPart", UploadId=upload_id, PartNumber=str(number), ETag=f'"{etag}"')
                if i < len(wanted) - 1 and part[1] < MIN_PART_BYTES:
                    raise S3Error("EntityTooSmall", ProposedSize=str(part[1]), MinSizeAllowed=str(MIN_PART_BYTES),
                                  PartNumber=str(number), ETag=f'"{etag}"')
                chosen.append(part)
            size = sum(p[1] for p in chosen)
            if size > self.max_object_bytes:
                raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(self.max_object_bytes))
            digest = hashlib.md5(b"".join(bytes.fromhex(p[2]) for p in chosen), usedforsecurity=False).hexdigest()
            meta = _meta_dec.decode(up[3])
            info = ObjectInfo(bucket, key, size, f"{digest}-{len(chosen)}", self.clock(), up[2], meta,
                              [(p[0], p[1]) for p in chosen])
            self._write_object(db, info, orphans)
            self._drop_upload(db, upload_id, orphans)
            queued = self._emit(db, notification, "ObjectCreated:CompleteMultipartUpload", info, bucket, key, ctx)
        with self._lock:
            self._remove_orphans(orphans)
        return info, queued

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
