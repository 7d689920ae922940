#ifndef LAMBDALET_SPAWN_H
#define LAMBDALET_SPAWN_H
#include <stdint.h>
#include "mounts.h"

/* Starting a sandbox: clone into new namespaces, let the parent place the
 * child in its cgroups and write its id maps, then release it over a
 * socketpair. The child builds its root, drops privileges, installs the
 * seccomp filter and becomes a tiny PID 1 that forks and execs the worker,
 * reaps zombies and forwards signals.
 *
 * The handshake message is "go" one way and, the other way, either an
 * error (errno and the step that failed) or end-of-file once every copy of
 * the child's end has been closed by a successful exec. */

#define LL_NO_ID 0xffffffffu
/* Sent by the server to PID 1: SIGKILL every other process in the sandbox.
 * PID 1 then exits with the worker's own status, so an exit(3) that raced
 * with the kill is still reported as exit status 3. */
#define LL_SIG_KILL_ALL SIGRTMAX

struct ll_spawn_config {
    const char *path;            /* worker executable, as seen in the sandbox */
    char *const *argv;
    char *const *envp;
    const char *cwd;             /* NULL: stay at / */
    const char *hostname;        /* NULL: leave the uts name alone */
    const struct ll_mount_op *ops;
    int n_ops;                   /* 0: keep the host's file system view */
    int root_template;           /* 0: the root is built from ops alone. 1: it
                                    starts as a clone of root_template_fd
                                    (ll_template_build's tree), and ops hold
                                    only the sandbox's own mounts. A flag, so
                                    that a zeroed config never takes fd 0 */
    int root_template_fd;
    uint64_t root_template_dev;  /* st_dev and st_ino of the template's root, as */
    uint64_t root_template_ino;  /*   its builder saw them: the clone must match */
    int control_fd;              /* becomes fd 3 in the worker */
    int cgroup_v2_fd;            /* -1, or a cgroup2 directory for CLONE_INTO_CGROUP */
    const int *cgroup_procs_fds; /* v1: cgroup.procs files written before release */
    int n_cgroup_procs_fds;
    uint64_t namespaces;         /* CLONE_NEW* flags for the clone */
    int unshare_cgroup_late;     /* v1: new cgroup ns only once placed */
    const char *uid_map;         /* with CLONE_NEWUSER: written by the parent */
    const char *gid_map;
    int deny_setgroups;          /* unprivileged maps need setgroups denied */
    uint32_t setup_uid;          /* ids inside the sandbox while it builds its */
    uint32_t setup_gid;          /*   root, or LL_NO_ID to keep the current ones */
    uint32_t sandbox_uid;        /* ids the worker runs as */
    uint32_t sandbox_gid;
    int loopback_up;
    int seccomp;
    int nofile;
    unsigned long rlimit_data_bytes; /* 0, or RLIMIT_DATA where no memory cgroup */
    int rlimit_nproc;            /* 0, or RLIMIT_NPROC where no pids cgroup */
    int pdeathsig;               /* SIGKILL PID 1 when the spawning thread dies */
    int handshake_timeout_ms;
    int init_fd;                 /* -1, or ll_init_memfd(): PID 1's program */
    int netns_fd;                /* -1, or a ready namespace (ll_netns_create) to
                                    clone into instead of CLONE_NEWNET */
    int lifeline_fd;             /* -1, or the read end of a pipe whose write end
                                    only the server holds: PID 1 ends the sandbox
                                    when it hangs up (the server died) */
    int fork_worker;             /* 0: PID 1 execs path as the worker. 1: the
                                    worker is a fork of the caller that returns
                                    from ll_spawn with LL_SPAWN_IN_WORKER, fds
                                    placed as for an exec (a zygote's mode; the
                                    caller must be single-threaded) */
    int clone_parent;            /* 1: PID 1 is born the caller's parent's child
                                    (CLONE_PARENT), so it outlives the caller (a
                                    zygote) and its parent reaps it through the
                                    pidfd; pdeathsig must then be 0 */
};

struct ll_spawn_result {
    int pid;                     /* PID 1 of the sandbox, in the caller's pid ns */
    int err;                     /* 0, or a positive errno */
    int used_clone3;
    int pidfd;                   /* -1, or a pidfd for PID 1 (CLONE_PIDFD), the
                                    caller's to close; with clone_parent also
                                    after a failure, for the parent to reap the
                                    killed PID 1 through it */
    char step[160];              /* which step failed, with its path if any */
};

/* ll_spawn's return value in the forked worker (fork_worker mode only). */
#define LL_SPAWN_IN_WORKER 1

/* Returns 0 or -errno; on failure nothing is left running (with
 * clone_parent a killed PID 1 may be left for the parent to reap, see
 * res->pidfd). With fork_worker it also returns LL_SPAWN_IN_WORKER, in the
 * worker. */
int ll_spawn(const struct ll_spawn_config *cfg, struct ll_spawn_result *res);

/* Fill out[0..n) from refs, n groups of (kind, dst, src, data, mode) whose
 * strings are offsets into table (-1: none): a zygote's request arrives as
 * numbers and a string table, and its ops point into the table instead of
 * being copied (sandbox/spawn_wire.py). The table must end with a NUL.
 * Returns 0, or -EINVAL for an offset outside the table. */
int ll_mount_ops_from_table(struct ll_mount_op *out, const int *refs, int n, const char *table, int table_len);

/* The floor a sandbox's start is measured against: clone into the given
 * namespaces, have the child exit at once, and reap it. Returns 0 or -errno. */
int ll_clone_floor(uint64_t namespaces);

/* A sealed memfd holding init.c's program, for cfg->init_fd. Returns the
 * fd, or -errno (-ENOENT when the build could not compile the program). */
int ll_init_memfd(void);
#endif
