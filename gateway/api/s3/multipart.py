"""Multipart uploads over HTTP: create, upload part (and upload part copy,
a range of another object), list parts, list uploads, abort, complete."""

from __future__ import annotations

import os

from ...events.s3 import xmlsafe
from ...events.s3.errors import S3Error
from ...events.s3.names import check_key
from .conditions import RANGE_RE, check_read_conditions
from .object_input import checksum_headers, digests, meta_from_headers
from .objects import copy_source, open_segments, part_number
from .replies import Reply, iso_time, url_encode, xml_reply


async def create_upload(c, r) -> Reply:
    key = check_key(r.key)
    content_type, meta = meta_from_headers(r)
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
    return upload_id, part_number(r.query.get("partNumber", ""))


async def upload_part(c, r) -> Reply:
    key = check_key(r.key)
    upload_id, number = _upload_params(r)
    await c.run(c.store.upload, r.bucket, key, upload_id)
    checksums = await digests(c, r, r.body)
    staged = await c.run(c.store.stage, r.body)
    part = await c.run(c.store.put_part, r.bucket, key, upload_id, number, staged, checksums)
    return 200, [("ETag", f'"{part.etag}"'), *checksum_headers(checksums)], b""


async def upload_part_copy(c, r) -> Reply:
    key = check_key(r.key)
    upload_id, number = _upload_params(r)
    await c.run(c.store.upload, r.bucket, key, upload_id)
    src_bucket, src_key = copy_source(r)
    src = await c.run(c.store.head, src_bucket, src_key)
    check_read_conditions(r, src, prefix="x-amz-copy-source-")
    first, last = 0, src.size - 1
    wanted = r.header("x-amz-copy-source-range")
    if wanted is not None:
        m = RANGE_RE.fullmatch(wanted.strip())
        if m is None or not m.group(1) or not m.group(2):
            raise S3Error(
                "InvalidArgument",
                "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
                ArgumentName="x-amz-copy-source-range",
                ArgumentValue=wanted,
            )
        first, last = int(m.group(1)), int(m.group(2))
        if last < first or last >= src.size:
            raise S3Error("InvalidRange", RangeRequested=wanted, ActualObjectSize=str(src.size))

    def read_range() -> bytes:
        out = bytearray()
        for fd, offset, length in open_segments(c, src, first, last):
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
        raise S3Error(
            "InvalidArgument",
            "Provided part-number-marker not an integer or within integer range",
            ArgumentName="part-number-marker",
            ArgumentValue=marker,
        )
    limit = r.query.get("max-parts", "1000")
    if not (limit.isascii() and limit.isdigit()):
        raise S3Error(
            "InvalidArgument", "Provided max-parts not an integer or within integer range", ArgumentName="max-parts", ArgumentValue=limit
        )
    limit_n = max(0, min(1000, int(limit)))
    parts, truncated = await c.run(c.store.list_parts, r.bucket, key, upload_id, int(marker), limit_n)
    items: list[tuple[str, object]] = [
        ("Bucket", r.bucket),
        ("Key", key),
        ("UploadId", upload_id),
        ("PartNumberMarker", int(marker)),
        ("NextPartNumberMarker", parts[-1].number if parts else 0),
        ("MaxParts", limit_n),
        ("IsTruncated", truncated),
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
        raise S3Error(
            "InvalidArgument",
            "Provided max-uploads not an integer or within integer range",
            ArgumentName="max-uploads",
            ArgumentValue=limit,
        )
    uploads, truncated = await c.run(c.store.list_uploads, r.bucket, prefix, max(0, min(1000, int(limit))))
    encode = url_encode if r.query.get("encoding-type") == "url" else (lambda s: s)
    items: list[tuple[str, object]] = [("Bucket", r.bucket), ("KeyMarker", ""), ("UploadIdMarker", "")]
    if truncated and uploads:
        items += [("NextKeyMarker", encode(uploads[-1].key)), ("NextUploadIdMarker", uploads[-1].id)]
    items += [("Prefix", encode(prefix)), ("MaxUploads", int(limit)), ("IsTruncated", truncated)]
    for u in uploads:
        items.append(
            (
                "Upload",
                {
                    "Key": encode(u.key),
                    "UploadId": u.id,
                    "Initiator": {"ID": c.owner_id},
                    "Owner": {"ID": c.owner_id},
                    "StorageClass": "STANDARD",
                    "Initiated": iso_time(u.created_s),
                },
            )
        )
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
    return xml_reply(
        "CompleteMultipartUploadResult", [("Location", location), ("Bucket", r.bucket), ("Key", key), ("ETag", info.quoted_etag)]
    )
