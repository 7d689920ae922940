"""Which bucket, key and sub-resource a request names.

Path-style: ``/bucket/key``. Virtual-hosted-style: ``Host: bucket.<base>``
where base is one of the server's S3 host names (``localhost`` and
``s3.localhost`` by default, ``s3.amazonaws.com`` and
``s3.<region>.amazonaws.com`` for hosts files that point them here, and any
given with --s3-host); the path is then the key. An IP address or a bare
base name is always path-style.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import parse_qsl, unquote

from ...events.s3.errors import S3Error
from ...http.http1 import Head


class Address:
    __slots__ = ("bucket", "key", "query", "virtual")

    def __init__(self, bucket: str | None, key: str | None, query: dict[str, str], virtual: bool) -> None:
        self.bucket = bucket
        self.key = key
        self.query = query
        self.virtual = virtual


def _host_name(head: Head) -> str:
    host = (head.header("host") or "").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def default_bases(region: str, extra: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    return tuple(dict.fromkeys(["localhost", "s3.localhost", "s3.amazonaws.com", f"s3.{region}.amazonaws.com", *extra]))


def virtual_bucket(head: Head, bases: tuple[str, ...]) -> str | None:
    """The bucket a virtual-hosted-style Host names, or None."""
    host = _host_name(head)
    if not host or host in bases:
        return None
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    for base in bases:
        if host.endswith("." + base):
            bucket = host[: -len(base) - 1]
            if bucket:
                return bucket
    return None


def _decode(raw: str) -> str:
    try:
        return unquote(raw, encoding="utf-8", errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI") from None


def address(head: Head, bases: tuple[str, ...]) -> Address:
    path, _, query = head.target.partition("?")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="strict"))
    except (UnicodeDecodeError, ValueError):
        raise S3Error("InvalidURI") from None
    bucket = virtual_bucket(head, bases)
    if bucket is not None:
        key = _decode(path[1:]) if len(path) > 1 else None
        return Address(bucket, key, params, True)
    rest = path[1:]
    if not rest:
        return Address(None, None, params, False)
    raw_bucket, slash, raw_key = rest.partition("/")
    bucket = _decode(raw_bucket)
    key = _decode(raw_key) if slash and raw_key else None
    return Address(bucket, key, params, False)
