"""SigV4's canonical request, made once per shape of request by botocore and
filled in per call (api/sigv4_canonical.py's canonical_template), against botocore's
own canonical request of each request; and the kept shapes, signing keys and
parsed headers, none of which lets a request skip a check."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import http.client
from urllib.parse import urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth, SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from lambdalet.gateway.api import sigv4, sigv4_canonical
from lambdalet.gateway.api.sigv4 import AuthError, check_head, verify

ENDPOINT = "http://127.0.0.1:9000"
KEY = "LLAKTESTTESTTEST0002"
SECRET = "t3mpl4te/t3mpl4te+t3mpl4te/t3mpl4te+abcd"
SECRETS = {KEY: SECRET}


class _Recording:
    """A botocore signer that keeps the canonical request it signed, and
    signs every header the request carries (botocore alone skips some), so
    that repeated and spaced values reach the canonical request."""

    canonical: str

    def canonical_request(self, request):
        self.canonical = super().canonical_request(request)  # type: ignore[misc]
        return self.canonical

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)  # type: ignore[misc]
        for name in set(request.headers.keys()) - {"Authorization"}:
            if name.lower() not in headers:
                for value in request.headers.get_all(name):
                    headers[name.lower()] = value
        return headers


class RecordingV4(_Recording, SigV4Auth):
    pass


class RecordingS3(_Recording, S3SigV4Auth):
    pass


class RecordingQuery(_Recording, SigV4QueryAuth):
    pass


class RecordingS3Query(_Recording, S3SigV4QueryAuth):
    pass


def _sign(method, url, *, body=b"", headers=(), service="lambda", signer=RecordingV4, **signer_kw):
    request = AWSRequest(method=method, url=f"{ENDPOINT}{url}", data=body)
    for name, value in headers:
        request.headers[name] = value  # an email.message: a second value is added, not replaced
    auth = signer(Credentials(KEY, SECRET), service, "us-east-1", **signer_kw)
    auth.add_auth(request)
    parts = urlsplit(request.prepare().url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    # The request's own headers, a repeated one's values each (a prepared
    # request keeps one value a name).
    sent = [("host", parts.netloc)] + [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    return auth.canonical, (method, target, sent, body)


SHA_OF_BODY = hashlib.sha256(b'{"a": 1}').hexdigest()

# (id, arguments of _sign, keyword arguments of verify)
CASES = [
    ("boto3-invoke", ("POST", "/2015-03-31/functions/hello/invocations"), {"body": b'{"a": 1}'}, {}),
    ("empty-body", ("POST", "/2015-03-31/functions/hello/invocations"), {}, {}),
    ("query-unsorted-repeated", ("GET", "/2015-03-31/functions?b=2&a=1&a=0&Marker=x%2Fy"), {}, {}),
    (
        "qualifier-and-arn",
        ("POST", "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A1%3Afunction%3Af/invocations?Qualifier=%24LATEST"),
        {"body": b"{}"},
        {},
    ),
    (
        "headers-in-another-order",
        ("POST", "/2015-03-31/functions/f/invocations"),
        {
            "body": b"[]",
            "headers": [("X-Amz-Log-Type", "Tail"), ("Content-Type", "application/json"), ("X-Amz-Invocation-Type", "RequestResponse")],
        },
        {},
    ),
    ("repeated-header", ("GET", "/2015-03-31/functions"), {"headers": [("X-Extra", "one"), ("X-Extra", "two")]}, {}),
    ("spaces-in-values", ("GET", "/2015-03-31/functions"), {"headers": [("X-Spaced", "  a   b\tc  ")]}, {}),
    ("path-dots", ("GET", "/2015-03-31/functions/./a/../b%2Fc"), {}, {}),
    (
        "signed-payload-hash",
        ("POST", "/2015-03-31/functions/f/invocations"),
        {"body": b'{"a": 1}', "headers": [("X-Amz-Content-SHA256", SHA_OF_BODY)]},
        {},
    ),
    (
        "unsigned-payload",
        ("POST", "/2015-03-31/functions/f/invocations"),
        {"body": b"anything", "headers": [("X-Amz-Content-SHA256", "UNSIGNED-PAYLOAD")]},
        {"allow_unsigned_payload": True},
    ),
    # botocore signs with X-Amz-Date and a Date of the signing time.
    ("date-header", ("GET", "/2015-03-31/functions"), {"headers": [("Date", "Mon, 01 Jan 2024 00:00:00 GMT")]}, {}),
    ("presigned", ("GET", "/my-path?name=value&x=1"), {"signer": RecordingQuery, "expires": 300}, {}),
    ("s3-put", ("PUT", "/bucket/a%20b/c%2Bd~e"), {"body": b"data", "service": "s3", "signer": RecordingS3}, {"service": "s3"}),
    ("s3-presigned", ("GET", "/bucket/key"), {"service": "s3", "signer": RecordingS3Query, "expires": 60}, {"service": "s3"}),
]


@pytest.mark.parametrize("args,sign_kw,verify_kw", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_canonical_request_is_botocores(args, sign_kw, verify_kw, monkeypatch):
    """The same bytes from a kept shape (made, then reused), and from botocore
    on the request itself (the path taken for a shape that holds a NUL)."""
    canonical, (method, target, headers, body) = _sign(*args, **sign_kw)
    allow = verify_kw.get("allow_unsigned_payload", False)
    claim = check_head(method, target, headers, SECRETS, service=verify_kw.get("service", "lambda"), allow_unsigned_payload=allow)
    for _ in range(2):
        assert claim.canonical_request(body, allow) == canonical
        assert verify(method, target, headers, body, SECRETS, **verify_kw) == KEY
    monkeypatch.setattr(sigv4, "canonical_template", lambda *args: None)
    assert claim.canonical_request(body, allow) == canonical
    assert verify(method, target, headers, body, SECRETS, **verify_kw) == KEY


def test_the_string_to_sign_is_botocores():
    signer = SigV4Auth(Credentials(KEY, SECRET), "lambda", "eu-west-3")
    request = AWSRequest(method="GET", url=f"{ENDPOINT}/x")
    request.context["timestamp"] = "20261206T014930Z"
    canonical = "GET\n/x\n\nhost:127.0.0.1:9000\n\nhost\n" + hashlib.sha256(b"").hexdigest()
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    assert sigv4_canonical.sign(canonical, SECRET, "20261206T014930Z", "eu-west-3", "lambda") == expected


def _refused(method, target, headers, body, secrets=SECRETS, **kw) -> AuthError:
    with pytest.raises(AuthError) as info:
        verify(method, target, headers, body, secrets, **kw)
    assert info.value.status == 403
    return info.value


def _with(headers, name, value):
    return [(k, value if k.lower() == name else v) for k, v in headers]


def test_a_kept_shape_still_checks_the_body_the_date_and_each_signed_header():
    """After a request of a shape has passed (its template kept), the same
    shape with anything signed changed is refused: each varying value is
    filled in from the request, never taken from the template."""
    _, (method, target, headers, body) = _sign(
        "POST", "/2015-03-31/functions/f/invocations", body=b'{"a": 1}', headers=[("X-Amz-Invocation-Type", "RequestResponse")]
    )
    assert verify(method, target, headers, body, SECRETS) == KEY
    assert _refused(method, target, headers, b'{"a": 2}').code == "InvalidSignatureException"
    stamp = dict((k.lower(), v) for k, v in headers)["x-amz-date"]
    when = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc) + dt.timedelta(seconds=1)
    moved = _with(headers, "x-amz-date", when.strftime("%Y%m%dT%H%M%SZ"))
    assert _refused(method, target, moved, body).code == "InvalidSignatureException"
    changed = _with(headers, "x-amz-invocation-type", "Event")
    assert _refused(method, target, changed, body).code == "InvalidSignatureException"
    # A second value added after signing to a header that is in SignedHeaders.
    assert _refused(method, target, [*headers, ("X-Amz-Invocation-Type", "Event")], body).code == "InvalidSignatureException"
    signature = dict((k.lower(), v) for k, v in headers)["authorization"]
    last = signature[-1]
    off_by_one = _with(headers, "authorization", signature[:-1] + ("0" if last != "0" else "1"))
    assert _refused(method, target, off_by_one, body).code == "InvalidSignatureException"
    assert verify(method, target, headers, body, SECRETS) == KEY


def test_a_kept_shape_with_a_signed_payload_hash_holds_the_body_to_it():
    body = b'{"a": 1}'
    _, (method, target, headers, _) = _sign(
        "POST", "/2015-03-31/functions/f/invocations", body=body, headers=[("X-Amz-Content-SHA256", SHA_OF_BODY)]
    )
    assert verify(method, target, headers, body, SECRETS) == KEY
    # Another body, and another body with its own hash in the header.
    assert "x-amz-content-sha256" in _refused(method, target, headers, b'{"a": 2}').message
    other = hashlib.sha256(b'{"a": 2}').hexdigest()
    assert _refused(method, target, _with(headers, "x-amz-content-sha256", other), b'{"a": 2}').code == "InvalidSignatureException"


def test_a_stale_date_is_refused_after_its_shape_was_kept():
    _, (method, target, headers, body) = _sign("POST", "/2015-03-31/functions/f/invocations", body=b"{}")
    assert verify(method, target, headers, body, SECRETS) == KEY
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=16)
    assert "Signature expired" in _refused(method, target, headers, body, now=later).message


def test_a_rotated_or_deleted_key_is_refused_at_once():
    """Nothing kept is keyed by the access key alone: a request that passed
    fails the moment its key's secret changes or the key is gone."""
    _, (method, target, headers, body) = _sign("POST", "/2015-03-31/functions/f/invocations", body=b"{}")
    assert verify(method, target, headers, body, SECRETS) == KEY
    assert _refused(method, target, headers, body, {KEY: SECRET[::-1]}).code == "InvalidSignatureException"
    assert _refused(method, target, headers, body, {}).code == "UnrecognizedClientException"
    assert verify(method, target, headers, body, SECRETS) == KEY


def test_a_value_that_looks_like_a_mark_is_only_a_value():
    """A signed header holding the text of a template's mark (a NUL in it)
    gets botocore's canonical request made afresh, never a template's."""
    mark = "\x00date\x00"
    canonical, (method, target, headers, body) = _sign("GET", "/2015-03-31/functions", headers=[("X-Odd", mark)])
    assert mark in canonical
    claim = check_head(method, target, headers, SECRETS)
    assert claim.canonical_request(body) == canonical
    assert verify(method, target, headers, body, SECRETS) == KEY
    assert _refused(method, target, _with(headers, "x-odd", "\x00payload-hash\x00"), body).code == "InvalidSignatureException"


def test_on_one_connection_a_tampered_second_call_is_refused(server):
    """boto3's Invoke over one kept-alive connection: the first call passes
    the signature (404: no such function), the same call with another body,
    another date or a changed signed header is refused with Lambda's shape."""
    key, secret = server.credentials()
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:

        def call(headers, body):
            conn.request("POST", "/2015-03-31/functions/no-such-fn/invocations", body=body, headers=dict(headers))
            response = conn.getresponse()
            return response.status, response.getheader("x-amzn-ErrorType"), response.read()

        request = AWSRequest(method="POST", url=f"{server.url}/2015-03-31/functions/no-such-fn/invocations", data=b"{}")
        SigV4Auth(Credentials(key, secret), "lambda", "us-east-1").add_auth(request)
        headers = [(k, v) for k, v in request.headers.items()]
        for _ in range(2):
            status, kind, _ = call(headers, b"{}")
            assert (status, kind) == (404, "ResourceNotFoundException")
        status, kind, payload = call(headers, b"[]")
        assert (status, kind) == (403, "InvalidSignatureException") and b"signature" in payload
        stamp = request.headers["X-Amz-Date"]
        moved = (dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ") + dt.timedelta(seconds=1)).strftime("%Y%m%dT%H%M%SZ")
        assert call(_with(headers, "x-amz-date", moved), b"{}")[:2] == (403, "InvalidSignatureException")
        status, kind, _ = call(headers, b"{}")
        assert (status, kind) == (404, "ResourceNotFoundException")
    finally:
        conn.close()


@pytest.mark.parametrize("size", [0, 1, 55, 56, 63, 64, 65, 200, 5000])
def test_the_signatures_hmac_is_the_standard_librarys(size):
    """The HMAC made from the kept pads is hmac's, for keys of every scope
    and messages of every length around SHA-256's block."""
    message = bytes(range(256)) * (size // 256 + 1)
    for secret, date, region, service in [(SECRET, "20261206", "us-east-1", "lambda"), ("x", "20240229", "eu-west-3", "s3")]:
        key = sigv4_canonical.derive_signing_key(secret, date, region, service)
        expected = hmac.digest(key, message[:size], "sha256").hex()
        assert sigv4_canonical._hmac_sha256_hex(sigv4_canonical._keyed_sha256(secret, date, region, service), message[:size]) == expected
        # The kept state is copied, never fed: a second use gives the same.
        assert sigv4_canonical._hmac_sha256_hex(sigv4_canonical._keyed_sha256(secret, date, region, service), message[:size]) == expected


def test_a_long_request_is_checked_but_its_forms_are_not_kept():
    """A head may be 64 KiB: a request whose signed values or Authorization
    are long is verified (and refused when tampered) without entering the
    kept templates or parsed forms, so no client can pin megabytes in them."""
    from lambdalet.gateway.api import sigv4_parse

    long_value = "v" * 8000
    canonical, (method, target, headers, body) = _sign("GET", "/2015-03-31/functions", headers=[("X-Long", long_value)])
    templates = sigv4_canonical.canonical_template.cache_info().currsize
    assert check_head(method, target, headers, SECRETS).canonical_request(body) == canonical
    assert verify(method, target, headers, body, SECRETS) == KEY
    assert sigv4_canonical.canonical_template.cache_info().currsize == templates
    assert _refused(method, target, _with(headers, "x-long", long_value + "w"), body).code == "InvalidSignatureException"

    # An Authorization whose fields before the signature are long (padded with spaces).
    signature_at = next(v for k, v in headers if k.lower() == "authorization").index("Signature=")
    auth = next(v for k, v in headers if k.lower() == "authorization")
    padded = auth[:signature_at] + " " * 2000 + auth[signature_at:]
    forms = sigv4_parse._authorization_form.cache_info().currsize
    assert verify(method, target, _with(headers, "authorization", padded), body, SECRETS) == KEY
    assert sigv4_parse._authorization_form.cache_info().currsize == forms
