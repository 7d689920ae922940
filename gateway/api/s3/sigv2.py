"""S3's legacy signature (version 2): ``Authorization: AWS key:signature``
and presigned URLs with ``AWSAccessKeyId``, ``Expires`` and ``Signature``.

Still current where it matters: botocore presigns S3 URLs in us-east-1
with it unless told otherwise (``generate_presigned_url`` without
``signature_version='s3v4'``). The string to sign is built from the
request as S3 documents it, and signed with botocore's own HMAC-SHA1
signer; the comparison is constant-time.
"""

from __future__ import annotations

import email.utils
import hmac
import time
from collections.abc import Mapping
from urllib.parse import parse_qsl, unquote

from botocore.auth import HmacV1Auth
from botocore.credentials import Credentials

from ...events.s3.errors import S3Error
from ...http.http1 import Head

# Header-signed requests: S3 allows 15 minutes of clock difference.
MAX_SKEW_S = 900
_SUBRESOURCES = frozenset(HmacV1Auth.QSAOfInterest)


class V2Claim:
    """A request whose version 2 signature holds (checked from its head:
    a v2 signature covers no body hash)."""

    __slots__ = ("access_key", "query_auth")

    def __init__(self, access_key: str, query_auth: bool) -> None:
        self.access_key = access_key
        self.query_auth = query_auth

    def verify_body(self, body: bytes, allow_unsigned_payload: bool = False, *, payload_checked_elsewhere: bool = False) -> str:
        return self.access_key


def is_v2(head: Head) -> bool:
    auth = head.header("authorization")
    if auth is not None:
        return auth.startswith("AWS ")
    query = head.query
    return "AWSAccessKeyId=" in query and "Signature=" in query


def _string_to_sign(head: Head, date_line: str, resource_path: str, query_headers: dict[str, str]) -> str:
    by_name: dict[str, list[str]] = {}
    for name, value in head.headers:
        by_name.setdefault(name, []).append(value)
    for name, value in query_headers.items():
        by_name.setdefault(name, []).append(value)
    md5 = (by_name.get("content-md5") or [""])[0].strip()
    content_type = (by_name.get("content-type") or [""])[0].strip()
    amz = sorted((n, ",".join(v.strip() for v in values)) for n, values in by_name.items() if n.startswith("x-amz-"))
    lines = [head.method.upper(), md5, content_type, date_line]
    lines += [f"{n}:{v}" for n, v in amz]
    # Sub-resources as botocore signs them: the name as sent, "=value"
    # (decoded) only when the query had an "=".
    sub = []
    for item in head.query.split("&"):
        name, sep, value = item.partition("=")
        if name in _SUBRESOURCES:
            sub.append((name, f"{name}={unquote(value)}" if sep else name))
    sub.sort(key=lambda pair: pair[0])
    resource = resource_path
    if sub:
        resource += "?" + "&".join(text for _, text in sub)
    lines.append(resource)
    return "\n".join(lines)


def check(head: Head, secrets: Mapping[str, str], resource_path: str, now: float | None = None) -> V2Claim:
    """``resource_path``: /bucket/key as S3 canonicalises it (the bucket in
    the path even for virtual-hosted requests), percent-encoded as sent."""
    now = time.time() if now is None else now
    query = parse_qsl(head.query, keep_blank_values=True)
    auth = head.header("authorization")
    if auth is not None:
        access_key, sep, signature = auth[4:].strip().rpartition(":")
        if not sep or not access_key:
            raise S3Error(
                "InvalidArgument",
                "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
                ArgumentName="Authorization",
                ArgumentValue=auth[:100],
            )
        amz_date = head.header("x-amz-date")
        stamp = amz_date or head.header("date")
        if stamp is None:
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        try:
            when = email.utils.parsedate_to_datetime(stamp).timestamp()
        except (TypeError, ValueError, IndexError):
            raise S3Error("AccessDenied", "AWS authentication requires a valid Date or x-amz-date header") from None
        if abs(now - when) > MAX_SKEW_S:
            raise S3Error("RequestTimeTooSkewed")
        # With x-amz-date, the Date line is empty and x-amz-date is signed
        # among the x-amz- headers.
        date_line = "" if amz_date else stamp.strip()
        sts = _string_to_sign(head, date_line, resource_path, {})
        query_auth = False
    else:
        params = dict(query)
        access_key, signature, expires = params.get("AWSAccessKeyId", ""), params.get("Signature", ""), params.get("Expires", "")
        if not expires.isdigit():
            raise S3Error("AccessDenied", "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters")
        if int(expires) < now:
            raise S3Error("AccessDenied", "Request has expired", Expires=expires)
        # Presigning moves x-amz-* and content headers into the query.
        query_headers = {k.lower(): v for k, v in query if k.lower().startswith("x-amz-") or k.lower() in ("content-type", "content-md5")}
        sts = _string_to_sign(head, expires, resource_path, query_headers)
        query_auth = True
    secret = secrets.get(access_key)
    if secret is None:
        raise S3Error("InvalidAccessKeyId", AWSAccessKeyId=access_key)
    expected = HmacV1Auth(Credentials(access_key, secret)).sign_string(sts)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise S3Error("SignatureDoesNotMatch")
    return V2Claim(access_key, query_auth)
