"""Run a Python snippet inside a sandbox and report what happened.

The snippet runs under `python -I -S` in the sandbox. It calls
`report(**fields)` (any number of times) to send JSON lines back over the
control socket (fd 3), and may use `try_syscall(nr, *args)`, which returns 0
or the errno of a raw system call, like bubblewrap's try-syscall.c. An
exception that escapes the snippet is reported as {"exception", "errno",
"message"}.

The same snippet text is what a hostile-suite row deploys through the
Lambda API: `as_handler(snippet)` wraps it into a handler module whose
return value is the list of reports.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import textwrap
import time
import uuid

import msgspec

from lambdalet.sandbox.spec import SandboxSpec

PRELUDE = '''
import ctypes, errno, json, os, platform, sys
# Syscall numbers by architecture, for the calls the hostile rows try.
NR = {
    "x86_64": dict(mount=165, umount2=166, pivot_root=155, unshare=272, setns=308, ptrace=101,
                   process_vm_readv=310, process_vm_writev=311, kcmp=312, kexec_load=246,
                   init_module=175, finit_module=313, delete_module=176, bpf=321,
                   perf_event_open=298, keyctl=250, add_key=248, request_key=249,
                   userfaultfd=323, open_by_handle_at=304, syslog=103, reboot=169, swapon=167,
                   swapoff=168, acct=163, iopl=172, ioperm=173, clone=56, clone3=435, ioctl=16,
                   getpid=39, sethostname=170, chroot=161, prctl=157, personality=135),
    "aarch64": dict(mount=40, umount2=39, pivot_root=41, unshare=97, setns=268, ptrace=117,
                    process_vm_readv=270, process_vm_writev=271, kcmp=272, kexec_load=104,
                    init_module=105, finit_module=273, delete_module=106, bpf=280,
                    perf_event_open=241, keyctl=219, add_key=217, request_key=218,
                    userfaultfd=282, open_by_handle_at=265, syslog=116, reboot=142, swapon=224,
                    swapoff=225, acct=89, clone=220, clone3=435, ioctl=29, getpid=172,
                    sethostname=161, chroot=51, prctl=167, personality=92),
}[platform.machine()]
# From 424 on, numbers are the same on every architecture.
NR.update(open_tree=428, move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433,
          mount_setattr=442, memfd_secret=447, cachestat=451, statmount=457, listmount=458, lsm_get_self_attr=459,
          lsm_list_modules=461, getxattrat=464, open_tree_attr=467, file_getattr=468)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def try_syscall(nr, *args):
    """0, or the errno the raw system call failed with."""
    ctypes.set_errno(0)
    rc = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return 0 if rc >= 0 else ctypes.get_errno()
'''

RUNNER = (
    PRELUDE
    + """
event = json.loads(os.environ.get("PROBE_EVENT", "null"))
def report(**fields):
    os.write(3, json.dumps(fields).encode() + b"\\n")
try:
{body}
except BaseException as _e:
    report(exception=type(_e).__name__, errno=getattr(_e, "errno", None), message=str(_e))
"""
)

HANDLER = (
    PRELUDE
    + """
_reports = []
def report(**fields):
    _reports.append(fields)
def handler(event, context):
    _reports.clear()
    try:
{body}
    except BaseException as _e:
        report(exception=type(_e).__name__, errno=getattr(_e, "errno", None), message=str(_e))
    return _reports
"""
)


class Outcome(msgspec.Struct):
    """What a snippet did, as seen from outside the sandbox."""

    reports: list[dict]
    status: int | None  # the worker's raw wait status
    oom_killed: bool
    timed_out: bool
    peak_memory_bytes: int | None

    @property
    def last(self) -> dict:
        return self.reports[-1] if self.reports else {}

    @property
    def exit_code(self) -> int | None:
        if self.status is not None and os.WIFEXITED(self.status):
            return os.WEXITSTATUS(self.status)
        return None

    @property
    def signal(self) -> int | None:
        if self.status is not None and os.WIFSIGNALED(self.status):
            return os.WTERMSIG(self.status)
        return None


def script(snippet: str) -> str:
    return RUNNER.replace("{body}", textwrap.indent(textwrap.dedent(snippet).strip("\n"), "    "))


def as_handler(snippet: str) -> str:
    """The snippet as a Lambda handler module (app.py) returning its reports."""
    return HANDLER.replace("{body}", textwrap.indent(textwrap.dedent(snippet).strip("\n"), "        "))


def detached_tmpfs(attrs: int = 0) -> int:
    """An fd of a new tmpfs mounted nowhere (fsopen + fsmount with these
    MOUNT_ATTR_* flags), like a prepared root's but not one: what a sandbox
    must refuse as its root."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fs = libc.syscall(ctypes.c_long(430), b"tmpfs", ctypes.c_uint(1))  # fsopen, FSOPEN_CLOEXEC
    assert fs >= 0, os.strerror(ctypes.get_errno())
    try:
        assert libc.syscall(ctypes.c_long(431), ctypes.c_int(fs), ctypes.c_uint(6), None, None, ctypes.c_int(0)) == 0  # CMD_CREATE
        mnt = libc.syscall(ctypes.c_long(432), ctypes.c_int(fs), ctypes.c_uint(1), ctypes.c_uint(attrs))  # fsmount
        assert mnt >= 0, os.strerror(ctypes.get_errno())
        return mnt
    finally:
        os.close(fs)


def make_spec(code_dir: str, **overrides) -> SandboxSpec:
    fields = {"instance_id": f"t-{uuid.uuid4().hex[:16]}", "function_name": "probe", "code_dir": code_dir}
    fields.update(overrides)
    return SandboxSpec(**fields)


def start(backend, python: str, code_dir: str, snippet: str, *, event=None, **spec_overrides):
    """A running sandbox executing the snippet; the caller destroys it."""
    spec = make_spec(code_dir, **spec_overrides)
    env = {"PROBE_EVENT": json.dumps(event)}
    return backend.spawn_command(spec, [python, "-I", "-S", "-c", script(snippet)], env)


def read_one(sandbox) -> dict:
    """The next report() line, waiting as long as it takes."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = sandbox.control.recv(4096)
        assert chunk, "the sandbox closed its control socket"
        buf += chunk
    return json.loads(buf)


def read_reports(sandbox, timeout_s: float) -> tuple[list[dict], bool]:
    """JSON lines until the sandbox closes its control socket, or timeout."""
    buf = b""
    deadline = time.monotonic() + timeout_s
    fd = sandbox.control.fileno()
    timed_out = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
    return [json.loads(line) for line in buf.splitlines() if line.strip()], timed_out


def run(backend, python: str, code_dir: str, snippet: str, *, timeout_s: float = 20.0, event=None, **spec_overrides) -> Outcome:
    """Run the snippet to completion (or timeout_s), destroy the sandbox,
    and report everything observed."""
    sandbox = start(backend, python, code_dir, snippet, event=event, **spec_overrides)
    try:
        reports, timed_out = read_reports(sandbox, timeout_s)
        if timed_out:
            sandbox.kill()
        # The kernel counts an OOM kill before the victim's socket closes.
        oom = sandbox.oom_killed()
        peak = sandbox.peak_memory_bytes()
    finally:
        status = sandbox.destroy()
    return Outcome(reports=reports, status=status, oom_killed=oom, timed_out=timed_out, peak_memory_bytes=peak)


SPINNER = """
import threading
spins = 0
def spin():
    global spins
    while True:
        spins += 1
threading.Thread(target=spin, daemon=True).start()
while True:
    report(spins=spins)
    if not os.read(3, 1):
        break
"""


def cpu_ns(pids: list[int]) -> int:
    """Time on CPU of every thread of these processes (schedstat, in ns)."""
    total = 0
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def fully_frozen(sandbox) -> bool:
    """Every task of the sandbox has stopped (freezing takes a moment)."""
    group = sandbox.cgroup
    if hasattr(group, "dirs"):  # v1
        with open(os.path.join(group.dirs["freezer"], "freezer.state")) as f:
            return f.read().strip() == "FROZEN"
    with open(os.path.join(group.path, "cgroup.events")) as f:
        return "frozen 1" in f.read().split("\n")


def check_freeze_stops_a_spinner_and_thaw_resumes_it(sandbox) -> None:
    """A sandbox running SPINNER: frozen, it gets no CPU at all; thawed, it
    goes on from where it stood (cgroup v1 and v2 alike)."""
    from helpers import wait_for

    first = read_one(sandbox)["spins"]
    pids = sandbox.cgroup.pids()
    assert sandbox.freeze() is True
    wait_for(lambda: fully_frozen(sandbox))
    before = cpu_ns(pids)
    time.sleep(0.3)  # time passes; what is checked is that the spinner gets none of it
    assert cpu_ns(pids) == before  # not a nanosecond on CPU while frozen
    sandbox.thaw()

    def spinner_moved_on() -> bool:
        sandbox.control.sendall(b"x")
        return read_one(sandbox)["spins"] > first

    # Runnable again: the spinner goes on from where it stood (on a busy
    # machine it may get its first slice only some while after the thaw).
    wait_for(spinner_moved_on)
    assert cpu_ns(pids) > before


def descriptors_on(path: str) -> int:
    """How many of this process's fds are open on path."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                count += 1
        except OSError:
            pass  # the listing's own fd, closed by now
    return count


def check_freeze_switch_is_held_once(sandbox, state: str) -> None:
    """Freezes and thaws, again and again, go through one descriptor on
    the cgroup's freeze file, opened on the first freeze. Each freeze still
    stops every process and each thaw lets them go."""
    from helpers import wait_for

    read_one(sandbox)
    assert descriptors_on(state) == 0  # never frozen: nothing held
    for _ in range(3):
        assert sandbox.freeze() is True
        wait_for(lambda: fully_frozen(sandbox))
        assert descriptors_on(state) == 1
        sandbox.thaw()
        wait_for(lambda: not fully_frozen(sandbox))
        assert descriptors_on(state) == 1


def check_freeze_switch_works_once_closed(sandbox, state: str) -> None:
    """Closed early (a stage outlives its sandbox, and is removed later):
    the switch still works, opening the file for each write, holding nothing."""
    from helpers import wait_for

    sandbox.cgroup.close()
    assert descriptors_on(state) == 0
    assert sandbox.freeze() is True
    wait_for(lambda: fully_frozen(sandbox))
    assert descriptors_on(state) == 0
    sandbox.thaw()
    wait_for(lambda: not fully_frozen(sandbox))
    assert descriptors_on(state) == 0
