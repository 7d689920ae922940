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

Sandboxes outlive the zygote: each PID 1 is cloned with CLONE_PARENT, so
it is born the server's child, not the zygote's. The server holds a pidfd
for it from the start (CLONE_PIDFD, passed back over the socket), signals
and reaps it through that, and needs nothing from the zygote once a spawn
has returned; a zygote that dies (or is killed) takes no sandbox and no
call in flight with it, and the next spawn starts another (namespaced.py).
PID 1 is tied to the server's life by the lifeline pipe, not by a
parent-death signal, which would follow the zygote.

Nothing of one spawn request stays in the zygote for a later fork (another
function's worker) to read: requests arrive as numbers plus a string table
in one buffer, the C config points into it, and it is zeroed after each
spawn (spawn_wire.py explains how).

This module runs in the zygote process, single-threaded (fork_worker mode
requires it), and imports only the stdlib, msgspec, nsspawn, spawn_wire,
fork_hooks, zygote_heap and the runtime. The server side is zygote_client.py.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # signal.signal without its enum conversions
import atexit
import ctypes
import errno
import gc
import os
import signal
import socket
import sys
import threading

from lambdalet.sandbox import fork_hooks, nsspawn, spawn_wire, zygote_heap

RUNTIME_DIR = "/var/runtime"  # rootfs.RUNTIME_DIR; rootfs is not imported here
# Modules only the zygote needs; a worker forgets them so that its imports
# resolve exactly as in an exec'd `python -I -S` worker.
ZYGOTE_ONLY = ("lambdalet.sandbox", "lambdalet.csrc", "_cffi_backend")


class _Forked(BaseException):
    """Raised in the forked worker to unwind out of the zygote's loop, so
    that none of its frames (and what they hold) stay reachable beneath the
    handler's."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env  # all the worker needs from its spawn request


class _Zygote:
    def __init__(self, sock: socket.socket, lifeline_fd: int) -> None:
        self.sock = sock
        self.lifeline_fd = lifeline_fd
        try:
            self.init_fd = nsspawn.init_memfd()
        except OSError:
            self.init_fd = -1  # PID 1 then stays a copy of the zygote
        self.requests = spawn_wire.RequestBuffer()

    def serve(self) -> None:
        """Returns only when the server has gone; raises _Forked in a worker."""
        while self._request():
            pass

    def _request(self) -> bool:
        requests = self.requests
        try:
            req, fds = requests.receive(self.sock)
        except OSError as exc:  # malformed (its fds are closed): say so, carry on
            requests.wipe()
            self._failed(-1, exc.errno or errno.EPROTO, str(exc).encode())
            return True
        if req is None:
            return False
        failure = None
        try:
            rc = self._spawn(req, fds)  # raises _Forked in the worker
        except Exception as exc:  # one bad request must not end every sandbox
            rc, failure = -(getattr(exc, "errno", None) or errno.EINVAL), exc
        for fd in fds:
            os.close(fd)
        result = requests.result
        try:
            if failure is not None:
                self._failed(req.serial, -rc, str(failure).encode())
            elif rc < 0:
                self._failed(req.serial, -rc, requests.failure_text(), result.pidfd)
            else:
                try:
                    socket.send_fds(self.sock, [spawn_wire.spawned(req.serial, result.pid)], [result.pidfd])
                finally:
                    os.close(result.pidfd)
        finally:
            requests.wipe()
        return True

    def _failed(self, serial: int, err: int, message, pidfd: int = -1) -> None:
        """A Failed reply; the message goes out as it is (see spawn_wire).
        pidfd: a killed PID 1 for the server, our child's parent, to reap."""
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, pidfd.to_bytes(4, sys.byteorder))] if pidfd >= 0 else []
        try:
            self.sock.sendmsg([spawn_wire.failed_header(serial, err), message], ancillary)
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def _spawn(self, req: spawn_wire.Spawn, fds: list[int]) -> int:
        if threading.active_count() != 1:
            raise OSError(errno.EDEADLK, "zygote: not single-threaded, cannot fork a worker")
        requests = self.requests
        c, keep = requests.config(req, fds, lifeline_fd=self.lifeline_fd, init_fd=self.init_fd)
        # Nothing buffered may be written again by each fork.
        sys.stdout.flush()
        sys.stderr.flush()
        _python.PyOS_BeforeFork()
        try:
            rc = requests.spawn(c)
        except BaseException:
            _python.PyOS_AfterFork_Parent()
            raise
        if rc == spawn_wire.IN_WORKER:
            _python.PyOS_AfterFork_Child()
            fork_hooks.register_held()
            env = requests.env(req)
            requests.wipe()  # its own request: host paths it has no need of
            raise _Forked(env)
        _python.PyOS_AfterFork_Parent()
        del keep  # the C config's arrays, alive until ll_spawn returned
        return rc


# The interpreter's fork hooks, called as os.fork() calls them (with the
# GIL held: ctypes.pythonapi does not release it).
_python = ctypes.pythonapi


def _become_worker(env: dict[str, str]) -> None:
    """In the forked worker, inside its sandbox: look like a freshly exec'd
    `python -I -S` worker and run the worker's loop. Never returns."""
    code = 1
    try:
        _take_the_workers_state(env)
        from lambdalet.runtime.worker import main

        main(3)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        # As the interpreter does: die by the signal itself.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        sys.excepthook(*sys.exc_info())
    finally:
        # What the interpreter does on its way out (no unwinding into the
        # zygote's main below us), then C stdio's buffers, which os._exit
        # would drop.
        try:
            threading._shutdown()  # type: ignore[attr-defined]
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
            ctypes.CDLL(None).fflush(None)
        finally:
            os._exit(code)


# What the zygote let go of when it took a worker's look (_look_like_a_worker),
# held so that none of it is freed: freeing a module or a finder writes to
# every page its objects live on, and a worker that did so would un-share
# them (a finder's cached directory listings alone are ~200 KB).
_held: list[object] = []
_environ: dict[str, str] = {}  # the zygote's environment as it started, a plain dict


def _present_as_worker_paths(zygote_root: str) -> None:
    """In the zygote: make the runtime's modules name the paths a worker
    sees them at (under RUNTIME_DIR), as an exec'd worker's do."""
    n = len(zygote_root)
    for module in list(sys.modules.values()):
        for attr in ("__file__", "__cached__"):
            value = getattr(module, attr, None)
            if isinstance(value, str) and value.startswith(zygote_root):
                setattr(module, attr, RUNTIME_DIR + value[n:])
        spec = getattr(module, "__spec__", None)
        if spec is not None and isinstance(spec.origin, str) and spec.origin.startswith(zygote_root):
            spec.origin = RUNTIME_DIR + spec.origin[n:]
        path = getattr(module, "__path__", None)
        if isinstance(path, list) and any(p.startswith(zygote_root) for p in path):
            path[:] = [RUNTIME_DIR + p[n:] for p in path if p.startswith(zygote_root)] + [p for p in path if not p.startswith(zygote_root)]


def _look_like_a_worker(zygote_root: str) -> None:
    """In the zygote, once it has imported all it will: leave nothing of the
    zygote reachable through the interpreter's tables, so that a forked
    worker's imports resolve exactly as in an exec'd `python -I -S` worker.
    Done here once rather than in every worker, where each of these writes
    would un-share a page. The zygote runs on the functions it already
    holds and imports nothing more."""
    _present_as_worker_paths(zygote_root)
    _environ.update(os.environ)
    sys.argv[:] = ["-c"]
    sys.orig_argv[:] = [sys.orig_argv[0], "-I", "-S", "-B", "-c", "<lambdalet worker>"]
    # [0] is the zygote's root; the rest (the stdlib) looks the same inside.
    sys.path[0] = RUNTIME_DIR
    for key in [k for k in sys.path_importer_cache if k.startswith(zygote_root)]:
        _held.append(sys.path_importer_cache.pop(key))
    for name in [name for name in sys.modules if name.startswith(ZYGOTE_ONLY) or name == __name__]:
        _held.append(sys.modules.pop(name))
    lambdalet = sys.modules["lambdalet"]
    for attr in ("sandbox", "csrc"):
        if hasattr(lambdalet, attr):
            delattr(lambdalet, attr)
    import __main__
    from lambdalet.runtime import worker

    __main__.__dict__.pop("main", None)
    __main__.main = worker.main  # what the exec'd worker's -c program imported


def _take_the_workers_state(env: dict[str, str]) -> None:
    """In the worker: what differs per worker from the zygote's state."""
    # spawn.c reset every handler; restore what an interpreter starts with.
    # _signal's own function, not signal.signal: that one converts to and
    # from enums, and the enum machinery it runs through un-shares ~250 KB.
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    _signal.signal(_signal.SIGPIPE, _signal.SIG_IGN)
    _signal.signal(_signal.SIGXFSZ, _signal.SIG_IGN)
    # The zygote starts with the workers' environment: usually a no-op.
    # Compared as plain dicts: os.environ's own comparison decodes every
    # entry through Python code (~300 KB un-shared).
    if env != _environ:
        os.environ.clear()
        os.environ.update(env)


def _exit_code(code) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def boot_code(sock_fd: int, lifeline_fd: int) -> str:
    """The -c program that starts a zygote (zygote_client.py runs it). The
    zygote's root arrives on stdin, not in argv: every worker's
    /proc/self/cmdline shows the zygote's, and host paths have no business
    there."""
    return (
        "import sys;sys.path.insert(0,sys.stdin.readline().rstrip('\\n'));"
        "from lambdalet.sandbox import fork_hooks;fork_hooks.hold();"
        f"from lambdalet.sandbox.zygote import main;main({sock_fd},{lifeline_fd})"
    )


def main(sock_fd: int, lifeline_fd: int) -> None:
    # The server stops the zygote by closing its socket; a Ctrl-C meant for
    # the server must not take every sandbox down first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # stdin brought the root; nothing else comes that way
    os.close(null)
    sock = socket.socket(fileno=sock_fd)
    zygote = _Zygote(sock, lifeline_fd)
    # Imported and set up now, so every worker shares these pages instead of
    # building its own.
    from lambdalet.runtime import worker

    worker.prepare()
    fork_hooks.stop_holding()
    _look_like_a_worker(sys.path[0])
    # Anything the zygote allocated is never freed: keep the collector from
    # touching (and so un-sharing) those pages in every fork.
    gc.collect()
    gc.freeze()
    # Last: so that a worker's new objects land on pages of its own.
    zygote_heap.fill_free_blocks()
    zygote_heap.drain_malloc_free_lists()
    sock.send(spawn_wire.hello(os.getpid()))
    try:
        zygote.serve()
    except _Forked as forked:
        env = forked.env
    else:
        return
    # In a worker. spawn.c closed every fd but 0-3: the zygote's socket
    # object must not close fd number N again later, when N may be the
    # worker's own. The zygote's state (its request buffer wiped) is held,
    # not freed: freeing it would write to the pages it shares (~50 KB).
    sock.detach()
    _held.append(zygote)
    del zygote, sock
    _become_worker(env)
