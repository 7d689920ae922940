"""/proc/<pid>/stat, read in one place: the few fields Lambdalet uses, named.

The command name (field 2) may hold spaces and parentheses, so the fields
after it are counted from the last ")"; proc(5) numbers them from 1.
"""

from __future__ import annotations

from typing import NamedTuple


class ProcStat(NamedTuple):
    state: str  # field 3: R, S, D, Z, T, ...
    ppid: int  # field 4
    utime: int  # field 14, clock ticks (os.sysconf("SC_CLK_TCK") per second)
    stime: int  # field 15, clock ticks
    starttime: int  # field 22, clock ticks after boot: tells a pid apart from its reuse


def parse(data: bytes) -> ProcStat:
    """Raises ValueError for text that is not a stat line."""
    try:
        fields = data[data.rindex(b")") + 2 :].split()
        return ProcStat(fields[0].decode(), int(fields[1]), int(fields[11]), int(fields[12]), int(fields[19]))
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a /proc/<pid>/stat line: {data[:80]!r}") from exc


def read(pid: int) -> ProcStat | None:
    """The process's stat, or None if it is gone (or the line is cut short)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return parse(f.read())
    except (OSError, ValueError):
        return None
