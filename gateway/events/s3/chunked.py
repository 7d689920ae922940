"""S3's aws-chunked request bodies, decoded and checked. Sans-IO.

Three forms, named by the signed X-Amz-Content-SHA256:

- STREAMING-AWS4-HMAC-SHA256-PAYLOAD: ``<hex size>;chunk-signature=<sig>``
  lines, each chunk signed over the previous signature (the first over the
  request's own, the seed), ending with an empty signed chunk;
- ...-PAYLOAD-TRAILER: the same, then trailing headers (a checksum) and
  ``x-amz-trailer-signature`` over them;
- STREAMING-UNSIGNED-PAYLOAD-TRAILER: plain ``<hex size>`` lines and an
  unsigned trailer (what botocore sends over TLS, with a CRC32 trailer).

A chunk whose signature is wrong is SignatureDoesNotMatch; a body whose
decoded length differs from X-Amz-Decoded-Content-Length, or that is not
aws-chunked at all, is IncompleteBody or InvalidRequest. Nothing is
returned unless the whole body checks out.
"""

from __future__ import annotations

import hashlib
import hmac
import re

from .errors import S3Error

SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
MODES = frozenset({SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER})

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIZE_RE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:;chunk-signature=([0-9a-f]{64}))?")
_TRAILER_RE = re.compile(r"[a-z0-9-]{1,64}")
MAX_TRAILER_BYTES = 4096


class ChunkSigner:
    """What checking signed chunks needs from the request's signature."""

    __slots__ = ("key", "timestamp", "scope", "seed")

    def __init__(self, key: bytes, timestamp: str, scope: str, seed: str) -> None:
        self.key = key
        self.timestamp = timestamp
        self.scope = scope
        self.seed = seed

    def chunk(self, previous: str, data: bytes | memoryview) -> str:
        sts = "\n".join(("AWS4-HMAC-SHA256-PAYLOAD", self.timestamp, self.scope, previous, _EMPTY_SHA256, hashlib.sha256(data).hexdigest()))
        return hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()

    def trailer(self, previous: str, canonical_trailers: bytes) -> str:
        sts = "\n".join(("AWS4-HMAC-SHA256-TRAILER", self.timestamp, self.scope, previous, hashlib.sha256(canonical_trailers).hexdigest()))
        return hmac.new(self.key, sts.encode(), hashlib.sha256).hexdigest()


def _bad_signature() -> S3Error:
    return S3Error("SignatureDoesNotMatch")


def decode(body: bytes, mode: str, signer: ChunkSigner | None, decoded_length: int | None) -> tuple[bytes, dict[str, str]]:
    """The payload and the trailing headers (lower-case names). ``signer``
    None skips signature checks (the server runs without auth)."""
    if mode not in MODES:
        raise S3Error("InvalidRequest", f"Unsupported x-amz-content-sha256 value for aws-chunked: {mode[:64]}")
    signed = mode != UNSIGNED_TRAILER
    out = bytearray()
    previous = signer.seed if signer is not None else ""
    pos = 0
    view = memoryview(body)
    try:
        while True:
            end = body.find(b"\r\n", pos, pos + 200)
            if end < 0:
                raise S3Error("IncompleteBody")
            m = _SIZE_RE.fullmatch(body, pos, end)
            if m is None or (signed and m.group(2) is None) or (not signed and m.group(2) is not None):
                raise S3Error("InvalidRequest", "The aws-chunked body is malformed (chunk header).")
            size = int(m.group(1), 16)
            start = end + 2
            stop = start + size
            if stop > len(body):
                raise S3Error("IncompleteBody")
            data = view[start:stop]
            if signed and signer is not None:
                expected = signer.chunk(previous, data)
                if not hmac.compare_digest(expected, m.group(2).decode()):
                    raise _bad_signature()
                previous = expected
            if size == 0:
                pos = start
                break
            out += data
            if body[stop : stop + 2] != b"\r\n":
                raise S3Error("InvalidRequest", "The aws-chunked body is malformed (chunk end).")
            pos = stop + 2
    finally:
        view.release()
    trailers, pos = _trailers(body, pos, mode, signer, previous)
    if pos != len(body):
        raise S3Error("InvalidRequest", "The aws-chunked body has bytes after its end.")
    if decoded_length is not None and decoded_length != len(out):
        raise S3Error("IncompleteBody")
    return bytes(out), trailers


def _trailers(body: bytes, pos: int, mode: str, signer: ChunkSigner | None, previous: str) -> tuple[dict[str, str], int]:
    """After the last chunk: (for trailer modes) header lines, then an empty
    line. In the signed mode without trailer, only the empty line."""
    trailers: dict[str, str] = {}
    canonical = bytearray()
    trailer_signature = None
    start = pos
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0 or end - start > MAX_TRAILER_BYTES:
            raise S3Error("IncompleteBody")
        line = body[pos:end].decode("latin-1")
        pos = end + 2
        if not line:
            break
        if mode == SIGNED:
            raise S3Error("InvalidRequest", "The aws-chunked body has trailers its x-amz-content-sha256 does not allow.")
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not _TRAILER_RE.fullmatch(name):
            raise S3Error("InvalidRequest", "The aws-chunked body has a malformed trailer.")
        value = value.strip()
        if name == "x-amz-trailer-signature":
            trailer_signature = value
            continue
        trailers[name] = value
        canonical += f"{name}:{value}\n".encode("latin-1")
    if mode == SIGNED_TRAILER and signer is not None:
        if trailer_signature is None:
            raise _bad_signature()
        if not hmac.compare_digest(signer.trailer(previous, bytes(canonical)), trailer_signature):
            raise _bad_signature()
    return trailers, pos
