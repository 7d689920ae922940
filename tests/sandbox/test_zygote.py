"""The runtime zygote: workers forked from one interpreter with the runtime
imported (sandbox/zygote.py), each still in a sandbox of its own, and
indistinguishable from an exec'd `python -I -S` worker to the handler."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from lambdalet.runtime import protocol
from lambdalet.sandbox import proc_stat
from lambdalet.sandbox.spec import SandboxSpec

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from helpers import wait_for  # noqa: E402

PROBE = """\
import json, os, random, signal, sys
def handler(event, context):
    try:
        import _cffi_backend  # the zygote has it; a worker must not
        cffi = True
    except ImportError:
        cffi = False
    return {
        "pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(),
        "random": random.random(), "urandom": os.urandom(8).hex(),
        "env": dict(os.environ), "path": sys.path, "cffi": cffi,
        "zygote_modules": [m for m in sys.modules if m.startswith(("lambdalet.sandbox", "lambdalet.csrc"))],
        "tmp": os.listdir("/tmp"),
        "frames_hold": sorted({type(v).__name__ for f in _frames() for v in f.f_locals.values()}),
        "lambdalet_attrs": sorted(a for a in vars(__import__("lambdalet")) if not a.startswith("__")),
        "main": getattr(sys.modules["__main__"], "main").__module__,
        "orig_argv": sys.orig_argv,
        "cmdline": open("/proc/self/cmdline", "rb").read().decode("utf-8", "replace"),
        "runtime_file": sys.modules["lambdalet.runtime.worker"].__file__,
        "environ_readable": len(open("/proc/self/environ", "rb").read()) > 0,
        "shared_writable": [m for m in open("/proc/self/maps").read().splitlines() if m.split()[1][1::2] == "ws"],
        # What an interpreter starts with (spawn.c reset every handler), as
        # the kernel has it: Python's own table was copied from the zygote.
        "signals": _dispositions(),
    }
def _dispositions():
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    ignored, caught = int(status["SigIgn"], 16), int(status["SigCgt"], 16)
    bit = lambda sig: 1 << (sig - 1)
    return {"INT caught": bool(caught & bit(signal.SIGINT)), "PIPE ignored": bool(ignored & bit(signal.SIGPIPE)),
            "XFSZ ignored": bool(ignored & bit(signal.SIGXFSZ)), "TERM default": not (ignored | caught) & bit(signal.SIGTERM)}
def _frames():
    f = sys._getframe()
    while f is not None:
        yield f
        f = f.f_back
def write_tmp(event, context):
    open("/tmp/mine", "w").write(event["v"])
    return os.listdir("/tmp")
def exit7(event, context):
    os._exit(7)
def sleep(event, context):
    import time
    time.sleep(event)
    return "slept"
def threads_then_fork(event, context):
    import logging, threading
    ran = []
    t = threading.Thread(target=ran.append, args=(1,))
    t.start()
    t.join()
    # Another thread holds the log handler's lock while this one forks: the
    # child can log only if logging's fork hook re-made that lock, and sees
    # one thread only if threading's hook cleaned its table.
    handler = logging.getLogger().handlers[0]
    held, release = threading.Event(), threading.Event()
    def hold():
        handler.acquire()
        held.set()
        release.wait()
        handler.release()
    holder = threading.Thread(target=hold)
    holder.start()
    held.wait()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        signal.alarm(5)  # a lock left held would hang the child here
        logging.getLogger().warning("from the child")
        main = threading.current_thread() is threading.main_thread()
        os.write(w, json.dumps({"threads": threading.active_count(), "main": main}).encode())
        os._exit(0)
    os.close(w)
    child = json.loads(os.read(r, 1000) or b"null")
    os.close(r)
    _, status = os.waitpid(pid, 0)
    release.set()
    holder.join()
    return {"ran": ran, "child": child, "status": status}
def first_call(event, context):
    import logging
    logging.getLogger().warning("in the call")
    return {"request_id": context.aws_request_id, "function": context.function_name, "event": event}
def collect(event, context):
    import gc
    return {"enabled": gc.isenabled(), "collected": gc.collect() >= 0, "garbage": gc.garbage}
"""


@pytest.fixture(scope="module")
def probe_dir(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("zygote-code")
    (path / "app.py").write_text(PROBE)
    os.chmod(path, 0o755)
    os.chmod(path / "app.py", 0o644)
    return str(path)


def _frame(sandbox):
    reader = protocol.FrameReader("from_worker")
    while True:
        data = sandbox.control.recv(1 << 20)
        assert data, "the worker hung up"
        msgs = reader.feed(data)
        if msgs:
            return msgs[0]


def _started(backend, probe_dir, name: str, handler: str = "app.handler"):
    sandbox = backend.spawn(SandboxSpec(instance_id=name, function_name="zy", code_dir=probe_dir))
    assert isinstance(_frame(sandbox), protocol.Ready)
    sandbox.control.sendall(
        protocol.encode(
            protocol.Init(
                handler=handler,
                task_root=sandbox.task_root,
                env={"AWS_LAMBDA_FUNCTION_NAME": "zy"},
                function_name="zy",
                function_version="$LATEST",
                memory_mb=128,
                log_group="g",
                log_stream="s",
            )
        )
    )
    assert isinstance(_frame(sandbox), protocol.InitOk)
    return sandbox


def _call(sandbox, event=None) -> protocol.Result:
    sandbox.control.sendall(
        protocol.encode(protocol.Invoke(request_id="r", payload=json.dumps(event or {}).encode(), deadline_ms=2**41, invoked_arn="arn"))
    )
    return _frame(sandbox)


def test_workers_are_forks_of_one_zygote_each_in_its_own_sandbox(backend, probe_dir, runtime_root):
    a = _started(backend, probe_dir, "zy-a")
    b = _started(backend, probe_dir, "zy-b")
    try:
        zygote = backend.zygote
        assert zygote is not None and backend.statistics()["zygote"] == 1
        for sandbox in (a, b):
            # PID 1 of each sandbox was cloned by the zygote (CLONE_PARENT)
            # as this process's child: it does not depend on the zygote.
            assert proc_stat.read(sandbox.pid).ppid == os.getpid()
            with open(f"/proc/{sandbox.pid}/task/{sandbox.pid}/children") as f:
                worker = int(f.read().split()[0])
            with open(f"/proc/{worker}/cmdline", "rb") as f:
                assert b"lambdalet.sandbox.zygote" in f.read()  # a fork of the zygote
        ra, rb = (json.loads(_call(s).payload) for s in (a, b))
        # Inside: PID 2 under its own PID 1, the sandbox's uid, its own /tmp.
        assert ra["pid"] == rb["pid"] == 2 and ra["ppid"] == 1
        assert ra["uid"] == 993
        # Forks must not share random state (the at-fork hooks ran).
        assert ra["random"] != rb["random"] and ra["urandom"] != rb["urandom"]
        # Nothing of the zygote shows: imports, path and environment are an
        # exec'd worker's.
        assert ra["cffi"] is False and ra["zygote_modules"] == []
        assert ra["path"][:2] == ["/var/task", "/opt/python"] and "/var/runtime" in ra["path"]
        assert not any(".zygote" in p for p in ra["path"])
        assert ra["env"]["AWS_LAMBDA_FUNCTION_NAME"] == "zy" and ra["env"]["LAMBDA_TASK_ROOT"] == "/var/task"
        assert not {"HOME", "PYTHONPATH", "PWD"} & set(ra["env"])
        # Nothing of the zygote is reachable: no frame holds its state or its
        # socket, its packages are gone, and the worker looks exec'd.
        assert not {"_Zygote", "CompiledOps", "Spawn", "SpawnConfig"} & set(ra["frames_hold"])
        assert ra["lambdalet_attrs"] == ["runtime"]
        assert ra["main"] == "lambdalet.runtime.worker"
        # No host path in what the worker sees of its command line.
        host = runtime_root.path  # the zygote's root is beside it
        assert not any(host in a for a in ra["orig_argv"]) and host not in ra["cmdline"]
        assert ra["runtime_file"] == "/var/runtime/lambdalet/runtime/worker.py"
        assert ra["environ_readable"] is True  # dumpable, as after an exec
        # No memory written by the zygote or another worker shows up here.
        assert ra["shared_writable"] == []
        assert ra["signals"] == {"INT caught": True, "PIPE ignored": True, "XFSZ ignored": True, "TERM default": True}
    finally:
        a.destroy()
        b.destroy()


def test_instances_forked_from_the_zygote_do_not_share_tmp(backend, probe_dir):
    a = _started(backend, probe_dir, "zy-tmp-a", "app.write_tmp")
    b = _started(backend, probe_dir, "zy-tmp-b", "app.write_tmp")
    try:
        assert json.loads(_call(a, {"v": "a"}).payload) == ["mine"]
        assert json.loads(_call(b, {"v": "b"}).payload) == ["mine"]
    finally:
        a.destroy()
        b.destroy()
    c = _started(backend, probe_dir, "zy-tmp-c")
    try:
        assert json.loads(_call(c).payload)["tmp"] == []
    finally:
        c.destroy()


def test_a_handler_that_forks_beside_a_thread_gets_a_clean_child(backend, probe_dir):
    """The zygote holds threading's and logging's fork hooks back and each
    worker registers them (sandbox/fork_hooks.py): a fork the handler makes
    must still run them."""
    sandbox = _started(backend, probe_dir, "zy-fork", "app.threads_then_fork")
    try:
        result = json.loads(_call(sandbox).payload)
        assert result == {"ran": [1], "child": {"threads": 1, "main": True}, "status": 0}
        assert b"from the child" in _call(sandbox).log  # the child's line reached the log
    finally:
        sandbox.destroy()


def test_the_zygotes_rehearsed_calls_leave_nothing_for_the_first_real_one(backend, probe_dir):
    """runtime/worker.py prepare() runs the call path in the zygote; the
    first call of a worker sees its own request, context and log only."""
    sandbox = _started(backend, probe_dir, "zy-first", "app.first_call")
    try:
        call = protocol.Invoke(request_id="req-1", payload=b'{"n": 1}', deadline_ms=2**41, invoked_arn="arn")
        sandbox.control.sendall(protocol.encode(call))
        result = _frame(sandbox)
        assert json.loads(result.payload) == {"request_id": "req-1", "function": "zy", "event": {"n": 1}}
        assert result.log.count(b"\n") == 1 and b"\treq-1\tin the call\n" in result.log
        assert result.log.startswith(b"[WARNING]\t")
    finally:
        sandbox.destroy()


def test_a_handler_can_collect_garbage_in_a_forked_worker(backend, probe_dir):
    sandbox = _started(backend, probe_dir, "zy-gc", "app.collect")
    try:
        for _ in range(2):
            assert json.loads(_call(sandbox).payload) == {"enabled": True, "collected": True, "garbage": []}
    finally:
        sandbox.destroy()


def test_the_exit_status_comes_back_through_the_zygote(backend, probe_dir):
    sandbox = _started(backend, probe_dir, "zy-exit", "app.exit7")
    sandbox.control.sendall(protocol.encode(protocol.Invoke(request_id="r", payload=b"{}", deadline_ms=2**41, invoked_arn="arn")))
    assert sandbox.control.recv(16) == b""  # the worker is gone
    status = sandbox.destroy()
    assert status is not None and os.WIFEXITED(status) and os.WEXITSTATUS(status) == 7
    assert sandbox.destroy() is None


def test_a_killed_worker_is_reported_as_killed(backend, probe_dir):
    sandbox = _started(backend, probe_dir, "zy-kill")
    status = sandbox.destroy()  # kills a live worker
    assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_sandboxes_outlive_their_zygote_and_the_next_spawn_starts_another(runtime_root, probe_dir):
    """The zygote is a single point of failure no more: killing it (from
    outside: a function cannot see it, see hostile_rows.py) ends no sandbox
    and fails no call, and the next spawn starts a fresh zygote."""
    from lambdalet.sandbox.namespaced import NamespacedBackend

    if os.geteuid() != 0:
        pytest.skip("runs the namespaced backend as root")
    backend = NamespacedBackend(runtime_root)
    try:
        busy = _started(backend, probe_dir, "zy-orphan-busy", "app.sleep")
        idle = _started(backend, probe_dir, "zy-orphan-idle")
        old = backend.zygote.pid
        busy.control.sendall(protocol.encode(protocol.Invoke(request_id="r", payload=b"0.5", deadline_ms=2**41, invoked_arn="arn")))
        os.kill(old, signal.SIGKILL)
        # The call in flight ends as the handler meant it to.
        result = _frame(busy)
        assert result.error_type is None and json.loads(result.payload) == "slept"
        # An idle instance still serves, in the same sandbox.
        assert json.loads(_call(idle).payload)["pid"] == 2
        # The dead zygote was reaped, not left a zombie.
        wait_for(lambda: _state(old) is None)
        third = _started(backend, probe_dir, "zy-orphan-third")
        try:
            assert backend.zygote is not None and backend.zygote.pid != old
            assert backend.statistics()["zygote"] == 1
            # Every sandbox's PID 1 is this process's child, whichever zygote forked it.
            for sandbox in (busy, idle, third):
                assert proc_stat.read(sandbox.pid).ppid == os.getpid()
            assert json.loads(_call(third).payload)["pid"] == 2
        finally:
            third.destroy()
        for sandbox in (busy, idle):
            status = sandbox.destroy()
            assert status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        backend.close()


def test_a_spawn_that_meets_a_dead_zygote_is_served_by_a_new_one(runtime_root, probe_dir):
    """The zygote died, and the spawn reached it before anything noticed:
    the spawn is retried, with fresh resources, through a new zygote."""
    from lambdalet.sandbox.namespaced import NamespacedBackend

    if os.geteuid() != 0:
        pytest.skip("runs the namespaced backend as root")
    backend = NamespacedBackend(runtime_root)
    try:
        _started(backend, probe_dir, "zy-retry-1").destroy()
        dead = backend.zygote
        os.kill(dead.pid, signal.SIGKILL)
        wait_for(lambda: not dead.alive and _state(dead.pid) is None)
        dead._gone = False  # as if its end had not been seen yet
        sandbox = _started(backend, probe_dir, "zy-retry-2")
        try:
            assert backend.zygote is not dead and backend.zygote.pid != dead.pid
            assert backend.statistics()["zygote_restarts"] == 1
            assert json.loads(_call(sandbox).payload)["pid"] == 2
        finally:
            sandbox.destroy()
    finally:
        backend.close()


def _state(pid: int) -> str | None:
    stat = proc_stat.read(pid)
    return stat.state if stat is not None else None


def _start_time(pid: int) -> int:
    stat = proc_stat.read(pid)
    return stat.starttime if stat is not None else -1


def test_a_failed_spawn_names_its_step_and_the_zygote_carries_on(backend, probe_dir, tmp_path):
    missing = str(tmp_path / "no-such-code")
    with pytest.raises(OSError) as info:
        backend.spawn(SandboxSpec(instance_id="zy-missing", function_name="zy", code_dir=missing))
    assert "no-such-code" in str(info.value) and info.value.errno != 0
    assert backend.zygote is not None  # a sandbox failed, not the zygote
    sandbox = _started(backend, probe_dir, "zy-after-failure")
    try:
        assert json.loads(_call(sandbox).payload)["pid"] == 2
    finally:
        sandbox.destroy()


def test_on_cgroup_v1_a_sandbox_is_born_in_its_own_cgroup_with_its_limits(backend, probe_dir):
    from lambdalet.sandbox.cgroup_v1 import CgroupV1Manager

    if not isinstance(backend.cgroups, CgroupV1Manager):
        pytest.skip("cgroup v1 host")
    first = _started(backend, probe_dir, "zy-cg-warm")  # starts the zygote and its stager
    first.destroy()
    wait_for(lambda: backend.statistics()["cgroup_stage_ready"] == 1)
    sandbox = backend.spawn(SandboxSpec(instance_id="zy-cg", function_name="zy", code_dir=probe_dir, memory_mb=256))
    try:
        memory = sandbox.cgroup.dirs["memory"]
        with open(os.path.join(memory, "memory.limit_in_bytes")) as f:
            assert int(f.read()) == 256 << 20
        with open(f"/proc/{sandbox.pid}/task/{sandbox.pid}/children") as f:
            worker = int(f.read().split()[0])
        # The sandbox's processes are in its cgroup; the zygote leaves it.
        wait_for(lambda: set(sandbox.cgroup.pids()) == {sandbox.pid, worker})
    finally:
        sandbox.destroy()


def test_destroying_a_sandbox_at_once_never_harms_the_zygote(backend, probe_dir):
    zygote_pid = None
    for i in range(5):
        sandbox = backend.spawn(SandboxSpec(instance_id=f"zy-quick-{i}", function_name="zy", code_dir=probe_dir))
        zygote_pid = backend.zygote.pid
        sandbox.destroy()  # while the zygote may still sit in its cgroup
    assert backend.zygote is not None and backend.zygote.pid == zygote_pid and backend.zygote.alive
    sandbox = _started(backend, probe_dir, "zy-after-quick")
    try:
        assert json.loads(_call(sandbox).payload)["pid"] == 2
    finally:
        sandbox.destroy()


def test_a_ctrl_c_for_the_server_does_not_stop_the_zygote(backend, probe_dir):
    first = _started(backend, probe_dir, "zy-sigint-1")
    first.destroy()
    os.kill(backend.zygote.pid, signal.SIGINT)
    sandbox = _started(backend, probe_dir, "zy-sigint-2")
    try:
        assert backend.zygote is not None and backend.zygote.alive
        assert json.loads(_call(sandbox).payload)["pid"] == 2
    finally:
        sandbox.destroy()


def test_code_is_never_attached_to_a_sandbox_that_has_exited(backend, probe_dir):
    from lambdalet.sandbox.attach import attach_tree

    sandbox = backend.spawn(SandboxSpec(instance_id="zy-attach", function_name="zy", code_dir=probe_dir))
    pid, pidfd = sandbox.pid, os.dup(sandbox.pidfd)
    try:
        sandbox.destroy()  # the zygote reaps PID 1: its pid may be reused
        with pytest.raises(OSError):
            attach_tree(pid, probe_dir, "/var/task", pidfd)
    finally:
        os.close(pidfd)


def test_the_zygote_waits_in_its_next_cgroup_without_a_cpu_quota(backend, probe_dir):
    """Between spawns the zygote works in the stage it waits in: a 128 MB
    quota there (72 ms a second) once stalled a burst of spawns for most of
    a second. A spawn gives the stage its function's limits."""
    from lambdalet.sandbox.cgroup_v1 import CgroupV1Manager

    if not isinstance(backend.cgroups, CgroupV1Manager) or "cpu" not in backend.cgroups.roots:
        pytest.skip("cgroup v1 with the cpu controller")
    _started(backend, probe_dir, "zy-quota-warm").destroy()
    wait_for(lambda: backend.statistics()["cgroup_stage_ready"] == 1)
    stage = backend._stager._ready
    with open(os.path.join(stage.dirs["cpu"], "cpu.cfs_quota_us")) as f:
        assert int(f.read()) == -1
    sandbox = backend.spawn(SandboxSpec(instance_id="zy-quota", function_name="zy", code_dir=probe_dir, memory_mb=128))
    try:
        assert sandbox.cgroup is stage  # born in it
        with open(os.path.join(stage.dirs["cpu"], "cpu.cfs_quota_us")) as f:
            assert int(f.read()) > 0  # the function's quota, set before the clone
    finally:
        sandbox.destroy()


def test_a_fork_carries_nothing_of_an_earlier_spawn(backend, tmp_path_factory):
    """The zygote handled other functions' spawn requests (their code paths)
    before forking this worker; nothing of them may be left in memory the
    worker can read: the zygote's heap, freed or not, its stack, its buffers."""
    import uuid

    import sandbox_probe
    from hostile_rows import SCAN_MEMORY, needle_halves

    marker = uuid.uuid4().hex
    # Paths of many lengths: a later request of the same shape reuses (and
    # so overwrites) the blocks an earlier one freed; these it cannot all.
    for i in range(12):
        other = tmp_path_factory.mktemp(f"other-{marker}-{'x' * 16 * i}")
        (other / "app.py").write_text("def handler(event, context):\n    return 'other'\n")
        os.chmod(other, 0o755)
        os.chmod(other / "app.py", 0o644)
        _started(backend, str(other), f"zy-other-{i}").destroy()
    # A failed spawn's message names the path too.
    with pytest.raises(OSError, match=f"other-{marker}-missing"):
        backend.spawn(
            SandboxSpec(
                instance_id="zy-other-missing", function_name="zy", code_dir=str(tmp_path_factory.getbasetemp() / f"other-{marker}-missing")
            )
        )
    scanner = tmp_path_factory.mktemp("scanner")
    (scanner / "app.py").write_text(sandbox_probe.as_handler(SCAN_MEMORY))
    os.chmod(scanner, 0o755)
    os.chmod(scanner / "app.py", 0o644)
    sandbox = _started(backend, str(scanner), "zy-scan")
    try:
        # The scan works: it finds what every worker holds.
        (mine,) = json.loads(_call(sandbox, needle_halves("lambdalet.runtime.worker")).payload)
        assert mine["found"] and mine["regions"] > 10
        (last,) = json.loads(_call(sandbox, needle_halves(f"other-{marker}")).payload)
        assert last["found"] == [], last
    finally:
        sandbox.destroy()
