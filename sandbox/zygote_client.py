"""The server's side of the runtime zygote (zygote.py explains the zygote).

One zygote process per backend. Spawns are sent one at a time (the zygote
is single-threaded and answers in order); a reader thread takes the
replies, and reaps the zygote as soon as it has gone. What a spawn returns
(PID 1's pid and a pidfd for it, this process's child) needs nothing more
from the zygote: sandboxes outlive it.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import queue
import signal
import socket
import subprocess
import threading

from . import nsspawn, spawn_wire, zygote

log = logging.getLogger("lambdalet.sandbox")

START_TIMEOUT_S = 10.0
REPLY_SLACK_S = 5.0
MAX_REPLY = 4096  # a header of a few dozen bytes and at most a step's text


class ZygoteGone(OSError):
    """The zygote process is not running any more."""


class ZygoteClient:
    def __init__(self, python: str, zygote_root: str, lifeline_fd: int, env: dict[str, str]) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self._proc = subprocess.Popen(
                [python, "-I", "-S", "-B", "-c", zygote.boot_code(theirs.fileno(), lifeline_fd)],
                pass_fds=(theirs.fileno(), lifeline_fd),
                stdin=subprocess.PIPE,
                # The workers' environment, so that a fork need not rebuild it.
                env=env,
                # Out of the terminal's process group: a Ctrl-C is the
                # server's to handle (it stops the zygote last).
                start_new_session=True,
            )
            assert self._proc.stdin is not None  # stdin=PIPE
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
        self._serials = itertools.count(1)
        self._gone = False
        self._sock.settimeout(START_TIMEOUT_S)
        try:
            hello, _ = spawn_wire.decode_reply(self._sock.recv(MAX_REPLY))
        except (OSError, ValueError) as exc:
            self.close()
            raise ZygoteGone(errno.EPIPE, f"zygote did not start: {exc}") from None
        if not isinstance(hello, spawn_wire.Hello):
            self.close()
            raise ZygoteGone(errno.EPROTO, "zygote did not start: no hello")
        self._sock.settimeout(None)
        self.pid = hello.pid
        self._reader = threading.Thread(target=self._read, name="lambdalet-zygote", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return not self._gone

    def spawn(self, cfg: nsspawn.SpawnConfig, plan: spawn_wire.PackedOps, *, fork: bool = True) -> tuple[int, int]:
        """Start a sandbox from cfg and the root's mount plan (its fds are
        sent, not closed); returns
        (PID 1's pid, a pidfd for it). PID 1 is this process's child: the
        caller reaps it through the pidfd (os.waitid with P_PIDFD).
        fork: a Python worker forked from the zygote, else cfg.path exec'd.
        Raises OSError naming the failed step, or ZygoteGone."""
        fds = [cfg.control_fd, *cfg.cgroup_procs_fds]
        if cfg.cgroup_v2_fd >= 0:
            fds.append(cfg.cgroup_v2_fd)
        if cfg.netns_fd >= 0:
            fds.append(cfg.netns_fd)
        if cfg.root_template_fd >= 0:
            fds.append(cfg.root_template_fd)
        serial = next(self._serials)
        request = spawn_wire.pack_spawn(serial, cfg, plan, fork=fork)
        with self._spawn_lock:
            if self._gone:
                raise ZygoteGone(errno.EPIPE, "zygote is not running")
            try:
                socket.send_fds(self._sock, [request], fds)
            except OSError as exc:
                self._gone = True  # whether or not the reader has seen it yet
                raise ZygoteGone(exc.errno or errno.EPIPE, f"zygote: {exc.strerror}") from None
            try:
                # The zygote gives up on a sandbox after the handshake timeout;
                # past that (plus slack) it is stuck, and a late reply would
                # be taken for the next request's: stop it.
                reply, message, pidfd = self._replies.get(timeout=cfg.handshake_timeout_ms / 1000 + REPLY_SLACK_S)
            except queue.Empty:
                self._gone = True
                self._proc.kill()
                raise ZygoteGone(errno.ETIMEDOUT, "zygote did not answer") from None
        if isinstance(reply, spawn_wire.Spawned) and reply.serial == serial and pidfd >= 0:
            return reply.pid, pidfd
        if pidfd >= 0:
            # A PID 1 the zygote started and killed (a failed set-up): ours
            # to reap. It is dead or about to be, so this does not wait long.
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED)
            except (ChildProcessError, ProcessLookupError):
                pass
            finally:
                os.close(pidfd)
        if isinstance(reply, spawn_wire.Failed) and reply.serial in (serial, -1):
            raise OSError(reply.errno or errno.EPROTO, message)
        raise ZygoteGone(errno.EPIPE, "zygote exited")

    def _read(self) -> None:
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._sock, MAX_REPLY, 1, socket.MSG_CMSG_CLOEXEC)
            except OSError:
                data, fds = b"", []
            if not data:
                break
            try:
                msg, message = spawn_wire.decode_reply(data)
            except (ValueError, TypeError):  # msgspec's errors derive from ValueError
                log.error("zygote: undecodable message; stopping it")
                for fd in fds:
                    os.close(fd)
                self._proc.kill()
                break
            for fd in fds[1:]:
                os.close(fd)
            self._replies.put((msg, message, fds[0] if fds else -1))
        self._gone = True
        self._replies.put((None, "", -1))
        # Its socket closes only when it exits: reap it now, not at close().
        self._proc.wait()

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
