"""AWS Signature Version 4 verification: what a request claims, checked.

sigv4_parse.py reads what the request claims (its Authorization or query
signature, the signing time) and checks the clock; sigv4_canonical.py
makes the canonical request (botocore's, templated per shape of request)
and the signature; this module gathers what the client signed, checks the
scope, the body's hash and the signature, and compares in constant time.
Nothing here does I/O; the credentials file is credentials.py's.

Every failure is an ``AuthError`` carrying AWS's own error type and wording;
all of them are HTTP 403.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import time
from collections.abc import Mapping
from urllib.parse import unquote

from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD

from .sigv4_canonical import (
    DATE,
    DATE_MARK,
    HASH_MARK,
    PAYLOAD_HASH,
    TEMPLATE_KEPT_MAX,
    TEMPLATE_SIGNERS,
    Mark,
    S3Verifier,
    SignedHeaders,
    SignedRequest,
    Verifier,
    canonical_query,
    canonical_template,
    derive_signing_key,
    sign,
)
from .sigv4_parse import (
    QUERY_AUTH,
    QUERY_AUTH_MARKERS,
    AuthError,
    Signed,
    check_clock,
    clock_ok,
    incomplete,
    parse_authorization,
    parse_query_auth,
    parse_timestamp,
    split_query,
)

# AuthError is what every caller of check_head and verify catches.
__all__ = ["AuthError", "Claim", "check_head", "verify", "STREAMING_PAYLOADS"]

_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# Shape only (us-east-1, eu-west-3, and names local tools use, such as "local").
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
# S3's aws-chunked uploads: the seed signature covers one of these in place
# of the body's hash, and each chunk (or only the trailer) is checked as it
# is decoded (events/s3/chunked.py).
STREAMING_PAYLOADS = frozenset(
    {
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
)


class _HeaderValues:
    """A request's header values by lower-case name, in order received.
    The HTTP parser hands names lower-cased, and a client rarely repeats
    one: then the header list makes the dict at C speed, and each lookup
    is a list of its one value (a dict of lists built header by header was
    a quarter of the head's checks)."""

    __slots__ = ("_single", "_lists")

    def __init__(self, headers: list[tuple[str, str]]) -> None:
        single = dict(headers)
        names = "".join(single)
        if len(single) == len(headers) and names.isascii() and names.islower():
            self._single: dict[str, str] | None = single
            self._lists: dict[str, list[str]] | None = None
        else:
            lists: dict[str, list[str]] = {}
            for name, value in headers:
                lists.setdefault(name.lower(), []).append(value)
            self._single = None
            self._lists = lists

    def get(self, name: str) -> list[str] | None:
        """The values of a lower-case name, or None."""
        if self._single is not None:
            value = self._single.get(name)
            return None if value is None else [value]
        return self._lists.get(name) if self._lists is not None else None

    def signed(self, names: tuple[str, ...]) -> dict[str, list[str]]:
        """The values of each of these names the request carries; a name
        listed twice has its values twice, as botocore's headers made from
        such a list would hold them."""
        values: dict[str, list[str]] = {}
        single = self._single
        if single is not None:
            for name in names:
                value = single.get(name)
                if value is not None:
                    found = values.get(name)
                    if found is None:
                        values[name] = [value]
                    else:
                        found.append(value)
        elif self._lists is not None:
            for name in names:
                several = self._lists.get(name)
                if several:
                    values.setdefault(name, []).extend(several)
        return values


class Claim:
    """A request whose signature passed every check the head alone allows:
    present and well formed, a known access key, the credential scope, the
    clock. Only the signature itself, which covers the body's hash, is left."""

    __slots__ = ("access_key", "secret", "_signed", "_timestamp", "_path", "_pairs", "_by_name", "_method", "query_auth")

    def __init__(
        self,
        method: str,
        signed: Signed,
        secret: str,
        timestamp: str,
        path: str,
        pairs: list[tuple[str, str]],
        by_name: _HeaderValues,
    ) -> None:
        self.access_key = signed.access_key
        self.secret = secret
        self._method = method
        self._signed = signed
        self._timestamp = timestamp
        self._path = path
        self._pairs = pairs
        self._by_name = by_name
        self.query_auth = signed.expires is not None

    @property
    def service(self) -> str:
        return self._signed.service

    @property
    def region(self) -> str:
        return self._signed.region

    @property
    def signature(self) -> str:
        return self._signed.signature

    @property
    def timestamp(self) -> str:
        """The signing time, ISO-8601 basic (20130524T000000Z)."""
        return self._timestamp

    @property
    def scope(self) -> str:
        """date/region/service/aws4_request"""
        s = self._signed
        return f"{s.scope_date}/{s.region}/{s.service}/aws4_request"

    def signing_key(self) -> bytes:
        """The key derived from the secret for this request's scope."""
        return derive_signing_key(self.secret, self._signed.scope_date, self._signed.region, self._signed.service)

    def verify_body(self, body: bytes, allow_unsigned_payload: bool = False, *, payload_checked_elsewhere: bool = False) -> str:
        """Check the signature over the whole request; return the access key id.
        ``payload_checked_elsewhere``: the signed X-Amz-Content-SHA256 is one
        of STREAMING_PAYLOADS, and the body is checked as it is decoded."""
        signed = self._signed
        canonical = self.canonical_request(body, allow_unsigned_payload, payload_checked_elsewhere=payload_checked_elsewhere)
        expected = sign(canonical, self.secret, self._timestamp, signed.region, signed.service)
        if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
            raise AuthError("InvalidSignatureException", _BAD_SIGNATURE)
        return signed.access_key

    def canonical_request(self, body: bytes, allow_unsigned_payload: bool = False, *, payload_checked_elsewhere: bool = False) -> str:
        """SigV4's canonical request of this request with this body, as
        botocore makes it, once a signed X-Amz-Content-SHA256 is held to the
        body (verify_body's arguments). Raises AuthError."""
        signed = self._signed
        values = self._by_name.signed(signed.signed_headers)
        claimed = values.get("x-amz-content-sha256")
        payload_hash = None
        if claimed is not None and not (payload_checked_elsewhere and claimed[0] in STREAMING_PAYLOADS):
            payload_hash = _check_payload_hash(claimed[0], body, allow_unsigned_payload)

        verifier = S3Verifier if signed.service == "s3" else Verifier
        method = self._method.upper()
        query = canonical_query(self._pairs)
        timestamp = self._timestamp
        # The canonical request of a client's every call differs only in its
        # signing time and its body's hash: botocore makes it once per shape,
        # with marks in their place (canonical_template).
        shape: list[tuple[str, tuple[str, ...] | Mark]] = []
        size = len(self._path) + len(query)
        for name, found in values.items():
            if name == "x-amz-date" and len(found) == 1 and found[0] == timestamp:
                shape.append((name, DATE))
            elif name == "x-amz-content-sha256" and payload_hash is not None and len(found) == 1 and found[0] == payload_hash:
                shape.append((name, PAYLOAD_HASH))
            else:
                shape.append((name, tuple(found)))
                size += sum(map(len, found))
        # A shape too big to keep (a head may be 64 KiB) is made, not kept.
        make = canonical_template if size <= TEMPLATE_KEPT_MAX else canonical_template.__wrapped__
        template = make(verifier, method, self._path, query, tuple(shape), self.query_auth)
        if template is not None:
            canonical = template.replace(DATE_MARK, timestamp)
            if HASH_MARK in canonical:
                if payload_hash is None:
                    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
                canonical = canonical.replace(HASH_MARK, payload_hash)
        else:
            request = SignedRequest(
                method,
                f"http://lambdalet{self._path}?{query}",
                SignedHeaders(values),
                body,
                {"timestamp": timestamp, "query_auth": self.query_auth},
                payload_hash,
            )
            canonical = TEMPLATE_SIGNERS[verifier].canonical_request(request)
        return canonical


def check_head(
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    secrets: Mapping[str, str],
    now: dt.datetime | None = None,
    *,
    service: str | None = "lambda",
    region: str | None = None,
    allow_unsigned_payload: bool = False,
    allow_streaming_payload: bool = False,
) -> Claim:
    """Every check that needs no body, so that a request that cannot be
    authentic is refused before the server holds its body. ``region``,
    unless None, is the only region accepted; any region must be well formed.
    ``allow_streaming_payload``: S3's aws-chunked X-Amz-Content-SHA256
    values (STREAMING_PAYLOADS) are accepted. Raises AuthError."""
    if now is not None and now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    now_s = time.time() if now is None else now.timestamp()

    if "#" in raw_target:
        # A fragment is never sent by a client; were it ignored here, it
        # could be appended to a signed target without breaking the signature.
        raise AuthError("InvalidSignatureException", _BAD_SIGNATURE)
    path, _, query = raw_target.partition("?")
    if not path.startswith("/"):
        raise incomplete(f"Request target must be a path: '{raw_target[:100]}'.")

    by_name = _HeaderValues(headers)
    pairs = split_query(query) if query else []
    query_auth = {unquote(k): unquote(v) for k, v in pairs if unquote(k) in QUERY_AUTH} if pairs else {}
    if query_auth and not any(k in query_auth for k in QUERY_AUTH_MARKERS):
        query_auth = {}
    authorization = by_name.get("authorization")

    if authorization and query_auth:
        raise incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter or the Authorization header should be specified"
        )
    if authorization:
        if len(authorization) > 1:
            raise incomplete("Only one Authorization header is allowed.")
        dates = by_name.get("x-amz-date") or by_name.get("date")
        amz_date = dates[0] if dates else None
        signed = parse_authorization(authorization[0], amz_date)
    elif query_auth:
        signed = parse_query_auth(query_auth)
        # The signature cannot sign itself; every other parameter is covered.
        pairs = [(k, v) for k, v in pairs if unquote(k) != "X-Amz-Signature"]
    else:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")

    when, timestamp, when_s = parse_timestamp(signed.timestamp)
    if signed.scope_date != timestamp[:8]:
        raise AuthError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{signed.scope_date}' != '{timestamp[:8]}', from '{signed.timestamp}'.",
        )
    if not clock_ok(signed, when_s, now_s):
        # check_clock says why, in datetimes. Should the two ever disagree
        # (float rounding at the window's edge), the refusal stands.
        check_clock(signed, when, now or dt.datetime.fromtimestamp(now_s, dt.timezone.utc))
        raise AuthError("InvalidSignatureException", f"Signature expired or not yet current: {signed.timestamp}.")
    if not _REGION.fullmatch(signed.region) or (region is not None and signed.region != region):
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{signed.region[:64]}'.")
    if service is not None and signed.service != service:
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'.")
    if "x-amz-content-sha256" in signed.signed_headers:
        claimed = (by_name.get("x-amz-content-sha256") or [""])[0]
        if not (
            _HEX_SHA256.fullmatch(claimed)
            or (allow_unsigned_payload and claimed == UNSIGNED_PAYLOAD)
            or (allow_streaming_payload and claimed in STREAMING_PAYLOADS)
        ):
            raise AuthError(
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed.",
            )

    secret = secrets.get(signed.access_key)
    if secret is None:
        raise AuthError("UnrecognizedClientException", "The security token included in the request is invalid.")
    return Claim(method, signed, secret, timestamp, path, pairs, by_name)


def verify(
    method: str,
    raw_target: str,
    headers: list[tuple[str, str]],
    body: bytes,
    secrets: Mapping[str, str],
    now: dt.datetime | None = None,
    *,
    service: str | None = "lambda",
    region: str | None = None,
    allow_unsigned_payload: bool = False,
) -> str:
    """Check a request's SigV4 signature and return its access key id.

    ``raw_target`` is the request-target as received (percent-encoded path
    and optional ``?query``); it must not be decoded first, since the
    signature covers the client's encoding. ``secrets`` maps access key ids
    to secret keys. ``service``, unless None, is the only signing service
    accepted. ``X-Amz-Content-SHA256: UNSIGNED-PAYLOAD`` leaves the body
    unauthenticated, so it is refused unless ``allow_unsigned_payload``.
    Raises AuthError.
    """
    claim = check_head(
        method, raw_target, headers, secrets, now, service=service, region=region, allow_unsigned_payload=allow_unsigned_payload
    )
    return claim.verify_body(body, allow_unsigned_payload)


def _check_payload_hash(claimed: str | None, body: bytes, allow_unsigned: bool) -> str | None:
    """Hold the body to a signed X-Amz-Content-SHA256 (botocore takes it at
    its word; a verifier must not, or a replay could swap the body). Returns
    the body's hash when it was made, so that nothing hashes it again."""
    if claimed is None:
        return None
    if claimed == UNSIGNED_PAYLOAD and allow_unsigned:
        return None
    actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
    if not (_HEX_SHA256.fullmatch(claimed) and hmac.compare_digest(claimed, actual)):
        raise AuthError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )
    return actual
