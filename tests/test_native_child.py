"""The sandbox's first process runs between clone and exec in a copy of a
multithreaded server (csrc/spawn.c): a lock that another thread held at the
clone (malloc's, stdio's) stays held forever there. So everything reachable
from child_main may call only system-call wrappers and string functions that
take no lock. This reads the built extension's machine code (objdump) and
checks every libc function reachable from child_main against that list."""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap

import pytest

# Thin system-call wrappers and lock-free string and memory functions: what
# the child may call. A function joins this list only if it takes no lock
# and allocates nothing (see signal-safety(7)).
ALLOWED = frozenset(
    {
        "__errno_location",
        "__libc_current_sigrtmax",
        "_exit",
        "chdir",
        "chmod",
        "clone",
        "close",
        "dup2",
        "dup3",
        "execve",
        "fchmod",
        "fchmodat",
        "fcntl",
        "fork",
        "fstat",
        "fstatfs",
        "getrlimit",
        "ioctl",
        "kill",
        "lstat",
        "mkdir",
        "mkdirat",
        "mount",
        "open",
        "openat",
        "pivot_root",
        "poll",
        "prctl",
        "read",
        "recv",
        "send",
        "sethostname",
        "setrlimit",
        "sigaction",
        "sigemptyset",
        "sigfillset",
        "signalfd",
        "sigprocmask",
        "sigwaitinfo",
        "socket",
        "statfs",
        "symlink",
        "symlinkat",
        "syscall",
        "umount2",
        "unshare",
        "waitpid",
        "write",
        "memcpy",
        "memmove",
        "memset",
        "strlen",
        "strrchr",
        "strchr",
        "strcmp",
        # Called only when the stack protector found the stack smashed.
        "__stack_chk_fail",
    }
)

_FUNCTION = re.compile(r"^[0-9a-f]+ <([^>]+)>:$")
# A reference to a whole symbol: "<name>" or "<name@plt>" (never "<name+0x10>",
# a place inside a function or a datum).
_REFERENCE = re.compile(r"<([A-Za-z_][\w.]*?)(@plt)?>")


def call_graph(path: str) -> dict[str, set[str]]:
    """Each function of the object and the symbols its code refers to
    (calls, jumps, and addresses taken, as clone's entry point is)."""
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], check=True, capture_output=True, text=True).stdout
    graph: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in disassembly.splitlines():
        found = _FUNCTION.match(line)
        if found:
            current = graph.setdefault(found.group(1), set())
        elif current is not None and line.startswith(" "):
            current.update(name + plt for name, plt in _REFERENCE.findall(line))
    return graph


def libc_calls_from(graph: dict[str, set[str]], root: str) -> dict[str, list[str]]:
    """Every function outside the object reachable from root, with the
    chain of calls that reaches it."""
    paths = {root: [root]}
    todo = [root]
    outside: dict[str, list[str]] = {}
    while todo:
        name = todo.pop()
        for ref in graph.get(name, ()):
            target = ref.removesuffix("@plt")
            if target in graph:  # defined in the object (our own ll_* called through the PLT too)
                if target not in paths:
                    paths[target] = paths[name] + [target]
                    todo.append(target)
            elif ref.endswith("@plt"):
                outside.setdefault(_unfortified(target), paths[name] + [target])
    return outside


def _unfortified(name: str) -> str:
    """_FORTIFY_SOURCE's checked variants (__read_chk) stand for the call they check."""
    found = re.fullmatch(r"__(\w+)_chk", name)
    return found.group(1) if found and name != "__stack_chk_fail" else name


def _forbidden(outside: dict[str, list[str]]) -> dict[str, str]:
    # A sanitizer build (LAMBDALET_SANITIZE=1) calls its runtime everywhere.
    return {
        name: " -> ".join(chain) for name, chain in outside.items() if name not in ALLOWED and not name.startswith(("__asan_", "__ubsan_"))
    }


needs_objdump = pytest.mark.skipif(shutil.which("objdump") is None, reason="objdump (binutils) is not installed")


@needs_objdump
def test_the_child_side_of_spawn_calls_no_malloc_and_no_stdio():
    from lambdalet.csrc import _native

    graph = call_graph(_native.__file__)
    # child_main is kept out of line (spawn.c) so that its code is its own.
    assert "child_main" in graph, "child_main was inlined: mark it noinline again"
    outside = libc_calls_from(graph, "child_main")
    assert {"execve", "mount", "_exit"} <= outside.keys()  # the walk found the child's real calls
    assert _forbidden(outside) == {}


@needs_objdump
def test_the_check_finds_a_malloc_two_calls_deep(tmp_path):
    """The walk itself: a child that reaches malloc through a helper in
    another function is caught, with the chain that leads there."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    (tmp_path / "child.c").write_text(
        textwrap.dedent("""
        #include <stdlib.h>
        #include <unistd.h>
        __attribute__((noinline)) void *helper(int n) { return malloc((size_t)n); }
        __attribute__((noinline)) int child_main(int n) { void *p = helper(n); write(1, p, 1); _exit(0); }
        int entry(int n) { return child_main(n); }
    """)
    )
    so = tmp_path / "child.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(so), str(tmp_path / "child.c")], check=True)
    outside = libc_calls_from(call_graph(str(so)), "child_main")
    assert _forbidden(outside) == {"malloc": "child_main -> helper -> malloc"}
