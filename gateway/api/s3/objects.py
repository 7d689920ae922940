"""Object operations: PUT (with Content-MD5 and checksum checks), GET and
HEAD (ranges, part numbers, conditions), DELETE, DeleteObjects, CopyObject,
and multipart uploads (create, upload part, upload part copy, list parts,
complete, abort, list uploads)."""
from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import os
import re
import zlib
from urllib.parse import unquote

from ... import crashpoints
from ...events.s3 import xmlsafe
from ...events.s3.errors import S3Error
from ...events.s3.multipart import MAX_PARTS
from ...events.s3.names import check_key
from ...events.s3.records import ObjectInfo, ObjectMeta
from ...http.body import FileBody
from .replies import CHECKSUM_HEADERS, STORED_HEADERS, Reply, iso_time, object_headers, url_encode, xml_reply

DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values (S3's limit)
MAX_DELETE_KEYS = 1000
_RANGE_RE = re.compile(r"bytes=(\d*)-(\d*)")
STORAGE_CLASSES = frozenset({"STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING",
                             "GLACIER", "DEEP_ARCHIVE", "OUTPOSTS", "GLACIER_IR", "SNOW", "EXPRESS_ONEZONE", "FSX_OPENZFS"})


# -- what an upload says about its object ------------------------------------------

def _meta_from_headers(r, checksums: dict[str, str] | None = None) -> tuple[str, ObjectMeta]:
    storage = r.header("x-amz-storage-class")
    if storage is not None and storage not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage)
    user: dict[str, str] = {}
    stored: dict[str, str] = {}
    for name, value in r.head.headers:
        if name.startswith("x-amz-meta-"):
            meta_name = name[len("x-amz-meta-"):]
            user[meta_name] = f"{user[meta_name]},{value}" if meta_name in user else value
        elif name in STORED_HEADERS:
            if name == "content-encoding":
                # aws-chunked describes this request's framing, not the object.
                value = ",".join(p.strip() for p in value.split(",") if p.strip() and p.strip() != "aws-chunked")
                if not value:
                    continue
            stored[name] = value
    size = sum(len(k.encode()) + len(v.encode()) for k, v in user.items())
    if size > MAX_USER_METADATA:
        raise S3Error("MetadataTooLarge", Size=str(size), MaxSizeAllowed=str(MAX_USER_METADATA))
    content_type = r.header("content-type") or DEFAULT_CONTENT_TYPE
    return content_type, ObjectMeta(user, stored, checksums or {})


def _crc32(data: bytes) -> bytes:
    return zlib.crc32(data).to_bytes(4, "big")


_COMPUTABLE = {
    "CRC32": _crc32,
    "SHA1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "SHA256": lambda data: hashlib.sha256(data).digest(),
}


def _check_digests(r, data: bytes) -> dict[str, str]:
    """Content-MD5 and the x-amz-checksum-* headers (or aws-chunked
    trailers), checked against the bytes. Returns the checksums to keep.
    CRC32C and CRC64NVME need a native library this server does not
    require: they are kept as sent, for clients to check on download."""
    md5 = r.header("content-md5")
    if md5 is not None:
        try:
            digest = base64.b64decode(md5, validate=True)
        except (binascii.Error, ValueError):
            digest = b""
        if len(digest) != 16:
            raise S3Error("InvalidDigest", **{"Content-MD5": md5})
        if digest != hashlib.md5(data, usedforsecurity=False).digest():
            raise S3Error("BadDigest", ExpectedDigest=md5, CalculatedDigest=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode())
    checksums: dict[str, str] = {}
    sources = [(name, r.header(name)) for name in CHECKSUM_HEADERS] + [(name, r.trailers.get(name)) for name in CHECKSUM_HEADERS]
    for name, value in sources:
        if value is None:
            continue
        algorithm = CHECKSUM_HEADERS[name]
        compute = _COMPUTABLE.get(algorithm)
        if compute is not None:
            try:
                claimed = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise S3Error("InvalidRequest", f"Value for {name} header is invalid.") from None
            if claimed != compute(data):
                raise S3Error("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")
        checksums[algorithm] = value
    return checksums


def _check_put_conditions(r):
    if_none = r.header("if-none-match")
    if_match = r.header("if-match")
    if if_none is not None and if_none.strip() != "*":
        raise S3Error("NotImplemented", "If-None-Match on PUT accepts only '*'.")

    def check(current: ObjectInfo | None) -> None:
        if if_none is not None and current is not None:
            raise S3Error("PreconditionFailed", Condition="If-None-Match")
        if if_match is not None:
            if current is None:
                raise S3Error("NoSuchKey", Key=r.key)
            if not _etag_matches(if_match, current.etag):
                raise S3Error("PreconditionFailed", Condition="If-Match")
    return check


async def put_object(c, r) -> Reply:
    key = check_key(r.key)
    content_type, meta = _meta_from_headers(r)
    data = r.body
    checksums = await _digests(c, r, data)
    meta = ObjectMeta(meta.user, meta.headers, checksums)
    condition = _check_put_conditions(r)
    staged = await c.run(c.store.stage, data)
    crashpoints.reach("s3.put.staged")
    info, queued = await c.run(lambda: c.store.put_object(r.bucket, key, staged, content_type, meta, r.event_context(c.account),
                                                          check=condition))
    crashpoints.reach("s3.put.committed")
    if queued:
        c.on_events()
    headers = [("ETag", info.quoted_etag)]
    headers += _checksum_headers(checksums)
    return 200, headers, b""


async def _digests(c, r, data: bytes) -> dict[str, str]:
    if len(data) > 256 * 1024:
        return await c.run(_check_digests, r, data)
    return _check_digests(r, data)


def _checksum_headers(checksums: dict[str, str]) -> list[tuple[str, str]]:
    names = {v: k for k, v in CHECKSUM_HEADERS.items()}
    return [(names[a], v) for a, v in checksums.items() if a in names]


# -- reading ------------------------------------------------------------------------

def _etag_matches(header: str, etag: str) -> bool:
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def _parse_http_date(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _check_read_conditions(r, info: ObjectInfo, prefix: str = "") -> None:
    """S3's order: If-Match before If-Unmodified-Since, If-None-Match
    before If-Modified-Since; a true If-Match wins over a false
    If-Unmodified-Since, and a false If-None-Match over a true
    If-Modified-Since."""
    if_match = r.header(f"{prefix}if-match")
    if_none = r.header(f"{prefix}if-none-match")
    unmodified = _parse_http_date(r.header(f"{prefix}if-unmodified-since"))
    modified = _parse_http_date(r.header(f"{prefix}if-modified-since"))
    changed_s = int(info.modified_s)
    if if_match is not None:
        if not _etag_matches(if_match, info.etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    elif unmodified is not None and changed_s > unmodified:
        raise S3Error("PreconditionFailed", Condition="If-Unmodified-Since")
    not_modified = "NotModified" if not prefix else "PreconditionFailed"
    if if_none is not None:
        if _etag_matches(if_none, info.etag):
            raise S3Error(not_modified) if not prefix else S3Error(not_modified, Condition="If-None-Match")
    elif modified is not None and changed_s <= modified:
        raise S3Error(not_modified) if not prefix else S3Error(not_modified, Condition="If-Modified-Since")


def _byte_range(value: str, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for one "bytes=" range; None to ignore the
    header (not one well-formed range: S3 then sends the whole object)."""
    m = _RANGE_RE.fullmatch(value.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        suffix = int(m.group(2))
        if suffix == 0:
            raise S3Error("InvalidRange", RangeRequested=value, ActualObjectSize=str(size))
        return max(0, size - suffix), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if m.group(2) and last < first:
        return None
    if first >= size:
        raise S3Error("InvalidRange", RangeRequested=value, ActualObjectSize=str(size))
    return first, min(last, size - 1)


def _segments(c, info: ObjectInfo, first: int, last: int) -> list[tuple[int, int, int]]:
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
        _check_read_conditions(r, info)
        headers = object_headers(info, r.query, with_checksums=(r.header("x-amz-checksum-mode") or "").upper() == "ENABLED")
        first, last, status = 0, info.size - 1, 200
        part = r.query.get("partNumber")
        range_header = r.header("range")
        if part is not None:
            if range_header is not None:
                raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
            number = _part_number(part)
            if number > len(info.parts):
                raise S3Error("InvalidPartNumber",
                              PartNumberRequested=str(number), ActualPartCount=str(len(info.parts)))
            first = sum(size for _, size in info.parts[: number - 1])
            last = first + info.parts[number - 1][1] - 1
            headers.append(("x-amz-mp-parts-count", str(len(info.parts))))
            if len(info.parts) > 1:
                status = 206
                headers.append(("Content-Range", f"bytes {first}-{last}/{info.size}"))
        elif range_header is not None and info.size > 0:
            span = _byte_range(range_header, info.size)
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
            segments = _segments(c, info, first, last)
        except FileNotFoundError:
            continue  # overwritten between the read and the open: read again
        return status, headers, FileBody(segments)
    raise S3Error("SlowDown")


def _part_number(raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_PARTS:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive",
                      ArgumentName="partNumber", ArgumentValue=raw)
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
    _check_digests(r, r.body)
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

def _copy_source(r) -> tuple[str, str]:
    raw = r.header("x-amz-copy-source") or ""
    source = raw.split("?", 1)[0]
    if "?versionId=" in raw:
        raise S3Error("NotImplemented", "Versioning is not implemented by this server's object store.")
    try:
        source = unquote(source, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "Invalid copy source encoding", ArgumentName="x-amz-copy-source", ArgumentValue=raw[:200]) from None
    bucket, slash, key = source.lstrip("/").partition("/")
    if not slash or not bucket or not key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
                      ArgumentName="x-amz-copy-source", ArgumentValue=raw[:200])
    return bucket, check_key(key)


async def copy_object(c, r) -> Reply:
    key = check_key(r.key)
    src_bucket, src_key = _copy_source(r)
    directive = (r.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise S3Error("InvalidArgument", "Unknown metadata directive.", ArgumentName="x-amz-metadata-directive", ArgumentValue=directive)
    same = (src_bucket, src_key) == (r.bucket, key)
    if same and directive == "COPY" and r.header("x-amz-storage-class") is None:
        raise S3Error("InvalidRequest", "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
    content_type = meta = None
    if directive == "REPLACE":
        content_type, meta = _meta_from_headers(r)

    def check(src: ObjectInfo) -> None:
        _check_read_conditions(r, src, prefix="x-amz-copy-source-")

    def copy():
        return c.store.copy_object(src_bucket, src_key, r.bucket, key, content_type=content_type,
                                   meta=None if meta is None else meta, ctx=r.event_context(c.account), check=check,
                                   keep_checksums=True)
    info, queued = await c.run(copy)
    if queued:
        c.on_events()
    return xml_reply("CopyObjectResult", [("ETag", info.quoted_etag), ("LastModified", iso_time(info.modified_s))])


# -- multipart uploads ----------------------------------------------------------------

async def create_upload(c, r) -> Reply:
    key = check_key(r.key)
    content_type, meta = _meta_from_headers(r)
    upload_id = await c.run(c.store.create_upload, r.bucket, key, content_type, meta)
    headers = []
    algorithm = r.header("x-amz-checksum-algorithm")
    if algorithm:
        headers.append(("x-amz-checksum-algorithm", algorithm))
    return xml_reply("InitiateMultipartUploadResult", [("Bucket", r.bucket), ("Key", key), ("UploadId", upload_id)], headers=headers)


def _upload_params(r) -> tuple[str, int]:
    upload_id = r.query.get("uploadId")
    if upload_id is None:
        raise S3Error("InvalidRequest", "A part upload needs both partNumber and uploadId.")
    return upload_id, _part_number(r.query.get("partNumber", ""))


async def upload_part(c, r) -> Reply:
    key = check_key(r.key)
    upload_id, number = _upload_params(r)
    await c.run(c.store.upload, r.bucket, key, upload_id)
    checksums = await _digests(c, r, r.body)
    staged = await c.run(c.store.stage, r.body)
    part = await c.run(c.store.put_part, r.bucket, key, upload_id, number, staged, checksums)
    return 200, [("ETag", f'"{part.etag}"'), *_checksum_headers(checksums)], b""


async def upload_part_copy(c, r) -> Reply:
    key = check_key(r.key)
    upload_id, number = _upload_params(r)
    await c.run(c.store.upload, r.bucket, key, upload_id)
    src_bucket, src_key = _copy_source(r)
    src = await c.run(c.store.head, src_bucket, src_key)
    _check_read_conditions(r, src, prefix="x-amz-copy-source-")
    first, last = 0, src.size - 1
    wanted = r.header("x-amz-copy-source-range")
    if wanted is not None:
        m = _RANGE_RE.fullmatch(wanted.strip())
        if m is None or not m.group(1) or not m.group(2):
            raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                          ArgumentName="x-amz-copy-source-range", ArgumentValue=wanted)
        first, last = int(m.group(1)), int(m.group(2))
        if last < first or last >= src.size:
            raise S3Error("InvalidRange", RangeRequested=wanted, ActualObjectSize=str(src.size))

    def read_range() -> bytes:
        out = bytearray()
        for fd, offset, length in _segments(c, src, first, last):
            try:
                while length:
                    chunk = os.pread(fd, min(length, 1 << 20), offset)
                    if not chunk:
                        raise OSError("blob shorter than its record")
                    out += chunk
                    offset += len(chunk)
                    length -= len(chunk)
            finally:
                os.close(fd)
        return bytes(out)

    data = await c.run(read_range) if src.size else b""
    staged = await c.run(c.store.stage, data)
    part = await c.run(c.store.put_part, r.bucket, key, upload_id, number, staged, {})
    return xml_reply("CopyPartResult", [("ETag", f'"{part.etag}"'), ("LastModified", iso_time(part.modified_s))])


async def list_parts(c, r) -> Reply:
    key = check_key(r.key)
    upload_id = r.query["uploadId"]
    marker = r.query.get("part-number-marker", "0")
    if not (marker.isascii() and marker.isdigit()):
        raise S3Error("InvalidArgument", "Provided part-number-marker not an integer or within integer range", ArgumentName="part-number-marker", ArgumentValue=marker)
    limit = r.query.get("max-parts", "1000")
    if not (limit.isascii() and limit.isdigit()):
        raise S3Error("InvalidArgument", "Provided max-parts not an integer or within integer range", ArgumentName="max-parts", ArgumentValue=limit)
    limit_n = max(0, min(1000, int(limit)))
    parts, truncated = await c.run(c.store.list_parts, r.bucket, key, upload_id, int(marker), limit_n)
    items: list[tuple[str, object]] = [
        ("Bucket", r.bucket), ("Key", key), ("UploadId", upload_id),
        ("PartNumberMarker", int(marker)),
        ("NextPartNumberMarker", parts[-1].number if parts else 0),
        ("MaxParts", limit_n), ("IsTruncated", truncated),
    ]
    for p in parts:
        entry: dict[str, object] = {"PartNumber": p.number, "LastModified": iso_time(p.modified_s), "ETag": f'"{p.etag}"', "Size": p.size}
        for algorithm, value in p.checksums.items():
            entry[f"Checksum{algorithm}"] = value
        items.append(("Part", entry))
    items += [("Initiator", {"ID": c.owner_id}), ("Owner", {"ID": c.owner_id}), ("StorageClass", "STANDARD")]
    return xml_reply("ListPartsResult", items)


async def list_uploads(c, r) -> Reply:
    prefix = r.query.get("prefix", "")
    limit = r.query.get("max-uploads", "1000")
    if not (limit.isascii() and limit.isdigit()):
        raise S3Error("InvalidArgument", "Provided max-uploads not an integer or within integer range", ArgumentName="max-uploads", ArgumentValue=limit)
    uploads, truncated = await c.run(c.store.list_uploads, r.bucket, prefix, max(0, min(1000, int(limit))))
    encode = url_encode if r.query.get("encoding-type") == "url" else (lambda s: s)
    items: list[tuple[str, object]] = [("Bucket", r.bucket), ("KeyMarker", ""), ("UploadIdMarker", "")]
    if truncated and uploads:
        items += [("NextKeyMarker", encode(uploads[-1].key)), ("NextUploadIdMarker", uploads[-1].id)]
    items += [("Prefix", encode(prefix)), ("MaxUploads", int(limit)), ("IsTruncated", truncated)]
    for u in uploads:
        items.append(("Upload", {"Key": encode(u.key), "UploadId": u.id, "Initiator": {"ID": c.owner_id},
                                 "Owner": {"ID": c.owner_id}, "StorageClass": "STANDARD", "Initiated": iso_time(u.created_s)}))
    return xml_reply("ListMultipartUploadsResult", items)


async def abort_upload(c, r) -> Reply:
    key = check_key(r.key)
    await c.run(c.store.abort_upload, r.bucket, key, r.query["uploadId"])
    return 204, [], b""


async def complete_upload(c, r) -> Reply:
    key = check_key(r.key)
    upload_id = r.query["uploadId"]
    root = xmlsafe.parse(r.body)
    if root.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    wanted: list[tuple[int, str]] = []
    for part in root.find_all("Part"):
        number = (part.child_text("PartNumber") or "").strip()
        etag = (part.child_text("ETag") or "").strip().strip('"')
        if not number.isdigit() or not etag:
            raise S3Error("MalformedXML")
        wanted.append((int(number), etag))
    info, queued = await c.run(lambda: c.store.complete_upload(r.bucket, key, upload_id, wanted, r.event_context(c.account)))
    if queued:
        c.on_events()
    host = r.header("host") or "localhost"
    location = f"http://{host}/{r.bucket}/{url_encode(key)}"
    return xml_reply("CompleteMultipartUploadResult", [("Location", location), ("Bucket", r.bucket), ("Key", key), ("ETag", info.quoted_etag)])
