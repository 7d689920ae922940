/* Dropping privileges: rlimits, capabilities, ids and inherited fds.
 *
 * Runs in the sandbox's first process after the clone, so only plain system
 * calls are used here: the process is a copy of a multithreaded server and
 * malloc or stdio locks may be held by threads that no longer exist. */
#include "caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#define FAIL(name) do { *step = (name); return -errno; } while (0)

int ll_caps_set_rlimits(int nofile, unsigned long data_bytes, int nproc, const char **step)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        FAIL("getrlimit NOFILE");
    /* Lowering needs no privilege; raising past the host's hard limit
     * would, and the server may run without CAP_SYS_RESOURCE. */
    rlim_t want = (rlim_t)nofile;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    rl.rlim_cur = rl.rlim_max = want;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        FAIL("setrlimit NOFILE");
    rl.rlim_cur = rl.rlim_max = 0;
    if (setrlimit(RLIMIT_CORE, &rl) < 0)
        FAIL("setrlimit CORE");
    /* RLIMIT_DATA counts private writable mappings (Linux 4.7+): the
     * closest an rlimit comes to a memory limit without cgroups. */
    if (data_bytes > 0) {
        rl.rlim_cur = rl.rlim_max = data_bytes;
        if (setrlimit(RLIMIT_DATA, &rl) < 0)
            FAIL("setrlimit DATA");
    }
    /* Counted per user namespace (Linux 5.14+), so per sandbox. */
    if (nproc > 0) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)nproc;
        if (setrlimit(RLIMIT_NPROC, &rl) < 0)
            FAIL("setrlimit NPROC");
    }
    return 0;
}

int ll_caps_drop_all(uint32_t uid, uint32_t gid, int may_setgroups, const char **step)
{
    /* The bounding set must go while CAP_SETPCAP is still held, that is
     * before the uid change below clears the permitted set. */
    for (int cap = 0; cap <= 63; cap++) {
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; /* past the kernel's last capability */
            FAIL("drop bounding capability");
        }
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        FAIL("clear ambient capabilities");
    /* Even if uid 0 were reachable again, it would not confer capabilities. */
    if (prctl(PR_SET_SECUREBITS,
              SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
              SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED, 0, 0, 0) < 0)
        FAIL("set securebits");
    /* Raw system calls, not libc's: in a multithreaded program glibc's
     * setresuid and friends signal every thread it knows of and take its
     * thread-list lock, and this copy of the server has only one thread
     * but the others' bookkeeping, possibly with that lock held. */
    if (may_setgroups && syscall(SYS_setgroups, 0, NULL) < 0)
        FAIL("setgroups");
    if (syscall(SYS_setresgid, gid, gid, gid) < 0)
        FAIL("setresgid");
    if (syscall(SYS_setresuid, uid, uid, uid) < 0)
        FAIL("setresuid");
    /* With SECBIT_NO_SETUID_FIXUP unset the uid change already emptied the
     * permitted and effective sets; clear inheritable explicitly too. */
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    if (syscall(SYS_capset, &hdr, data) < 0)
        FAIL("capset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        FAIL("no_new_privs");
    return 0;
}

int ll_caps_close_fds_except(const int *keep, int n_keep)
{
    /* keep[] is small; close every gap between kept fds. */
    unsigned int lo = 0;
    for (;;) {
        unsigned int next = ~0U;
        for (int i = 0; i < n_keep; i++)
            if (keep[i] >= 0 && (unsigned int)keep[i] >= lo && (unsigned int)keep[i] < next)
                next = (unsigned int)keep[i];
        if (next == ~0U) {
            if (syscall(SYS_close_range, lo, ~0U, 0) < 0)
                return -errno;
            return 0;
        }
        if (next > lo && syscall(SYS_close_range, lo, next - 1, 0) < 0)
            return -errno;
        lo = next + 1;
    }
}
