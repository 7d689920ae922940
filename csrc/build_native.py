"""cffi build script (API mode, out of line) for lambdalet.csrc._native.

Each kernel concern lives in its own .c/.h pair; this file only lists them.
Set LAMBDALET_SANITIZE=1 to build with AddressSanitizer and UBSan.
"""
import os
import pathlib

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
SOURCES = ["meter.c"]
CDEF = """
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta);
uint64_t ll_counter_load(const uint64_t *slot);
"""

# The sandbox: one file per kernel concern (spawn.c reads top to bottom).
SOURCES += ["spawn.c", "mounts.c", "caps.c", "seccomp.c", "net.c"]
SANDBOX_INCLUDES = '#include "spawn.h"\n#include "seccomp.h"\n'
CDEF += """
enum ll_mount_kind {
    LL_MKDIR = 1, LL_BIND_RO = 2, LL_BIND_DEV = 3, LL_TMPFS = 4, LL_PROC = 5,
    LL_SYMLINK = 6, LL_WRITE_FILE = 7, LL_MASK = 8, LL_READONLY = 9, LL_OVERLAY_RO = 10,
};
struct ll_mount_op {
    int kind;
    const char *src;
    const char *dst;
    const char *data;
    unsigned int mode;
};
struct ll_spawn_config {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *cwd;
    const char *hostname;
    const struct ll_mount_op *ops;
    int n_ops;
    int control_fd;
    int cgroup_v2_fd;
    const int *cgroup_procs_fds;
    int n_cgroup_procs_fds;
    uint64_t namespaces;
    int unshare_cgroup_late;
    const char *uid_map;
    const char *gid_map;
    int deny_setgroups;
    uint32_t setup_uid;
    uint32_t setup_gid;
    uint32_t sandbox_uid;
    uint32_t sandbox_gid;
    int loopback_up;
    int seccomp;
    int nofile;
    int pdeathsig;
    int handshake_timeout_ms;
};
struct ll_spawn_result {
    int pid;
    int err;
    int used_clone3;
    char step[160];
};
int ll_spawn(const struct ll_spawn_config *cfg, struct ll_spawn_result *res);
int ll_seccomp_filter_length(void);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)

_cflags = ["-O2", "-Wall", "-Wextra", "-std=gnu11", "-D_GNU_SOURCE"]
_ldflags: list[str] = []
if os.environ.get("LAMBDALET_SANITIZE") == "1":
    _cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-O1"]
    _ldflags += ["-fsanitize=address,undefined"]

ffibuilder.set_source(
    "lambdalet.csrc._native",
    '#include "meter.h"\n' + SANDBOX_INCLUDES,
    sources=[str(pathlib.Path("csrc") / s) for s in SOURCES],
    include_dirs=[str(HERE)],
    extra_compile_args=_cflags,
    extra_link_args=_ldflags,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
