"""Object operations: PUT (with Content-MD5 and checksum checks), GET and
HEAD (ranges, part numbers, conditions), DELETE, DeleteObjects, CopyObject.
What an upload says is checked in object_input.py, preconditions and
ranges in conditions.py; multipart uploads are multipart.py's."""

from __future__ import annotations

import os
from urllib.parse import unquote

from ... import crashpoints
from ...events.s3 import xmlsafe
from ...events.s3.errors import S3Error
from ...events.s3.multipart import MAX_PARTS
from ...events.s3.names import check_key
from ...events.s3.records import ObjectInfo, ObjectMeta
from ...http.body import FileBody
from .conditions import byte_range, check_read_conditions
from .object_input import check_digests, check_put_conditions, checksum_headers, digests, meta_from_headers
from .replies import CHECKSUM_HEADERS, Reply, iso_time, object_headers, xml_reply

MAX_DELETE_KEYS = 1000


async def put_object(c, r) -> Reply:
    key = check_key(r.key)
    content_type, meta = meta_from_headers(r)
    data = r.body
    checksums = await digests(c, r, data)
    meta = ObjectMeta(meta.user, meta.headers, checksums)
    condition = check_put_conditions(r)
    staged = await c.run(c.store.stage, data)
    crashpoints.reach("s3.put.staged")
    info, queued = await c.run(
        lambda: c.store.put_object(r.bucket, key, staged, content_type, meta, r.event_context(c.account), check=condition)
    )
    crashpoints.reach("s3.put.committed")
    if queued:
        c.on_events()
    headers = [("ETag", info.quoted_etag)]
    headers += checksum_headers(checksums)
    return 200, headers, b""


def open_segments(c, info: ObjectInfo, first: int, last: int) -> list[tuple[int, int, int]]:
    """Open fds on the blobs holding bytes first..last. FileNotFoundError
    when a blob went away (the object was overwritten since it was read)."""
    segments: list[tuple[int, int, int]] = []
    start = 0
    try:
        for sha, size in info.parts:
            end = start + size  # exclusive
            if end > first and start <= last and size:
                lo = max(first, start) - start
                hi = min(last + 1, end) - start
                segments.append((c.store.blobs.open(sha), lo, hi - lo))
            start = end
    except BaseException:
        for fd, _, _ in segments:
            os.close(fd)
        raise
    return segments


async def get_object(c, r, *, head_only: bool) -> Reply:
    key = check_key(r.key)
    for _attempt in range(5):
        info = await c.run(c.store.head, r.bucket, key)
        check_read_conditions(r, info)
        headers = object_headers(info, r.query, with_checksums=(r.header("x-amz-checksum-mode") or "").upper() == "ENABLED")
        first, last, status = 0, info.size - 1, 200
        part = r.query.get("partNumber")
        range_header = r.header("range")
        if part is not None:
            if range_header is not None:
                raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
            number = part_number(part)
            if number > len(info.parts):
                raise S3Error("InvalidPartNumber", PartNumberRequested=str(number), ActualPartCount=str(len(info.parts)))
            first = sum(size for _, size in info.parts[: number - 1])
            last = first + info.parts[number - 1][1] - 1
            headers.append(("x-amz-mp-parts-count", str(len(info.parts))))
            if len(info.parts) > 1:
                status = 206
                headers.append(("Content-Range", f"bytes {first}-{last}/{info.size}"))
        elif range_header is not None and info.size > 0:
            span = byte_range(range_header, info.size)
            if span is not None:
                first, last = span
                status = 206
                headers.append(("Content-Range", f"bytes {first}-{last}/{info.size}"))
                # A part of the object does not match its full checksum.
                headers = [(k, v) for k, v in headers if not k.startswith("x-amz-checksum-")]
        elif range_header is not None:
            raise S3Error("InvalidRange", RangeRequested=range_header, ActualObjectSize="0")
        length = max(0, last - first + 1)
        if head_only:
            return status, headers, FileBody.declared(length)
        if length == 0:
            return status, headers, b""
        try:
            segments = open_segments(c, info, first, last)
        except FileNotFoundError:
            continue  # overwritten between the read and the open: read again
        return status, headers, FileBody(segments)
    raise S3Error("SlowDown")


def part_number(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PARTS:
        raise S3Error(
            "InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive", ArgumentName="partNumber", ArgumentValue=raw
        )
    return int(raw)


# -- deleting -----------------------------------------------------------------------


async def delete_object(c, r) -> Reply:
    key = check_key(r.key)
    existed = await c.run(lambda: c.store.delete_objects(r.bucket, [key], r.event_context(c.account)))
    if existed[0]:
        c.on_events()
    return 204, [], b""


async def delete_objects(c, r) -> Reply:
    if r.header("content-md5") is None and not any(r.header(n) or r.trailers.get(n) for n in CHECKSUM_HEADERS):
        raise S3Error("MissingContentMD5")
    check_digests(r, r.body)
    root = xmlsafe.parse(r.body)
    if root.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = xmlsafe.parse_bool(root.find("Quiet"))
    entries = root.find_all("Object")
    if not entries or len(entries) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML")
    keys: list[str] = []
    errors: list[tuple[str, object]] = []
    for entry in entries:
        key = entry.child_text("Key")
        if key is None:
            raise S3Error("MalformedXML")
        try:
            keys.append(check_key(key))
        except S3Error as exc:
            errors.append(("Error", {"Key": key, "Code": exc.code, "Message": exc.message}))
    existed = await c.run(lambda: c.store.delete_objects(r.bucket, keys, r.event_context(c.account)))
    if any(existed):
        c.on_events()
    items: list[tuple[str, object]] = [] if quiet else [("Deleted", {"Key": k}) for k in keys]
    return xml_reply("DeleteResult", items + errors)


# -- copying --------------------------------------------------------------------------


def copy_source(r) -> tuple[str, str]:
    raw = r.header("x-amz-copy-source") or ""
    source = raw.split("?", 1)[0]
    if "?versionId=" in raw:
        raise S3Error("NotImplemented", "Versioning is not implemented by this server's object store.")
    try:
        source = unquote(source, errors="strict")
    except UnicodeDecodeError:
        raise S3Error(
            "InvalidArgument", "Invalid copy source encoding", ArgumentName="x-amz-copy-source", ArgumentValue=raw[:200]
        ) from None
    bucket, slash, key = source.lstrip("/").partition("/")
    if not slash or not bucket or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=raw[:200],
        )
    return bucket, check_key(key)


async def copy_object(c, r) -> Reply:
    key = check_key(r.key)
    src_bucket, src_key = copy_source(r)
    directive = (r.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.", ArgumentName="x-amz-metadata-directive", ArgumentValue=directive)
    same = (src_bucket, src_key) == (r.bucket, key)
    if same and directive == "COPY" and r.header("x-amz-storage-class") is None:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        )
    content_type = meta = None
    if directive == "REPLACE":
        content_type, meta = meta_from_headers(r)

    def check(src: ObjectInfo) -> None:
        check_read_conditions(r, src, prefix="x-amz-copy-source-")

    def copy():
        return c.store.copy_object(
            src_bucket,
            src_key,
            r.bucket,
            key,
            content_type=content_type,
            meta=None if meta is None else meta,
            ctx=r.event_context(c.account),
            check=check,
            keep_checksums=True,
        )

    info, queued = await c.run(copy)
    if queued:
        c.on_events()
    return xml_reply("CopyObjectResult", [("ETag", info.quoted_etag), ("LastModified", iso_time(info.modified_s))])
