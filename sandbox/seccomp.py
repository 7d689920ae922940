"""What the sandbox's seccomp filter decides, read from the filter itself.

csrc/seccomp.c builds the filter; this module runs that same BPF program
on a system call number and arguments, without a sandbox and without the
kernel, so that `lambdalet doctor` and the tests can say what it allows.
Only the instructions the builder emits are understood (loads of
seccomp_data words, constant jumps, returns); anything else is an error.
"""

from __future__ import annotations

import errno
import platform
import struct
from typing import NamedTuple

from lambdalet.csrc._native import ffi, lib

# <linux/audit.h>
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

# <linux/filter.h> and <linux/seccomp.h>
_LD_W_ABS = 0x00 | 0x00 | 0x20
_JMP, _JA, _JEQ, _JGT, _JGE, _JSET, _K = 0x05, 0x00, 0x10, 0x20, 0x30, 0x40, 0x00
_RET_K = 0x06 | 0x00
RET_ALLOW = 0x7FFF0000
RET_ERRNO = 0x00050000
_ACTION_MASK = 0xFFFF0000
_DATA_MASK = 0x0000FFFF


class Verdict(NamedTuple):
    allowed: bool
    errno: int  # 0 when allowed, or the errno the call fails with (0: "succeeds, not run")

    def __str__(self) -> str:
        if self.allowed:
            return "allowed"
        return f"refused ({errno.errorcode.get(self.errno, self.errno)})" if self.errno else "answered 0, not run"


def program() -> list[tuple[int, int, int, int]]:
    """The filter's instructions as (code, jt, jf, k). Raises OSError when
    the filter cannot be built."""
    out = ffi.new("const unsigned char **")
    n = lib.ll_seccomp_program(out)
    if n < 0:
        raise OSError(-n, "seccomp filter cannot be built")
    raw = bytes(ffi.buffer(out[0], n * 8))
    return [struct.unpack_from("=HBBI", raw, i * 8) for i in range(n)]


def _seccomp_data(nr: int, arch: int, args: tuple[int, ...]) -> bytes:
    padded = (tuple(args) + (0,) * 6)[:6]
    return struct.pack("=iIQ6Q", nr, arch, 0, *(a & 0xFFFFFFFFFFFFFFFF for a in padded))


def run(insns: list[tuple[int, int, int, int]], nr: int, args: tuple[int, ...] = (), arch: int | None = None) -> Verdict:
    """The verdict of the filter for one call, as the kernel would reach it."""
    if arch is None:
        arch = AUDIT_ARCH[platform.machine()]
    data = _seccomp_data(nr, arch, args)
    acc = 0
    pc = 0
    for _ in range(len(insns) + 1):  # forward jumps only: each step advances
        code, jt, jf, k = insns[pc]
        if code == _LD_W_ABS:
            acc = struct.unpack_from("=I", data, k)[0]
            pc += 1
        elif code == _JMP | _JA:
            pc += 1 + k
        elif (code & 0x07) == _JMP and (code & 0x08) == _K:
            op = code & 0xF0
            taken = {_JEQ: acc == k, _JGT: acc > k, _JGE: acc >= k, _JSET: bool(acc & k)}[op]
            pc += 1 + (jt if taken else jf)
        elif code == _RET_K:
            action = k & _ACTION_MASK
            if action == RET_ALLOW:
                return Verdict(True, 0)
            if action == RET_ERRNO:
                return Verdict(False, k & _DATA_MASK)
            raise ValueError(f"unexpected seccomp action {k:#x}")
        else:
            raise ValueError(f"unexpected BPF instruction {code:#x} at {pc}")
    raise ValueError("the filter ran off its end")


def verdict(nr: int, args: tuple[int, ...] = ()) -> Verdict:
    return run(program(), nr, args)


def allowed_count() -> int:
    n = lib.ll_seccomp_allowed_count()
    if n < 0:
        raise OSError(-n, "seccomp filter cannot be built")
    return n


# Socket families and netlink protocols worth naming, and socket(2)'s number.
FAMILIES = {
    1: "AF_UNIX",
    2: "AF_INET",
    10: "AF_INET6",
    16: "AF_NETLINK",
    17: "AF_PACKET",
    38: "AF_ALG",
    40: "AF_VSOCK",
    15: "AF_KEY",
    29: "AF_CAN",
    30: "AF_TIPC",
    31: "AF_BLUETOOTH",
    44: "AF_XDP",
}
NETLINK_PROTOCOLS = {0: "route", 4: "sock_diag", 6: "xfrm", 9: "audit", 12: "netfilter", 15: "uevent", 16: "generic"}
SOCKET_NR = {"x86_64": 41, "aarch64": 198}


def socket_policy(insns: list[tuple[int, int, int, int]] | None = None) -> tuple[list[str], list[str]]:
    """(families a sandbox may open, netlink protocols it may use), as the
    filter decides them."""
    insns = program() if insns is None else insns
    nr = SOCKET_NR[platform.machine()]
    families = [name for fam, name in sorted(FAMILIES.items()) if run(insns, nr, (fam, 1, 0)).allowed]
    netlink = [name for proto, name in sorted(NETLINK_PROTOCOLS.items()) if run(insns, nr, (16, 3, proto)).allowed]
    return families, netlink


def summary() -> str:
    """One line for the server's start-up and `lambdalet doctor`."""
    insns = program()
    families, netlink = socket_policy(insns)
    named = ", ".join(f"{f} ({', '.join(netlink)} only)" if f == "AF_NETLINK" else f for f in families)
    return (
        f"seccomp allow-list: {allowed_count()} system calls, a few more by their arguments, every other "
        f"one refused (known ones EPERM, the rest ENOSYS); sockets: {named}"
    )
