"""The zygote's object heap made full before it forks, so that the objects a
worker creates go onto fresh pages of its own; then the same, roughly, for
C's malloc.

CPython allocates small objects (up to 512 bytes) from pools of one size
class each, filling the free blocks of partly used pools first. After the
zygote's imports those free blocks are scattered over hundreds of pages it
shares with every worker, so a worker's first few thousand objects would
each un-share a page of the zygote's (4 KiB copied for a 32-byte object).
The zygote fills those blocks with objects it keeps for good; a worker's
objects then land in new pools, packed together. What the filler costs is
the zygote's, shared by all.

The free blocks per size class come from sys._debugmallocstats(), the one
place the allocator reports them. An interpreter without pymalloc prints
no table, and nothing is filled.
"""

from __future__ import annotations

import ctypes
import os
import sys

# A bytes object of n bytes asks the allocator for 33 + n (header and the
# trailing NUL), so every size class from 48 bytes up can be filled exactly;
# the 32-byte class takes one-digit ints (28 bytes), and the 16-byte class a
# one-byte bytearray's buffer (its object takes a 64-byte block besides).
_BYTES_OVERHEAD = 33
_ROUNDS = 2  # the filling's own garbage (list growth, iterators) leaves a few holes
_held: list[object] = []


def free_blocks_by_size() -> dict[int, int]:
    """{block size: free blocks in partly used pools}, as the allocator
    reports them (on C stderr, which is briefly a memfd)."""
    saved = os.dup(2)
    out = os.memfd_create("mallocstats", os.MFD_CLOEXEC)
    try:
        os.dup2(out, 2)
        sys._debugmallocstats()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    try:
        text = os.pread(out, 1 << 20, 0).decode("ascii", "replace")
    finally:
        os.close(out)
    free = {}
    for line in text.splitlines():
        # "class  size  num pools  blocks in use  avail blocks"
        fields = line.split()
        if len(fields) == 5 and all(field.isdigit() for field in fields):
            free[int(fields[1])] = int(fields[4])
    return free


def _filler(size: int):
    if size == 16:
        return lambda i: bytearray(1)
    if size == 32:
        return lambda i: 1_000_000 + i
    if size >= _BYTES_OVERHEAD + 2:  # bytes of 0 or 1 byte are shared singletons
        return lambda i, n=size - _BYTES_OVERHEAD: bytes(n)
    return None


def _fill(size: int, count: int) -> list[object]:
    make = _filler(size)
    if make is None:
        return []
    block: list[object] = [None] * count  # sized once: growing it would leave holes
    for i in range(count):
        block[i] = make(i)
    return block


def fill_free_blocks() -> int:
    """Fills the free blocks of every size class; returns how many."""
    filled = 0
    for _ in range(_ROUNDS):
        free = free_blocks_by_size()
        if sum(free.values()) == 0:
            break
        for size, count in sorted(free.items(), reverse=True):
            if count:
                block = _fill(size, count)
                filled += len(block)
                _held.append(block)
    return filled


# glibc keeps small freed chunks in caches and bins per size (the zygote's
# imports leave them all over its heap), and a worker's small mallocs
# (setenv's strings, dict tables over 512 bytes, C libraries' buffers) reuse
# them first, each un-sharing a different page. Taking a few of each size
# up to 1 KiB for good leaves a worker's to be carved, together, from fresh
# memory. Measured (3.11, 100 instances): 16 of each ~60 KB less private
# heap per worker; 48 of each, or sizes up to 4 KiB, did worse.
MALLOC_DRAIN_SIZES = range(8, 1040, 16)  # requests for chunks of 32 to 1040 bytes
MALLOC_DRAIN_EACH = 16


def drain_malloc_free_lists() -> int:
    """Mallocs MALLOC_DRAIN_EACH chunks of each of MALLOC_DRAIN_SIZES and
    keeps them; returns how many (0 where there is no C malloc to call)."""
    try:
        malloc = ctypes.CDLL(None).malloc
    except (OSError, AttributeError):
        return 0
    malloc.restype = ctypes.c_void_p
    malloc.argtypes = [ctypes.c_size_t]
    chunks = [malloc(size) for size in MALLOC_DRAIN_SIZES for _ in range(MALLOC_DRAIN_EACH)]
    _held.append(chunks)
    return sum(1 for chunk in chunks if chunk)
