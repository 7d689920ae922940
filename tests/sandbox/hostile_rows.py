"""The hostile-function table: what a malicious function tries, and the
safe outcome. Each row's snippet uses `report`, `try_syscall`, `NR` and
`event` (see sandbox_probe.py) and runs unchanged either straight in a
sandbox (test_sandbox_hostile.py) or deployed as a function through the
Lambda API (`sandbox_probe.as_handler`), whose payload is the report list.

`check(reports)` asserts the safe outcome from the reports alone. Rows
whose outcome is seen only from outside (an OOM kill, a timeout, the host
surviving) live in test_sandbox_limits.py, which uses the same runner.
"""

from __future__ import annotations

import ast
import errno
from collections.abc import Callable
from typing import NamedTuple

from lambdalet.sandbox.rootfs import PROC_FIXED

EPERM, ENOENT, EROFS, EACCES, ENOSYS = errno.EPERM, errno.ENOENT, errno.EROFS, errno.EACCES, errno.ENOSYS
EINVAL, EAFNOSUPPORT, EPROTONOSUPPORT = errno.EINVAL, errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT


class Row(NamedTuple):
    id: str
    snippet: str
    check: Callable[[list[dict]], None]
    event: dict | None = None
    x86_64_only: bool = False


def _last(reports: list[dict]) -> dict:
    assert reports, "the snippet reported nothing"
    return reports[-1]


def errno_is(*allowed: int) -> Callable[[list[dict]], None]:
    def check(reports: list[dict]) -> None:
        got = _last(reports).get("errno")
        assert got in allowed, f"errno {got}, expected one of {allowed}: {reports}"

    return check


def every_errno_is(allowed: int) -> Callable[[list[dict]], None]:
    def check(reports: list[dict]) -> None:
        results = _last(reports)["errnos"]
        bad = {k: v for k, v in results.items() if v != allowed}
        assert not bad, f"expected errno {allowed} for every call, got {bad}"

    return check


def every_errno_in(*allowed: int) -> Callable[[list[dict]], None]:
    def check(reports: list[dict]) -> None:
        results = _last(reports)["errnos"]
        bad = {k: v for k, v in results.items() if v not in allowed}
        assert results and not bad, f"expected one of {allowed} for every call, got {bad}"

    return check


def field_is(name: str, expected) -> Callable[[list[dict]], None]:
    def check(reports: list[dict]) -> None:
        assert _last(reports).get(name) == expected, reports

    return check


def holds(predicate: Callable[[dict], bool]) -> Callable[[list[dict]], None]:
    """A check that predicate(last report) is true."""

    def check(reports: list[dict]) -> None:
        assert predicate(_last(reports)), reports

    return check


def _syscalls(*names: str, args: tuple = ()) -> str:
    return f"report(errnos={{n: try_syscall(NR[n], *{args!r}) for n in {names!r} if n in NR}})"


def _open_fails(path: str, mode: str = "r") -> str:
    return f"""
try:
    with open({path!r}, {mode!r}) as f:
        data = f.read(64) if {mode!r} == "r" else f.write("x")
    report(errno=0, data=repr(data))
except OSError as e:
    report(errno=e.errno)
"""


def _status_zero(reports: list[dict]) -> None:
    status = _last(reports)["status"]
    for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[key], 16) == 0, (key, status[key])
    assert status["NoNewPrivs"] == "1"
    assert status["Seccomp"] == "2"


def _no_inherited_fds(last: dict) -> bool:
    """Only 0-2, the control channel (3) and the runtime's own log memfd."""
    extra = {fd: t for fd, t in last["fds"].items() if int(fd) > 3}
    return all(t.startswith("/memfd:lambdalet-") for t in extra.values())


def _own_pids_only(reports: list[dict]) -> None:
    r = _last(reports)
    assert set(r["alive"]) <= set(r["listed"]), r
    assert 1 in r["listed"] and len(r["listed"]) <= 4, r


def _host_file(path: str) -> str:
    with open(path) as f:
        return f.read()


def _not_the_hosts(path: str) -> Callable[[list[dict]], None]:
    """The sandbox read path and got something, but not what the host has."""

    def check(reports: list[dict]) -> None:
        last = _last(reports)
        assert last.get("errno") == 0, reports
        inside = ast.literal_eval(last["data"])
        assert inside.strip() and inside != _host_file(path), reports

    return check


def _sockets(*triples: tuple[int, int, int]) -> str:
    """Open each (family, type, protocol); report the errno per triple."""
    return f"""
import socket
errnos = {{}}
for family, kind, proto in {triples!r}:
    try:
        socket.socket(family, kind, proto).close()
        errnos[f'{{family}}/{{proto}}'] = 0
    except OSError as e:
        errnos[f'{{family}}/{{proto}}'] = e.errno
report(errnos=errnos)
"""


# Disk file systems whose mounts name a path of the host inside them.
_HOST_FS = {"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "nfs", "nfs4", "fuse", "9p", "virtiofs"}


def _mountinfo_reveals_no_host_path(reports: list[dict]) -> None:
    """A bind of a host directory shows that directory's path on the host
    (mountinfo's fourth field). Allowed only where the sandbox sees it at the
    same path anyway (/usr, the interpreter's prefix, /etc/ssl/certs)."""
    leaks = []
    for line in _last(reports)["mountinfo"].splitlines():
        fields = line.split()
        fstype = fields[fields.index("-") + 1]
        root, mount_point = fields[3], fields[4]
        if fstype in _HOST_FS and root != mount_point:
            leaks.append(f"{mount_point} <- {root}")
    assert not leaks, leaks


def _no_propagation(reports: list[dict]) -> None:
    """No mount of the sandbox's shares events with a mount elsewhere (the
    host's, another sandbox's, the prepared root it was cloned from): no
    shared:N or master:N among mountinfo's optional fields."""
    linked = [line for line in _last(reports)["mountinfo"].splitlines() if " shared:" in line or " master:" in line]
    assert not linked, linked


def _empty_or_missing(reports: list[dict]) -> None:
    r = _last(reports)
    assert r["errno"] in (ENOENT, EACCES, EPERM) or r.get("data") in ("''", "b''"), r


ROWS: list[Row] = [
    # --- files -----------------------------------------------------------
    Row("read-etc-shadow", _open_fails("/etc/shadow"), errno_is(ENOENT)),
    Row(
        "list-root-home",
        "report(root=sorted(os.listdir('/root')), home=os.path.exists('/home'), work=os.path.exists('/work'))",
        holds(lambda last: (last["root"] in ([], [".pyenv"])) and not last["home"] and not last["work"]),
    ),
    Row(
        "read-data-dir",
        "report(exists=os.path.exists(event['data_dir']))",
        field_is("exists", False),
        event={"data_dir": "/root/.local/share/lambdalet"},
    ),
    Row("write-usr", _open_fails("/usr/evil", "w"), errno_is(EROFS)),
    Row("write-root-dir", _open_fails("/evil", "w"), errno_is(EROFS)),
    Row("write-var-task", _open_fails("/var/task/evil", "w"), errno_is(EROFS)),
    # Every sandbox of a runtime mounts a clone of one prepared root: its
    # files are the same files in all of them, so none may be written.
    Row(
        "write-shared-root",
        """
errnos = {}
for path in ('/etc/passwd', '/etc/evil', '/dev/evil', '/var/evil', '/var/runtime/evil',
             '/var/runtime/lambdalet/runtime/evil', '/opt/evil', '/evil'):
    try:
        with open(path, 'a') as f:
            f.write('x')
        errnos[path] = 0
    except OSError as e:
        errnos[path] = e.errno
for path in ('/etc', '/dev', '/var/runtime', '/'):
    try:
        os.chmod(path, 0o777)
        errnos['chmod ' + path] = 0
    except OSError as e:
        errnos['chmod ' + path] = e.errno
report(errnos=errnos)
""",
        every_errno_in(EROFS, EPERM),
    ),
    Row("read-proc-kcore", _open_fails("/proc/kcore"), _empty_or_missing),
    Row("read-proc-keys", _open_fails("/proc/keys"), _empty_or_missing),
    Row("write-sysrq-trigger", _open_fails("/proc/sysrq-trigger", "w"), errno_is(ENOENT, EROFS, EACCES)),
    Row("write-proc-sys", _open_fails("/proc/sys/kernel/hostname", "w"), errno_is(EROFS, EACCES)),
    Row("open-dev-mem", _open_fails("/dev/mem"), errno_is(ENOENT)),
    Row(
        "mknod",
        """
try:
    os.mknod('/tmp/mem', 0o20600, os.makedev(1, 1))
    report(errno=0)
except OSError as e:
    report(errno=e.errno)
""",
        errno_is(EPERM),
    ),
    Row(
        "site-packages-hidden",
        """
import sysconfig
site = sysconfig.get_paths()['purelib']
report(listing=sorted(os.listdir(site)) if os.path.isdir(site) else [])
""",
        field_is("listing", []),
    ),
    # --- processes ---------------------------------------------------------
    Row(
        "list-proc",
        """
listed = sorted(int(p) for p in os.listdir('/proc') if p.isdigit())
alive = []
for pid in range(1, 32768):
    try:
        os.kill(pid, 0)
        alive.append(pid)
    except ProcessLookupError:
        pass
    except PermissionError:
        alive.append(pid)
report(listed=listed, alive=alive)
""",
        _own_pids_only,
    ),
    Row(
        "tamper-with-pid1",
        """
import signal, time
try:
    open('/proc/1/mem', 'r+b')
    mem = 0
except OSError as e:
    mem = e.errno
os.kill(1, signal.SIGKILL)  # PID 1 of a pid namespace ignores this from inside
os.kill(1, signal.SIGSTOP)
report(mem=mem, pid1_alive=os.path.exists('/proc/1/stat'),
       pid1_state=open('/proc/1/stat').read().rsplit(')', 1)[1].split()[0])
""",
        holds(lambda last: last["mem"] in (EACCES, EPERM) and last["pid1_alive"] and last["pid1_state"] != "T"),
    ),
    Row("ptrace-attach-init", "report(errno=try_syscall(NR['ptrace'], 16, 1, 0, 0))", errno_is(EPERM)),
    Row("ptrace-traceme", "report(errno=try_syscall(NR['ptrace'], 0, 0, 0, 0))", errno_is(EPERM)),
    Row("process-vm-kcmp", _syscalls("process_vm_readv", "process_vm_writev", "kcmp"), every_errno_is(EPERM)),
    # --- mounts and namespaces -----------------------------------------------
    Row("mount-umount", _syscalls("mount", "umount2", "pivot_root", "chroot"), every_errno_is(EPERM)),
    Row(
        "unshare-each-namespace",
        """
flags = dict(user=0x10000000, pid=0x20000000, net=0x40000000, mnt=0x00020000, uts=0x04000000,
             ipc=0x08000000, cgroup=0x02000000)
report(errnos={k: try_syscall(NR['unshare'], v) for k, v in flags.items()})
""",
        every_errno_is(EPERM),
    ),
    Row("setns", "report(errno=try_syscall(NR['setns'], os.open('/proc/self/ns/user', os.O_RDONLY), 0))", errno_is(EPERM)),
    Row("clone-new-user", "report(errno=try_syscall(NR['clone'], 0x10000000 | 17, 0, 0, 0, 0))", errno_is(EPERM)),
    Row("clone3", "report(errno=try_syscall(NR['clone3'], 0, 0))", errno_is(ENOSYS)),
    Row(
        "nested-user-namespace-tool",
        """
import subprocess
p = subprocess.run(['unshare', '-Ur', 'id', '-u'], capture_output=True, text=True)
report(code=p.returncode, out=p.stdout.strip())
""",
        holds(lambda last: last["code"] != 0),
    ),
    # --- syscalls ----------------------------------------------------------
    Row(
        "kernel-facing-syscalls",
        _syscalls(
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "perf_event_open",
            "userfaultfd",
            "init_module",
            "finit_module",
            "delete_module",
            "syslog",
            "kexec_load",
            "reboot",
            "swapon",
            "swapoff",
            "acct",
            "iopl",
            "ioperm",
            "open_by_handle_at",
        ),
        every_errno_is(EPERM),
    ),
    Row("x32-abi", "report(errno=try_syscall(NR['getpid'] | 0x40000000))", errno_is(ENOSYS), x86_64_only=True),
    Row(
        "int-0x80",
        """
import mmap
# mov eax, 20 (i386 getpid); int 0x80; ret  -- the result comes back in eax
code = bytes([0xb8, 20, 0, 0, 0, 0xcd, 0x80, 0xc3])
m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
m.write(code)
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
fn = ctypes.CFUNCTYPE(ctypes.c_int)(addr)
rc = fn()
report(errno=-rc if rc < 0 else 0)
""",
        errno_is(ENOSYS),
        x86_64_only=True,
    ),
    Row(
        "tioclinux-tiocsetd",
        "report(errnos={hex(cmd): try_syscall(NR['ioctl'], 0, cmd, 0) for cmd in (0x541C, 0x5423)})",
        every_errno_is(EPERM),
    ),
    Row("tiocsti", "report(errno=try_syscall(NR['ioctl'], 0, 0x5412, ctypes.addressof(ctypes.c_char(b'x'))))", errno_is(EPERM)),
    # The allow-list: calls nobody listed are refused, new ones included.
    Row("new-mount-syscalls", _syscalls("listmount", "statmount", "open_tree_attr"), every_errno_in(EPERM, ENOSYS)),
    # What builds and clones the prepared root: the worker may not clone,
    # move or reconfigure a mount (its own root included).
    Row(
        "mount-api-syscalls",
        _syscalls("open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr"),
        every_errno_in(EPERM, ENOSYS),
    ),
    Row(
        "unlisted-syscalls",
        _syscalls("memfd_secret", "cachestat", "lsm_get_self_attr", "lsm_list_modules", "getxattrat", "file_getattr"),
        every_errno_is(ENOSYS),
    ),
    Row("ksm-page-merging", "report(errno=try_syscall(NR['prctl'], 67, 1, 0, 0, 0))", errno_is(EINVAL)),
    Row("personality-read-implies-exec", "report(errno=try_syscall(NR['personality'], 0x0400000))", errno_is(EPERM)),
    # --- privileges --------------------------------------------------------
    Row(
        "capabilities-and-seccomp",
        """
status = dict(line.split(':', 1) for line in open('/proc/self/status').read().splitlines())
report(status={k: v.strip() for k, v in status.items()})
""",
        _status_zero,
    ),
    Row(
        "identity",
        "report(ids=[os.getuid(), os.geteuid(), os.getgid(), os.getegid()], groups=os.getgroups())",
        holds(lambda last: last["ids"] == [993, 993, 990, 990] and last["groups"] == []),
    ),
    Row(
        "setuid-binary",
        """
import subprocess
p = subprocess.run(['su', '-c', 'id -u'], capture_output=True, text=True, stdin=subprocess.DEVNULL)
report(code=p.returncode, out=p.stdout.strip())
""",
        holds(lambda last: last["out"] != "0"),
    ),
    # --- leaks -------------------------------------------------------------
    Row(
        "inherited-fds",
        """
targets = {}
for fd in sorted(int(fd) for fd in os.listdir('/proc/self/fd')):
    try:
        targets[fd] = os.readlink(f'/proc/self/fd/{fd}')
    except OSError:
        pass  # the fd of the listing itself, closed by now
report(fds=targets)
""",
        holds(_no_inherited_fds),
    ),
    Row(
        "sethostname",
        """
import socket
report(errno=try_syscall(NR['sethostname'], ctypes.addressof(ctypes.create_string_buffer(b'evil')), 4),
       hostname=socket.gethostname())
""",
        holds(lambda last: last["errno"] == EPERM and last["hostname"] == "lambdalet"),
    ),
    Row("read-proc-cmdline", _open_fails("/proc/cmdline").replace("f.read(64)", "f.read()"), _not_the_hosts("/proc/cmdline")),
    Row(
        "read-boot-id",
        _open_fails("/proc/sys/kernel/random/boot_id").replace("f.read(64)", "f.read()"),
        _not_the_hosts("/proc/sys/kernel/random/boot_id"),
    ),
    Row(
        "read-loadavg", _open_fails("/proc/loadavg").replace("f.read(64)", "f.read()"), field_is("data", repr(PROC_FIXED["/proc/loadavg"]))
    ),
    Row(
        "read-host-activity",
        """
seen = {}
for path in ('/proc/interrupts', '/proc/softirqs', '/proc/pressure/cpu', '/proc/diskstats', '/proc/partitions',
             '/proc/swaps', '/proc/consoles', '/proc/modules'):
    try:
        with open(path) as f:
            seen[path] = f.read()
    except OSError as e:
        seen[path] = e.errno
report(seen=seen)
""",
        holds(lambda last: all(v in ("", ENOENT) for v in last["seen"].values())),
    ),
    Row("mountinfo-host-paths", "report(mountinfo=open('/proc/self/mountinfo').read())", _mountinfo_reveals_no_host_path),
    Row("mount-propagation", "report(mountinfo=open('/proc/self/mountinfo').read())", _no_propagation),
    # --- network -----------------------------------------------------------
    # AF_VSOCK reaches the hypervisor's sockets (the VM's own vsock here).
    Row("vsock-socket", _sockets((40, 1, 0), (40, 2, 0)), every_errno_in(EPERM, EAFNOSUPPORT)),
    Row(
        "other-socket-families",
        _sockets((17, 3, 0), (38, 5, 0), (15, 3, 2), (30, 2, 0), (29, 3, 1), (21, 5, 0), (44, 3, 0), (31, 1, 0)),
        every_errno_is(EAFNOSUPPORT),
    ),
    # Netlink uevents carry the host's device events; only NETLINK_ROUTE
    # (the sandbox's own interfaces) stays.
    Row("uevent-netlink", _sockets((16, 2, 15)), every_errno_in(EPERM, EPROTONOSUPPORT, EAFNOSUPPORT)),
    Row("other-netlink", _sockets((16, 3, 4), (16, 3, 9), (16, 3, 12), (16, 3, 16), (16, 3, 6)), every_errno_is(EPROTONOSUPPORT)),
    Row("interfaces", "import socket\nreport(names=sorted(n for _, n in socket.if_nameindex()))", field_is("names", ["lo"])),
    Row(
        "connect-host-services",
        """
import socket
results = {}
for host, port in [('127.0.0.1', event['port']), ('169.254.169.254', 80), ('10.0.0.1', 80)]:
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        results[f'{host}:{port}'] = 0
    except OSError as e:
        results[f'{host}:{port}'] = e.errno or -1
    finally:
        s.close()
report(results=results)
""",
        holds(lambda last: all(v != 0 for v in last["results"].values())),
        event={"port": 9000},
    ),
    # --- the platform's own processes ------------------------------------------
    # PID 1 takes the sandbox down on SIGIO only if its lifeline has hung up:
    # the function's own SIGIO is forwarded to it as any other signal, and
    # PID 1's lifeline (a pipe only the server may write) cannot be reopened.
    Row(
        "sigio-to-pid1",
        """
import signal, time
got = []
signal.signal(signal.SIGIO, lambda *a: got.append(True))
os.kill(1, signal.SIGIO)
deadline = time.monotonic() + 10
while not got and time.monotonic() < deadline:
    time.sleep(0.01)
reopened = {}
for fd in range(16):
    for mode in (os.O_RDONLY, os.O_WRONLY):
        try:
            os.close(os.open(f'/proc/1/fd/{fd}', mode))
            reopened[f'{fd}/{mode}'] = 0
        except OSError as e:
            reopened[f'{fd}/{mode}'] = e.errno
report(forwarded=bool(got), reopened=[k for k, v in reopened.items() if v == 0])
""",
        holds(lambda last: last["forwarded"] and last["reopened"] == []),
    ),
    # The runtime zygote forks every worker; killing it once took every
    # sandbox down. A function must not even see it (the tests then kill it
    # from outside, by its pid: test_zygote.py, test_zygote_server.py).
    Row(
        "kill-the-zygote",
        """
import signal
seen = []
for p in os.listdir('/proc'):
    if not p.isdigit() or int(p) in (1, os.getpid()):
        continue
    try:
        with open(f'/proc/{p}/cmdline', 'rb') as f:
            cmdline = f.read()
    except OSError:
        continue
    if b'zygote' in cmdline:
        seen.append(int(p))
        try:
            os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass
report(seen=seen)
""",
        field_is("seen", []),
    ),
]

# Handler snippets and modules for what only a forked worker (not an exec'd
# probe) can show, and whose outcome only the pool or the server can see.

# Scans the function's own memory for a string that only another function's
# spawn could have put there (its code digest or code path). The needle
# arrives in two halves, event["a"] and event["b"], and is never built
# whole here, so the only whole copy the scan can meet is a leaked one.
SCAN_MEMORY = """
a, b = event['a'].encode(), event['b'].encode()
found, regions = [], 0
CHUNK = 1 << 20
mem = os.open('/proc/self/mem', os.O_RDONLY)
try:
    with open('/proc/self/maps') as f:
        maps = f.read().splitlines()
    for line in maps:
        fields = line.split(None, 5)
        if fields[1][0] != 'r':
            continue
        start, end = (int(x, 16) for x in fields[0].split('-'))
        regions += 1
        for at in range(start, end, CHUNK):
            try:
                data = os.pread(mem, min(CHUNK + len(a) + len(b), end - at), at)
            except OSError:
                break  # [vvar] and the like
            i = data.find(a)
            while i >= 0:
                if data[i + len(a):i + len(a) + len(b)] == b:
                    found.append(fields[5] if len(fields) > 5 else 'anonymous')
                i = data.find(a, i + 1)
finally:
    os.close(mem)
report(found=found, regions=regions)
"""


def needle_halves(needle: str) -> dict[str, str]:
    """SCAN_MEMORY's event for needle."""
    half = len(needle) // 2
    return {"a": needle[:half], "b": needle[half:]}


# A handler module whose worker exits (status 1) right after it has answered
# event "exit-after": a thread waits until the main thread is back in
# recvfrom() on the control socket, waiting for the next call, then exits.
EXIT_AFTER_RETURNING = """
import os, threading, time
calls = 0
RECVFROM = {'45', '207'}  # x86_64, aarch64

def _exit_once_idle():
    me = os.getpid()
    while True:
        with open(f'/proc/self/task/{me}/syscall') as f:
            if f.read().split()[0] in RECVFROM:
                os._exit(1)
        time.sleep(0.001)

def handler(event, context):
    global calls
    calls += 1
    if event == 'exit-after':
        threading.Thread(target=_exit_once_idle, daemon=True).start()
    if event == 'exit-now':
        os._exit(1)
    return {'calls': calls, 'pid_ns': os.readlink('/proc/self/ns/pid')}
"""
