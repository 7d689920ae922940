"""The data directory: one server at a time, and private to its owner.

One server per data directory. Two servers on one directory would both run
its schedules and its async queue, and both write its journals. The server
holds a POSIX record lock on ``<data-dir>/server.lock`` for its whole life.
The kernel drops the lock when the process dies, kill -9 included. A second
server asks the kernel who holds the lock and refuses to start, naming that
pid. Record locks (fcntl F_SETLK) are used rather than flock because forked
children do not inherit them, so a worker that outlives a killed server for
a moment cannot keep its successor out, and because F_GETLK reports the
holder's pid.

Privacy: the directory holds the access keys, environment variables in
clear (lambdalet.db), payloads (queue.db), logs and users' code. It is made
0700 and every file in it 0600 at each start, whatever an earlier version
or umask left. The exceptions are the trees a sandbox mounts and reads as
its own unprivileged uid (extracted code, the runtime's links, the empty
task root); they hold no secret of the server, and the 0700 directory
above them keeps other host users out.
"""

from __future__ import annotations

import errno
import fcntl
import os
import pathlib
import stat
import struct

import msgspec

LOCK_NAME = "server.lock"

# Read by sandboxes as their own uid (see the module docstring).
SHARED_WITH_SANDBOXES = frozenset({"runtime", "runtime.zygote", "empty-task", os.path.join("code", "trees")})

# struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid, padding.
_FLOCK = struct.Struct("@hhqqi4x")

# POSIX locks belong to the process: a second lock on the same file from
# this process would succeed, and closing either fd would drop both. Locks
# taken here are remembered so that a second one is refused too.
_held: dict[tuple[int, int], int] = {}


class DataDirBusy(Exception):
    """Another server holds the data directory."""

    def __init__(self, data_dir: pathlib.Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"the data dir {data_dir} is in use by another lambdalet server ({who}); stop it first, or give this one its own --data-dir"
        )
        self.pid = pid


class Holder(msgspec.Struct, frozen=True):
    """The server that holds a data directory, as its lock file says."""

    pid: int
    url: str = ""


class DataDirLock:
    """Held from acquire() until close() or the death of this process."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.data_dir = pathlib.Path(data_dir)
        self.path = self.data_dir / LOCK_NAME
        self._fd: int | None = None
        self._key: tuple[int, int] | None = None

    def acquire(self) -> DataDirLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            st = os.fstat(fd)
            key = (st.st_dev, st.st_ino)
            if key in _held:
                raise DataDirBusy(self.data_dir, os.getpid())
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise DataDirBusy(self.data_dir, _lock_holder_pid(fd)) from None
            _held[key] = fd
            self._fd, self._key = fd, key
            self._write(Holder(pid=os.getpid()))
        except BaseException:
            if self._fd is None:
                os.close(fd)
            raise
        return self

    def announce(self, url: str) -> None:
        """Records where the server listens, for `lambdalet doctor`."""
        self._write(Holder(pid=os.getpid(), url=url))

    def _write(self, holder: Holder) -> None:
        assert self._fd is not None
        data = msgspec.json.encode(holder) + b"\n"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def close(self) -> None:
        if self._fd is None:
            return
        # Closing the fd drops the lock; the file stays (removing it could
        # race a successor that has just opened it).
        _held.pop(self._key, None)  # type: ignore[arg-type]
        os.close(self._fd)
        self._fd = None


def _lock_holder_pid(fd: int) -> int | None:
    query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    try:
        l_type, _whence, _start, _len, pid = _FLOCK.unpack(fcntl.fcntl(fd, fcntl.F_GETLK, query))
    except OSError:
        return None
    return pid if l_type != fcntl.F_UNLCK and pid > 0 else None


def running_server(data_dir: pathlib.Path) -> Holder | None:
    """The server holding data_dir, or None. Reads only: creates nothing."""
    path = pathlib.Path(data_dir) / LOCK_NAME
    try:
        st = os.stat(path)
    except OSError:
        return None
    if (st.st_dev, st.st_ino) in _held:
        # This process holds it, and closing a second fd would drop the lock.
        return Holder(pid=os.getpid())
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        pid = _lock_holder_pid(fd)
        if pid is None:
            return None
        try:
            recorded = msgspec.json.decode(os.pread(fd, 4096, 0), type=Holder)
        except msgspec.DecodeError:
            return Holder(pid=pid)
        return Holder(pid=pid, url=recorded.url if recorded.pid == pid else "")
    finally:
        # The lock belongs to another process: closing this fd cannot drop it.
        os.close(fd)


def make_private(data_dir: pathlib.Path) -> None:
    """The directory 0700, and every file and directory below it 0600 and
    0700, except the trees sandboxes read (SHARED_WITH_SANDBOXES).
    Symlinks are left alone (chmod would follow them)."""
    root = str(data_dir)
    _chmod(root, 0o700)
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        dirnames[:] = [d for d in dirnames if os.path.normpath(os.path.join(rel, d)) not in SHARED_WITH_SANDBOXES]
        for name in dirnames:
            _chmod(os.path.join(dirpath, name), 0o700)
        for name in filenames:
            _chmod(os.path.join(dirpath, name), 0o600)


def _chmod(path: str, mode: int) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return  # removed while we walked (a journal rolled over, a temp file)
    if stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == mode:
        return
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return
    try:
        os.chmod(path, mode)
    except FileNotFoundError:
        pass
