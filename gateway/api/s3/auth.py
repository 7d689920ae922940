"""SigV4 for S3 requests, answered with S3's error codes.

The signing maths is sigv4.py's (botocore's); what differs for S3 is the
payload (a body hash, UNSIGNED-PAYLOAD, or aws-chunked with signed chunks
or a trailer), the path (signed as sent, not normalised), the region
(a request signed for another one is told the right one, which botocore
follows), and the wording of every refusal.
"""

from __future__ import annotations

from collections.abc import Mapping

from ...events.s3 import chunked
from ...events.s3.errors import S3Error
from ...http.http1 import Head
from ..sigv4 import AuthError, Claim, check_head
from . import sigv2

_INLINE_HASH_MAX = 256 * 1024  # bigger bodies are hashed off the event loop


def s3_error(exc: AuthError, query_auth: bool) -> S3Error:
    """One translation of sigv4's AWS-wide errors into S3's codes."""
    message = exc.message
    if exc.code == "MissingAuthenticationTokenException":
        return S3Error("AccessDenied")
    if exc.code == "UnrecognizedClientException":
        return S3Error("InvalidAccessKeyId")
    if exc.code == "IncompleteSignatureException":
        if query_auth:
            return S3Error("AuthorizationQueryParametersError", message)
        return S3Error("AuthorizationHeaderMalformed", f"The authorization header is malformed; {message}")
    if "Signature expired" in message or "not yet current" in message:
        if query_auth and "expired" in message:
            return S3Error("AccessDenied", "Request has expired")
        return S3Error("RequestTimeTooSkewed")
    if "x-amz-content-sha256" in message:
        return S3Error("XAmzContentSHA256Mismatch")
    if "Credential should be scoped" in message or "Date in Credential scope" in message:
        return S3Error("AuthorizationHeaderMalformed", f"The authorization header is malformed; {message}")
    return S3Error("SignatureDoesNotMatch")


def _query_auth(head: Head) -> bool:
    return "X-Amz-Credential=" in head.query or "X-Amz-Signature=" in head.query


def check(head: Head, secrets: Mapping[str, str] | None, region: str, virtual_bucket: str | None = None) -> Claim | sigv2.V2Claim | None:
    """Everything the head shows; None when the server runs without auth.
    ``virtual_bucket``: the bucket a virtual-hosted request's Host names.
    Raises S3Error."""
    if secrets is None:
        return None
    if sigv2.is_v2(head):
        path = head.path
        return sigv2.check(head, secrets, f"/{virtual_bucket}{path}" if virtual_bucket else path)
    try:
        claim = check_head(
            head.method, head.target, head.headers, secrets, service="s3", allow_unsigned_payload=True, allow_streaming_payload=True
        )
    except AuthError as exc:
        raise s3_error(exc, _query_auth(head)) from None
    if claim.region != region:
        # botocore reads <Region> and signs again for it.
        raise S3Error(
            "AuthorizationHeaderMalformed",
            f"The authorization header is malformed; the region '{claim.region}' is wrong; expecting '{region}'",
            Region=region,
        )
    return claim


def content_sha256(head: Head) -> str | None:
    return head.header("x-amz-content-sha256")


def is_chunked(head: Head) -> bool:
    mode = content_sha256(head)
    return (mode is not None and mode.startswith("STREAMING-")) or "aws-chunked" in (head.header("content-encoding") or "")


def needs_thread(body: bytes) -> bool:
    return len(body) > _INLINE_HASH_MAX


def payload(head: Head, claim: Claim | sigv2.V2Claim | None, body: bytes) -> tuple[bytes, dict[str, str]]:
    """The request's payload once its signature holds: the body itself, or
    aws-chunked decoded (with its trailers). Raises S3Error. May hash a
    large body: call it from a thread for those."""
    chunked_body = is_chunked(head)
    if claim is not None:
        try:
            claim.verify_body(body, allow_unsigned_payload=True, payload_checked_elsewhere=chunked_body)
        except AuthError as exc:
            raise s3_error(exc, claim.query_auth) from None
    if not chunked_body:
        return body, {}
    mode = content_sha256(head) or chunked.UNSIGNED_TRAILER
    declared = head.header("x-amz-decoded-content-length")
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise S3Error(
            "InvalidArgument",
            "x-amz-decoded-content-length must be a number",
            ArgumentName="x-amz-decoded-content-length",
            ArgumentValue=declared[:64],
        )
    signer = None
    if claim is not None and mode != chunked.UNSIGNED_TRAILER:
        if isinstance(claim, sigv2.V2Claim):
            # Chunk signatures chain from a version 4 signature's key and seed.
            raise S3Error("InvalidRequest", "Signed aws-chunked payloads need a version 4 signature (AWS4-HMAC-SHA256).")
        signer = chunked.ChunkSigner(claim.signing_key(), claim.timestamp, claim.scope, claim.signature)
    return chunked.decode(body, mode, signer, int(declared) if declared is not None else None)
