"""Request ids: random (version 4) UUIDs, drawn from the kernel in batches.

uuid.uuid4() makes one getrandom call per id; on the invoke path that is a
syscall per request for 16 bytes. Drawing 8 KiB at a time keeps the ids
exactly as random and costs one syscall per 512 requests.
"""
from __future__ import annotations

import os

_BATCH = 512
_pool = b""
_pos = 0


def request_id() -> str:
    global _pool, _pos
    if _pos >= len(_pool):
        _pool = os.urandom(16 * _BATCH)
        _pos = 0
    raw = bytearray(_pool[_pos : _pos + 16])
    _pos += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
