"""Code signatures of .zip packages, with local signing profiles (key pairs)
instead of AWS Signer: sign a zip, and check a signed zip's integrity and
signer.

Pure: bytes and keys in, bytes or a verdict out (the `cryptography` package
does the cryptography).

A signed zip stays an ordinary zip: the signature travels in the zip's
archive comment (which every unzip ignores),

    lambdalet-signature-v1 <base64url of {"profile": <profile version ARN>,
                                          "algorithm": "Ed25519"|"ECDSA-P384-SHA384",
                                          "signedAt": <unix seconds>,
                                          "sha256": <hex of the zip without its comment>,
                                          "signature": <base64 of the signature>}>

and what is signed is the JSON of the four fields before "signature" (sorted
keys, no spaces), so the package, the profile and the time are all bound.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import time

import msgspec

PREFIX = b"lambdalet-signature-v1 "
ED25519 = "Ed25519"
ECDSA = "ECDSA-P384-SHA384"  # AWS Signer's Lambda platform is SHA384-ECDSA
ALGORITHMS = (ED25519, ECDSA)
_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22


class SignatureError(ValueError):
    """A package that claims a signature which cannot be read."""


class Signature(msgspec.Struct, frozen=True):
    profile: str
    algorithm: str
    signed_at: int = msgspec.field(name="signedAt")
    sha256: str
    signature: str

    def message(self) -> bytes:
        return _canonical({"algorithm": self.algorithm, "profile": self.profile, "sha256": self.sha256, "signedAt": self.signed_at})


def _canonical(doc: dict) -> bytes:
    return msgspec.json.encode(dict(sorted(doc.items())))


def _comment_span(data: bytes) -> tuple[int, int]:
    """(offset of the end-of-central-directory record, comment length)."""
    # The record is the last 22 bytes plus its comment; scan back over at
    # most a maximal comment for the record whose length field fits.
    lowest = max(0, len(data) - _EOCD_SIZE - 0xFFFF)
    at = data.rfind(_EOCD, lowest)
    while at >= 0:
        (length,) = struct.unpack_from("<H", data, at + 20) if at + _EOCD_SIZE <= len(data) else (-1,)
        if at + _EOCD_SIZE + length == len(data):
            return at, length
        at = data.rfind(_EOCD, lowest, at)
    raise SignatureError("not a zip file (no end of central directory)")


def unsigned(data: bytes) -> bytes:
    """The package without its comment (what a signature covers)."""
    at, length = _comment_span(data)
    return data[: at + 20] + b"\x00\x00" if length else data


def read(data: bytes) -> Signature | None:
    """The package's signature, None when it carries none."""
    try:
        at, length = _comment_span(data)
    except SignatureError:
        return None
    comment = data[at + _EOCD_SIZE : at + _EOCD_SIZE + length]
    if not comment.startswith(PREFIX):
        return None
    try:
        return msgspec.json.decode(base64.urlsafe_b64decode(comment[len(PREFIX) :]), type=Signature)
    except (ValueError, msgspec.DecodeError):
        raise SignatureError("the package's signature cannot be read") from None


def generate(algorithm: str = ED25519):
    """A new private key for a signing profile."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if algorithm == ED25519:
        return ed25519.Ed25519PrivateKey.generate()
    if algorithm == ECDSA:
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown algorithm {algorithm} (one of {', '.join(ALGORITHMS)})")


def private_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def public_pem(key) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private(pem: bytes):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem, password=None)


def algorithm_of(public_key_pem: str) -> str:
    """The algorithm a public key is for; ValueError for any other key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    key = serialization.load_pem_public_key(public_key_pem.encode())
    if isinstance(key, ed25519.Ed25519PublicKey):
        return ED25519
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp384r1":
        return ECDSA
    raise ValueError("a signing profile's key must be Ed25519 or ECDSA on P-384")


def profile_version(public_key_pem: str) -> str:
    """A profile version id (as AWS Signer's, 10 characters) that names
    this key and no other."""
    return hashlib.sha256(public_key_pem.encode()).hexdigest()[:10]


def sign(data: bytes, private_key, profile_version_arn: str, *, now: float | None = None) -> bytes:
    """The package, signed: the same zip with the signature as its comment."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    body = unsigned(data)
    algorithm = ED25519 if isinstance(private_key, ed25519.Ed25519PrivateKey) else ECDSA
    fields = {
        "algorithm": algorithm,
        "profile": profile_version_arn,
        "sha256": hashlib.sha256(body).hexdigest(),
        "signedAt": int(now if now is not None else time.time()),
    }
    message = _canonical(fields)
    if algorithm == ED25519:
        raw = private_key.sign(message)
    else:
        raw = private_key.sign(message, ec.ECDSA(hashes.SHA384()))
    comment = PREFIX + base64.urlsafe_b64encode(msgspec.json.encode({**fields, "signature": base64.b64encode(raw).decode()}))
    return body[:-2] + struct.pack("<H", len(comment)) + comment


def intact(data: bytes, signature: Signature, public_key_pem: str) -> bool:
    """Whether the package is what its signer signed (the integrity check):
    the digest of its content and the signature over it, with the signer's
    key."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    if hashlib.sha256(unsigned(data)).hexdigest() != signature.sha256:
        return False
    key = serialization.load_pem_public_key(public_key_pem.encode())
    try:
        raw = base64.b64decode(signature.signature, validate=True)
        # A key of another kind than the signature names does not verify it.
        if signature.algorithm == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(raw, signature.message())
        elif signature.algorithm == ECDSA and isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(raw, signature.message(), ec.ECDSA(hashes.SHA384()))
        else:
            return False
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True
