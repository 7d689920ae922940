"""The seccomp allow-list: the filter's verdicts, read from the filter itself
(sandbox/seccomp.py runs its BPF program), and the kernel agreeing with
them inside a sandbox for every call the filter refuses.

The hostile rows (hostile_rows.py) try the dangerous calls one by one; the
runtimes' tests (test_sandbox_runtimes.py) show what must keep working."""

from __future__ import annotations

import errno
import os
import platform

import pytest
import sandbox_probe

from lambdalet.sandbox import seccomp

ARCH = platform.machine()
# The calls these tests name, by architecture (from 424 on, shared).
NUMBERS = {
    "x86_64": dict(
        read=0,
        write=1,
        openat=257,
        mmap=9,
        futex=202,
        epoll_pwait=281,
        clone=56,
        clone3=435,
        socket=41,
        socketpair=53,
        ioctl=16,
        prctl=157,
        personality=135,
        mount=165,
        ptrace=101,
        io_uring_setup=425,
        sync=162,
        syncfs=306,
        sysinfo=99,
        membarrier=324,
        rseq=334,
        uname=63,
        kill=62,
    ),
    "aarch64": dict(
        read=63,
        write=64,
        openat=56,
        mmap=222,
        futex=98,
        epoll_pwait=22,
        clone=220,
        clone3=435,
        socket=198,
        socketpair=199,
        ioctl=29,
        prctl=167,
        personality=92,
        mount=40,
        ptrace=117,
        io_uring_setup=425,
        sync=81,
        syncfs=267,
        sysinfo=179,
        membarrier=283,
        rseq=293,
        uname=160,
        kill=129,
    ),
}
NR = {
    **NUMBERS.get(ARCH, {}),
    "listmount": 458,
    "statmount": 457,
    "open_tree_attr": 467,
    "mseal": 462,
    "landlock_create_ruleset": 444,
    "memfd_secret": 447,
}

ALLOWED = seccomp.Verdict(True, 0)


def refused(err: int) -> seccomp.Verdict:
    return seccomp.Verdict(False, err)


CLONE_THREAD_FLAGS = 0x3D0F00  # what glibc's pthread_create passes
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWTIME = 0x10000000, 0x00020000, 0x00000080
SIGCHLD = 17
AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET, AF_VSOCK, AF_ALG = 1, 2, 10, 16, 17, 40, 38

CASES = [
    # plain calls
    ("read", (), ALLOWED),
    ("openat", (), ALLOWED),
    ("mmap", (), ALLOWED),
    ("futex", (), ALLOWED),
    ("sysinfo", (), ALLOWED),
    ("membarrier", (), ALLOWED),
    ("rseq", (), ALLOWED),
    ("mseal", (), ALLOWED),
    # known and refused
    ("mount", (), refused(errno.EPERM)),
    ("ptrace", (), refused(errno.EPERM)),
    ("io_uring_setup", (), refused(errno.EPERM)),
    ("listmount", (), refused(errno.EPERM)),
    ("statmount", (), refused(errno.EPERM)),
    ("open_tree_attr", (), refused(errno.EPERM)),
    # nobody listed them: "not implemented", so programs take their fallbacks
    ("landlock_create_ruleset", (), refused(errno.ENOSYS)),
    ("memfd_secret", (), refused(errno.ENOSYS)),
    ("clone3", (), refused(errno.ENOSYS)),
    # clone: threads and fork, never namespaces
    ("clone", (CLONE_THREAD_FLAGS,), ALLOWED),
    ("clone", (SIGCHLD,), ALLOWED),
    ("clone", (CLONE_NEWUSER | SIGCHLD,), refused(errno.EPERM)),
    ("clone", (CLONE_NEWNS,), refused(errno.EPERM)),
    # socket families
    ("socket", (AF_UNIX, 1, 0), ALLOWED),
    ("socket", (AF_INET, 2, 0), ALLOWED),
    ("socket", (AF_INET6, 1, 0), ALLOWED),
    ("socket", (AF_NETLINK, 3, 0), ALLOWED),
    ("socket", (AF_NETLINK, 2, 15), refused(errno.EPROTONOSUPPORT)),  # NETLINK_KOBJECT_UEVENT
    ("socket", (AF_NETLINK, 3, 4), refused(errno.EPROTONOSUPPORT)),  # NETLINK_SOCK_DIAG
    ("socket", (AF_VSOCK, 1, 0), refused(errno.EAFNOSUPPORT)),
    ("socket", (AF_PACKET, 3, 0), refused(errno.EAFNOSUPPORT)),
    ("socket", (AF_ALG, 5, 0), refused(errno.EAFNOSUPPORT)),
    ("socketpair", (AF_UNIX, 1, 0), ALLOWED),
    ("socketpair", (AF_VSOCK, 1, 0), refused(errno.EAFNOSUPPORT)),
    # the upper half of a 64-bit argument is not the kernel's business here
    ("socket", (AF_INET | (1 << 32), 1, 0), ALLOWED),
    # ioctl: terminals only
    ("ioctl", (0, 0x541B), ALLOWED),
    ("ioctl", (0, 0x5412), refused(errno.EPERM)),
    ("ioctl", (0, 0x541C), refused(errno.EPERM)),
    ("ioctl", (0, 0x5423), refused(errno.EPERM)),
    # prctl: a process's own settings
    ("prctl", (15,), ALLOWED),
    ("prctl", (4,), ALLOWED),
    ("prctl", (22,), ALLOWED),
    ("prctl", (38,), ALLOWED),
    ("prctl", (0x53564D41,), ALLOWED),
    ("prctl", (35,), refused(errno.EINVAL)),  # PR_SET_MM
    ("prctl", (67,), refused(errno.EINVAL)),
    ("prctl", (0x59616D61,), refused(errno.EINVAL)),  # KSM, PR_SET_PTRACER
    # personality: query and uname flavours only
    ("personality", (0xFFFFFFFF,), ALLOWED),
    ("personality", (0,), ALLOWED),
    ("personality", (0x0400000,), refused(errno.EPERM)),
    ("personality", (0x0040000,), refused(errno.EPERM)),
    # sync: answered without flushing the host's disks
    ("sync", (), refused(0)),
    ("syncfs", (3,), refused(0)),
]


@pytest.fixture(scope="module")
def program():
    if ARCH not in NUMBERS:
        pytest.skip(f"no syscall table for {ARCH} in this test")
    return seccomp.program()


@pytest.mark.parametrize("name,args,expected", CASES, ids=[f"{c[0]}{c[1]}" for c in CASES])
def test_verdict(program, name, args, expected):
    assert seccomp.run(program, NR[name], args) == expected


def test_numbers_beyond_the_table_and_other_abis_are_not_implemented(program):
    for nr in range(470, 1200):
        assert seccomp.run(program, nr) == refused(errno.ENOSYS), nr
    if ARCH == "x86_64":
        # x32 (bit 30) and i386 (another audit arch): their numbers mean other calls.
        assert seccomp.run(program, NR["read"] | 0x40000000) == refused(errno.ENOSYS)
        assert seccomp.run(program, 3, arch=0x40000003) == refused(errno.ENOSYS)


def test_the_filter_is_an_allow_list_of_a_few_hundred_calls(program):
    verdicts = [seccomp.run(program, nr) for nr in range(0, 470)]
    allowed = sum(v.allowed for v in verdicts)
    assert allowed == seccomp.allowed_count() + 3  # + clone, ioctl and personality with zero arguments
    assert 200 < allowed < 320
    assert len(program) < 4096  # BPF_MAXINSNS


def test_the_kernel_refuses_what_the_filter_says(backend, python, code_dir, program):
    """Every number the filter refuses, called with zero arguments inside a
    sandbox, fails with the filter's errno: the program the kernel runs is
    the one the tests read."""
    refusals = {nr: v.errno for nr in range(0, 600) if not (v := seccomp.run(program, nr)).allowed}
    outcome = sandbox_probe.run(
        backend,
        python,
        code_dir,
        """
report(errnos={nr: try_syscall(nr, 0, 0, 0, 0, 0, 0) for nr in event['numbers']})
""",
        event={"numbers": sorted(refusals)},
    )
    assert "exception" not in outcome.last and not outcome.timed_out, (outcome.reports, outcome.status)
    got = {int(nr): err for nr, err in outcome.last["errnos"].items()}
    assert got == refusals


DUMP = r"""
#include "seccomp.h"
#include <stdio.h>
int main(void) {
    const unsigned char *p;
    int n = ll_seccomp_program(&p);
    if (n < 0)
        return 1;
    fwrite(p, 8, (size_t)n, stdout);
    return 0;
}
"""


def _names(header: str) -> dict[str, int]:
    import re

    with open(header) as f:
        return {m.group(2): int(m.group(3)) for m in re.finditer(r"#define __NR(3264)?_(\w+) (\d+)", f.read())}


def test_the_aarch64_filter_decides_as_the_x86_64_one(tmp_path):
    """The other architecture's build of csrc/seccomp.c (its own numbers,
    none of the legacy calls), run under qemu: for every call both have, the
    same verdict. Needs a cross compiler and qemu-user from Debian."""
    import shutil
    import struct
    import subprocess

    import lambdalet.csrc

    if ARCH != "x86_64":
        pytest.skip("compares an aarch64 build with the native x86_64 one")
    cc, qemu = shutil.which("aarch64-linux-gnu-gcc"), shutil.which("qemu-aarch64")
    x86_h, arm_h = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/aarch64-linux-gnu/include/asm-generic/unistd.h"
    if not (cc and qemu and os.path.exists(arm_h)):
        pytest.skip("needs aarch64-linux-gnu-gcc and qemu-aarch64 (apt-get install gcc-aarch64-linux-gnu qemu-user)")
    csrc = os.path.dirname(lambdalet.csrc.__file__)
    (tmp_path / "dump.c").write_text(DUMP)
    subprocess.run(
        [
            cc,
            "-static",
            "-O2",
            "-std=gnu11",
            "-D_GNU_SOURCE",
            "-I",
            csrc,
            "-o",
            str(tmp_path / "dump"),
            str(tmp_path / "dump.c"),
            os.path.join(csrc, "seccomp.c"),
            "-lpthread",
        ],
        check=True,
    )
    raw = subprocess.run([qemu, str(tmp_path / "dump")], check=True, capture_output=True).stdout
    arm = [struct.unpack_from("=HBBI", raw, i * 8) for i in range(len(raw) // 8)]
    native = seccomp.program()
    x86, aarch64 = _names(x86_h), _names(arm_h)
    aarch64["newfstatat"] = aarch64.pop("fstatat")  # the same call, named apart
    shared = sorted(set(x86) & set(aarch64))
    assert len(shared) > 250
    differ = {n: (str(seccomp.run(native, x86[n])), str(seccomp.run(arm, aarch64[n], arch=seccomp.AUDIT_ARCH["aarch64"]))) for n in shared}
    assert {n: v for n, v in differ.items() if v[0] != v[1]} == {}
    # Its own ABI only: a 32-bit ARM call is not implemented, whatever its number.
    assert seccomp.run(arm, aarch64["read"], arch=0x40000028) == refused(errno.ENOSYS)
