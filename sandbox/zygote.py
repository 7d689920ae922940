"""The runtime zygote: one interpreter with the runtime imported, forked
into every new sandbox instead of starting a fresh interpreter there.

A sandbox's worker used to be `python -I -S` exec'd inside the sandbox,
which costs ~8 ms of interpreter start and ~7 MB of private memory per
instance. The zygote is started once, as `python -I -S` too, imports the
runtime (worker.py, msgspec) and freezes its heap; csrc/spawn.c then clones
each sandbox's PID 1 from it, and PID 1 forks the worker, which returns here
already inside its namespaces, root, cgroup and seccomp filter, and runs
the worker's main loop. Instances share the zygote's pages copy-on-write.

Each instance still imports its function's handler itself, in its own
sandbox: Lambda runs init per execution environment, and instances of one
function must not share /tmp, processes or a network namespace, which forks
of a function-level zygote inside one sandbox would.

This module runs in the zygote process, single-threaded (fork_worker mode
requires it), and imports only the stdlib, msgspec, nsspawn and the runtime.
The server side is zygote_client.py. The wire: SOCK_SEQPACKET, one msgspec
message per packet, fds as SCM_RIGHTS.
"""
from __future__ import annotations

import atexit
import ctypes
import gc
import os
import resource
import select
import signal
import socket
import sys
import threading
import traceback

import msgspec

from lambdalet.sandbox import nsspawn

MAX_MESSAGE = 1 << 20
MAX_FDS = 64
PLAN_CACHE_SIZE = 1024
RUNTIME_DIR = "/var/runtime"  # rootfs.RUNTIME_DIR; rootfs is not imported here
# Modules only the zygote needs; a worker forgets them so that its imports
# resolve exactly as in an exec'd `python -I -S` worker.
ZYGOTE_ONLY = ("lambdalet.sandbox", "lambdalet.csrc", "_cffi_backend")


class Hello(msgspec.Struct, tag="hello", array_like=True):
    """The zygote is up and has imported the runtime."""

    pid: int


class Spawn(msgspec.Struct, tag="spawn", array_like=True):
    """Start a sandbox. The fds arrive in this order: the control socket,
    n_procs cgroup.procs files, then the cgroup2 directory if has_v2, then
    the network namespace if has_netns. ops is sent with a plan_key; the
    zygote keeps each plan compiled."""

    cfg: nsspawn.SpawnConfig
    plan_key: str
    ops: list[nsspawn.MountOp]
    n_procs: int = 0
    has_v2: bool = False
    has_netns: bool = False


class Spawned(msgspec.Struct, tag="spawned", array_like=True):
    """PID 1's pid; a pidfd for it rides along."""

    pid: int


class Failed(msgspec.Struct, tag="failed", array_like=True):
    errno: int
    message: str


class Exited(msgspec.Struct, tag="exited", array_like=True):
    """PID 1 was reaped; status is its raw wait status."""

    pid: int
    status: int


Message = Hello | Spawn | Spawned | Failed | Exited
encode = msgspec.msgpack.Encoder().encode
decode = msgspec.msgpack.Decoder(Message).decode


def _with_fds(req: Spawn, fds: list[int], lifeline_fd: int, init_fd: int) -> nsspawn.SpawnConfig:
    """The request's config with the server's fd numbers replaced by ours."""
    want = 1 + req.n_procs + int(req.has_v2) + int(req.has_netns)
    if len(fds) != want:
        raise OSError(22, f"spawn request: expected {want} fds, got {len(fds)}")
    procs = fds[1:1 + req.n_procs]
    rest = fds[1 + req.n_procs:]
    v2 = rest.pop(0) if req.has_v2 else -1
    netns = rest.pop(0) if req.has_netns else -1
    return msgspec.structs.replace(
        req.cfg, control_fd=fds[0], cgroup_procs_fds=procs, cgroup_v2_fd=v2, netns_fd=netns,
        lifeline_fd=lifeline_fd, init_fd=init_fd, fork_worker=True,
        # PID 1 dies with the zygote, whose main thread is the process.
        pdeathsig=True)


class _Zygote:
    def __init__(self, sock: socket.socket, lifeline_fd: int) -> None:
        self.sock = sock
        self.lifeline_fd = lifeline_fd
        try:
            self.init_fd = nsspawn.init_memfd()
        except OSError:
            self.init_fd = -1  # PID 1 then stays a copy of the zygote
        self.plans: dict[str, nsspawn.CompiledOps] = {}
        self.children: dict[int, int] = {}  # pidfd -> PID 1's pid
        self.poller = select.poll()
        self.poller.register(sock.fileno(), select.POLLIN)

    def serve(self) -> None:
        while True:
            for fd, _ in self.poller.poll():
                if fd == self.sock.fileno():
                    self._request()
                else:
                    self._reap(fd)

    def _request(self) -> None:
        data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, MAX_FDS)
        if not data:
            os._exit(0)  # the server is gone; PID 1s follow by pdeathsig
        try:
            req = decode(data)
            if not isinstance(req, Spawn):
                raise OSError(22, f"unexpected message {type(req).__name__}")
            cfg = _with_fds(req, fds, self.lifeline_fd, self.init_fd)
            result = nsspawn.spawn(cfg, self._plan(req))
        except (OSError, msgspec.ValidationError, msgspec.DecodeError) as exc:
            for fd in fds:
                os.close(fd)
            self.sock.send(encode(Failed(getattr(exc, "errno", None) or 22, str(exc))))
            return
        if result.pid == 0:
            _become_worker(self.sock, cfg)  # never returns
        for fd in fds:
            os.close(fd)
        # Opened before PID 1 can be reaped (only this loop reaps), so the
        # pid in it cannot have been reused.
        pidfd = os.pidfd_open(result.pid)
        self.children[pidfd] = result.pid
        self.poller.register(pidfd, select.POLLIN)
        socket.send_fds(self.sock, [encode(Spawned(result.pid))], [pidfd])

    def _plan(self, req: Spawn) -> nsspawn.CompiledOps:
        plan = self.plans.get(req.plan_key)
        if plan is None:
            if len(self.plans) >= PLAN_CACHE_SIZE:
                self.plans.pop(next(iter(self.plans)))
            plan = self.plans[req.plan_key] = nsspawn.CompiledOps(req.ops)
        return plan

    def _reap(self, pidfd: int) -> None:
        pid = self.children.pop(pidfd)
        self.poller.unregister(pidfd)
        os.close(pidfd)
        _, status = os.waitpid(pid, 0)
        self.sock.send(encode(Exited(pid, status)))


def _become_worker(zygote_sock: socket.socket, cfg: nsspawn.SpawnConfig) -> None:
    """In the forked worker, inside its sandbox: look like a freshly exec'd
    `python -I -S` worker and run the worker's loop. Never returns: the
    zygote's frames below this one must not unwind here."""
    # spawn.c closed every fd but 0-3; the zygote's socket object must not
    # close fd number N again later, when N may be the worker's own.
    zygote_sock.detach()
    # What os.fork() does after a fork (thread ids, locks, at-fork hooks);
    # ctypes.pythonapi calls it with the GIL held, as it must be.
    ctypes.pythonapi.PyOS_AfterFork_Child()
    # spawn.c reset every handler; restore what an interpreter starts with.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # Every write here un-shares a page from the zygote: touch only what
    # differs. The zygote starts with the workers' environment, so this is
    # usually a no-op.
    if os.environ != cfg.env:
        os.environ.clear()
        os.environ.update(cfg.env)
    sys.argv[:] = ["-c"]
    # [0] is the zygote's root. The importer cache may stay: its other
    # entries (the stdlib) look the same inside the sandbox.
    sys.path[0] = RUNTIME_DIR
    for name in list(sys.modules):
        if name.startswith(ZYGOTE_ONLY) or name == __name__:
            del sys.modules[name]
    code = 0
    try:
        from lambdalet.runtime.worker import main
        main(3)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except BaseException:
        traceback.print_exc()
        code = 1
    # What the interpreter does on its way out, minus unwinding our caller.
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def boot_code(zygote_root: str, sock_fd: int, lifeline_fd: int) -> str:
    """The -c program that starts a zygote (zygote_client.py runs it)."""
    return (f"import sys;sys.path.insert(0,{zygote_root!r});"
            f"from lambdalet.sandbox.zygote import main;main({sock_fd},{lifeline_fd})")


def main(sock_fd: int, lifeline_fd: int) -> None:
    # A pidfd per live sandbox: take the whole allowance (PID 1 sets each
    # sandbox's own limit).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sock = socket.socket(fileno=sock_fd)
    zygote = _Zygote(sock, lifeline_fd)
    # Imported and set up now, so every worker shares these pages instead of
    # building its own.
    from lambdalet.runtime import worker
    worker.prepare()
    # Anything the zygote allocated is never freed: keep the collector from
    # touching (and so un-sharing) those pages in every fork.
    gc.collect()
    gc.freeze()
    sock.send(encode(Hello(os.getpid())))
    zygote.serve()
