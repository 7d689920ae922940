"""What the sandbox's seccomp allow-list costs, measured beside no filter.

Each figure is an A/B pair taken in alternation, round after round, so
that the host's load falls on both sides alike, and each side reports its
least disturbed round (as metering.py does):

1. system calls, from a small C program linked with csrc/seccomp.c: in
   each round one forked child measures with no filter and the next
   installs the sandbox's filter first. getppid is allowed outright
   (kernels from 5.11 then skip the filter through their per-call cache);
   ioctl(FIONREAD) and socket+close are decided by their arguments, so the
   filter runs; a call nobody listed is refused by the filter (by the
   kernel, without it);
2. a file-heavy Python loop (stat, open, read, close), in forked children
   of this process with and without the filter (the extension installs it);
3. a sandbox's start and end (/bin/true), with and without the filter.

`python -m bench --only w` prints them; run() returns them.
"""

from __future__ import annotations

import ctypes
import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import uuid

import lambdalet.csrc

PROGRAM = r"""
#include "seccomp.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static void measure(long n, int filtered) {
    if (filtered && (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || ll_seccomp_install() < 0))
        _exit(2);
    int p[2], avail;
    if (pipe(p) < 0)
        _exit(3);
    double t0 = now();
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    double t1 = now();
    for (long i = 0; i < n; i++) ioctl(p[0], FIONREAD, &avail);
    double t2 = now();
    for (long i = 0; i < n / 10; i++) close(socket(AF_INET, SOCK_DGRAM, 0));
    double t3 = now();
    for (long i = 0; i < n; i++) syscall(1000);
    double t4 = now();
    printf("{\"filtered\": %d, \"getppid\": %.1f, \"ioctl\": %.1f, \"socket_close\": %.1f, \"unlisted\": %.1f}\n",
           filtered, (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / (n / 10), (t4 - t3) / n);
    fflush(stdout);
    _exit(0);
}
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int rounds = atoi(argv[2]);
    for (int r = 0; r < rounds; r++)
        for (int filtered = 0; filtered < 2; filtered++) {
            pid_t pid = fork();
            if (pid == 0)
                measure(n, filtered);
            int status;
            waitpid(pid, &status, 0);
            if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return 1;
        }
    return 0;
}
"""

FILE_OPS = 5_000


def _python_file_ops_us(workdir: pathlib.Path, filtered: bool) -> float:
    """µs per stat+open+read+close, in a forked child of this process."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            if filtered:
                from lambdalet.csrc._native import lib

                libc = ctypes.CDLL(None, use_errno=True)
                if libc.prctl(38, 1, 0, 0, 0) < 0 or lib.ll_seccomp_install() < 0:  # PR_SET_NO_NEW_PRIVS
                    os._exit(2)
            names = [str(workdir / f"f{i}") for i in range(50)]
            started = time.perf_counter_ns()
            for i in range(FILE_OPS):
                name = names[i % 50]
                os.stat(name)
                with open(name) as f:
                    f.read()
            os.write(write_end, str((time.perf_counter_ns() - started) / 1000 / FILE_OPS).encode())
        except BaseException as exc:
            os.write(write_end, f"error: {exc!r}".encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    if not text or text.startswith("error"):
        raise RuntimeError(f"the measuring child failed (status {status}): {text}")
    return float(text)


def run(quick: bool = False) -> dict:
    from lambdalet.sandbox.namespaced import NamespacedBackend
    from lambdalet.sandbox.runtime_root import RuntimeRoot
    from lambdalet.sandbox.spec import SandboxSpec

    rounds = 5 if quick else 15
    spawns = 20 if quick else 50
    mine: dict[str, list[float]] = {}
    none: dict[str, list[float]] = {}
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="lambdalet-walls-"))
    try:
        csrc = pathlib.Path(lambdalet.csrc.__file__).parent
        cc = shutil.which("cc") or shutil.which("gcc")
        if cc is None:
            raise RuntimeError("no C compiler for the system-call figures")
        (tmp / "probe.c").write_text(PROGRAM)
        subprocess.run(
            [
                cc,
                "-O2",
                "-D_GNU_SOURCE",
                "-I",
                str(csrc),
                "-o",
                str(tmp / "syscalls"),
                str(tmp / "probe.c"),
                str(csrc / "seccomp.c"),
                "-lpthread",
            ],
            check=True,
        )
        lines = subprocess.run(
            [str(tmp / "syscalls"), "50000" if quick else "200000", str(rounds)], check=True, capture_output=True, text=True
        ).stdout.splitlines()
        for line in lines:
            seen = json.loads(line)
            side = mine if seen.pop("filtered") else none
            for key, value in seen.items():
                side.setdefault(key, []).append(value)

        for i in range(50):
            (tmp / f"f{i}").write_text("x" * 100)
        for _ in range(rounds):
            none.setdefault("python_file_ops_us", []).append(_python_file_ops_us(tmp, False))
            mine.setdefault("python_file_ops_us", []).append(_python_file_ops_us(tmp, True))

        task = tmp / "task"
        task.mkdir()
        os.chmod(tmp, 0o755)
        os.chmod(task, 0o755)
        root = RuntimeRoot.create(tmp / "runtime")
        backends = ((mine, NamespacedBackend(root, netns_pool=2)), (none, NamespacedBackend(root, netns_pool=2, seccomp=False)))
        try:
            for _ in range(rounds):
                for side, backend in backends:
                    started = time.perf_counter()
                    for _ in range(spawns):
                        spec = SandboxSpec(instance_id=f"walls-{uuid.uuid4().hex[:12]}", function_name="walls", code_dir=str(task))
                        backend.spawn_command(spec, ["/bin/true"]).destroy()
                    side.setdefault("spawn_ms", []).append((time.perf_counter() - started) * 1000 / spawns)
        finally:
            for _, backend in backends:
                backend.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"allow-list": {k: min(v) for k, v in mine.items()}, "no filter": {k: min(v) for k, v in none.items()}, "rounds": rounds}


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
