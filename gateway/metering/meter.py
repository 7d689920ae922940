"""Per-call counters in a shared, file-backed mapping: <data-dir>/meter.bin.

The file outlives the server, so the counters survive a crash of it, and
any process that maps it (the gateway, a worker, a test's hammering
processes) may add to it at once: every write is an atomic add in
csrc/meter.c, and readers take consistent snapshots without a lock.

Layout (little-endian u64 words):

    header, one 4 KiB page: magic, layout version, slot count, slot bytes
    slot[i], SLOT_BYTES each:
        word 0        state: 0 free, 1 being claimed, 2 ready
        words 1..15   key: b"<function>\\0<version>", NUL-padded
        words 16..    counters, offsets as in csrc/meter.h (LL_W_*)

A slot belongs to one function and version. It is found by hashing the key
and probing linearly; the first process to need a key claims a free slot
with a compare-and-swap, writes the key and publishes it (state 2), so two
processes that race for the same new key end up on the same slot.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
import pathlib
import struct
import time
import zlib

import msgspec

from lambdalet.csrc._native import ffi, lib

MAGIC = int.from_bytes(b"LLMETER1", "little")
LAYOUT_VERSION = 1
HEADER_BYTES = 4096
SLOT_BYTES = 1024
KEY_WORDS = 15
KEY_BYTES = KEY_WORDS * 8
COUNTER_BASE = 1 + KEY_WORDS  # word index of the first counter in a slot
DEFAULT_SLOTS = 4096  # 4 MiB of sparse file; a never-called function takes none
SNAPSHOT_TRIES = 1000
# When every slot is taken, further functions share one overflow slot kept
# in the header page (words 128..252), so a call is never refused for want
# of a counter. Lambda names cannot hold parentheses: the key cannot clash.
OVERFLOW_BASE = 128
OVERFLOW_FUNCTION = "(overflow)"

SLOT_WORDS = lib.LL_SLOT_WORDS
HIST_BUCKETS = lib.LL_HIST_BUCKETS
assert COUNTER_BASE + SLOT_WORDS <= SLOT_BYTES // 8
assert OVERFLOW_BASE + COUNTER_BASE + SLOT_WORDS <= HEADER_BYTES // 8

# Word offsets, mirrored from csrc/meter.h.
W_THROTTLES, W_CONCURRENT, W_COLD, W_DURATION_NS, W_BILLED_MS, W_MB_MS, W_INIT_NS, W_OUTCOMES = 2, 3, 4, 5, 6, 7, 8, 9
W_HIST = 17
W_END = 1  # the record sequence's end: it moves with every record()

# Outcomes, indexed as csrc/meter.c counts them. These are also the values
# of the `outcome` label on lambdalet_invocations_total and in the ledger.
OUTCOMES = ("success", "error", "timeout", "oom", "crash", "init_error", "reserved6", "other")
OUTCOME_INDEX = {name: i for i, name in enumerate(OUTCOMES)}

_FREE, _CLAIMING, _READY = 0, 1, 2
_HEADER = struct.Struct("<4Q")
_GAUGE_DOWN = (1 << 64) - 1  # adding this is subtracting one, modulo 2**64


def hist_upper_bounds_ns() -> list[int]:
    """Upper bound (exclusive) of each histogram bucket but the last, in ns:
    1 us, then 9 linear steps per decade: 2 us, 3 us, ... 10 us, 20 us, ..."""
    bounds = [1000]
    base = 1000
    for _ in range((HIST_BUCKETS - 2) // 9):
        bounds.extend(base * m for m in range(2, 11))
        base *= 10
    return bounds


class MeterError(Exception):
    """The meter file is not one this build can use."""


class SlotSnapshot(msgspec.Struct, frozen=True):
    """One function version's counters, copied at one consistent instant."""

    function: str
    version: str
    outcomes: dict[str, int]
    throttles: int
    concurrent: int
    cold_starts: int
    duration_ns: int
    billed_ms: int
    mb_ms: int
    init_ns: int
    histogram: tuple[int, ...]  # counts per bucket, see hist_upper_bounds_ns
    consistent: bool = True

    @property
    def invocations(self) -> int:
        return sum(self.outcomes.values())

    @property
    def errors(self) -> int:
        return self.invocations - self.outcomes.get("success", 0)

    @property
    def gb_seconds(self) -> float:
        return self.mb_ms / 1024 / 1000


class Meter:
    """The mapping, and the slots this process has looked up so far."""

    def __init__(self, path: str | os.PathLike, slots: int = DEFAULT_SLOTS) -> None:
        self.path = pathlib.Path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            # Whoever opens first writes the header; the lock keeps a second
            # opener from mapping a file that is half set up.
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == 0:
                self._initialise(fd, slots)
            size = os.fstat(fd).st_size
            self._map = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        finally:
            # Unlock explicitly: mmap keeps a dup of fd, and the lock belongs
            # to the open file, so closing fd alone would not release it.
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        magic, version, count, slot_bytes = _HEADER.unpack_from(self._map, 0)
        if magic != MAGIC or version != LAYOUT_VERSION or slot_bytes != SLOT_BYTES or size < HEADER_BYTES + count * SLOT_BYTES:
            self._map.close()
            raise MeterError(f"{self.path}: not a lambdalet meter file of layout {LAYOUT_VERSION}")
        self.slot_count = count
        self._words = ffi.from_buffer("uint64_t[]", self._map, require_writable=True)
        self._slots: dict[tuple[str, str], object] = {}
        self._snap = ffi.new("uint64_t[]", SLOT_WORDS)

    @staticmethod
    def _initialise(fd: int, slots: int) -> None:
        header = _HEADER.pack(MAGIC, LAYOUT_VERSION, slots, SLOT_BYTES).ljust(HEADER_BYTES, b"\0")
        os.pwrite(fd, header, 0)
        os.ftruncate(fd, HEADER_BYTES + slots * SLOT_BYTES)  # sparse: untouched slots take no disk
        os.fsync(fd)

    def close(self) -> None:
        if self._words is not None:
            self._slots.clear()
            ffi.release(self._words)
            self._words = None
            self._map.close()

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- slots -------------------------------------------------------------

    def _base(self, index: int) -> int:
        return (HEADER_BYTES + index * SLOT_BYTES) // 8

    def slot(self, function: str, version: str = "$LATEST"):
        """The counters of one function version, as a pointer for record()."""
        key = (function, version)
        ptr = self._slots.get(key)
        if ptr is None:
            ptr = self._slots[key] = self._find(_encode_key(function, version), claim=True)
        return ptr

    def statistics(self) -> dict[str, int]:
        return {"slots_cached": len(self._slots)}

    def forget(self, function: str) -> None:
        """Drop this process's lookups for a deleted function. Its slot in
        the file keeps its counters (they are history; /metrics shows them)
        and a later slot() finds it again; only the cache, which would
        otherwise grow with every function name ever called, shrinks."""
        for key in [k for k in self._slots if k[0] == function]:
            del self._slots[key]

    def _find(self, key: bytes, *, claim: bool):
        words = self._words
        start = zlib.crc32(key) % self.slot_count
        for probe in range(self.slot_count):
            base = self._base((start + probe) % self.slot_count)
            state_ptr = words + base
            state = lib.ll_counter_load(state_ptr)
            if state == _FREE:
                if not claim:
                    return None
                if lib.ll_counter_cas(state_ptr, _FREE, _CLAIMING):
                    self._map[base * 8 + 8 : base * 8 + 8 + KEY_BYTES] = key
                    lib.ll_counter_store(state_ptr, _READY)
                    return words + base + COUNTER_BASE
                state = lib.ll_counter_load(state_ptr)
            if state == _CLAIMING:
                state = self._wait_ready(state_ptr)
            if state == _READY and self._key_at(base) == key:
                return words + base + COUNTER_BASE
        return self._overflow() if claim else None

    def _overflow(self):
        state_ptr = self._words + OVERFLOW_BASE
        if lib.ll_counter_cas(state_ptr, _FREE, _CLAIMING):
            self._map[OVERFLOW_BASE * 8 + 8 : OVERFLOW_BASE * 8 + 8 + KEY_BYTES] = _encode_key(OVERFLOW_FUNCTION, "$LATEST")
            lib.ll_counter_store(state_ptr, _READY)
        else:
            self._wait_ready(state_ptr)
        return state_ptr + COUNTER_BASE

    def _bases(self) -> list[int]:
        """Word index of every slot: the table's, then the overflow slot."""
        return [self._base(i) for i in range(self.slot_count)] + [OVERFLOW_BASE]

    @staticmethod
    def _wait_ready(state_ptr) -> int:
        # Another process is between its claim and its publish: a few
        # instructions, unless it died there (recover() clears that case).
        for _ in range(100_000):
            state = lib.ll_counter_load(state_ptr)
            if state != _CLAIMING:
                return state
            time.sleep(0)
        return _CLAIMING

    def _key_at(self, base: int) -> bytes:
        return bytes(self._map[base * 8 + 8 : base * 8 + 8 + KEY_BYTES])

    # -- writes (any process) ----------------------------------------------

    @staticmethod
    def record(slot, duration_ns: int, billed_ms: int, memory_mb: int, init_ns: int, outcome: int, cold: bool) -> None:
        """One finished call: a single crossing into C."""
        lib.ll_meter_record(slot, duration_ns, billed_ms, memory_mb, init_ns, outcome, cold)

    @staticmethod
    def throttle(slot) -> None:
        lib.ll_counter_add(slot + W_THROTTLES, 1)

    @staticmethod
    def enter(slot) -> None:
        lib.ll_counter_add(slot + W_CONCURRENT, 1)

    @staticmethod
    def leave(slot) -> None:
        lib.ll_counter_add(slot + W_CONCURRENT, _GAUGE_DOWN)

    # -- reads (any process, no lock) ----------------------------------------

    def read(self, slot) -> tuple[list[int], bool]:
        """A consistent copy of one slot's counter words, and whether it is
        consistent (False only if writers overlapped every try)."""
        tries = lib.ll_meter_snapshot(slot, self._snap, SLOT_WORDS, SNAPSHOT_TRIES)
        if tries < 0 and tries != -errno.EAGAIN:
            raise OSError(-tries, os.strerror(-tries), str(self.path))
        return list(self._snap), tries > 0

    def snapshot(self) -> list[SlotSnapshot]:
        """Every slot in use, each copied consistently."""
        out = []
        words = self._words
        for base in self._bases():
            if lib.ll_counter_load(words + base) != _READY:
                continue
            function, _, version = self._key_at(base).rstrip(b"\0").partition(b"\0")
            counters, consistent = self.read(words + base + COUNTER_BASE)
            out.append(_to_snapshot(function.decode(), version.decode(), counters, consistent))
        return out

    def slots_in_use(self) -> list[tuple[str, str, object]]:
        """(function, version, counters) of every slot in use; the counters
        pointer serves read(), read_slot() and word() without a new scan.
        A slot once in use stays in use (only recover() frees a half-claimed
        one), so a poller may keep this list and rescan now and then."""
        out = []
        words = self._words
        for base in self._bases():
            if lib.ll_counter_load(words + base) != _READY:
                continue
            function, _, version = self._key_at(base).rstrip(b"\0").partition(b"\0")
            out.append((function.decode(), version.decode(), words + base + COUNTER_BASE))
        return out

    def read_slot(self, function: str, version: str, slot) -> SlotSnapshot:
        """One slot's counters (from slots_in_use), copied consistently."""
        counters, consistent = self.read(slot)
        return _to_snapshot(function, version, counters, consistent)

    @staticmethod
    def word(slot, index: int) -> int:
        """One counter word, read alone: W_CONCURRENT, W_THROTTLES, or
        W_END (which each record() moves), to tell a slot that changed."""
        return lib.ll_counter_load(slot + index)

    # -- start-up (the server, before any call) ------------------------------

    def recover(self) -> int:
        """Repairs what a crash of a writer left behind; call only while no
        one writes (at server start). A record cut off between its BEGIN and
        END would make every snapshot of that slot retry forever, so END is
        set to BEGIN; the concurrency gauge restarts at zero because no call
        is in flight; a half-claimed slot is freed. Returns slots repaired."""
        repaired = 0
        words = self._words
        for base in self._bases():
            state_ptr = words + base
            state = lib.ll_counter_load(state_ptr)
            if state == _CLAIMING:
                self._map[base * 8 + 8 : base * 8 + 8 + KEY_BYTES] = bytes(KEY_BYTES)
                lib.ll_counter_store(state_ptr, _FREE)
                repaired += 1
            elif state == _READY:
                c = state_ptr + COUNTER_BASE
                begin, end = lib.ll_counter_load(c), lib.ll_counter_load(c + 1)
                if begin != end or lib.ll_counter_load(c + W_CONCURRENT):
                    lib.ll_counter_store(c + 1, begin)
                    lib.ll_counter_store(c + W_CONCURRENT, 0)
                    repaired += 1
        return repaired


def _encode_key(function: str, version: str) -> bytes:
    key = function.encode() + b"\0" + version.encode()
    if len(key) > KEY_BYTES:
        raise ValueError(f"meter key too long: {function!r} {version!r}")
    return key.ljust(KEY_BYTES, b"\0")


def _to_snapshot(function: str, version: str, w: list[int], consistent: bool) -> SlotSnapshot:
    concurrent = w[W_CONCURRENT]
    if concurrent >= 1 << 63:  # a leave() raced ahead of its enter() in a reader's view
        concurrent = 0
    return SlotSnapshot(
        function=function,
        version=version,
        outcomes={name: w[W_OUTCOMES + i] for i, name in enumerate(OUTCOMES) if w[W_OUTCOMES + i] or name in ("success", "error")},
        throttles=w[W_THROTTLES],
        concurrent=concurrent,
        cold_starts=w[W_COLD],
        duration_ns=w[W_DURATION_NS],
        billed_ms=w[W_BILLED_MS],
        mb_ms=w[W_MB_MS],
        init_ns=w[W_INIT_NS],
        histogram=tuple(w[W_HIST : W_HIST + HIST_BUCKETS]),
        consistent=consistent,
    )
