"""A socket in a sandbox's network namespace, made from outside it.

The Telemetry API delivers events to an extension's listener inside the
sandbox (http://sandbox.localdomain:PORT, the sandbox's own loopback). The
server reaches it with a socket created in the sandbox's network namespace:
the creating thread joins that namespace for the socket() call only and
returns at once (a namespace switch is per thread; csrc/net.c). Joining
takes CAP_SYS_ADMIN over the namespace, which a server running as root
has; without root it raises PermissionError, and delivery is refused.
"""

from __future__ import annotations

import os
import socket

from lambdalet.csrc._native import ffi, lib


def tcp_socket_in(pidfd: int) -> socket.socket:
    """A new TCP socket in the network namespace of the process that pidfd
    refers to (setns takes a pidfd, Linux 5.8+). Never a pid: once the
    sandbox is gone its pid may be another process's, in another sandbox's
    namespace, while its pidfd then fails with ESRCH. Blocking system
    calls: run it on a thread."""
    saved = ffi.new("int *")
    rc = lib.ll_netns_enter(pidfd, saved)
    if rc < 0:
        raise OSError(-rc, f"enter the sandbox's network namespace: {os.strerror(-rc)}")
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    finally:
        rc = lib.ll_netns_leave(saved[0])
        if rc < 0:
            raise OSError(-rc, f"leave the sandbox's network namespace: {os.strerror(-rc)}")
    return sock
