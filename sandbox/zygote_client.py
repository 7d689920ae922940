"""The server's side of the runtime zygote (zygote.py explains the zygote).

One zygote process per backend. Spawns are sent one at a time (the zygote
is single-threaded and answers in order); a reader thread takes the
replies and the zygote's reports of reaped PID 1s, so that a sandbox's
destroy() can wait for its exit status from any thread.
"""
from __future__ import annotations

import errno
import itertools
import logging
import queue
import socket
import subprocess
import threading

from . import nsspawn, zygote

log = logging.getLogger("lambdalet.sandbox")

START_TIMEOUT_S = 10.0
REPLY_SLACK_S = 5.0
MAX_REPLY = 4096  # the zygote's messages are a few dozen bytes
MAX_UNCLAIMED_EXITS = 10_000


class ZygoteGone(OSError):
    """The zygote process is not running any more."""


class ZygoteClient:
    def __init__(self, python: str, zygote_root: str, lifeline_fd: int, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [python, "-I", "-S", "-B", "-c", zygote.boot_code(theirs.fileno(), lifeline_fd)],
                pass_fds=(theirs.fileno(), lifeline_fd), stdin=subprocess.PIPE,
                # The workers' environment, so that a fork need not rebuild it.
                env=env,
                # Out of the terminal's process group: a Ctrl-C is the
                # server's to handle (it stops the zygote last).
                start_new_session=True,
            )
            self._proc.stdin.write(zygote_root.encode() + b"\n")
            self._proc.stdin.close()
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._sock = ours
        self._spawn_lock = threading.Lock()
        self._replies: queue.SimpleQueue = queue.SimpleQueue()
        self._exits: dict[int, int] = {}  # spawn serial -> PID 1's raw wait status
        self._serials = itertools.count(1)
        self._exits_changed = threading.Condition()
        self._gone = False
        self._sock.settimeout(START_TIMEOUT_S)
        try:
            hello = zygote.decode(self._sock.recv(MAX_REPLY))
        except (OSError, ValueError) as exc:
            self.close()
            raise ZygoteGone(errno.EPIPE, f"zygote did not start: {exc}") from None
        if not isinstance(hello, zygote.Hello):
            self.close()
            raise ZygoteGone(errno.EPROTO, "zygote did not start: no hello")
        self._sock.settimeout(None)
        self.pid = hello.pid
        self._reader = threading.Thread(target=self._read, name="lambdalet-zygote", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return not self._gone

    def spawn(self, cfg: nsspawn.SpawnConfig, ops: list[nsspawn.MountOp], *, fork: bool = True) -> tuple[int, int, int]:
        """Start a sandbox from cfg (its fds are sent, not closed); returns
        (serial, PID 1's pid, a pidfd for it); wait_exit takes the serial.
        fork: a Python worker forked from the zygote, else cfg.path exec'd.
        Raises OSError naming the failed step, or ZygoteGone."""
        fds = [cfg.control_fd, *cfg.cgroup_procs_fds]
        if cfg.cgroup_v2_fd >= 0:
            fds.append(cfg.cgroup_v2_fd)
        if cfg.netns_fd >= 0:
            fds.append(cfg.netns_fd)
        serial = next(self._serials)
        request = zygote.Spawn(serial=serial, cfg=cfg, ops=ops, fork=fork, n_procs=len(cfg.cgroup_procs_fds),
                               has_v2=cfg.cgroup_v2_fd >= 0, has_netns=cfg.netns_fd >= 0)
        with self._spawn_lock:
            if self._gone:
                raise ZygoteGone(errno.EPIPE, "zygote is not running")
            try:
                socket.send_fds(self._sock, [zygote.encode(request)], fds)
            except OSError as exc:
                raise ZygoteGone(exc.errno or errno.EPIPE, f"zygote: {exc.strerror}") from None
            try:
                # The zygote gives up on a sandbox after the handshake timeout;
                # past that (plus slack) it is stuck, and a late reply would
                # be taken for the next request's: stop it.
                reply, pidfd = self._replies.get(timeout=cfg.handshake_timeout_ms / 1000 + REPLY_SLACK_S)
            except queue.Empty:
                self._proc.kill()
                raise ZygoteGone(errno.ETIMEDOUT, "zygote did not answer") from None
        if isinstance(reply, zygote.Spawned) and reply.serial == serial:
            return serial, reply.pid, pidfd
        if isinstance(reply, zygote.Failed) and reply.serial in (serial, -1):
            raise OSError(reply.errno, reply.message)
        raise ZygoteGone(errno.EPIPE, "zygote exited")

    def wait_exit(self, serial: int, timeout_s: float) -> int | None:
        """The raw wait status of the PID 1 that spawn `serial` started,
        once the zygote has reaped it, or None after timeout_s (or when the
        zygote is gone)."""
        with self._exits_changed:
            self._exits_changed.wait_for(lambda: serial in self._exits or self._gone, timeout_s)
            return self._exits.pop(serial, None)

    def _read(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, MAX_REPLY, 1, socket.MSG_CMSG_CLOEXEC)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            try:
                msg = zygote.decode(data)
            except (ValueError, TypeError):  # msgspec's errors derive from ValueError
                log.error("zygote: undecodable message; stopping it")
                self._proc.kill()
                break
            if isinstance(msg, zygote.Exited):
                with self._exits_changed:
                    self._exits[msg.serial] = msg.status
                    if len(self._exits) > MAX_UNCLAIMED_EXITS:  # waiters that gave up
                        self._exits.pop(next(iter(self._exits)))
                    self._exits_changed.notify_all()
                continue
            self._replies.put((msg, fds[0] if fds else -1))
        with self._exits_changed:
            self._gone = True
            self._exits_changed.notify_all()
        self._replies.put((None, -1))

    def close(self) -> None:
        self._gone = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._sock.close()
