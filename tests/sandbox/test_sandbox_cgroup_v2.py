"""cgroup v2 paths that work on any cgroup2 mount, even one without
controllers (this project's machines mount an empty one beside v1): the
child is born in its cgroup (CLONE_INTO_CGROUP), its cgroup namespace is
rooted there, cgroup.freeze stops it between calls, and cgroup.kill plus
removal leave nothing behind, frozen or not.
The memory, pids and cpu limits of cgroup_v2.py need a host whose v2
hierarchy holds those controllers and are covered by its own checks there."""

from __future__ import annotations

import os
import signal

import pytest
import sandbox_probe

from lambdalet.sandbox import cgroup_v2, cgroups, proc_stat
from lambdalet.sandbox.namespaced import NamespacedBackend


class _V2WithoutControllers:
    """A CgroupManager over a bare cgroup2 directory: placement only."""

    version = 2
    tasks_max = None  # no pids controller to cap them
    cpu_limit = False  # nor a cpu controller

    def __init__(self, root: str) -> None:
        self.root = root
        self.root_paths = [root]
        os.makedirs(root)

    def tasks_in_use(self) -> int:
        return len(cgroups.read_text(os.path.join(self.root, "cgroup.threads")).split())

    def create(self, name: str, memory_mb: int) -> cgroup_v2.CgroupV2:
        path = os.path.join(self.root, name)
        os.mkdir(path)
        return cgroup_v2.CgroupV2(name, path)

    def enforced(self) -> dict[str, bool]:
        return {"memory_limit": False, "cpu_limit": False, "pids_limit": False, "host_pids_cap": False, "idle_freeze": True}

    def close(self) -> None:
        cgroup_v2.remove_tree(self.root)


@pytest.fixture
def v2_backend(runtime_root):
    if os.geteuid() != 0:
        pytest.skip("needs root")
    _v1, mount = cgroups.mountinfo_cgroups()
    _own_v1, own = cgroups.own_cgroups()
    if mount is None or own is None:
        pytest.skip("no cgroup2 mount")
    root = os.path.join(mount, own.lstrip("/"), cgroups.root_name() + ".v2test")
    try:
        manager = _V2WithoutControllers(root)
    except OSError as exc:
        pytest.skip(f"cgroup2 not writable here: {exc}")
    backend = NamespacedBackend(runtime_root, cgroups=manager)
    yield backend, manager
    backend.close()
    assert not os.path.exists(root)


def test_born_in_its_v2_cgroup_with_the_namespace_rooted_there(v2_backend, python, code_dir):
    backend, manager = v2_backend
    sandbox = sandbox_probe.start(
        backend,
        python,
        code_dir,
        """
report(cgroup=open('/proc/self/cgroup').read())
os.read(3, 1)
""",
    )
    try:
        line = sandbox.control.recv(4096)
        path = sandbox.cgroup.path
        # Seen from the host, PID 1 sits in the sandbox's own cgroup...
        with open(f"/proc/{sandbox.pid}/cgroup") as f:
            unified = [ln for ln in f.read().splitlines() if ln.startswith("0::")][0]
        assert path.endswith(unified[3:])
        assert sandbox.pid in sandbox.cgroup.pids()
        # ...and from inside, that cgroup is the root of its namespace.
        assert "0::/\n" in line.decode().replace("\\n", "\n")
        sandbox.cgroup.kill_all()
        status = sandbox.destroy()
        assert status is not None
        assert not os.path.exists(path)
    finally:
        sandbox.destroy()


def test_a_worker_forked_by_the_zygote_is_born_in_its_v2_cgroup(v2_backend, code_dir):
    from lambdalet.sandbox.spec import SandboxSpec

    backend, manager = v2_backend
    sandbox = backend.spawn(SandboxSpec(instance_id="v2-zygote", function_name="f", code_dir=code_dir))
    try:
        assert backend.zygote is not None
        assert sandbox.control.recv(64)  # the worker's Ready frame
        with open(f"/proc/{sandbox.pid}/task/{sandbox.pid}/children") as f:
            worker = int(f.read().split()[0])
        # Both PID 1 and the forked worker are in the sandbox's cgroup, and
        # the zygote is not: CLONE_INTO_CGROUP placed PID 1 at birth.
        assert {sandbox.pid, worker} <= set(sandbox.cgroup.pids())
        assert backend.zygote.pid not in sandbox.cgroup.pids()
        path = sandbox.cgroup.path
        sandbox.cgroup.kill_all()
        assert sandbox.destroy() is not None
        assert not os.path.exists(path)
    finally:
        sandbox.destroy()


def test_a_v2_sandbox_is_frozen_between_calls_and_thawed(v2_backend, python, code_dir):
    backend, manager = v2_backend
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    try:
        sandbox_probe.check_freeze_stops_a_spinner_and_thaw_resumes_it(sandbox)
    finally:
        sandbox.destroy()


def test_v2_freezes_and_thaws_go_through_one_held_descriptor(v2_backend, python, code_dir):
    backend, manager = v2_backend
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    state = os.path.join(sandbox.cgroup.path, "cgroup.freeze")
    try:
        sandbox_probe.check_freeze_switch_is_held_once(sandbox, state)
        sandbox_probe.check_freeze_switch_works_once_closed(sandbox, state)
    finally:
        sandbox.destroy()


def test_a_held_v2_freeze_switch_is_closed_by_destroy(v2_backend, python, code_dir):
    backend, manager = v2_backend
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    state = os.path.join(sandbox.cgroup.path, "cgroup.freeze")
    try:
        sandbox_probe.check_freeze_switch_is_held_once(sandbox, state)
        assert sandbox.freeze() is True
    finally:
        sandbox.destroy()
    assert sandbox_probe.descriptors_on(state) == 0
    assert sandbox_probe.descriptors_on(state + " (deleted)") == 0


def test_a_frozen_v2_sandbox_is_killed_and_removed(v2_backend, python, code_dir):
    from helpers import wait_for

    backend, manager = v2_backend
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    try:
        sandbox_probe.read_one(sandbox)
        pids, path = sandbox.cgroup.pids(), sandbox.cgroup.path
        assert sandbox.freeze()
        wait_for(lambda: sandbox_probe.fully_frozen(sandbox))
        sandbox.kill()
        status = sandbox.destroy()
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        assert [p for p in pids if os.path.exists(f"/proc/{p}")] == []
        assert not os.path.exists(path)
    finally:
        sandbox.destroy()


def test_a_frozen_v2_sandbox_left_at_close_is_removed(runtime_root, python, code_dir):
    """A server stopping with frozen instances: the manager's close() kills
    and removes them (the v2 fixture checks the root is gone)."""
    from helpers import wait_for

    if os.geteuid() != 0:
        pytest.skip("needs root")
    _v1, mount = cgroups.mountinfo_cgroups()
    _own_v1, own = cgroups.own_cgroups()
    if mount is None or own is None:
        pytest.skip("no cgroup2 mount")
    root = os.path.join(mount, own.lstrip("/"), cgroups.root_name() + ".v2close")
    manager = _V2WithoutControllers(root)
    backend = NamespacedBackend(runtime_root, cgroups=manager)
    sandbox = sandbox_probe.start(backend, python, code_dir, sandbox_probe.SPINNER)
    sandbox_probe.read_one(sandbox)
    pids = sandbox.cgroup.pids()
    assert sandbox.freeze()
    wait_for(lambda: sandbox_probe.fully_frozen(sandbox))
    manager.close()
    assert not os.path.exists(root)
    assert [p for p in pids if os.path.exists(f"/proc/{p}") and not _zombie(p)] == []
    sandbox.destroy()
    backend.close()


def _zombie(pid: int) -> bool:
    stat = proc_stat.read(pid)
    return stat is None or stat.state == "Z"
