"""What a request says about its own SigV4 signature, parsed and checked
for form: the Authorization header or the presigned query's parameters
(credential scope, signed headers, signature, expiry), the signing time
and the clock's tolerance. Pure; failures are AuthError with AWS's error
types and wording (all HTTP 403)."""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import re

from botocore.auth import SIGV4_TIMESTAMP

ALGORITHM = "AWS4-HMAC-SHA256"
# AWS accepts a request signed up to five minutes either side of its clock.
MAX_SKEW = dt.timedelta(minutes=5)
_MAX_SKEW_S = MAX_SKEW.total_seconds()
# The longest validity AWS allows for a presigned URL: seven days.
MAX_PRESIGN_EXPIRES = 604_800

_ISO_BASIC = re.compile(r"\d{8}T\d{6}Z")

# The longest text a cache of parsed forms keeps: what clients send on
# every call is far shorter, and a client sending longer is parsed afresh
# (a head may be 64 KiB: kept, such keys would pin megabytes).
KEPT_MAX = 1024

QUERY_AUTH = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
    "X-Amz-Date",
    "X-Amz-Expires",
)
# Any of these in the query means the client chose query authentication.
QUERY_AUTH_MARKERS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature")


class AuthError(Exception):
    """A refused request: ``code`` is the AWS error type, ``message`` its text."""

    status = 403

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def incomplete(message: str) -> AuthError:
    return AuthError("IncompleteSignatureException", message)


class Signed:
    """What a request claims about its own signature, from header or query."""

    __slots__ = ("access_key", "scope_date", "region", "service", "signed_headers", "signature", "timestamp", "expires")

    def __init__(self, credential: str, signed_headers: str, signature: str, timestamp: str, expires: int | None) -> None:
        scope = _scope if len(credential) + len(signed_headers) <= KEPT_MAX else _scope.__wrapped__
        self.access_key, self.scope_date, self.region, self.service, self.signed_headers = scope(credential, signed_headers)
        self.signature = signature
        self.timestamp = timestamp
        self.expires = expires


@functools.lru_cache(maxsize=256)
def _scope(credential: str, signed_headers: str) -> tuple[str, str, str, str, tuple[str, ...]]:
    """The credential's access key, date, region and service, and the
    signed header names, checked for form. A client sends the same two on
    every call of a day: kept (a pure function of them; what raises is not kept)."""
    parts = credential.split("/")
    if len(parts) != 5 or not all(parts):
        raise incomplete(f"Credential should be scoped to a valid region, service and terminator: '{credential}'.")
    access_key, scope_date, region, service, terminator = parts
    if terminator != "aws4_request":
        raise incomplete(f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'.")
    names = signed_headers.split(";")
    if not all(n and n == n.strip().lower() for n in names):
        raise incomplete(f"SignedHeaders must be lowercase names separated by ';': '{signed_headers}'.")
    if "host" not in names:
        raise incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
    return access_key, scope_date, region, service, tuple(names)


def parse_authorization(value: str, amz_date: str | None) -> Signed:
    # A client signs each call afresh, but between its calls only the
    # signature changes, the last field as every SDK writes it: what comes
    # before it is parsed once (_authorization_form). Parsing the value
    # without its last field, then that field, gives what parsing it whole
    # gives (a later field overrides an earlier one of the same name).
    front, comma, last = value.rpartition(",")
    name, equals, signature = last.strip().partition("=")
    if comma and name == "Signature" and equals and amz_date is not None and len(front) <= KEPT_MAX:
        form = _authorization_form(front)
        if form is not None:
            return Signed(form[0], form[1], signature, amz_date, None)
    return _parse_authorization(value, amz_date)


@functools.lru_cache(maxsize=256)
def _authorization_form(front: str) -> tuple[str, str] | None:
    """Credential and SignedHeaders of an Authorization value that is
    ``front`` and then a Signature field; None if that value is refused
    (the whole value is then parsed again, for its refusal's wording)."""
    try:
        parsed = _fields(front + ", Signature=")
    except AuthError:
        return None
    return parsed["Credential"], parsed["SignedHeaders"]


def _parse_authorization(value: str, amz_date: str | None) -> Signed:
    fields = _fields(value)
    if amz_date is None:
        raise incomplete(f"Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={value}")
    return Signed(fields["Credential"], fields["SignedHeaders"], fields["Signature"], amz_date, None)


def _fields(value: str) -> dict[str, str]:
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
        raise incomplete(f"{detail} Authorization={value}")
    return fields


def parse_query_auth(params: dict[str, str]) -> Signed:
    missing = [k for k in QUERY_AUTH if k not in params]
    if missing:
        raise incomplete(
            " ".join(f"AWS query-string parameters must include '{k}'." for k in missing) + " Re-examine the query-string parameters."
        )
    if params["X-Amz-Algorithm"] != ALGORITHM:
        raise incomplete(f"Unsupported AWS 'algorithm': '{params['X-Amz-Algorithm']}'.")
    try:
        expires = int(params["X-Amz-Expires"])
    except ValueError:
        raise incomplete("X-Amz-Expires should be a number.") from None
    if not 0 < expires <= MAX_PRESIGN_EXPIRES:
        raise incomplete(f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds.")
    return Signed(params["X-Amz-Credential"], params["X-Amz-SignedHeaders"], params["X-Amz-Signature"], params["X-Amz-Date"], expires)


@functools.lru_cache(maxsize=64)
def parse_timestamp(value: str) -> tuple[dt.datetime, str, float]:
    """Parse a signing date; return it, its ISO-8601 basic form and its
    seconds since the epoch. Kept
    for the few dates in use: a client signs every request of one second
    with the same one (a bad date raises, and is not kept)."""
    if _ISO_BASIC.fullmatch(value):
        # YYYYMMDDTHHMMSSZ, its digits checked by the pattern: read by
        # position (strptime took a tenth of a signature check's time).
        try:
            when = dt.datetime(
                int(value[0:4]),
                int(value[4:6]),
                int(value[6:8]),
                int(value[9:11]),
                int(value[11:13]),
                int(value[13:15]),
                tzinfo=dt.timezone.utc,
            )
        except ValueError:  # a month 13, a 31st of April
            pass
        else:
            return when, value, when.timestamp()
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
            return parsed, fmt(parsed), parsed.timestamp()
    raise incomplete(f"Date must be in ISO-8601 'basic format'. Got '{value}'. See http://en.wikipedia.org/wiki/ISO_8601")


def fmt(t: dt.datetime) -> str:
    return t.strftime(SIGV4_TIMESTAMP)


def clock_ok(signed: Signed, when_s: float, now_s: float) -> bool:
    """check_clock's verdict, in seconds since the epoch: making the two
    datetimes it compares took a tenth of a signature check's time."""
    if when_s > now_s + _MAX_SKEW_S:
        return False
    if signed.expires is not None:
        return now_s <= when_s + signed.expires
    return when_s >= now_s - _MAX_SKEW_S


def check_clock(signed: Signed, when: dt.datetime, now: dt.datetime) -> None:
    if signed.expires is not None:
        deadline = when + dt.timedelta(seconds=signed.expires)
        if now > deadline:
            raise AuthError(
                "InvalidSignatureException",
                f"Signature expired: {fmt(when)} is now earlier than "
                f"{fmt(now - dt.timedelta(seconds=signed.expires))} ({fmt(now)} - {signed.expires} sec.)",
            )
    elif when < now - MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature expired: {fmt(when)} is now earlier than {fmt(now - MAX_SKEW)} ({fmt(now)} - 5 min.)",
        )
    if when > now + MAX_SKEW:
        raise AuthError(
            "InvalidSignatureException",
            f"Signature not yet current: {fmt(when)} is still later than {fmt(now + MAX_SKEW)} ({fmt(now)} + 5 min.)",
        )


def split_query(query: str) -> list[tuple[str, str]]:
    pairs = []
    for item in query.split("&"):
        if item:
            key, _, value = item.partition("=")
            pairs.append((key, value))
    return pairs
