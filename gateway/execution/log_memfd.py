"""The one check of a log descriptor a worker hands the gateway (SCM_RIGHTS)
with its init reply or its runtime's launch: it must be a memfd. The
gateway keeps it for the instance's life, reads it after a kill and
truncates it per call, so a socket, pipe, directory, device or a file of
the sandbox's tree in its place is refused, not kept."""

from __future__ import annotations

import os
import stat

_KINDS = (
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISFIFO, "a pipe"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a device"),
    (stat.S_ISBLK, "a device"),
)


def is_log_memfd(fd: int) -> bool:
    """fd is a memfd (a regular file that no path names)."""
    try:
        return stat.S_ISREG(os.fstat(fd).st_mode) and os.readlink(f"/proc/self/fd/{fd}").startswith("/memfd:")
    except OSError:
        return False


def kind_of(fd: int) -> str:
    """What fd is, in words, for the error that refuses it."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return "not an open descriptor"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "a file with a path" if stat.S_ISREG(mode) else "not a memfd"
