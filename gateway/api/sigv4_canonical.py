"""SigV4's canonical request and signature, with botocore doing the maths.

A request is rebuilt holding exactly what the client signed (the
attributes of a botocore ``AWSRequest`` that signing reads), and botocore's
``SigV4Auth`` makes its canonical request: once per shape of request, with
marks where the signing time and the body's hash go, filled in on each
call (canonical_template). The string to sign and the signature are SigV4's
two HMAC lines, the signing key derived as botocore derives it and kept
per key and day. Pure functions and values; sigv4.py checks and compares.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from urllib.parse import quote, unquote_to_bytes

from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.credentials import Credentials


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    # Clients differ in how they escape a query (botocore escapes everything
    # but -_.~; others leave ':' or ',' alone). SigV4 signs the strict form,
    # so decode each piece and re-escape it strictly. botocore sorts the
    # pairs when it builds the canonical request.
    if not pairs:
        return ""

    def strict(piece: str) -> str:
        return quote(unquote_to_bytes(piece), safe="-_.~")

    return "&".join(f"{strict(k)}={strict(v)}" for k, v in pairs)


@functools.lru_cache(maxsize=256)
def derive_signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's key for one day's scope, derived as botocore derives it. It
    changes once a day per key, and deriving it is four of the five HMACs a
    request's signature takes: kept for the keys in use (bounded, and only
    for keys that signed a request whose head passed every other check)."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class SignedHeaders:
    """The headers a client signed, as botocore's signer reads a request's
    headers (names case-insensitive, a name's values in order): what
    canonical_request() uses of botocore's HTTPHeaders, an email.message
    whose every lookup walks and re-checks its list. Names are kept lower-case."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, list[str]]) -> None:
        self._values = values

    def __iter__(self):
        return iter(self._values)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def __getitem__(self, name: str) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else None

    def get(self, name: str, default: str | None = None) -> str | None:
        values = self._values.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, default: list[str] | None = None) -> list[str] | None:
        return self._values.get(name.lower(), default)


class SignedRequest:
    """A request as the client signed it, holding what botocore's SigV4Auth
    reads to make the canonical request and the string to sign (method,
    url, params, headers, context) and what payload() hashes (data); an
    AWSRequest would also build a request preparer and an email.message of
    headers on every check, for nothing."""

    __slots__ = ("method", "url", "params", "headers", "context", "data", "payload_hash")

    def __init__(self, method: str, url: str, headers: SignedHeaders, data: bytes, context: dict, payload_hash: str | None = None) -> None:
        self.method = method
        self.url = url
        self.params: dict = {}  # the query is in url, as the client sent it
        self.headers = headers
        self.context = context
        self.data = data
        self.payload_hash = payload_hash  # what payload() answers, when already known


# Paths longer than this are normalised afresh each time: the cache holds
# what clients send again and again (a function's invoke path), not
# whatever a client makes up.
_CACHED_PATH_MAX = 256
_PATH_SIGNER = SigV4Auth(Credentials("", ""), "", "")


@functools.lru_cache(maxsize=1024)
def _canonical_path(path: str) -> str:
    # botocore's own normalisation (dot segments, then escaping), which
    # depends on the path alone.
    return SigV4Auth._normalize_url_path(_PATH_SIGNER, path)


class Verifier(SigV4Auth):
    def headers_to_sign(self, request: SignedRequest) -> SignedHeaders:
        # botocore, as a signer, skips some headers (user-agent, expect, ...).
        # As a verifier we must honour exactly the list the client signed,
        # whichever SDK it was; the request holds only those headers.
        return request.headers

    def _normalize_url_path(self, path: str) -> str:
        return _canonical_path(path) if len(path) <= _CACHED_PATH_MAX else super()._normalize_url_path(path)

    def payload(self, request: SignedRequest) -> str:
        # Reached only without a signed X-Amz-Content-SHA256 (so never for a
        # streaming payload), over http. botocore reads request.body, which
        # prepares a whole copy of the request (its URL split, its headers
        # copied) to hand back the bytes held in request.data.
        if request.payload_hash is not None:
            return request.payload_hash
        data = request.data
        return hashlib.sha256(data).hexdigest() if data else EMPTY_SHA256_HASH


class S3Verifier(Verifier):
    """S3 signs the path as the client encoded it, without normalising it
    (no dot segments removed, no double encoding). Clients differ only in
    which safe characters they escape, so the path is decoded and escaped
    strictly again, as S3 does."""

    def _normalize_url_path(self, path: str) -> str:
        return quote(unquote_to_bytes(path), safe="/~")

    def payload(self, request: SignedRequest) -> str:
        # A presigned S3 URL signs no body: its canonical request names
        # UNSIGNED-PAYLOAD unless the client signed a hash header.
        if request.context.get("query_auth"):
            return UNSIGNED_PAYLOAD
        return super().payload(request)


# canonical_request() reads neither the credentials nor the scope: one
# verifier of each kind serves every request.
TEMPLATE_SIGNERS: dict[type[Verifier], Verifier] = {kind: kind(Credentials("", ""), "", "") for kind in (Verifier, S3Verifier)}


class Mark:
    """Stands in a template's key for a value that changes from one call of
    a client to the next: the signing time, the body's hash. Equal to
    itself alone, so no value a request carries can pass for it."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        # In the template, text holds the value's place: no whitespace and
        # no comma, as the values it stands for (an ISO-8601 basic time, 64
        # hex digits), so that botocore passes it through untouched and in
        # the same place; and NUL, which no templated request holds, so
        # that each one in a template is a mark's.
        self.text = text


DATE = Mark("\x00date\x00")
PAYLOAD_HASH = Mark("\x00payload-hash\x00")
DATE_MARK = DATE.text
HASH_MARK = PAYLOAD_HASH.text


# The most of a request's path, query and signed header values that a kept
# template may hold: clients' calls are far shorter.
TEMPLATE_KEPT_MAX = 4096


@functools.lru_cache(maxsize=512)
def canonical_template(
    verifier: type[Verifier],
    method: str,
    path: str,
    query: str,
    headers: tuple[tuple[str, tuple[str, ...] | Mark], ...],
    query_auth: bool,
) -> str | None:
    """botocore's canonical request for a request of this shape, its
    signing time and payload hash marked: filled in, it is byte for byte the
    one botocore makes of the request itself. None (made by botocore each
    time) if anything of the request holds a NUL. A pure function of its
    arguments, kept for the shapes clients send again and again (bounded)."""
    values: dict[str, list[str]] = {}
    for name, found in headers:
        values[name] = [found.text] if isinstance(found, Mark) else list(found)
        if not isinstance(found, Mark) and any("\x00" in v for v in found):
            return None
    if "\x00" in method + path + query + "".join(values):
        return None
    request = SignedRequest(
        method,
        f"http://lambdalet{path}?{query}",
        SignedHeaders(values),
        b"",
        {"timestamp": "", "query_auth": query_auth},
        HASH_MARK,
    )
    return TEMPLATE_SIGNERS[verifier].canonical_request(request)


# HMAC's pads (RFC 2104) as byte translations, as the standard library's hmac makes them.
_INNER_PAD = bytes(x ^ 0x36 for x in range(256))
_OUTER_PAD = bytes(x ^ 0x5C for x in range(256))
_SHA256_BLOCK = 64


@functools.lru_cache(maxsize=256)
def _keyed_sha256(secret: str, date: str, region: str, service: str) -> tuple[hashlib._Hash, hashlib._Hash]:
    """SHA-256 having taken the signing key XOR each of HMAC's two pads:
    HMAC-SHA256 under that key is a copy of each, fed (RFC 2104). The
    one-shot hmac.digest() fetched OpenSSL's algorithm and made a MAC
    context on every call, half of the signature's time. Kept as the
    signing key is (its key is 32 bytes, under SHA-256's 64-byte block)."""
    key = derive_signing_key(secret, date, region, service).ljust(_SHA256_BLOCK, b"\0")
    return hashlib.sha256(key.translate(_INNER_PAD)), hashlib.sha256(key.translate(_OUTER_PAD))


def _hmac_sha256_hex(keyed: tuple[hashlib._Hash, hashlib._Hash], message: bytes) -> str:
    """HMAC-SHA256 of message under the key of _keyed_sha256, in hex: the
    same as hmac.digest(key, message, "sha256").hex() (tests/test_sigv4_templates.py)."""
    inner = keyed[0].copy()
    inner.update(message)
    outer = keyed[1].copy()
    outer.update(inner.digest())
    return outer.hexdigest()


def sign(canonical: str, secret: str, timestamp: str, region: str, service: str) -> str:
    """SigV4's signature of a canonical request. The string to sign is
    written out here rather than made by botocore's string_to_sign(), which
    needs a request object built for it: the same four lines
    (tests/test_sigv4_templates.py holds it to botocore's)."""
    date = timestamp[0:8]
    string_to_sign = (
        f"AWS4-HMAC-SHA256\n{timestamp}\n{date}/{region}/{service}/aws4_request\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    )
    return _hmac_sha256_hex(_keyed_sha256(secret, date, region, service), string_to_sign.encode())
