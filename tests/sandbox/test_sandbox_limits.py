"""Limits and lifecycle of namespaced sandboxes: what is seen from outside.

Resource rows of the hostile table (fork bomb, memory, /tmp, fds, CPU) plus
the backend's own contract: kill-all, exit statuses, signal forwarding,
zombie reaping, cgroup removal and start-up cleanup, errors naming a step.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import time

import pytest
import sandbox_probe

from lambdalet.runtime import protocol
from lambdalet.sandbox import cgroup_v1, cgroups, namespaced, proc_stat


def test_fork_bomb_stops_at_pids_max(backend, python, code_dir):
    # Enough memory that the pids limit, not the OOM killer, stops it.
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
import signal
children = 0
try:
    while True:
        pid = os.fork()
        if pid == 0:
            try:
                signal.pause()  # stay alive so every process counts
            finally:
                os._exit(0)
        children += 1
except OSError as e:
    report(children=children, errno=e.errno)
""",
        memory_mb=1024,
    )
    assert outcome.last["errno"] == errno.EAGAIN
    assert outcome.last["children"] < cgroups.PIDS_MAX


def test_twice_the_memory_limit_is_an_oom_kill(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
report(started=True)
hog = bytearray(128 * 1024 * 1024)
for i in range(0, len(hog), 4096):
    hog[i] = 1
report(survived=True)
""",
        memory_mb=64,
    )
    assert outcome.reports == [{"started": True}]
    assert outcome.oom_killed
    assert outcome.signal == signal.SIGKILL
    assert outcome.peak_memory_bytes is not None and outcome.peak_memory_bytes <= 64 * 1024 * 1024


def test_neighbour_unharmed_by_an_oom_kill(backend, python, code_dir):
    neighbour = sandbox_probe.start(backend, python, code_dir, "report(up=True)\nos.read(3, 1)\nreport(still=True)")
    try:
        sandbox_probe.run(backend, python, code_dir, "bytearray(256 * 1024 * 1024)", memory_mb=64)
        assert not neighbour.oom_killed()
        neighbour.control.sendall(b"x")
        reports, timed_out = sandbox_probe.read_reports(neighbour, 20)
        assert reports == [{"up": True}, {"still": True}] and not timed_out
    finally:
        neighbour.destroy()


def test_filling_tmp_hits_enospc_at_the_size_cap(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
written = 0
try:
    with open('/tmp/fill', 'wb') as f:
        while True:
            f.write(b'x' * 65536)
            f.flush()
            written += 65536
except OSError as e:
    report(errno=e.errno, written=written)
""",
        ephemeral_mb=8,
        memory_mb=128,
    )
    assert outcome.last["errno"] == errno.ENOSPC
    assert outcome.last["written"] <= 8 * 1024 * 1024


def test_many_fds_hit_emfile(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
import resource
fds = []
try:
    for _ in range(100_000):
        fds.append(os.open('/dev/null', os.O_RDONLY))
except OSError as e:
    report(errno=e.errno, opened=len(fds), limits=resource.getrlimit(resource.RLIMIT_NOFILE),
           core=resource.getrlimit(resource.RLIMIT_CORE))
""",
    )
    assert outcome.last["errno"] == errno.EMFILE
    assert outcome.last["opened"] < 1024
    assert outcome.last["limits"] == [1024, 1024]
    assert outcome.last["core"] == [0, 0]


def test_cpu_spin_is_killed_at_the_deadline(backend, python, code_dir):
    outcome = sandbox_probe.run(backend, python, code_dir, "report(spinning=True)\nwhile True: pass", timeout_s=0.5)
    assert outcome.timed_out
    assert outcome.signal == signal.SIGKILL


def test_kill_takes_daemonised_children(backend, python, code_dir):
    sandbox = sandbox_probe.start(
        backend,
        python,
        code_dir,
        """
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.closerange(0, 64)
        os.execv('/bin/sleep', ['sleep', '300'])
    os._exit(0)
os.wait()
report(daemonised=True)
os.read(3, 1)
""",
    )
    try:
        assert sandbox_probe.read_one(sandbox) == {"daemonised": True}
        pids = sandbox.cgroup.pids()
        assert len(pids) >= 3  # PID 1, the worker and the daemon
        sandbox.kill()
        status = sandbox.destroy()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert [p for p in pids if os.path.exists(f"/proc/{p}")] == []
    finally:
        sandbox.destroy()


def test_exit_status_survives_a_racing_kill(backend, python, code_dir):
    sandbox = sandbox_probe.start(backend, python, code_dir, "os._exit(3)")
    sandbox_probe.read_reports(sandbox, 20)
    sandbox.kill()  # what the pool does as soon as the control socket closes
    status = sandbox.destroy()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3


def test_pid1_forwards_sigterm_to_the_worker(backend, python, code_dir):
    sandbox = sandbox_probe.start(
        backend,
        python,
        code_dir,
        """
import signal
signal.signal(signal.SIGTERM, lambda *a: (report(got='SIGTERM'), os._exit(0)))
report(ready=True)
signal.pause()
""",
    )
    try:
        first = sandbox_probe.read_one(sandbox)
        assert first == {"ready": True}
        os.kill(sandbox.pid, signal.SIGTERM)
        reports, timed_out = sandbox_probe.read_reports(sandbox, 20)
        assert reports == [{"got": "SIGTERM"}] and not timed_out
    finally:
        status = sandbox.destroy()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_pid1_reaps_orphans(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
import time
pid = os.fork()
if pid == 0:
    if os.fork() == 0:
        os._exit(0)  # an orphan: PID 1 must reap it
    os._exit(0)
os.waitpid(pid, 0)
def zombies():
    out = []
    for p in os.listdir('/proc'):
        if p.isdigit():
            try:
                state = open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0]
            except OSError:
                continue
            if state == 'Z':
                out.append(int(p))
    return out
deadline = time.monotonic() + 10
while zombies() and time.monotonic() < deadline:
    os.sched_yield()
report(zombies=zombies())
""",
    )
    assert outcome.last == {"zombies": []}


def test_two_sandboxes_share_neither_tmp_nor_processes(backend, python, code_dir):
    first = sandbox_probe.start(
        backend, python, code_dir, "open('/tmp/secret', 'w').write('a')\nreport(pid=os.getpid(), ok=True)\nos.read(3, 1)"
    )
    try:
        assert sandbox_probe.read_one(first)["ok"]
        second = sandbox_probe.run(
            backend,
            python,
            code_dir,
            """
report(tmp=sorted(os.listdir('/tmp')), pids=sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))
""",
        )
        assert second.last["tmp"] == []
        assert len(second.last["pids"]) <= 2
    finally:
        first.destroy()


def test_kill_minus_one_only_ends_the_sandbox(backend, python, code_dir):
    neighbour = sandbox_probe.start(backend, python, code_dir, "report(up=True)\nos.read(3, 1)\nreport(alive=True)")
    try:
        assert sandbox_probe.read_one(neighbour) == {"up": True}
        outcome = sandbox_probe.run(backend, python, code_dir, "report(before=True)\nos.kill(-1, 9)\nreport(after=True)")
        assert outcome.reports[0] == {"before": True}
        neighbour.control.sendall(b"x")
        assert sandbox_probe.read_reports(neighbour, 20)[0] == [{"alive": True}]
    finally:
        neighbour.destroy()


def test_namespaces_differ_from_the_host(backend, python, code_dir):
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
report(ns={n: os.readlink(f'/proc/self/ns/{n}') for n in ('user', 'pid', 'mnt', 'net', 'uts', 'ipc', 'cgroup')},
       cgroup=open('/proc/self/cgroup').read())
""",
    )
    inside = outcome.last["ns"]
    for name, link in inside.items():
        assert link != os.readlink(f"/proc/self/ns/{name}"), name
    # The cgroup namespace is rooted at the sandbox's own cgroup.
    assert all(line.endswith(":/") for line in outcome.last["cgroup"].splitlines())


def test_worker_speaks_the_protocol(backend, code_dir):
    from lambdalet.sandbox.spec import SandboxSpec

    sandbox = backend.spawn(SandboxSpec(instance_id="proto-test", function_name="echo", code_dir=code_dir))
    try:
        assert sandbox.task_root == "/var/task"
        init = protocol.Init(
            handler="app.handler",
            task_root=sandbox.task_root,
            env={},
            function_name="echo",
            function_version="$LATEST",
            memory_mb=128,
            log_group="/aws/lambda/echo",
            log_stream="s",
        )
        sandbox.control.sendall(protocol.encode(init))
        assert isinstance(_read_frame(sandbox), protocol.InitOk)
        sandbox.control.sendall(
            protocol.encode(protocol.Invoke(request_id="r1", payload=b'{"a": 1}', deadline_ms=2**41, invoked_arn="arn"))
        )
        result = _read_frame(sandbox)
        assert isinstance(result, protocol.Result) and result.error_type is None
        assert result.payload.replace(b" ", b"") == b'{"echo":{"a":1}}'
    finally:
        sandbox.destroy()


def test_cgroups_are_removed_with_the_sandbox(backend, python, code_dir):
    sandbox = sandbox_probe.start(backend, python, code_dir, "report(ok=True)")
    dirs = list(sandbox.cgroup.dirs.values()) if hasattr(sandbox.cgroup, "dirs") else [sandbox.cgroup.path]
    assert all(os.path.isdir(d) for d in dirs)
    sandbox.destroy()
    assert [d for d in dirs if os.path.exists(d)] == []
    assert sandbox.destroy() is None  # idempotent


def test_stale_roots_of_dead_servers_are_removed(backend):
    if not isinstance(backend.cgroups, cgroup_v1.CgroupV1Manager):
        pytest.skip("cgroup v1 host")
    parent = os.path.dirname(backend.cgroups.roots["pids"])
    stale = os.path.join(parent, "lambdalet.999999999.1")  # no such pid
    os.makedirs(os.path.join(stale, "leftover"))
    live = backend.cgroups.roots["pids"]
    removed = cgroup_v1.cleanup_stale(parent)
    # Other dead servers' leftovers may go too; never a live one.
    assert stale in removed and not os.path.exists(stale)
    assert live not in removed
    assert os.path.isdir(live)  # a running server's root is left alone


def test_a_failing_step_is_named(backend, python, code_dir, tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        sandbox_probe.start(backend, python, str(tmp_path / "missing"), "pass")
    assert f"bind: open source {tmp_path / 'missing'}" in str(info.value)
    with pytest.raises(FileNotFoundError) as info:
        backend.spawn_command(sandbox_probe.make_spec(code_dir), ["/no/such/program"])
    assert "exec worker /no/such/program" in str(info.value)


def test_worker_status_translation():
    assert namespaced.worker_status(3 << 8) == 3 << 8
    assert namespaced.worker_status((128 + 9) << 8) == 9
    assert namespaced.worker_status(9) == 9


def _read_frame(sandbox):
    """The next frame from the worker, past any Ready announcement."""
    ready = getattr(protocol, "Ready", ())
    reader = protocol.FrameReader("from_worker")
    pending: list = []
    while True:
        while pending:
            msg = pending.pop(0)
            if not (ready and isinstance(msg, ready)):
                return msg
        data = sandbox.control.recv(1 << 20)
        assert data, "worker closed the control socket"
        pending.extend(reader.feed(data))


def test_pid1_is_the_tiny_init_not_a_copy_of_the_server(backend, python, code_dir):
    sandbox = sandbox_probe.start(backend, python, code_dir, "report(ok=True)\nos.read(3, 1)")
    try:
        assert sandbox_probe.read_one(sandbox) == {"ok": True}
        with open(f"/proc/{sandbox.pid}/cmdline", "rb") as f:
            assert f.read().split(b"\x00")[:2] == [b"init", b"2"]  # then the lifeline fd
        assert "lambdalet-init" in os.readlink(f"/proc/{sandbox.pid}/exe")
        with open(f"/proc/{sandbox.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f.read().splitlines())
        assert int(status["VmRSS"].split()[0]) < 256  # kB: a few pages, none of the server's
        assert status["Seccomp"].strip() == "2" and int(status["CapEff"], 16) == 0
    finally:
        sandbox.destroy()


def test_without_cgroups_rlimits_bound_memory_and_processes(runtime_root, python, code_dir):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = namespaced.NamespacedBackend(runtime_root, cgroups=None, netns_pool=0)
    try:
        assert not backend.protections()["memory_limit"]
        assert any("RLIMIT_DATA" in w for w in backend.warnings)
        outcome = sandbox_probe.run(
            backend,
            python,
            code_dir,
            """
import resource
try:
    bytearray(256 * 1024 * 1024)
    report(allocated=True)
except MemoryError:
    report(allocated=False, data=resource.getrlimit(resource.RLIMIT_DATA),
           nproc=resource.getrlimit(resource.RLIMIT_NPROC))
""",
            memory_mb=128,
        )
        assert outcome.last == {"allocated": False, "data": [128 << 20, 128 << 20], "nproc": [cgroups.PIDS_MAX, cgroups.PIDS_MAX]}
    finally:
        backend.close()


def test_pdeathsig_follows_the_spawning_thread(runtime_root, python, code_dir):
    """With pdeathsig=True, a sandbox spawned on a thread dies with that
    thread: the reason the gateway spawns from one long-lived thread."""
    import threading

    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = namespaced.NamespacedBackend(runtime_root, netns_pool=0, pdeathsig=True)
    box = {}
    try:
        thread = threading.Thread(
            target=lambda: box.update(sb=sandbox_probe.start(backend, python, code_dir, "report(up=True)\nos.read(3, 1)"))
        )
        thread.start()
        thread.join()
        sandbox = box["sb"]
        # The thread is gone, so PID 1 got SIGKILL and took the worker along.
        reports, timed_out = sandbox_probe.read_reports(sandbox, 20)
        assert not timed_out
        status = sandbox.destroy()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    finally:
        backend.close()


def test_spawns_from_several_threads_at_once(backend, python, code_dir):
    import threading

    outcomes, errors = [], []

    def run_some():
        for _ in range(5):
            try:
                outcomes.append(sandbox_probe.run(backend, python, code_dir, "report(pid=os.getpid())").last)
            except Exception as exc:  # reported below; a thread cannot fail the test itself
                errors.append(exc)

    threads = [threading.Thread(target=run_some) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert outcomes == [{"pid": 2}] * 20  # each its own pid namespace, worker after PID 1


def test_the_in_process_init_fallback_behaves_the_same(runtime_root, python, code_dir):
    """Where the init image cannot be exec'd, PID 1 stays a copy of the
    server running the same loop: statuses, forwarding and kill-all hold."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = namespaced.NamespacedBackend(runtime_root, netns_pool=0, exec_init=False)
    try:
        assert any("PID 1 runs in a copy of the server" in w for w in backend.warnings)
        exited = sandbox_probe.start(backend, python, code_dir, "os._exit(3)")
        sandbox_probe.read_reports(exited, 20)
        exited.kill()
        status = exited.destroy()
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3

        sandbox = sandbox_probe.start(
            backend,
            python,
            code_dir,
            """
import signal
signal.signal(signal.SIGTERM, lambda *a: (report(got='SIGTERM'), os._exit(0)))
report(ready=True)
signal.pause()
""",
        )
        try:
            assert sandbox_probe.read_one(sandbox) == {"ready": True}
            with open(f"/proc/{sandbox.pid}/status") as f:
                assert "NoNewPrivs:\t1" in f.read()
            os.kill(sandbox.pid, signal.SIGTERM)
            assert sandbox_probe.read_reports(sandbox, 20)[0] == [{"got": "SIGTERM"}]
        finally:
            sandbox.destroy()
    finally:
        backend.close()


def test_closing_one_backend_leaves_another_in_the_same_process_working(backend, runtime_root, python, code_dir):
    other = namespaced.NamespacedBackend(runtime_root, netns_pool=0)
    assert set(other.cgroups.root_paths).isdisjoint(backend.cgroups.root_paths)
    other.close()
    assert all(os.path.isdir(p) for p in backend.cgroups.root_paths)
    assert sandbox_probe.run(backend, python, code_dir, "report(ok=True)").last == {"ok": True}


SERVER_THAT_DIES = r"""
import os, pathlib, signal, sys, tempfile, threading
sys.path.insert(0, sys.argv[1])
import sandbox_probe
from lambdalet.sandbox.namespaced import NamespacedBackend
from lambdalet.sandbox.runtime_root import RuntimeRoot
rr = RuntimeRoot.create(pathlib.Path(tempfile.mkdtemp()) / "rt")
backend = NamespacedBackend(rr, netns_pool=0, pdeathsig=False)
box = {}
# From a thread, without pdeathsig: only the lifeline can end this sandbox.
t = threading.Thread(target=lambda: box.update(sb=sandbox_probe.start(
    backend, rr.python, sys.argv[2], "report(spinning=True)\nwhile True: pass")))
t.start(); t.join()
assert box["sb"].control.recv(100)
print(box["sb"].pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_sandbox_dies_with_the_server_whatever_thread_spawned_it(tmp_path, python, code_dir):
    """kill -9 of the server: the lifeline pipe hangs up and PID 1 ends the
    sandbox, even a spinning one spawned on a thread without pdeathsig."""
    import subprocess
    import time

    if os.geteuid() != 0:
        pytest.skip("needs root")
    run = subprocess.run(
        [sys.executable, "-c", SERVER_THAT_DIES, os.path.dirname(__file__), code_dir], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    pid1 = int(run.stdout.split()[0])
    deadline = time.monotonic() + 20
    while _alive(pid1):
        assert time.monotonic() < deadline, "the sandbox outlived its server"
        time.sleep(0.02)


SERVER_THAT_DIES_FROZEN = SERVER_THAT_DIES.replace(
    'print(box["sb"].pid, flush=True)', 'assert box["sb"].freeze()\nprint(box["sb"].pid, flush=True)'
)


def test_a_frozen_sandbox_dies_with_the_server(tmp_path, python, code_dir):
    """A frozen PID 1 cannot see its lifeline hang up, and on v1 even
    SIGKILL waits for a thaw: the thaw guard thaws it once the server is
    gone, and it ends as any other."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root")
    run = subprocess.run(
        [sys.executable, "-c", SERVER_THAT_DIES_FROZEN, os.path.dirname(__file__), code_dir], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == -signal.SIGKILL, run.stderr
    pid1 = int(run.stdout.split()[0])
    deadline = time.monotonic() + 20
    while _alive(pid1):
        assert time.monotonic() < deadline, "a frozen sandbox outlived its server"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    stat = proc_stat.read(pid)
    return stat is not None and stat.state != "Z"


# --- the host's share: a cap on all sandboxes' tasks (issue 10, hostile 6) ---

THREADS_UNTIL_REFUSED = """
import threading
stop = threading.Event()
started = 0
try:
    while True:
        threading.Thread(target=stop.wait, daemon=True).start()
        started += 1
except RuntimeError as e:  # "can't start new thread": clone() said EAGAIN
    report(threads=started, refused=str(e))
os.read(3, 1)  # hold every thread until the test is done
"""


def test_the_tasks_of_all_sandboxes_stop_at_the_cap_and_the_host_still_forks(runtime_root, python, code_dir):
    """Each sandbox may have 1,024 tasks; a few dozen would take the host's
    whole pid space. The backend caps them all together (pids.max on its
    root): a sandbox threading until refused is stopped at the cap, not at
    its own 1,024; another sandbox cannot start until it is gone (EAGAIN,
    which the pool's admission turns into 429); this process, outside the
    cap, still forks."""
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = namespaced.NamespacedBackend(runtime_root, netns_pool=0, tasks_max=240)
    try:
        assert backend.protections()["host_pids_cap"]
        hog = sandbox_probe.start(backend, python, code_dir, THREADS_UNTIL_REFUSED, memory_mb=256)
        try:
            assert "can't start new thread" in sandbox_probe.read_one(hog)["refused"]
            in_use, cap = backend.task_usage()
            assert cap == 240 and in_use <= 240 and 200 < hog.task_count() <= 240
            with pytest.raises(OSError) as refused:
                sandbox_probe.start(backend, python, code_dir, "report(up=True)")
            assert refused.value.errno == errno.EAGAIN
            assert subprocess.run(["/bin/true"]).returncode == 0
        finally:
            hog.destroy()
        assert sandbox_probe.run(backend, python, code_dir, "report(up=True)").last == {"up": True}
    finally:
        backend.close()


def test_by_default_all_sandboxes_together_get_half_the_hosts_pids(backend):
    with open("/proc/sys/kernel/pid_max") as f:
        pid_max = int(f.read())
    in_use, cap = backend.task_usage()
    assert cap == cgroups.default_tasks_max() <= max(cgroups.PIDS_MAX, pid_max // 2)
    root = backend.cgroups.roots["pids"] if isinstance(backend.cgroups, cgroup_v1.CgroupV1Manager) else backend.cgroups.root
    with open(os.path.join(root, "pids.max")) as f:
        assert int(f.read()) == cap


# --- frozen between calls (issue 10, hostile 7) -----------------------------


def test_a_frozen_sandbox_uses_no_cpu_and_a_thawed_one_goes_on(backend, python, code_dir):
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER, memory_mb=1769)
    try:
        sandbox_probe.check_freeze_stops_a_spinner_and_thaw_resumes_it(sandbox)
    finally:
        sandbox.destroy()


def test_freezes_and_thaws_go_through_one_held_descriptor(backend, python, code_dir):
    """Many functions called in turn thaw an instance on nearly every call:
    freezer.state is opened once per sandbox, not per write, and destroy()
    closes it, frozen or not."""
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER, memory_mb=1769)
    state = os.path.join(sandbox.cgroup.dirs["freezer"], "freezer.state")
    try:
        sandbox_probe.check_freeze_switch_is_held_once(sandbox, state)
        assert sandbox.freeze() is True
        assert sandbox_probe.descriptors_on(state) == 1
    finally:
        sandbox.destroy()
    assert sandbox_probe.descriptors_on(state) == 0
    assert sandbox_probe.descriptors_on(state + " (deleted)") == 0


def test_a_closed_freeze_switch_still_freezes_and_thaws(backend, python, code_dir):
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER, memory_mb=1769)
    state = os.path.join(sandbox.cgroup.dirs["freezer"], "freezer.state")
    try:
        sandbox_probe.check_freeze_switch_is_held_once(sandbox, state)
        sandbox_probe.check_freeze_switch_works_once_closed(sandbox, state)
    finally:
        sandbox.destroy()


def test_a_frozen_sandbox_is_killed_and_removed(backend, python, code_dir):
    """What the pool does to an idle instance it reclaims: kill and destroy
    while frozen. Nothing of it may run again, and nothing is left."""
    from helpers import wait_for

    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER, memory_mb=1769)
    try:
        sandbox_probe.read_one(sandbox)
        pids = sandbox.cgroup.pids()
        dirs = list(sandbox.cgroup.dirs.values())
        assert sandbox.freeze()
        wait_for(lambda: sandbox_probe.fully_frozen(sandbox))
        sandbox.kill()
        status = sandbox.destroy()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert [p for p in pids if os.path.exists(f"/proc/{p}")] == []
        assert [d for d in dirs if os.path.exists(d)] == []
    finally:
        sandbox.destroy()


def test_a_zygote_forked_worker_is_frozen_once_the_zygote_has_left(backend, code_dir):
    """A worker is born in the cgroup the zygote waits in (v1): the sandbox
    is not frozen while the zygote may still be there, and freezing it never
    stops the zygote (the next spawn works)."""
    from helpers import wait_for

    from lambdalet.sandbox.spec import SandboxSpec

    sandbox = backend.spawn(SandboxSpec(instance_id="freeze-zygote", function_name="f", code_dir=code_dir))
    try:
        assert sandbox.control.recv(64)  # Ready
        if backend._stager is not None:
            wait_for(lambda: not backend._stager.holds(sandbox.cgroup))
        assert sandbox.freeze()
        wait_for(lambda: sandbox_probe.fully_frozen(sandbox))
        assert backend.zygote.pid not in sandbox.cgroup.pids()
        other = backend.spawn(SandboxSpec(instance_id="freeze-zygote-2", function_name="f", code_dir=code_dir))
        try:
            assert other.control.recv(64)
        finally:
            other.destroy()
        sandbox.thaw()
    finally:
        sandbox.destroy()


def test_freezing_waits_while_the_zygote_shares_the_cgroup(backend, code_dir):
    from lambdalet.sandbox.spec import SandboxSpec

    sandbox = backend.spawn(SandboxSpec(instance_id="freeze-shared", function_name="f", code_dir=code_dir))
    try:
        if backend._stager is None:
            pytest.skip("no cgroup stage (not v1 with the zygote)")
        sandbox._shares_cgroup = lambda: True  # as if the stager had not moved the zygote yet
        assert sandbox.freeze() is False
        assert not sandbox_probe.fully_frozen(sandbox)
    finally:
        sandbox.destroy()


# --- CPU without a cliff (issue 11, item 6) -----------------------------------


def _quota(sandbox) -> tuple[int, int]:
    cpu = sandbox.cgroup.dirs["cpu"]
    with open(os.path.join(cpu, "cpu.cfs_quota_us")) as f, open(os.path.join(cpu, "cpu.cfs_period_us")) as g:
        return int(f.read()), int(g.read())


def test_a_sandbox_starts_with_a_vcpu_and_then_gets_its_share_in_short_periods(backend, python, code_dir):
    """With a 1 s period a 128 MB function that had used its 72 ms waited up
    to 0.93 s; the period is 20 ms now. Start-up runs with one vCPU so that
    the short period does not stretch a cold start; limit_cpu() then gives
    the function its share."""
    if not isinstance(backend.cgroups, cgroup_v1.CgroupV1Manager) or "cpu" not in backend.cgroups.roots:
        pytest.skip("cgroup v1 with the cpu controller")
    sandbox = sandbox_probe.start(backend, python, code_dir, "report(up=True)\nos.read(3, 1)", memory_mb=128)
    try:
        assert sandbox_probe.read_one(sandbox) == {"up": True}
        assert _quota(sandbox) == (20_000, 20_000)  # a whole CPU per period while starting
        sandbox.limit_cpu(128)
        assert _quota(sandbox) == (20_000 * 128 // 1769, 20_000)  # 1.447 ms per 20 ms: 128 MB's share
        sandbox.limit_cpu(3538)
        assert _quota(sandbox) == (40_000, 20_000)  # two vCPUs
    finally:
        sandbox.destroy()


def test_a_frozen_sandbox_left_at_close_is_removed(runtime_root, python, code_dir):
    """A server stopping with frozen instances: the manager's close() kills
    them (thawing them on v1, or they never die) and removes every cgroup."""
    from helpers import wait_for

    if os.geteuid() != 0:
        pytest.skip("needs root")
    backend = namespaced.NamespacedBackend(runtime_root, netns_pool=0)
    roots = list(backend.cgroups.root_paths)
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    try:
        sandbox_probe.read_one(sandbox)
        pids = sandbox.cgroup.pids()
        assert sandbox.freeze()
        wait_for(lambda: sandbox_probe.fully_frozen(sandbox))
        backend.cgroups.close()
        assert [p for p in roots if os.path.exists(p)] == []
        assert [p for p in pids if _alive(p)] == []
    finally:
        sandbox.destroy()
        backend.close()
