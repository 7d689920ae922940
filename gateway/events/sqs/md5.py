"""The digests SQS answers with: MD5 of the body, and of the message
attributes in SQS's documented encoding (per attribute, sorted by name:
name, data type, a transport byte (1 string or number, 2 binary) and the
value, each length-prefixed with 4 bytes big-endian)."""

from __future__ import annotations

import hashlib
import struct


def of_body(body: str) -> str:
    return hashlib.md5(body.encode("utf-8"), usedforsecurity=False).hexdigest()


def _field(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def of_attributes(attributes: dict[str, dict]) -> str | None:
    """``attributes``: name -> {"DataType", "StringValue"|"BinaryValue" (bytes)}.
    None when there are none (SQS then omits the digest)."""
    if not attributes:
        return None
    out = bytearray()
    for name in sorted(attributes, key=lambda n: n.encode("utf-8")):
        value = attributes[name]
        out += _field(name.encode("utf-8"))
        out += _field(value["DataType"].encode("utf-8"))
        if "BinaryValue" in value:
            out += b"\x02" + _field(value["BinaryValue"])
        else:
            out += b"\x01" + _field(value["StringValue"].encode("utf-8"))
    return hashlib.md5(bytes(out), usedforsecurity=False).hexdigest()
