"""The runtime zygote's wire, built so that the zygote keeps nothing of one
spawn request that a later fork could read.

Whatever the zygote allocates while it handles one function's spawn and
then frees stays in its heap, and every later fork (every other function's
worker) gets a copy it can read through /proc/self/mem: the first function's
code path, with its digest, its /tmp size, a probe's whole program. So a
request's strings never become Python strings or C copies in the zygote.
A request is one SOCK_SEQPACKET packet: a header of numbers only (msgpack)
and a table of NUL-terminated strings. The zygote receives it into one
buffer allocated at start-up (RequestBuffer), points the C config straight
into that buffer, and zeroes what it used once the spawn is over; the
forked worker zeroes its own copy too, and unmaps the buffer with the rest
of the zygote's state, before any user code runs. Freed memory then holds
only numbers and pointers. (Scrubbing in each fork instead could not find
what the zygote had freed; a throwaway process per request would cost a
fork per spawn.)

Packets both ways: u32 little-endian header length, the msgpack header,
then the tail (a request's string table; a failure's message). fds travel
as SCM_RIGHTS.

The server side is pack_spawn() and decode_reply(); the zygote side is
RequestBuffer and the reply encoders. Nothing here knows about functions.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import socket
import struct

import msgspec

from lambdalet.csrc._native import ffi, lib

from .nsspawn import MountOp, SpawnConfig

MAX_MESSAGE = 1 << 20
MAX_FDS = 64
_LENGTH = struct.Struct("<I")
NONE = -1  # a string reference for None
IN_WORKER = lib.LL_SPAWN_IN_WORKER  # what RequestBuffer.spawn returns in the forked worker


class Spawn(msgspec.Struct, tag="spawn", array_like=True):
    """Start a sandbox. Every string is an offset into the string table
    (NONE for None); ops are flat, five numbers per op: kind, dst, src,
    data, mode (ll_mount_ops_from_table reads them). The fds arrive
    in this order: the control socket, n_procs cgroup.procs files, then the
    cgroup2 directory if has_v2, then the network namespace if has_netns,
    then the prepared root if has_template (its ops are then the sandbox's
    own only).
    fork: PID 1 forks a Python worker from the zygote, else execs path.
    serial names this spawn in the reply."""

    serial: int
    fork: bool
    n_procs: int
    has_v2: bool
    has_netns: bool
    path: int
    argv: list[int]
    env: list[int]  # "NAME=value" each
    cwd: int
    hostname: int
    uid_map: int
    gid_map: int
    ops: list[int]
    namespaces: int
    unshare_cgroup_late: bool
    deny_setgroups: bool
    setup_uid: int
    setup_gid: int
    sandbox_uid: int
    sandbox_gid: int
    loopback_up: bool
    seccomp: bool
    nofile: int
    rlimit_data_bytes: int
    rlimit_nproc: int
    handshake_timeout_ms: int
    has_template: bool
    template_dev: int  # its root's st_dev and st_ino (SpawnConfig)
    template_ino: int


class Hello(msgspec.Struct, tag="hello", array_like=True):
    """The zygote is up and has imported the runtime."""

    pid: int


class Spawned(msgspec.Struct, tag="spawned", array_like=True):
    """PID 1's pid; a pidfd for it rides along. PID 1 is the server's child."""

    serial: int
    pid: int


class Failed(msgspec.Struct, tag="failed", array_like=True):
    """The message is the packet's tail. A pidfd rides along when a PID 1
    was started and killed: the server's child, for the server to reap."""

    serial: int
    errno: int


Reply = Hello | Spawned | Failed
_encode = msgspec.msgpack.Encoder().encode
_decode_request = msgspec.msgpack.Decoder(Spawn).decode
_decode_reply = msgspec.msgpack.Decoder(Reply).decode


def _packet(header: bytes, tail: bytes | bytearray = b"") -> bytes:
    return _LENGTH.pack(len(header)) + header + tail


# -- the server's side ---------------------------------------------------------


class _Table:
    """A string table being built: NUL-terminated strings, each once."""

    __slots__ = ("data", "_offsets")

    def __init__(self, start: bytes = b"") -> None:
        self.data = bytearray(start)
        self._offsets: dict[str, int] = {}

    def ref(self, text: str | None) -> int:
        if text is None:
            return NONE
        offset = self._offsets.get(text)
        if offset is None:
            data = text.encode("utf-8", "surrogateescape")  # os.fsencode, without its checks
            if b"\0" in data:
                raise ValueError(f"spawn request: a NUL inside {text[:40]!r}")
            offset = self._offsets[text] = len(self.data)
            self.data += data
            self.data.append(0)
        return offset


class PackedOps:
    """A root's mount plan in wire form, built once per plan (~0.2 ms for
    ~50 ops, too much for every spawn): the start of the string table of
    every request that uses it, and the ops as offsets into it."""

    __slots__ = ("table", "ops")

    def __init__(self, ops: list[MountOp]) -> None:
        table = _Table()
        self.ops: list[int] = []
        for op in ops:
            self.ops += (op.kind, table.ref(op.dst), table.ref(op.src), table.ref(op.data), op.mode)
        self.table = bytes(table.data)


def pack_spawn(serial: int, cfg: SpawnConfig, plan: PackedOps, *, fork: bool) -> bytes:
    """The request for cfg (its fd numbers are the sender's business: the
    fds themselves ride along) and the root's mount plan."""
    table = _Table(plan.table)
    ref = table.ref
    header = Spawn(
        serial=serial,
        fork=fork,
        n_procs=len(cfg.cgroup_procs_fds),
        has_v2=cfg.cgroup_v2_fd >= 0,
        has_netns=cfg.netns_fd >= 0,
        path=ref(cfg.path),
        argv=[ref(a) for a in cfg.argv],
        env=[ref(f"{k}={v}") for k, v in cfg.env.items()],
        cwd=ref(cfg.cwd),
        hostname=ref(cfg.hostname),
        uid_map=ref(cfg.uid_map),
        gid_map=ref(cfg.gid_map),
        ops=plan.ops,
        namespaces=cfg.namespaces,
        unshare_cgroup_late=cfg.unshare_cgroup_late,
        deny_setgroups=cfg.deny_setgroups,
        setup_uid=cfg.setup_uid,
        setup_gid=cfg.setup_gid,
        sandbox_uid=cfg.sandbox_uid,
        sandbox_gid=cfg.sandbox_gid,
        loopback_up=cfg.loopback_up,
        seccomp=cfg.seccomp,
        nofile=cfg.nofile,
        rlimit_data_bytes=cfg.rlimit_data_bytes,
        rlimit_nproc=cfg.rlimit_nproc,
        handshake_timeout_ms=cfg.handshake_timeout_ms,
        has_template=cfg.root_template_fd >= 0,
        template_dev=cfg.root_template_dev,
        template_ino=cfg.root_template_ino,
    )
    packet = _packet(_encode(header), table.data)
    if len(packet) > MAX_MESSAGE:
        raise OSError(errno.E2BIG, f"spawn request of {len(packet)} bytes (at most {MAX_MESSAGE})")
    return packet


def decode_reply(data: bytes) -> tuple[Hello | Spawned | Failed, str]:
    """A zygote's reply and its tail as text (a failure's message). Raises
    ValueError for a malformed packet."""
    if len(data) < _LENGTH.size:
        raise ValueError("short packet")
    (length,) = _LENGTH.unpack_from(data)
    end = _LENGTH.size + length
    if end > len(data):
        raise ValueError("header longer than the packet")
    reply = _decode_reply(data[_LENGTH.size : end])
    return reply, data[end:].split(b"\0", 1)[0].decode("utf-8", "replace")


# -- the zygote's side ---------------------------------------------------------


def hello(pid: int) -> bytes:
    return _packet(_encode(Hello(pid)))


def spawned(serial: int, pid: int) -> bytes:
    return _packet(_encode(Spawned(serial, pid)))


def failed_header(serial: int, err: int) -> bytes:
    """A Failed packet's head; its message follows as a second buffer of the
    same sendmsg (so that no copy of it is made here)."""
    return _packet(_encode(Failed(serial, err)))


class RequestBuffer:
    """The one buffer every request is received into, and the C view of the
    request in it. Single-threaded, like the zygote."""

    def __init__(self) -> None:
        # Private anonymous memory: untouched pages cost nothing (a
        # bytearray would zero, and so keep, all of it), and a fork gets a
        # copy, not a view (mmap's default, MAP_SHARED, would be a channel
        # between every worker and the zygote).
        self._buf = mmap.mmap(-1, MAX_MESSAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._base = ffi.from_buffer(self._buf)  # char * into _buf, no copy
        self._addr = int(ffi.cast("uintptr_t", self._base))
        self._used = 0
        self._table = 0  # where the string table starts
        # The result, allocated once: its step may name a path, and is
        # zeroed after every spawn rather than freed.
        self.result = ffi.new("struct ll_spawn_result *")

    def receive(self, sock: socket.socket) -> tuple[Spawn | None, list[int]]:
        """The next request and its fds (close-on-exec), or (None, []) once
        the server has gone. Raises OSError for a malformed request, after
        closing its fds."""
        n, ancdata, flags, _ = sock.recvmsg_into([self._buf], socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC)
        self._used = n
        fds: list[int] = []
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                usable = len(payload) - len(payload) % 4
                fds.extend(int.from_bytes(payload[i : i + 4], "little", signed=True) for i in range(0, usable, 4))
        if n == 0:
            return None, fds
        try:
            if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                raise OSError(errno.EMSGSIZE, "spawn request truncated")
            if n < _LENGTH.size:
                raise OSError(errno.EPROTO, "spawn request: short packet")
            (length,) = _LENGTH.unpack_from(self._buf)
            self._table = _LENGTH.size + length
            if self._table > n or (n > self._table and self._buf[n - 1] != 0):
                raise OSError(errno.EPROTO, "spawn request: malformed packet")
            try:
                req = _decode_request(memoryview(self._buf)[_LENGTH.size : self._table])
            except (ValueError, TypeError) as exc:  # msgspec's errors derive from ValueError
                raise OSError(errno.EPROTO, f"spawn request: {exc}") from None
            self._check_refs(req, n - self._table)
            want = 1 + req.n_procs + int(req.has_v2) + int(req.has_netns) + int(req.has_template)
            if len(fds) != want:
                raise OSError(errno.EINVAL, f"spawn request: expected {want} fds, got {len(fds)}")
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return req, fds

    @staticmethod
    def _check_refs(req: Spawn, table_len: int) -> None:
        # The table ends with a NUL (checked above), so every offset inside
        # it starts a terminated string. The ops' are checked in C.
        refs = [req.path, req.cwd, req.hostname, req.uid_map, req.gid_map, *req.argv, *req.env]
        if any(r != NONE and not 0 <= r < table_len for r in refs) or req.path == NONE or len(req.ops) % 5:
            raise OSError(errno.EPROTO, "spawn request: a string outside its table")

    def _text(self, ref: int):
        return ffi.NULL if ref == NONE else self._base + (self._table + ref)

    def config(self, req: Spawn, fds: list[int], *, lifeline_fd: int, init_fd: int) -> tuple[object, list]:
        """The C config for req, pointing into this buffer (valid until the
        next receive() or wipe()), and what must stay alive with it. PID 1
        is cloned as the server's child (clone_parent), tied to the server
        by the lifeline rather than to this process by a parent-death signal."""
        keep: list = []
        c = ffi.new("struct ll_spawn_config *")
        keep.append(c)
        c.path = self._text(req.path)
        argv = ffi.new("char *[]", [self._text(r) for r in req.argv] + [ffi.NULL])
        envp = ffi.new("char *[]", [self._text(r) for r in req.env] + [ffi.NULL])
        n_ops = len(req.ops) // 5
        ops = ffi.new("struct ll_mount_op[]", max(1, n_ops))
        rc = lib.ll_mount_ops_from_table(ops, ffi.new("int[]", req.ops or [0]), n_ops, self._base + self._table, self._used - self._table)
        if rc < 0:
            raise OSError(-rc, "spawn request: a mount op's string outside its table")
        procs = ffi.new("int[]", fds[1 : 1 + req.n_procs] or [0])
        keep += (argv, envp, ops, procs)
        rest = fds[1 + req.n_procs :]
        c.argv = argv
        c.envp = envp
        c.cwd = self._text(req.cwd)
        c.hostname = self._text(req.hostname)
        c.ops = ops
        c.n_ops = n_ops
        c.control_fd = fds[0]
        c.cgroup_procs_fds = procs
        c.n_cgroup_procs_fds = req.n_procs
        c.cgroup_v2_fd = rest.pop(0) if req.has_v2 else -1
        c.netns_fd = rest.pop(0) if req.has_netns else -1
        c.root_template = req.has_template
        c.root_template_fd = rest.pop(0) if req.has_template else -1
        c.root_template_dev = req.template_dev
        c.root_template_ino = req.template_ino
        c.namespaces = req.namespaces
        c.unshare_cgroup_late = req.unshare_cgroup_late
        c.uid_map = self._text(req.uid_map)
        c.gid_map = self._text(req.gid_map)
        c.deny_setgroups = req.deny_setgroups
        c.setup_uid = req.setup_uid
        c.setup_gid = req.setup_gid
        c.sandbox_uid = req.sandbox_uid
        c.sandbox_gid = req.sandbox_gid
        c.loopback_up = req.loopback_up
        c.seccomp = req.seccomp
        c.nofile = req.nofile
        c.rlimit_data_bytes = req.rlimit_data_bytes
        c.rlimit_nproc = req.rlimit_nproc
        c.handshake_timeout_ms = req.handshake_timeout_ms
        c.init_fd = init_fd
        c.lifeline_fd = lifeline_fd
        c.fork_worker = req.fork
        c.clone_parent = 1
        c.pdeathsig = 0
        return c, keep

    def spawn(self, c) -> int:
        """ll_spawn with self.result; 0, -errno, or LL_SPAWN_IN_WORKER in
        the forked worker. Blocks with the GIL released."""
        return lib.ll_spawn(c, self.result)

    def failure_text(self) -> memoryview:
        """The failed step, as the C side wrote it (NUL-padded), without a
        copy: sendmsg reads it straight from the result."""
        return memoryview(ffi.buffer(self.result.step))

    def env(self, req: Spawn) -> dict[str, str]:
        """The request's environment (in the worker: its own request)."""
        out = {}
        for ref in req.env:
            name, _, value = os.fsdecode(ffi.string(self._text(ref))).partition("=")
            out[name] = value
        return out

    def wipe(self) -> None:
        """Zero what the last request used, and the result."""
        ctypes.memset(self._addr, 0, self._used)
        self._used = 0
        ctypes.memset(int(ffi.cast("uintptr_t", self.result)), 0, ffi.sizeof("struct ll_spawn_result"))
