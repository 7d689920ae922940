"""Mounting a function's code into a sandbox that is already running.

Used to hand a pre-started (spare) sandbox to a function: the sandbox was
built with an empty task root, and the code arrives at the moment of the
first call (csrc/attach.c explains how).
"""

from __future__ import annotations

import os

from lambdalet.csrc._native import ffi, lib


def attach_tree(pid: int, src: str, dst: str, pidfd: int = -1) -> None:
    """Bind src read-only over dst inside pid's mount namespace. pidfd (a
    pidfd for pid) is required when pid is not this process's child, whose
    pid could be reused. Raises OSError naming the step that failed."""
    step = ffi.new("const char **")
    rc = lib.ll_attach_tree(pid, pidfd, os.fsencode(src), os.fsencode(dst), step)
    if rc < 0:
        what = ffi.string(step[0]).decode() if step[0] != ffi.NULL else "attach"
        raise OSError(-rc, f"attach {src} at {dst}: {what}: {os.strerror(-rc)}")
