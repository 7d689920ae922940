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


# The RFC 4122 variant keeps the top two bits of byte 8 at 10: its first hex
# digit, whatever it was drawn as, becomes 8, 9, a or b.
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def request_id() -> str:
    global _pool, _pos
    if _pos >= len(_pool):
        _pool = os.urandom(16 * _BATCH)
        _pos = 0
    h = _pool[_pos : _pos + 16].hex()
    _pos += 16
    # Version 4 in the first digit of the third group, the variant as above:
    # set on the hex digits rather than on a mutable copy of the bytes.
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"
