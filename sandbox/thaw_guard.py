"""Thaws every sandbox of a server that died with some of them frozen.

A sandbox ends with its server through PID 1: it sees the lifeline pipe
hang up, or gets its parent-death signal, and kills the rest. A frozen
PID 1 does neither until thawed, and on cgroup v1 even SIGKILL waits for
the thaw, so after a kill -9 of the server its frozen instances would stay
frozen, holding their memory, until the next start removed them.

The guard is a shell, started beside the server (outside every sandbox
cgroup, in a session of its own so a terminal's ^C leaves it alone) on the
first freeze, waiting to read from a pipe only the server can write to.
When the server exits, however it exits, the pipe hangs up and the guard
thaws every cgroup under the root; the sandboxes then end as usual. It is
one small process per server, and only once something has been frozen.
"""

from __future__ import annotations

import os
import subprocess
import threading

# $1 is the root; v1 names the state freezer.state, v2 cgroup.freeze.
SCRIPT = """
read -r _
for state in "$1"/*/freezer.state; do echo THAWED > "$state"; done 2>/dev/null
for state in "$1"/*/cgroup.freeze; do echo 0 > "$state"; done 2>/dev/null
"""


class ThawGuard:
    def __init__(self, root: str) -> None:
        self.root = root
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._hangup = -1  # the pipe's write end, held only by this process

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def ensure_started(self) -> None:
        """Start the guard if it is not running yet. Raises OSError."""
        if self._proc is not None:
            return
        with self._lock:
            if self._proc is not None:
                return
            read_end, write_end = os.pipe()  # both close-on-exec
            try:
                self._proc = subprocess.Popen(
                    ["/bin/sh", "-c", SCRIPT, "lambdalet-thaw-guard", self.root],
                    stdin=read_end,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            except OSError:
                os.close(write_end)
                raise
            finally:
                os.close(read_end)
            self._hangup = write_end

    def close(self) -> None:
        """Let the guard run (thawing what is left, if anything) and reap it."""
        with self._lock:
            proc, self._proc = self._proc, None
            if self._hangup >= 0:
                os.close(self._hangup)
                self._hangup = -1
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
