"""AWS Signature Version 4 verification, with botocore doing the signing maths.

The request is rebuilt as a botocore ``AWSRequest`` holding exactly what the
client signed, and botocore's ``SigV4Auth`` computes the canonical request,
the string to sign and the signature; this module only parses, checks the
clock and compares. Nothing here does I/O except the credentials file.

Every failure is an ``AuthError`` carrying AWS's own error type and wording;
all of them are HTTP 403.
"""
from __future__ import annotations

import configparser
import datetime as dt
import email.utils
import functools
import hashlib
import hmac
import os
import pathlib
import re
import secrets
import string
from collections.abc import Mapping
from urllib.parse import quote, unquote, unquote_to_bytes

from botocore.auth import EMPTY_SHA256_HASH, SIGV4_TIMESTAMP, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

__all__ = ["AuthError", "Claim", "check_head", "verify", "load_or_create_credentials", "ALGORITHM", "MAX_SKEW"]

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS accepts a request signed up to five minutes either side of its clock.
MAX_SKEW = dt.timedelta(minutes=5)
# The longest validity AWS allows for a presigned URL: seven days.
MAX_PRESIGN_EXPIRES = 604_800

_BAD_SIGNATURE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
_ISO_BASIC = re.compile(r"\d{8}T\d{6}Z")
# Shape only (us-east-1, eu-west-3, and names local tools use, such as "local").
_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_QUERY_AUTH = (
    "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-SignedHeaders",
    "X-Amz-Signature", "X-Amz-Date", "X-Amz-Expires",
)
# Any of these in the query means the client chose query authentication.
_QUERY_AUTH_MARKERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")
# S3's aws-chunked uploads: the seed signature covers one of these in place
# of the body's hash, and each chunk (or only the trailer) is checked as it
# is decoded (events/s3/chunked.py).
STREAMING_PAYLOADS = frozenset({
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
})


class AuthError(Exception):
    """A refused request: ``code`` is the AWS error type, ``message`` its text."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignatureException", message)


class _Signed:
    """What a request claims about its own signature, from header or query."""

    __slots__ = ("access_key", "scope_date", "region", "service", "signed_headers",
                 "signature", "timestamp", "expires")

    def __init__(self, credential: str, signed_headers: str, signature: str,
                 timestamp: str, expires: int | None) -> None:
        parts = credential.split("/")
        if len(parts) != 5 or not all(parts):
            raise _incomplete(f"Credential should be scoped to a valid region, service and terminator: '{credential}'.")
        self.access_key, self.scope_date, self.region, self.service, terminator = parts
        if terminator != "aws4_request":
            raise _incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'.")
        names = signed_headers.split(";")
        if not all(n and n == n.strip().lower() for n in names):
            raise _incomplete(f"SignedHeaders must be lowercase names separated by ';': '{signed_headers}'.")
        if "host" not in names:
            raise _incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        self.signed_headers = names
        self.signature = signature
        self.timestamp = timestamp
        self.expires = expires


def _parse_authorization(value: str, amz_date: str | None) -> _Signed:
    algorithm, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        key, sep, val = item.strip().partition("=")
        if sep:
            fields[key] = val
    missing = [k for k in ("Credential", "SignedHeaders", "Signature") if k not in fields]
    if missing or algorithm != ALGORITHM:
        detail = " ".join(f"Authorization header requires '{k}' parameter." for k in missing)
        if algorithm != ALGORITHM:
            detail = f"Unsupported AWS 'algorithm': '{algorithm}'. {detail}".strip()
        raise _incomplete(f"{detail} Authorization={value}")
    if amz_date is None:
        raise _incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
            f"Authorization={value}"
        )
    return _Signed(fields["Credential"], fields["SignedHeaders"], fields["Signature"], amz_date, None)


def _parse_query_auth(params: dict[str, str]) -> _Signed:
    missing = [k for k in _QUERY_AUTH if k not in params]
    if missing:
        raise _incomplete(
            " ".join(f"AWS query-string parameters must include '{k}'." for k in missing)
            + " Re-examine the query-string parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'.")
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise _incomplete("X-Amz-Expires should be a number.") from None
    if not 0 < expires <= MAX_PRESIGN_EXPIRES:
        raise _incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds.")
    return _Signed(params["X-Amz-Credential"], params["X-Amz-SignedHeaders"],
                   params["X-Amz-Signature"], params["X-Amz-Date"], expires)


def _timestamp(value: str) -> tuple[dt.datetime, str]:
    """Parse a signing date; return it and its ISO-8601 basic form."""
    if _ISO_BASIC.fullmatch(value):
        # YYYYMMDDTHHMMSSZ, its digits checked by the pattern: read by
        # position (strptime took a tenth of a signature check's time).
        try:
            return dt.datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]), int(value[11:13]),
                               int(value[13:15]), tzinfo=dt.timezone.utc), value
        except ValueError:  # a month 13, a 31st of April
            pass
    else:
        try:
            # The spec also allows a plain HTTP Date header instead of X-Amz-Date.
            parsed = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.timezone.utc)
            parsed = parsed.astimezone(dt.timezone.utc)
            return parsed, _fmt(parsed)
    raise _incomplete(
        f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601"
    )


def _fmt(t: dt.datetime) -> str:
    return t.strftime(SIGV4_TIMESTAMP)


def _check_clock(signed: _Signed, when: dt.datetime, now: dt.datetime) -> None:
    if signed.expires is not None:
        deadline = when + dt.timedelta(seconds=signed.expires)
        if now > deadline:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature expired: {_fmt(when)} is now earlier than "
                f"{_fmt(now - dt.timedelta(seconds=signed.expires))} ({_fmt(now)} - {signed.expires} sec.)",
            )
    elif when < now - MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {_fmt(when)} is now earlier than {_fmt(now - MAX_SKEW)} ({_fmt(now)} - 5 min.)",
        )
    if when > now + MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {_fmt(when)} is still later than {_fmt(now + MAX_SKEW)} ({_fmt(now)} + 5 min.)",
        )


def _split_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((key, value))
    return pairs


def _canonical_query(pairs: list[tuple[str, str]]) -> str:
    # Clients differ in how they escape a query (botocore escapes everything
    # but -_.~; others leave ':' or ',' alone). SigV4 signs the strict form,
    # so decode each piece and re-escape it strictly. botocore sorts the
    # pairs when it builds the canonical request.
    def strict(piece: str) -> str:
        return quote(unquote_to_bytes(piece), safe="-_.~")

    return "&".join(f"{strict(k)}={strict(v)}" for k, v in pairs)


@functools.lru_cache(maxsize=256)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    """SigV4's key for one day's scope, derived as botocore derives it. It
    changes once a day per key, and deriving it is four of the five HMACs a
    request's signature takes: kept for the keys in use (bounded, and only
    for keys that signed a request whose head passed every other check)."""
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


class _Verifier(SigV4Auth):
    def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
        # botocore, as a signer, skips some headers (user-agent, expect, ...).
        # As a verifier we must honour exactly the list the client signed,
        # whichever SDK it was; the request holds only those headers.
        return request.headers

    def payload(self, request: AWSRequest) -> str:
        # Reached only without a signed X-Amz-Content-SHA256 (so never for a
        # streaming payload), over http. botocore reads request.body, which
        # prepares a whole copy of the request (its URL split, its headers
        # copied) to hand back the bytes held in request.data.
        data = request.data
        return hashlib.sha256(data).hexdigest() if data else EMPTY_SHA256_HASH

    def signature(self, string_to_sign: str, request: AWSRequest) -> str:
        key = _signing_key(self.credentials.secret_key, request.context["timestamp"][0:8], self._region_name, self._service_name)
        return hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class _S3Verifier(_Verifier):
    """S3 signs the path as the client encoded it, without normalising it
    (no dot segments removed, no double encoding). Clients differ only in
    which safe characters they escape, so the path is decoded and escaped
    strictly again, as S3 does."""

    def _normalize_url_path(self, path: str) -> str:
        return quote(unquote_to_bytes(path), safe="/~")

    def payload(self, request: AWSRequest) -> str:
        # A presigned S3 URL signs no body: its canonical request names
        # UNSIGNED-PAYLOAD unless the client signed a hash header.
        if request.context.get("query_auth"):
            return UNSIGNED_PAYLOAD
        return super().payload(request)


class Claim:
    """A request whose signature passed every check the head alone allows:
    present and well formed, a known access key, the credential scope, the
    clock. Only the signature itself, which covers the body's hash, is left."""

    __slots__ = ("access_key", "secret", "_signed", "_timestamp", "_path", "_pairs", "_by_name", "_method", "query_auth")

    def __init__(self, method: str, signed: _Signed, secret: str, timestamp: str, path: str,
                 pairs: list[tuple[str, str]], by_name: dict[str, list[str]]) -> None:
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
        return _signing_key(self.secret, self._signed.scope_date, self._signed.region, self._signed.service)

    def verify_body(self, body: bytes, allow_unsigned_payload: bool = False, *, payload_checked_elsewhere: bool = False) -> str:
        """Check the signature over the whole request; return the access key id.
        ``payload_checked_elsewhere``: the signed X-Amz-Content-SHA256 is one
        of STREAMING_PAYLOADS, and the body is checked as it is decoded."""
        signed = self._signed
        request = AWSRequest(method=self._method.upper(), url=f"http://lambdalet{self._path}?{_canonical_query(self._pairs)}", data=body)
        request.headers = HTTPHeaders()
        for name in signed.signed_headers:
            for value in self._by_name.get(name, ()):
                request.headers[name] = value
        request.context["timestamp"] = self._timestamp
        request.context["query_auth"] = self.query_auth
        if not (payload_checked_elsewhere and request.headers.get("x-amz-content-sha256") in STREAMING_PAYLOADS):
            _check_payload_hash(request, body, allow_unsigned_payload)

        verifier = _S3Verifier if signed.service == "s3" else _Verifier
        signer = verifier(Credentials(signed.access_key, self.secret), signed.service, signed.region)
        canonical = signer.canonical_request(request)
        expected = signer.signature(signer.string_to_sign(request, canonical), request)
        if not hmac.compare_digest(expected.encode(), signed.signature.encode()):
            raise AuthError("InvalidSignatureException", _BAD_SIGNATURE)
        return signed.access_key


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
    now = (now or dt.datetime.now(dt.timezone.utc))
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)

    if "#" in raw_target:
        # A fragment is never sent by a client; were it ignored here, it
        # could be appended to a signed target without breaking the signature.
        raise AuthError("InvalidSignatureException", _BAD_SIGNATURE)
    path, _, query = raw_target.partition("?")
    if not path.startswith("/"):
        raise _incomplete(f"Request target must be a path: '{raw_target[:100]}'.")

    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        by_name.setdefault(name.lower(), []).append(value)
    pairs = _split_query(query)
    query_auth = {unquote(k): unquote(v) for k, v in pairs if unquote(k) in _QUERY_AUTH}
    if not any(k in query_auth for k in _QUERY_AUTH_MARKERS):
        query_auth = {}
    authorization = by_name.get("authorization")

    if authorization and query_auth:
        raise _incomplete(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter "
            "or the Authorization header should be specified"
        )
    if authorization:
        if len(authorization) > 1:
            raise _incomplete("Only one Authorization header is allowed.")
        amz_date = (by_name.get("x-amz-date") or by_name.get("date") or [None])[0]
        signed = _parse_authorization(authorization[0], amz_date)
    elif query_auth:
        signed = _parse_query_auth(query_auth)
        # The signature cannot sign itself; every other parameter is covered.
        pairs = [(k, v) for k, v in pairs if unquote(k) != "X-Amz-Signature"]
    else:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")

    when, timestamp = _timestamp(signed.timestamp)
    if signed.scope_date != timestamp[:8]:
        raise AuthError(
            "InvalidSignatureException",
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{signed.scope_date}' != '{timestamp[:8]}', from '{signed.timestamp}'.",
        )
    _check_clock(signed, when, now)
    if not _REGION.fullmatch(signed.region) or (region is not None and signed.region != region):
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to a valid region, not '{signed.region[:64]}'.")
    if service is not None and signed.service != service:
        raise AuthError("InvalidSignatureException", f"Credential should be scoped to correct service: '{service}'.")
    if "x-amz-content-sha256" in signed.signed_headers:
        claimed = (by_name.get("x-amz-content-sha256") or [""])[0]
        if not (_HEX_SHA256.fullmatch(claimed) or (allow_unsigned_payload and claimed == UNSIGNED_PAYLOAD)
                or (allow_streaming_payload and claimed in STREAMING_PAYLOADS)):
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
    claim = check_head(method, raw_target, headers, secrets, now, service=service, region=region,
                       allow_unsigned_payload=allow_unsigned_payload)
    return claim.verify_body(body, allow_unsigned_payload)


def _check_payload_hash(request: AWSRequest, body: bytes, allow_unsigned: bool) -> None:
    # botocore takes a signed X-Amz-Content-SHA256 at its word; a verifier
    # must hold the body to it, or a replay could swap the body.
    claimed = request.headers.get("x-amz-content-sha256")
    if claimed is None:
        return
    if claimed == UNSIGNED_PAYLOAD and allow_unsigned:
        return
    actual = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256_HASH
    if not (_HEX_SHA256.fullmatch(claimed) and hmac.compare_digest(claimed, actual)):
        raise AuthError(
            "InvalidSignatureException",
            "The provided 'x-amz-content-sha256' header does not match what was computed.",
        )


# --- credentials --------------------------------------------------------------

_KEY_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def _new_key_pair() -> tuple[str, str]:
    # "LLAK" marks a Lambdalet key, much as "AKIA" marks an AWS user key.
    access_key = "LLAK" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return access_key, secret


def _read_credentials(path: pathlib.Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(path.read_text(), source=str(path))
    keys: dict[str, str] = {}
    for section in parser.sections():
        access_key = parser.get(section, "aws_access_key_id", fallback="").strip()
        secret = parser.get(section, "aws_secret_access_key", fallback="").strip()
        if not (access_key and secret):
            continue
        if keys.get(access_key, secret) != secret:
            raise ValueError(f"{path}: access key {access_key} appears twice with different secrets")
        keys[access_key] = secret
    if not keys:
        raise ValueError(f"{path}: no profile holds both aws_access_key_id and aws_secret_access_key")
    return keys


def load_or_create_credentials(data_dir: pathlib.Path) -> dict[str, str]:
    """Return {access_key_id: secret} from ``<data_dir>/credentials``.

    On first use a key pair is generated and written as the ``[default]``
    profile of an AWS shared-credentials file, mode 0600, so that
    ``AWS_SHARED_CREDENTIALS_FILE`` can point straight at it. Every profile
    in the file is accepted; a user may add more by hand.
    """
    data_dir = pathlib.Path(data_dir)
    path = data_dir / "credentials"
    if path.exists():
        return _read_credentials(path)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    access_key, secret = _new_key_pair()
    text = f"[default]\naws_access_key_id = {access_key}\naws_secret_access_key = {secret}\n"
    tmp = data_dir / f".credentials.tmp-{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        # The umask can only narrow the mode; fchmod makes it exactly 0600
        # before any secret byte exists on disk.
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            # link, not rename: if another server raced us here, its key
            # (perhaps already printed to its user) must win, not ours.
            os.link(tmp, path)
        except FileExistsError:
            return _read_credentials(path)
    finally:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
    dir_fd = os.open(data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {access_key: secret}
