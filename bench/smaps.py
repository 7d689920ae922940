"""Where a process's private memory is, by mapping, from /proc/PID/smaps:
what section d reports beside an idle instance's PSS, so that a reader sees
which part is still un-shared from the zygote (docs/architecture.md has
what each part holds)."""

from __future__ import annotations

import statistics

# Mappings by kind: pymalloc's arenas are anonymous mappings, glibc's
# malloc heap is [heap], libpython's static data (its runtime state, static
# types and deep-frozen modules) is its writable mapping.
KINDS = ("anon", "heap", "libpython", "stack", "other")


def _kind(name: str, perms: str) -> str:
    if name == "":
        return "anon"
    if name == "[heap]":
        return "heap"
    if name == "[stack]":
        return "stack"
    if "libpython" in name and "w" in perms:
        return "libpython"
    return "other"


def private_kb(pid: int) -> dict[str, int] | None:
    """{kind: Private_Clean + Private_Dirty kB}, or None for a process gone."""
    out = dict.fromkeys(KINDS, 0)
    kind = "other"
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                head, _, rest = line.partition(" ")
                if "-" in head and not head.endswith(":"):  # a mapping's first line
                    fields = rest.split(maxsplit=4)
                    kind = _kind(fields[4].strip() if len(fields) > 4 else "", fields[0])
                elif head in ("Private_Clean:", "Private_Dirty:"):
                    out[kind] += int(rest.split()[0])
    except OSError:
        return None
    return out


def median_private_kb(pids: list[int]) -> dict[str, float]:
    """Per kind, the median over the processes (those still there)."""
    found = [kb for kb in (private_kb(pid) for pid in pids) if kb is not None]
    if not found:
        return {}
    return {kind: statistics.median(kb[kind] for kb in found) for kind in KINDS}
