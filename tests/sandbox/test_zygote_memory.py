"""What the zygote does so that its forks write (and so un-share) fewer of
its pages: fork hooks held until a worker exists (sandbox/fork_hooks.py)
and its allocator's free blocks filled (sandbox/zygote_heap.py). Each runs
in an interpreter of its own: both change process-wide state."""

from __future__ import annotations

import json
import subprocess
import sys

HOLDING = """
import json, os
from lambdalet.sandbox import fork_hooks
fork_hooks.hold()
import threading, logging, random
fork_hooks.stop_holding()
held = fork_hooks.held()
before = random.random()
r, w = os.pipe()
pid = os.fork()  # no hook of threading's or logging's is registered here
if pid == 0:
    os.write(w, json.dumps(random.random()).encode())
    os._exit(0)
os.close(w)
child = json.loads(os.read(r, 100))
os.waitpid(pid, 0)
print(json.dumps({"held": held, "reseeded": child != random.random()}))
"""


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_only_threadings_and_loggings_fork_hooks_are_held():
    # random's reseeding hook is not held: a fork still gets its own sequence.
    assert _run(HOLDING) == {"held": ["threading", "logging"], "reseeded": True}


FILLING = """
import json
from lambdalet.sandbox import zygote_heap
import email.parser, json.decoder, urllib.parse  # some objects, some freed, to leave holes
before = zygote_heap.free_blocks_by_size()
filled = zygote_heap.fill_free_blocks()
after = zygote_heap.free_blocks_by_size()
print(json.dumps({"before": before, "filled": filled, "after": after}))
"""


def test_the_zygote_fills_its_allocators_free_blocks():
    got = _run(FILLING)
    before, after = ({int(size): n for size, n in got[key].items()} for key in ("before", "after"))
    assert set(before) == set(range(16, 513, 16))  # the allocator's table was read
    assert got["filled"] >= sum(before.values()) > 0
    # What is left free is the untouched rest of at most one new pool per
    # size class (pools are 16 KiB since Python 3.10) and a few blocks the
    # filling's own loop freed, not holes spread over the zygote's pools.
    assert sum(1 for n in after.values() if n == 0) >= len(after) // 2
    for size, n in after.items():
        assert n <= 16384 // size + 32, size


DRAINING = """
import json
from lambdalet.sandbox import zygote_heap
drained = zygote_heap.drain_malloc_free_lists()
chunks = zygote_heap._held[-1]
print(json.dumps({"drained": drained, "distinct": len(set(chunks)) == len(chunks), "null": chunks.count(None)}))
"""


def test_the_zygote_takes_small_chunks_from_malloc_and_keeps_them():
    from lambdalet.sandbox import zygote_heap

    got = _run(DRAINING)
    assert got == {"drained": len(zygote_heap.MALLOC_DRAIN_SIZES) * zygote_heap.MALLOC_DRAIN_EACH, "distinct": True, "null": 0}
