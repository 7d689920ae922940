"""Multipart uploads in the object store: parts are staged blobs named by
rows of ``parts``; completing an upload makes an object of the listed parts'
blobs (no bytes are copied) in one commit with its events.

A mixin of ObjectStore (store.py), whose connection, lock, blob references
and object writes it uses.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from . import notifications
from .blob_refs import BlobRefs, Staged
from .errors import S3Error
from .records import ObjectInfo, ObjectMeta, PartInfo, UploadInfo, dict_dec, meta_dec, meta_enc, upload_from_row

MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
MAX_PARTS = 10_000


def _upload_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(30)).decode()


class MultipartUploads:
    # What ObjectStore provides.
    _db: sqlite3.Connection
    _lock: threading.Lock
    refs: BlobRefs
    clock: Callable[[], float]
    max_object_bytes: int
    _transaction: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _need_bucket: Callable[[sqlite3.Connection, str], bytes | None]
    _write_object: Callable[[sqlite3.Connection, ObjectInfo, list[str]], None]
    _emit: Callable[..., int]
    release: Callable[[Staged], None]

    def create_upload(self, bucket: str, key: str, content_type: str, meta: ObjectMeta) -> str:
        upload = _upload_id()
        with self._transaction() as db:
            self._need_bucket(db, bucket)
            db.execute(
                "INSERT INTO uploads(id, bucket, key, created_s, content_type, meta) VALUES(?, ?, ?, ?, ?, ?)",
                (upload, bucket, key, self.clock(), content_type, meta_enc.encode(meta)),
            )
        return upload

    def upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        with self._lock:
            self._need_bucket(self._db, bucket)
            row = self._db.execute("SELECT id, bucket, key, created_s, content_type, meta FROM uploads WHERE id=?", (upload_id,)).fetchone()
        if row is None or row[1] != bucket or row[2] != key:
            raise S3Error("NoSuchUpload", UploadId=upload_id)
        return upload_from_row(row)

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
                self.refs.ref(db, part.sha, part.size)
                if old is not None:
                    self.refs.unref(db, [old], orphans)
                db.execute(
                    "INSERT INTO parts(upload, number, sha, size, etag, modified_s, checksums) VALUES(?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(upload, number) DO UPDATE SET sha=excluded.sha, size=excluded.size, etag=excluded.etag, "
                    "modified_s=excluded.modified_s, checksums=excluded.checksums",
                    (upload_id, number, part.sha, part.size, part.etag, part.modified_s, meta_enc.encode(checksums)),
                )
        except BaseException:
            self.release(staged)
            raise
        with self._lock:
            self.refs.committed([staged])
            self.refs.remove_orphans(orphans)
        return part

    def list_parts(self, bucket: str, key: str, upload_id: str, after: int = 0, limit: int = 1000) -> tuple[list[PartInfo], bool]:
        self.upload(bucket, key, upload_id)
        with self._lock:
            rows = self._db.execute(
                "SELECT number, sha, size, etag, modified_s, checksums FROM parts WHERE upload=? AND number>? ORDER BY number LIMIT ?",
                (upload_id, after, limit + 1),
            ).fetchall()
        parts = [PartInfo(r[0], r[1], r[2], r[3], r[4], dict_dec.decode(r[5])) for r in rows]
        return parts[:limit], len(parts) > limit

    def list_uploads(self, bucket: str, prefix: str = "", limit: int = 1000) -> tuple[list[UploadInfo], bool]:
        with self._lock:
            self._need_bucket(self._db, bucket)
            rows = self._db.execute(
                "SELECT id, bucket, key, created_s, content_type, meta FROM uploads WHERE bucket=? AND substr(key, 1, ?)=? ORDER BY key, created_s LIMIT ?",
                (bucket, len(prefix), prefix, limit + 1),
            ).fetchall()
        ups = [upload_from_row(r) for r in rows]
        return ups[:limit], len(ups) > limit

    def _drop_upload(self, db: sqlite3.Connection, upload_id: str, orphans: list[str]) -> None:
        parts = db.execute("SELECT sha, size FROM parts WHERE upload=?", (upload_id,)).fetchall()
        self.refs.unref(db, parts, orphans)
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
            self.refs.remove_orphans(orphans)

    def complete_upload(
        self, bucket: str, key: str, upload_id: str, wanted: list[tuple[int, str]], ctx: notifications.RequestContext
    ) -> tuple[ObjectInfo, int]:
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
                    raise S3Error(
                        "EntityTooSmall",
                        ProposedSize=str(part[1]),
                        MinSizeAllowed=str(MIN_PART_BYTES),
                        PartNumber=str(number),
                        ETag=f'"{etag}"',
                    )
                chosen.append(part)
            size = sum(p[1] for p in chosen)
            if size > self.max_object_bytes:
                raise S3Error("EntityTooLarge", ProposedSize=str(size), MaxSizeAllowed=str(self.max_object_bytes))
            digest = hashlib.md5(b"".join(bytes.fromhex(p[2]) for p in chosen), usedforsecurity=False).hexdigest()
            meta = meta_dec.decode(up[3])
            info = ObjectInfo(bucket, key, size, f"{digest}-{len(chosen)}", self.clock(), up[2], meta, [(p[0], p[1]) for p in chosen])
            self._write_object(db, info, orphans)
            self._drop_upload(db, upload_id, orphans)
            queued = self._emit(db, notification, "ObjectCreated:CompleteMultipartUpload", info, bucket, key, ctx)
        with self._lock:
            self.refs.remove_orphans(orphans)
        return info, queued
