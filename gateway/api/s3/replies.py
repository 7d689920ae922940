"""S3's responses: XML documents, error replies, object headers.

Every S3 error becomes one <Error> document here, with S3's code and
message and the elements S3 adds (Key, BucketName, ArgumentName, ...),
and the x-amz-request-id and x-amz-id-2 S3 sends with every response.
"""

from __future__ import annotations

import base64
import datetime
import email.utils
import secrets
from urllib.parse import quote_plus

from ...events.s3 import xmlsafe
from ...events.s3.errors import S3Error
from ...events.s3.records import ObjectInfo
from ...http.handler import Reply as Reply  # what S3's surfaces answer

XML = ("Content-Type", "application/xml")


def request_ids() -> tuple[str, str]:
    """(x-amz-request-id, x-amz-id-2), shaped like S3's."""
    return secrets.token_hex(8).upper(), base64.b64encode(secrets.token_bytes(48)).decode()


def iso_time(wall_s: float) -> str:
    t = datetime.datetime.fromtimestamp(wall_s, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def http_date(wall_s: float) -> str:
    return email.utils.formatdate(int(wall_s), usegmt=True)


def xml_reply(root: str, items, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
    return status, [XML, *(headers or [])], xmlsafe.document(root, items)


def error_reply(exc: S3Error, request_id: str, host_id: str, resource: str | None = None) -> Reply:
    items: list[tuple[str, object]] = [("Code", exc.code), ("Message", exc.message)]
    items += list(exc.extra.items())
    if resource is not None and "Resource" not in exc.extra and exc.code in ("NoSuchKey", "NoSuchBucket", "NoSuchUpload", "AccessDenied"):
        items.append(("Resource", resource))
    items += [("RequestId", request_id), ("HostId", host_id)]
    headers = [XML]
    if exc.code == "SlowDown":
        headers.append(("Retry-After", "1"))
    if exc.code == "NotModified":
        return 304, headers[1:], b""
    return exc.status, headers, xmlsafe.document("Error", items, namespace=None)


def url_encode(value: str) -> str:
    """For encoding-type=url: botocore decodes these with unquote_plus."""
    return quote_plus(value, safe="/")


# Headers S3 stores with an object and returns with it.
STORED_HEADERS = {
    "cache-control": "Cache-Control",
    "content-disposition": "Content-Disposition",
    "content-encoding": "Content-Encoding",
    "content-language": "Content-Language",
    "expires": "Expires",
    "x-amz-website-redirect-location": "x-amz-website-redirect-location",
}
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
CHECKSUM_HEADERS = {
    "x-amz-checksum-crc32": "CRC32",
    "x-amz-checksum-crc32c": "CRC32C",
    "x-amz-checksum-crc64nvme": "CRC64NVME",
    "x-amz-checksum-sha1": "SHA1",
    "x-amz-checksum-sha256": "SHA256",
}
CHECKSUM_HEADER_OF = {v: k for k, v in CHECKSUM_HEADERS.items()}


def object_headers(info: ObjectInfo, query: dict[str, str], *, with_checksums: bool) -> list[tuple[str, str]]:
    headers = [
        ("ETag", info.quoted_etag),
        ("Last-Modified", http_date(info.modified_s)),
        ("Accept-Ranges", "bytes"),
        ("Content-Type", info.content_type),
    ]
    for name, value in info.meta.headers.items():
        headers.append((STORED_HEADERS.get(name, name), value))
    for name, value in info.meta.user.items():
        headers.append((f"x-amz-meta-{name}", value))
    if with_checksums:
        for algorithm, value in info.meta.checksums.items():
            header = CHECKSUM_HEADER_OF.get(algorithm)
            if header is not None:
                headers.append((header, value))
        if info.meta.checksums:
            headers.append(("x-amz-checksum-type", "FULL_OBJECT"))
    overrides = {RESPONSE_OVERRIDES[k]: v for k, v in query.items() if k in RESPONSE_OVERRIDES}
    if overrides:
        lowered = {k.lower() for k in overrides}
        headers = [(k, v) for k, v in headers if k.lower() not in lowered] + list(overrides.items())
    return headers
