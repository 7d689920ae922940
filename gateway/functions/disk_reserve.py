"""Room held back on the data disk for the writes that free room.

Deleting a function, a version or a layer version frees its code, but the
delete is itself a write (a SQLite transaction appends to the WAL), so on a
full disk the one request that could help would fail. The server keeps a
file of reserved blocks in the data dir; a delete that meets a full disk
gives those blocks back and tries once more. The file is made again once
the disk has room for it twice over, so the reserve never takes the last
free space from calls.
"""

from __future__ import annotations

import errno
import logging
import os
import pathlib

import trio

log = logging.getLogger("lambdalet.disk")

RESERVE_BYTES = 8 * 1024 * 1024
CHECK_INTERVAL_S = 10.0


class DiskReserve:
    def __init__(self, path: pathlib.Path, size: int = RESERVE_BYTES) -> None:
        self.path = path
        self.size = size

    @property
    def held(self) -> bool:
        return self.path.exists()

    def ensure(self) -> bool:
        """Reserves the blocks if they are not held and the disk has room
        for them twice over; whether they are held now."""
        if self.held:
            return True
        try:
            st = os.statvfs(self.path.parent)
            if st.f_bavail * st.f_frsize < 2 * self.size:
                return False
            staging = self.path.with_name(self.path.name + ".partial")
            fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                # Real blocks, not a sparse hole: a hole frees nothing.
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
            os.replace(staging, self.path)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                log.warning("cannot reserve %d bytes at %s: %s", self.size, self.path, exc)
            self.path.with_name(self.path.name + ".partial").unlink(missing_ok=True)
            return False
        return True

    def release(self) -> bool:
        """Gives the reserved blocks back; whether there were any."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        log.warning("the data disk is full: released %d reserved bytes for a delete", self.size)
        return True

    async def run(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.ensure)
        task_status.started()
        while True:
            await trio.sleep(CHECK_INTERVAL_S)
            await trio.to_thread.run_sync(self.ensure)
