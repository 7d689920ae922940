"""The thin Python side of csrc/spawn.c.

It turns a `SpawnConfig` into the C structs, calls `ll_spawn` with the GIL
released (cffi does that for every call), and turns a failure into an
`OSError` whose message names the step that failed. Nothing here knows
about functions, pools or cgroup policy; namespaced.py decides those.
"""

from __future__ import annotations

import os

import msgspec

from lambdalet.csrc._native import ffi, lib

# os.CLONE_* only exist from Python 3.12; the values are the kernel's ABI.
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NO_ID = 0xFFFFFFFF

# Mount operation kinds, mirrored from csrc/mounts.h.
MKDIR = lib.LL_MKDIR
BIND_RO = lib.LL_BIND_RO
BIND_DEV = lib.LL_BIND_DEV
TMPFS = lib.LL_TMPFS
PROC = lib.LL_PROC
SYMLINK = lib.LL_SYMLINK
WRITE_FILE = lib.LL_WRITE_FILE
MASK = lib.LL_MASK
READONLY = lib.LL_READONLY
OVERLAY_RO = lib.LL_OVERLAY_RO
STAGE_BIND = lib.LL_STAGE_BIND
VIEW_RO = lib.LL_VIEW_RO
FIXED_FILE = lib.LL_FIXED_FILE


class MountOp(msgspec.Struct, frozen=True):
    """One step of building the new root. dst is a path inside the sandbox;
    src a host path; data a tmpfs option string, a link's text or a file's
    contents, depending on kind."""

    kind: int
    dst: str
    src: str | None = None
    data: str | None = None
    mode: int = 0


class SpawnConfig(msgspec.Struct, frozen=True):
    path: str
    argv: list[str]
    env: dict[str, str]
    control_fd: int
    ops: list[MountOp] = []
    cwd: str | None = None
    hostname: str | None = None
    namespaces: int = 0
    unshare_cgroup_late: bool = False
    cgroup_v2_fd: int = -1
    cgroup_procs_fds: list[int] = []
    uid_map: str | None = None
    gid_map: str | None = None
    deny_setgroups: bool = False
    setup_uid: int = NO_ID
    setup_gid: int = NO_ID
    sandbox_uid: int = 993
    sandbox_gid: int = 990
    loopback_up: bool = False
    seccomp: bool = True
    nofile: int = 1024
    rlimit_data_bytes: int = 0  # where no memory cgroup can be used
    rlimit_nproc: int = 0  # where no pids cgroup can be used
    pdeathsig: bool = False
    handshake_timeout_ms: int = 10_000
    init_fd: int = -1  # init_memfd(): PID 1 execs it; -1 keeps PID 1 in-process
    netns_fd: int = -1  # a pooled network namespace to clone into, instead of CLONE_NEWNET
    lifeline_fd: int = -1  # read end of the server's lifeline pipe (see NamespacedBackend)
    # The worker is a fork of the caller rather than an exec of path: spawn()
    # then also returns, with pid 0, in the worker (zygote.py; the caller
    # must be single-threaded).
    fork_worker: bool = False
    # PID 1 is born the caller's parent's child (zygote.py): it outlives the
    # caller, and the parent reaps it. Not with pdeathsig.
    clone_parent: bool = False
    # A prepared root (build_template): the sandbox's root starts as a clone
    # of it, and ops are only the sandbox's own mounts (rootfs.split).
    root_template_fd: int = -1
    # Its root's st_dev and st_ino (prepared_roots.Tree): the sandbox refuses
    # a clone that shows others.
    root_template_dev: int = 0
    root_template_ino: int = 0


class SpawnResult(msgspec.Struct, frozen=True):
    pid: int
    used_clone3: bool
    pidfd: int = -1  # for PID 1, the caller's to close; -1 in a forked worker


class SpawnError(OSError):
    """A spawn failed. With clone_parent, pidfd (or -1) refers to the killed
    PID 1, which the caller's parent must reap; the caller owns the fd."""

    pidfd = -1


def _cstr(keep: list, text: str | None):
    if text is None:
        return ffi.NULL
    buf = ffi.new("char[]", os.fsencode(text))
    keep.append(buf)
    return buf


def _cstr_array(keep: list, items: list[str]):
    bufs = [_cstr(keep, s) for s in items]
    arr = ffi.new("char *[]", bufs + [ffi.NULL])
    keep.append(arr)
    return arr


class CompiledOps:
    """Mount operations converted to C structs once. Converting ~50 of them
    costs ~0.3 ms of Python, a tenth of a spawn; every sandbox of a function
    shares the same plan, so the backend keeps these per plan and passes
    them to spawn(). Read-only once built, so threads may share one."""

    __slots__ = ("array", "count", "_keep")

    def __init__(self, ops: list[MountOp]) -> None:
        self._keep: list = []
        self.count = len(ops)
        self.array = ffi.new("struct ll_mount_op[]", max(1, len(ops)))
        for i, op in enumerate(ops):
            self.array[i].kind = op.kind
            self.array[i].dst = _cstr(self._keep, op.dst)
            self.array[i].src = _cstr(self._keep, op.src)
            self.array[i].data = _cstr(self._keep, op.data)
            self.array[i].mode = op.mode


def spawn(cfg: SpawnConfig, compiled: CompiledOps | None = None) -> SpawnResult:
    """Start a sandbox; returns PID 1's pid. Blocks until the worker has
    exec'd or a step failed (a few milliseconds), with the GIL released.
    compiled, when given, replaces cfg.ops. With cfg.fork_worker it returns
    a second time, in the worker, with pid 0."""
    keep: list = []
    c = ffi.new("struct ll_spawn_config *")
    c.path = _cstr(keep, cfg.path)
    c.argv = _cstr_array(keep, cfg.argv)
    c.envp = _cstr_array(keep, [f"{k}={v}" for k, v in cfg.env.items()])
    c.cwd = _cstr(keep, cfg.cwd)
    c.hostname = _cstr(keep, cfg.hostname)
    plan = compiled if compiled is not None else CompiledOps(cfg.ops)
    c.ops = plan.array
    c.n_ops = plan.count
    c.root_template = cfg.root_template_fd >= 0
    c.root_template_fd = cfg.root_template_fd
    c.root_template_dev = cfg.root_template_dev
    c.root_template_ino = cfg.root_template_ino
    c.control_fd = cfg.control_fd
    c.cgroup_v2_fd = cfg.cgroup_v2_fd
    procs = ffi.new("int[]", list(cfg.cgroup_procs_fds) or [0])
    c.cgroup_procs_fds = procs
    c.n_cgroup_procs_fds = len(cfg.cgroup_procs_fds)
    c.namespaces = cfg.namespaces
    c.unshare_cgroup_late = cfg.unshare_cgroup_late
    c.uid_map = _cstr(keep, cfg.uid_map)
    c.gid_map = _cstr(keep, cfg.gid_map)
    c.deny_setgroups = cfg.deny_setgroups
    c.setup_uid = cfg.setup_uid
    c.setup_gid = cfg.setup_gid
    c.sandbox_uid = cfg.sandbox_uid
    c.sandbox_gid = cfg.sandbox_gid
    c.loopback_up = cfg.loopback_up
    c.seccomp = cfg.seccomp
    c.nofile = cfg.nofile
    c.rlimit_data_bytes = cfg.rlimit_data_bytes
    c.rlimit_nproc = cfg.rlimit_nproc
    c.pdeathsig = cfg.pdeathsig
    c.handshake_timeout_ms = cfg.handshake_timeout_ms
    c.init_fd = cfg.init_fd
    c.netns_fd = cfg.netns_fd
    c.lifeline_fd = cfg.lifeline_fd
    c.fork_worker = cfg.fork_worker
    c.clone_parent = cfg.clone_parent
    res = ffi.new("struct ll_spawn_result *")
    rc = lib.ll_spawn(c, res)
    if rc == lib.LL_SPAWN_IN_WORKER:
        return SpawnResult(pid=0, used_clone3=bool(res.used_clone3))
    if rc < 0:
        err = -rc
        step = ffi.string(res.step).decode("utf-8", "replace")
        exc = SpawnError(err, f"{step}: {os.strerror(err)}")
        exc.pidfd = res.pidfd
        raise exc
    return SpawnResult(pid=res.pid, used_clone3=bool(res.used_clone3), pidfd=res.pidfd)


def build_template(ops: list[MountOp], owner_uid: int, owner_gid: int) -> int:
    """A prepared root holding ops (what every sandbox of a runtime shares),
    built once as a detached mount tree in this process's mount namespace;
    its fd, the caller's to close. The files it makes belong to owner_uid
    and owner_gid (the host ids the sandbox's root maps to). Raises OSError
    naming the step (and the op) that failed, e.g. on kernels without the
    new mount API (5.12) or that let no sandbox clone a tree made outside
    it (before 6.15)."""
    compiled = CompiledOps(ops)
    failed = ffi.new("int *")
    step = ffi.new("const char **")
    fd = lib.ll_template_build(compiled.array, compiled.count, owner_uid, owner_gid, failed, step)
    if fd < 0:
        where = ffi.string(step[0]).decode() if step[0] != ffi.NULL else "prepared root"
        if 0 <= failed[0] < len(ops):
            where += f" {ops[failed[0]].dst}"
        raise OSError(-fd, f"{where}: {os.strerror(-fd)}")
    rc = lib.ll_template_probe(fd)
    if rc < 0:
        os.close(fd)
        raise OSError(-rc, f"prepared root: a sandbox may not clone it here: {os.strerror(-rc)}")
    return fd


def clone_floor(namespaces: int) -> None:
    """Clone into namespaces and reap a child that exits at once: the floor
    bench/ sets a sandbox's create+destroy against."""
    rc = lib.ll_clone_floor(namespaces)
    if rc < 0:
        raise OSError(-rc, f"clone: {os.strerror(-rc)}")


def init_memfd() -> int:
    """A sealed memfd holding the tiny PID 1 program (csrc/init.c). The
    caller owns the fd. Raises OSError when this build has no image."""
    fd = lib.ll_init_memfd()
    if fd < 0:
        raise OSError(-fd, f"init image: {os.strerror(-fd)}")
    return fd


def seccomp_filter_length() -> int:
    return lib.ll_seccomp_filter_length()
