"""What an upload says about its object, checked as S3 checks it: user
metadata and the headers S3 stores, the storage class, Content-MD5 and
the x-amz-checksum-* values (or aws-chunked trailers) against the bytes,
and a PUT's If-Match / If-None-Match."""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib

from ...events.s3.errors import S3Error
from ...events.s3.records import ObjectInfo, ObjectMeta
from .conditions import etag_matches
from .replies import CHECKSUM_HEADERS, STORED_HEADERS

DEFAULT_CONTENT_TYPE = "binary/octet-stream"
MAX_USER_METADATA = 2048  # bytes of x-amz-meta-* names and values (S3's limit)
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
        "FSX_OPENZFS",
    }
)


def meta_from_headers(r, checksums: dict[str, str] | None = None) -> tuple[str, ObjectMeta]:
    storage = r.header("x-amz-storage-class")
    if storage is not None and storage not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage)
    user: dict[str, str] = {}
    stored: dict[str, str] = {}
    for name, value in r.head.headers:
        if name.startswith("x-amz-meta-"):
            meta_name = name[len("x-amz-meta-") :]
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


def check_digests(r, data: bytes) -> dict[str, str]:
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
            raise S3Error(
                "BadDigest",
                ExpectedDigest=md5,
                CalculatedDigest=base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode(),
            )
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


def check_put_conditions(r):
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
            if not etag_matches(if_match, current.etag):
                raise S3Error("PreconditionFailed", Condition="If-Match")

    return check


async def digests(c, r, data: bytes) -> dict[str, str]:
    if len(data) > 256 * 1024:
        return await c.run(check_digests, r, data)
    return check_digests(r, data)


def checksum_headers(checksums: dict[str, str]) -> list[tuple[str, str]]:
    names = {v: k for k, v in CHECKSUM_HEADERS.items()}
    return [(names[a], v) for a, v in checksums.items() if a in names]
