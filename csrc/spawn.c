/* Spawning a sandbox: clone, handshake, the child's set-up sequence and a
 * tiny PID 1. The set-up reads top to bottom in child_main.
 *
 * The child is a copy of a multithreaded server (the calling thread only),
 * so until exec it uses raw system calls and stack buffers: a lock held by
 * a vanished thread (malloc, stdio) would never be released. */
#include "spawn.h"
#include "caps.h"
#include "mounts.h"
#include "net.h"
#include "retry.h"
#include "seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include("init_image.h")
#include "init_image.h"
#define HAVE_INIT_IMAGE 1
#endif
#endif

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif

struct report {
    int32_t err;
    char step[156];
};

/* --- child side ------------------------------------------------------- */

static void copy_step(char *out, size_t cap, const char *a, const char *b)
{
    size_t n = 0;
    for (; a && *a && n + 1 < cap; a++)
        out[n++] = *a;
    if (b && *b && n + 2 < cap) {
        out[n++] = ' ';
        for (; *b && n + 1 < cap; b++)
            out[n++] = *b;
    }
    out[n] = '\0';
}

static void __attribute__((noreturn)) fail_child(int sync_fd, int err, const char *step, const char *detail)
{
    struct report r;
    memset(&r, 0, sizeof r);
    r.err = err < 0 ? -err : err;
    copy_step(r.step, sizeof r.step, step, detail);
    (void)send(sync_fd, &r, sizeof r, MSG_NOSIGNAL);
    _exit(127);
}

#define CHECK(expr, name) do { if ((expr) < 0) fail_child(sync_fd, errno, (name), NULL); } while (0)
#define CHECK_RC(rc, name, detail) do { int _rc = (rc); if (_rc < 0) fail_child(sync_fd, _rc, (name), (detail)); } while (0)

static void reset_signal_handlers(void)
{
    /* The server's handlers are meaningless here and would, for instance,
     * write to the server's wakeup fd. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &sa, NULL);
}

/* PID 1: reap every child, forward termination signals to the worker, kill
 * everything else on LL_SIG_KILL_ALL, and leave with the worker's status. When PID 1 exits the kernel kills every
 * other process in the namespace, daemonised ones included. The same loop as
 * init.c's (which explains the lifeline's SIGIO), for where it cannot be
 * exec'd. */
static void __attribute__((noreturn)) server_gone(void)
{
    /* The server is gone: nobody is left to enforce a deadline. */
    (void)kill(-1, SIGKILL);
    _exit(128 + SIGKILL);
}

static int lifeline_hung_up(int lifeline)
{
    struct pollfd fd = { lifeline, POLLIN, 0 };
    return poll(&fd, 1, 0) > 0 && (fd.revents & (POLLIN | POLLHUP | POLLERR));
}

static int arm_lifeline(int lifeline)
{
    /* Raw: a libc that caches its pid would hold the server's here. */
    if (fcntl(lifeline, F_SETOWN, (pid_t)syscall(SYS_getpid)) < 0)
        return 0;
    int flags = fcntl(lifeline, F_GETFL);
    return flags >= 0 && fcntl(lifeline, F_SETFL, flags | O_ASYNC) >= 0;
}

static int next_signal(const sigset_t *all, int sfd, int lifeline)
{
    if (sfd < 0) {
        siginfo_t info;
        int sig = sigwaitinfo(all, &info);
        /* Armed (there is a lifeline and no signalfd): the pipe decides,
         * after every wake, since a sandbox that keeps a lower signal
         * pending would keep the server's SIGIO waiting (init.c). */
        if (lifeline >= 0 && lifeline_hung_up(lifeline))
            server_gone();
        return sig;
    }
    struct pollfd fds[2] = { { sfd, POLLIN, 0 }, { lifeline, POLLIN, 0 } };
    if (poll(fds, 2, -1) <= 0)
        return -1;
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
        server_gone();
    struct signalfd_siginfo si;
    if ((fds[0].revents & POLLIN) && read(sfd, &si, sizeof si) == (ssize_t)sizeof si)
        return (int)si.ssi_signo;
    return -1;
}

static void __attribute__((noreturn)) init_loop(pid_t worker, int lifeline)
{
    sigset_t all;
    sigfillset(&all);
    int armed = lifeline >= 0 && arm_lifeline(lifeline);
    if (armed && lifeline_hung_up(lifeline))
        server_gone();
    int sfd = lifeline >= 0 && !armed ? signalfd(-1, &all, SFD_CLOEXEC) : -1;
    if (lifeline >= 0 && !armed && sfd < 0) {
        /* Neither SIGIO nor a signalfd: nothing would watch the lifeline,
         * and a sandbox must not outlive its server (init.c leaves too). */
        (void)kill(-1, SIGKILL);
        _exit(127);
    }
    for (;;) {
        int sig = next_signal(&all, sfd, lifeline);
        if (sig < 0)
            continue;
        if (sig == LL_SIG_KILL_ALL) {
            /* The server's kill: everything but PID 1, which stays to
             * report how the worker ended (it may have exited already). */
            (void)kill(-1, SIGKILL);
            continue;
        }
        if (sig != SIGCHLD) {
            (void)kill(worker, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);
            if (p <= 0)
                break;
            if (p == worker) {
                if (WIFEXITED(status))
                    _exit(WEXITSTATUS(status));
                _exit(128 + WTERMSIG(status));
            }
        }
    }
}

/* Replace this copy of the server with init.c's program; returns only if
 * the exec failed. */
static void decimal(char *out, long v)
{
    char digits[24];
    int n = 0;
    do
        digits[n++] = (char)('0' + v % 10);
    while ((v /= 10) > 0);
    while (n > 0)
        *out++ = digits[--n];
    *out = '\0';
}

static void exec_init(int init_fd, pid_t worker, int lifeline)
{
    char pidtext[24], lifetext[24];
    decimal(pidtext, worker);
    decimal(lifetext, lifeline);
    char *argv[] = { "init", pidtext, lifeline >= 0 ? lifetext : NULL, NULL };
    char *envp[] = { NULL };
    int keep[2] = { init_fd, lifeline };
    (void)ll_caps_close_fds_except(keep, 2);
    (void)syscall(SYS_execveat, init_fd, "", argv, envp, AT_EMPTY_PATH);
}

/* The worker's fds as every worker finds them: /dev/null on 0-2, the
 * control socket on 3, nothing else but the handshake socket, returned on
 * 4 and close-on-exec. */
static int place_worker_fds(int sync_fd, int control_fd, int null_fd)
{
    /* Only PID 1 may outlive us; if it dies, so do we. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Move the fds out of the way of 0-4 before placing them. */
    int ctl = fcntl(control_fd, F_DUPFD_CLOEXEC, 10);
    int syn = fcntl(sync_fd, F_DUPFD_CLOEXEC, 10);
    int nul = fcntl(null_fd, F_DUPFD_CLOEXEC, 10);
    if (ctl < 0 || syn < 0 || nul < 0)
        fail_child(sync_fd, errno, "worker: dup fds", NULL);
    if (dup2(nul, 0) < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0 || dup2(ctl, 3) < 0 ||
        dup3(syn, 4, O_CLOEXEC) < 0)
        fail_child(syn, errno, "worker: place fds", NULL);
    sync_fd = 4;
    if (syscall(SYS_close_range, 5, ~0U, 0) < 0)
        fail_child(sync_fd, errno, "worker: close fds", NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    return sync_fd;
}

static void __attribute__((noreturn)) exec_worker(const struct ll_spawn_config *cfg, int sync_fd,
                                                   int control_fd, int null_fd)
{
    sync_fd = place_worker_fds(sync_fd, control_fd, null_fd);
    execve(cfg->path, cfg->argv, cfg->envp);
    fail_child(sync_fd, errno, "exec worker", cfg->path);
}

struct worker_args {
    const struct ll_spawn_config *cfg;
    int sync_fd, control_fd, null_fd;
};

static int worker_main(void *arg)
{
    const struct worker_args *wa = arg;
    exec_worker(wa->cfg, wa->sync_fd, wa->control_fd, wa->null_fd);
}

/* The steps of the child's set-up, in the order child_main takes them.
 * Each one returns only if it succeeded; a failure is reported to the
 * parent (fail_child) and ends the child. */

/* The lifeline's read end as a file description of this sandbox's own, on
 * the same fd number: init.c arms it for SIGIO, and a description has one
 * SIGIO owner, so the one every sandbox inherited would signal only the
 * last PID 1 to arm it. Opened through /proc while the ids are still the
 * server's (the pipe is its owner's alone), and not close-on-exec: it must
 * outlive PID 1's exec of the init program. */
static void own_lifeline(int lifeline, int sync_fd)
{
    char path[40] = "/proc/self/fd/";
    decimal(path + strlen(path), lifeline);
    int own = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(own, "reopen lifeline");
    CHECK(dup2(own, lifeline), "place lifeline");
    close(own);
}

/* Of the server's fds keep only the handshake, the control channel, the
 * init program, the lifeline and the prepared root; the rest (listening
 * sockets, the database) go now. */
static void drop_inherited_fds(const struct ll_spawn_config *cfg, int sync_fd)
{
    int keep[5] = { sync_fd, cfg->control_fd, cfg->init_fd, cfg->lifeline_fd,
                     cfg->root_template ? cfg->root_template_fd : -1 };
    CHECK_RC(ll_caps_close_fds_except(keep, 5), "close inherited fds", NULL);
    if (cfg->lifeline_fd >= 0)
        own_lifeline(cfg->lifeline_fd, sync_fd);
}

/* Wait until the parent has placed us in our cgroups and written our id
 * maps: nothing may run unlimited or as an unmapped id. */
static void wait_for_release(int sync_fd)
{
    char go;
    if (LL_RETRY(read(sync_fd, &go, 1)) != 1)
        _exit(127); /* the parent gave up; it reaps us */
}

/* The binds' sources, opened while the host's tree and ids are still ours. */
static void open_mount_sources(const struct ll_spawn_config *cfg, int sync_fd, int *src_fds)
{
    const char *step = NULL;
    int failed = 0;
    if (cfg->n_ops > 0)
        CHECK_RC(ll_mounts_open_sources(cfg->ops, cfg->n_ops, src_fds, &failed, &step), step,
                 cfg->ops[failed].src);
}

static void enter_namespaces(const struct ll_spawn_config *cfg, int sync_fd)
{
    if (cfg->setup_uid != LL_NO_ID) {
        /* Raw, like every id change here: see ll_caps_drop_all. */
        CHECK(syscall(SYS_setresgid, cfg->setup_gid, cfg->setup_gid, cfg->setup_gid), "setresgid (setup)");
        CHECK(syscall(SYS_setresuid, cfg->setup_uid, cfg->setup_uid, cfg->setup_uid), "setresuid (setup)");
    }
    if (cfg->unshare_cgroup_late)
        CHECK(unshare(CLONE_NEWCGROUP), "unshare cgroup namespace");
    if (cfg->hostname)
        CHECK(sethostname(cfg->hostname, strlen(cfg->hostname)), "sethostname");
    if (cfg->loopback_up)
        CHECK_RC(ll_net_loopback_up(), "bring up lo", NULL);
}

static void build_root(const struct ll_spawn_config *cfg, int sync_fd, const int *src_fds)
{
    const char *step = NULL;
    if (cfg->n_ops == 0 && !cfg->root_template)
        return; /* keep the host's file system view */
    if (cfg->root_template) {
        CHECK_RC(ll_mounts_begin_from(cfg->root_template_fd, cfg->root_template_dev, cfg->root_template_ino, &step), step, NULL);
        /* Nothing after the root needs it; the worker must never see it. */
        close(cfg->root_template_fd);
    } else {
        CHECK_RC(ll_mounts_begin(&step), step, NULL);
    }
    for (int i = 0; i < cfg->n_ops; i++)
        CHECK_RC(ll_mount_apply(&cfg->ops[i], src_fds[i], &step), step, cfg->ops[i].dst);
    CHECK_RC(ll_mounts_finish(&step), step, NULL);
    for (int i = 0; i < cfg->n_ops; i++)
        if (src_fds[i] >= 0)
            close(src_fds[i]);
}

static void drop_privileges(const struct ll_spawn_config *cfg, int sync_fd)
{
    const char *step = NULL;
    CHECK_RC(ll_caps_set_rlimits(cfg->nofile, cfg->rlimit_data_bytes, cfg->rlimit_nproc, &step), step, NULL);
    CHECK_RC(ll_caps_drop_all(cfg->sandbox_uid, cfg->sandbox_gid,
                              !cfg->deny_setgroups, &step), step, NULL);
    /* Set after the id change, which would clear it. */
    if (cfg->pdeathsig) {
        CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), "pdeathsig");
        /* A parent that died before the prctl sent no signal. It holds its
         * end of the handshake until we are done, so a hang-up there means
         * it is gone (getppid() is 0 outside our pid namespace). */
        struct pollfd gone = { sync_fd, POLLRDHUP, 0 };
        if (poll(&gone, 1, 0) > 0 && (gone.revents & (POLLHUP | POLLRDHUP)))
            _exit(127);
    }
    /* PID 1 still holds a copy of the server's memory: keep it unreadable
     * through /proc even to the sandbox's own uid. */
    CHECK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), "set not dumpable");
    if (cfg->seccomp)
        CHECK_RC(ll_seccomp_install_prepared(), "install seccomp filter", NULL);
    if (cfg->cwd)
        CHECK(chdir(cfg->cwd), "chdir");
}

/* The worker: its pid here, or 0 in the worker itself (fork_worker mode,
 * which returns to the caller; otherwise the worker execs and never gets
 * here). */
static pid_t start_worker(const struct ll_spawn_config *cfg, int sync_fd, int null_fd)
{
    pid_t worker;
    if (cfg->fork_worker) {
        /* A zygote's worker: a real fork that goes back into the caller,
         * whose memory (an interpreter with the runtime imported) it shares
         * copy-on-write. libc's fork, not a raw clone, so that libc's own
         * state (the cached thread id, its locks) is right in the child. */
        worker = fork();
        CHECK(worker, "fork worker");
        if (worker == 0) {
            int syn = place_worker_fds(sync_fd, cfg->control_fd, null_fd);
            /* An exec would have made the worker dumpable again (PID 1 is
             * not, see drop_privileges); without it /proc/self/environ and
             * friends refuse the worker's own reads. ptrace stays refused by
             * the seccomp filter. */
            if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
                fail_child(syn, errno, "worker: set dumpable", NULL);
            /* Closing the last copy tells the parent the worker runs. */
            close(syn);
        }
        return worker;
    }
    /* vfork semantics: the worker borrows this address space until its
     * exec instead of copying the server's page tables a second time.
     * CLONE_VM and CLONE_VFORK carry no namespace flag, so the seccomp
     * filter lets them through. */
    struct worker_args wa = { cfg, sync_fd, cfg->control_fd, null_fd };
    _Alignas(16) char worker_stack[32768];
    worker = clone(worker_main, worker_stack + sizeof worker_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, &wa);
    CHECK(worker, "fork worker");
    return worker;
}

/* PID 1 for good: init.c's program if it can be exec'd, else the loop here.
 * The parent sees end-of-file once the worker's exec closes the last copy
 * of the handshake socket (and ours, by close or by exec). */
static void __attribute__((noreturn)) become_init(const struct ll_spawn_config *cfg, pid_t worker)
{
    if (cfg->init_fd >= 0) {
        exec_init(cfg->init_fd, worker, cfg->lifeline_fd);
        /* Could not exec (memfd exec forbidden by vm.memfd_noexec?): stay. */
    }
    int keep_life[1] = { cfg->lifeline_fd };
    (void)ll_caps_close_fds_except(keep_life, 1);
    init_loop(worker, cfg->lifeline_fd);
}

/* The child's whole set-up, top to bottom. Never returns, except in
 * fork_worker mode in the worker, with LL_SPAWN_IN_WORKER. Kept out of line
 * so that its code is its own: tests/test_native_child.py checks what it
 * can reach. */
static int __attribute__((noinline)) child_main(const struct ll_spawn_config *cfg, int sync_fd)
{
    reset_signal_handlers();
    drop_inherited_fds(cfg, sync_fd);
    wait_for_release(sync_fd);
    /* A VLA: no malloc in this process (see the top of this file). */
    int src_fds[cfg->n_ops > 0 ? cfg->n_ops : 1];
    open_mount_sources(cfg, sync_fd, src_fds);
    enter_namespaces(cfg, sync_fd);
    build_root(cfg, sync_fd, src_fds);
    int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    CHECK(null_fd, "open /dev/null");
    drop_privileges(cfg, sync_fd);
    pid_t worker = start_worker(cfg, sync_fd, null_fd);
    if (worker == 0)
        return LL_SPAWN_IN_WORKER;
    become_init(cfg, worker);
}

/* --- parent side ------------------------------------------------------ */

static int fail(struct ll_spawn_result *res, int err, const char *step)
{
    res->err = err < 0 ? -err : err;
    copy_step(res->step, sizeof res->step, step, NULL);
    return -res->err;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = LL_RETRY(write(fd, buf, len));
        if (w < 0)
            return -errno;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

static int write_proc_file(pid_t pid, const char *name, const char *text)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, text, strlen(text));
    close(fd);
    return rc;
}

/* The pidfd comes with the clone, so it names this child and no other
 * even if it is reaped at once (with clone_parent, by another process). */
static pid_t do_clone(const struct ll_spawn_config *cfg, int *used_clone3, int *into_cgroup, int *pidfd)
{
    uint64_t flags = cfg->namespaces | CLONE_PIDFD | (cfg->clone_parent ? CLONE_PARENT : 0);
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    /* A CLONE_PARENT child signals its parent as the caller does; clone3
     * insists on 0 here. */
    args.exit_signal = cfg->clone_parent ? 0 : SIGCHLD;
    size_t size = CLONE_ARGS_SIZE_VER0;
    if (cfg->cgroup_v2_fd >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = (uint64_t)cfg->cgroup_v2_fd;
        size = CLONE_ARGS_SIZE_VER2;
    }
    long pid = syscall(SYS_clone3, &args, size);
    if (pid >= 0) {
        *used_clone3 = 1;
        *into_cgroup = cfg->cgroup_v2_fd >= 0;
        return (pid_t)pid;
    }
    /* Older kernels, or seccomp profiles (Docker's) that answer ENOSYS. */
    if (errno != ENOSYS && errno != E2BIG && errno != EPERM)
        return -1;
    *used_clone3 = 0;
    *into_cgroup = 0;
    /* The parent's pidfd goes where parent_tid would (the third argument on
     * every architecture). */
    return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, 0, pidfd, 0, 0);
}

static int wait_for_child(int fd, int timeout_ms, struct ll_spawn_result *res)
{
    struct pollfd p = { fd, POLLIN, 0 };
    long ready = LL_RETRY(poll(&p, 1, timeout_ms));
    if (ready < 0)
        return fail(res, errno, "handshake: poll");
    if (ready == 0)
        return fail(res, ETIMEDOUT, "handshake: the sandbox did not start in time");
    struct report r;
    ssize_t n = LL_RETRY(recv(fd, &r, sizeof r, 0));
    if (n == 0)
        return 0; /* every copy closed by exec: the worker is running */
    if (n < 0)
        return fail(res, errno, "handshake: recv");
    if (n != (ssize_t)sizeof r)
        return fail(res, EPROTO, "handshake: short report");
    r.step[sizeof r.step - 1] = '\0';
    int rc = fail(res, r.err ? r.err : EPROTO, r.step);
    /* The step may name a function's host path: a zygote must not keep it
     * on a stack that later forks copy. */
    explicit_bzero(&r, sizeof r);
    return rc;
}

/* A PID 1 that failed to start: killed, and reaped here unless it is the
 * caller's parent's child (clone_parent), which reaps it through the pidfd
 * left in res. */
static void abandon_child(const struct ll_spawn_config *cfg, pid_t pid, int pidfd, struct ll_spawn_result *res)
{
    if (pidfd >= 0)
        (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    else
        (void)kill(pid, SIGKILL);
    res->pid = 0;
    if (cfg->clone_parent) {
        res->pidfd = pidfd;
        return;
    }
    (void)LL_RETRY(waitpid(pid, NULL, 0));
    if (pidfd >= 0)
        close(pidfd);
}

/* clone() with every signal blocked (no server handler may run in the
 * child before it resets them), inside the pooled network namespace if one
 * is given. Returns the child's pid in the parent and 0 in the child (which
 * is still in that namespace, with signals blocked), or -1 with res filled;
 * *pid is the child's pid even then when the child exists (this thread
 * failed to leave the namespace). */
static int clone_child(const struct ll_spawn_config *cfg, pid_t *pid, int *pidfd, int *into_cgroup,
                       struct ll_spawn_result *res)
{
    int used_clone3 = 0, saved_netns = -1, rc = 0;
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if (cfg->netns_fd >= 0 && (rc = ll_netns_enter(cfg->netns_fd, &saved_netns)) < 0) {
        rc = fail(res, rc, "enter pooled network namespace");
        goto out;
    }
    *pid = do_clone(cfg, &used_clone3, into_cgroup, pidfd);
    if (*pid == 0)
        return 0; /* the child: leaves nothing, restores nothing */
    int clone_errno = errno;
    int leave_rc = saved_netns >= 0 ? ll_netns_leave(saved_netns) : 0;
    if (*pid < 0)
        rc = fail(res, clone_errno, "clone");
    else if (leave_rc < 0)
        /* The child is fine, but this thread did not get back home. */
        rc = fail(res, leave_rc, "leave pooled network namespace");
    res->used_clone3 = used_clone3;
out:
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

/* Put the child in its cgroups and write its id maps, before it runs. */
static int place_child(const struct ll_spawn_config *cfg, pid_t pid, int into_cgroup, struct ll_spawn_result *res)
{
    char pidtext[24];
    snprintf(pidtext, sizeof pidtext, "%d", (int)pid);
    int rc = 0;
    for (int i = 0; i < cfg->n_cgroup_procs_fds && rc == 0; i++)
        if ((rc = write_all(cfg->cgroup_procs_fds[i], pidtext, strlen(pidtext))) < 0)
            rc = fail(res, rc, "attach to cgroup");
    if (rc == 0 && cfg->cgroup_v2_fd >= 0 && !into_cgroup) {
        int fd = openat(cfg->cgroup_v2_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || (rc = write_all(fd, pidtext, strlen(pidtext))) < 0)
            rc = fail(res, fd < 0 ? errno : rc, "attach to cgroup (v2)");
        if (fd >= 0)
            close(fd);
    }
    if (rc == 0 && (cfg->namespaces & CLONE_NEWUSER)) {
        if (cfg->deny_setgroups && (rc = write_proc_file(pid, "setgroups", "deny")) < 0)
            rc = fail(res, rc, "write setgroups");
        else if (cfg->uid_map && (rc = write_proc_file(pid, "uid_map", cfg->uid_map)) < 0)
            rc = fail(res, rc, "write uid_map");
        else if (cfg->gid_map && (rc = write_proc_file(pid, "gid_map", cfg->gid_map)) < 0)
            rc = fail(res, rc, "write gid_map");
    }
    return rc;
}

int ll_spawn(const struct ll_spawn_config *cfg, struct ll_spawn_result *res)
{
    int sv[2] = { -1, -1 };
    int pidfd = -1, into_cgroup = 0, rc = 0;
    pid_t pid = -1;

    memset(res, 0, sizeof *res);
    res->pidfd = -1;
    if (cfg->clone_parent && cfg->pdeathsig) {
        rc = fail(res, EINVAL, "clone_parent with pdeathsig: the signal would follow the caller's parent");
        goto out;
    }
    /* Built here, where qsort may allocate; the child only installs it. */
    if (cfg->seccomp && (rc = ll_seccomp_prepare()) < 0) {
        rc = fail(res, rc, "build seccomp filter");
        goto out;
    }
    /* SEQPACKET keeps the error report one message. */
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        rc = fail(res, errno, "socketpair");
        goto out;
    }
    rc = clone_child(cfg, &pid, &pidfd, &into_cgroup, res);
    if (rc == 0 && pid == 0) {
        close(sv[0]);
        /* Returns only in a forked worker (fork_worker mode). */
        return child_main(cfg, sv[1]);
    }
    close(sv[1]);
    sv[1] = -1;
    if (rc == 0)
        rc = place_child(cfg, pid, into_cgroup, res);
    if (rc == 0 && send(sv[0], "g", 1, MSG_NOSIGNAL) != 1)
        rc = fail(res, errno, "handshake: release");
    if (rc == 0)
        rc = wait_for_child(sv[0], cfg->handshake_timeout_ms > 0 ? cfg->handshake_timeout_ms : 10000, res);
out:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (rc < 0 && pid > 0) {
        abandon_child(cfg, pid, pidfd, res);
    } else if (rc == 0) {
        res->pid = pid;
        res->pidfd = pidfd;
    }
    return rc;
}

static int table_ref(const char *table, int table_len, int ref, const char **out)
{
    if (ref == -1) {
        *out = NULL;
        return 0;
    }
    if (ref < 0 || ref >= table_len)
        return -EINVAL;
    *out = table + ref;
    return 0;
}

int ll_mount_ops_from_table(struct ll_mount_op *out, const int *refs, int n, const char *table, int table_len)
{
    if (n < 0 || table_len < 0 || (table_len > 0 && table[table_len - 1] != '\0'))
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        const int *r = refs + 5 * i;
        out[i].kind = r[0];
        out[i].mode = (unsigned int)r[4];
        if (table_ref(table, table_len, r[1], &out[i].dst) < 0 || out[i].dst == NULL ||
            table_ref(table, table_len, r[2], &out[i].src) < 0 ||
            table_ref(table, table_len, r[3], &out[i].data) < 0)
            return -EINVAL;
    }
    return 0;
}

int ll_init_memfd(void)
{
#ifdef HAVE_INIT_IMAGE
    if (ll_init_image_len == 0)
        return -ENOENT;
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
    /* MFD_EXEC states the intent on kernels with vm.memfd_noexec (6.3+);
     * older kernels reject the unknown flag and need none. */
    int fd = memfd_create("lambdalet-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);
    if (fd < 0 && errno == EINVAL)
        fd = memfd_create("lambdalet-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    int rc = write_all(fd, (const char *)ll_init_image, ll_init_image_len);
    if (rc == 0 && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        rc = -errno;
    if (rc < 0)
        close(fd);
    return rc < 0 ? rc : fd;
#else
    return -ENOENT;
#endif
}

int ll_clone_floor(uint64_t namespaces)
{
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)namespaces | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0)
        _exit(0);
    int status;
    return LL_RETRY(waitpid(pid, &status, 0)) < 0 ? -errno : 0;
}
