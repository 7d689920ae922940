"""AWS's event-stream framing (application/vnd.amazon.eventstream), as
InvokeWithResponseStream answers in it. Sans-IO: events in, bytes out.

A message is a prelude (total length, headers length, the prelude's
CRC-32), the headers (a name, a type byte, a value; only strings are
written here), the payload and the CRC-32 of everything before it, all
big-endian. botocore's parser (botocore/eventstream.py) reads them
unmodified; the tests check with it.
"""

from __future__ import annotations

import json
import struct
import zlib

_STRING = 7
_PRELUDE = struct.Struct(">II")
_CRC = struct.Struct(">I")


def _headers(fields: list[tuple[str, str]]) -> bytes:
    out = bytearray()
    for name, value in fields:
        raw_name = name.encode()
        raw_value = value.encode()
        out += bytes((len(raw_name),)) + raw_name + bytes((_STRING,)) + struct.pack(">H", len(raw_value)) + raw_value
    return bytes(out)


def message(fields: list[tuple[str, str]], payload: bytes) -> bytes:
    headers = _headers(fields)
    total = _PRELUDE.size + _CRC.size + len(headers) + len(payload) + _CRC.size
    prelude = _PRELUDE.pack(total, len(headers))
    head = prelude + _CRC.pack(zlib.crc32(prelude)) + headers
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + payload + _CRC.pack(crc)


def _event(kind: str, content_type: str, payload: bytes) -> bytes:
    return message([(":event-type", kind), (":content-type", content_type), (":message-type", "event")], payload)


def payload_chunk(data: bytes) -> bytes:
    """Part of the function's answer."""
    return _event("PayloadChunk", "application/octet-stream", data)


def invoke_complete(error_code: str | None = None, error_details: str | None = None, log_result: str | None = None) -> bytes:
    """The last event: how the call ended, and its log tail when asked for."""
    doc = {}
    if error_code:
        doc["ErrorCode"] = error_code
    if error_details:
        doc["ErrorDetails"] = error_details
    if log_result is not None:
        doc["LogResult"] = log_result
    return _event("InvokeComplete", "application/json", json.dumps(doc).encode())
