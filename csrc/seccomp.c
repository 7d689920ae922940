/* The sandbox's seccomp-bpf filter: an allow-list.
 *
 * A system call runs only when it is listed below, so a call the kernel
 * gains next year (as listmount, statmount and open_tree_attr were) is
 * refused until someone decides otherwise. What a refusal looks like:
 *   - ENOSYS for everything not listed: to a program this is an older
 *     kernel, and libc and the runtimes fall back (glibc's clone3 -> clone,
 *     faccessat2 -> faccessat; libuv without io_uring; a program probing
 *     landlock sees "not supported").
 *   - EPERM for the calls named in `refused`: they exist and are forbidden
 *     (mounts, namespaces, tracing, the kernel's keyrings, modules, BPF...).
 *     Listing them keeps the answer honest and lets the tests name them.
 *   - a few calls are decided by their arguments (see the rules after the
 *     tables): socket families, clone's namespace flags, ioctl's terminal
 *     injection, prctl options, personality values.
 * Calls through another ABI (i386 via int 0x80, x32 on x86_64) fail with
 * ENOSYS before any of this: their numbers mean other calls.
 *
 * Built as a binary search over runs of equal verdicts, so a call costs a
 * handful of instructions; kernels from 5.11 also cache "always allowed"
 * per number and skip the filter entirely for every call whose verdict
 * does not depend on its arguments.
 *
 * The list was drawn up against what CPython (3.9-3.14), Node.js 20
 * (libuv), the JVM 17, Mono, Go and Rust static binaries and /bin/sh do,
 * and tests/sandbox/test_sandbox_runtimes.py runs the real ones under it. */
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <asm/ioctls.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp filter: only x86_64 and aarch64 are supported"
#endif

/* Calls that only some architectures have (aarch64 kept none of the legacy
 * path-based calls, x86_64 has its own) are -1 where absent and skipped. */
#define ABSENT (-1)
#ifndef __NR_open
#define __NR_open ABSENT
#define __NR_creat ABSENT
#define __NR_stat ABSENT
#define __NR_lstat ABSENT
#define __NR_access ABSENT
#define __NR_readlink ABSENT
#define __NR_getdents ABSENT
#define __NR_mkdir ABSENT
#define __NR_rmdir ABSENT
#define __NR_unlink ABSENT
#define __NR_rename ABSENT
#define __NR_link ABSENT
#define __NR_symlink ABSENT
#define __NR_mknod ABSENT
#define __NR_chmod ABSENT
#define __NR_chown ABSENT
#define __NR_lchown ABSENT
#define __NR_utime ABSENT
#define __NR_utimes ABSENT
#define __NR_futimesat ABSENT
#define __NR_dup2 ABSENT
#define __NR_pipe ABSENT
#define __NR_poll ABSENT
#define __NR_select ABSENT
#define __NR_epoll_create ABSENT
#define __NR_epoll_wait ABSENT
#define __NR_eventfd ABSENT
#define __NR_signalfd ABSENT
#define __NR_inotify_init ABSENT
#define __NR_fork ABSENT
#define __NR_vfork ABSENT
#define __NR_pause ABSENT
#define __NR_alarm ABSENT
#define __NR_time ABSENT
#define __NR_getpgrp ABSENT
#endif
#ifndef __NR_arch_prctl
#define __NR_arch_prctl ABSENT
#endif
#ifndef __NR_iopl
#define __NR_iopl ABSENT
#endif
#ifndef __NR_ioperm
#define __NR_ioperm ABSENT
#endif
#ifndef __NR_modify_ldt
#define __NR_modify_ldt ABSENT
#endif
#ifndef __NR_lookup_dcookie
#define __NR_lookup_dcookie ABSENT
#endif
#if defined(__x86_64__)
#ifndef __NR_uretprobe
#define __NR_uretprobe 335
#endif
#ifndef __NR_uprobe
#define __NR_uprobe 336
#endif
#else
#define __NR_uretprobe ABSENT
#define __NR_uprobe ABSENT
#endif
/* Numbers from 424 on are the same on every architecture; older headers
 * (Debian 12 ships 6.1's) lack the newest. */
#ifndef __NR_fchmodat2
#define __NR_fchmodat2 452
#endif
#ifndef __NR_map_shadow_stack
#define __NR_map_shadow_stack 453
#endif
#ifndef __NR_futex_wake
#define __NR_futex_wake 454
#define __NR_futex_wait 455
#define __NR_futex_requeue 456
#endif
#ifndef __NR_statmount
#define __NR_statmount 457
#define __NR_listmount 458
#endif
#ifndef __NR_mseal
#define __NR_mseal 462
#endif
#ifndef __NR_open_tree_attr
#define __NR_open_tree_attr 467
#endif

#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef TIOCSETD
#define TIOCSETD 0x5423
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define NETLINK_ROUTE_PROTOCOL 0

/* Allowed whatever the arguments. Grouped by what they are for. */
static const int allowed[] = {
    /* reading and writing open files */
    __NR_read, __NR_write, __NR_readv, __NR_writev, __NR_pread64, __NR_pwrite64,
    __NR_preadv, __NR_pwritev, __NR_preadv2, __NR_pwritev2, __NR_lseek,
    __NR_sendfile, __NR_copy_file_range, __NR_splice, __NR_tee,
    __NR_fsync, __NR_fdatasync, __NR_sync_file_range,
    __NR_truncate, __NR_ftruncate, __NR_fallocate, __NR_fadvise64, __NR_readahead,
    /* opening, and the file tree (the root is read-only but /tmp is not) */
    __NR_open, __NR_openat, __NR_openat2, __NR_creat, __NR_close, __NR_close_range,
    __NR_stat, __NR_fstat, __NR_lstat, __NR_newfstatat, __NR_statx, __NR_statfs, __NR_fstatfs,
    __NR_access, __NR_faccessat, __NR_faccessat2, __NR_readlink, __NR_readlinkat,
    __NR_getdents, __NR_getdents64, __NR_getcwd, __NR_chdir, __NR_fchdir,
    __NR_mkdir, __NR_mkdirat, __NR_rmdir, __NR_unlink, __NR_unlinkat,
    __NR_rename, __NR_renameat, __NR_renameat2, __NR_link, __NR_linkat,
    __NR_symlink, __NR_symlinkat,
    /* FIFOs (os.mkfifo); devices need CAP_MKNOD, which nothing here has */
    __NR_mknod, __NR_mknodat,
    __NR_chmod, __NR_fchmod, __NR_fchmodat, __NR_fchmodat2, __NR_umask,
    __NR_chown, __NR_fchown, __NR_lchown, __NR_fchownat,
    __NR_utime, __NR_utimes, __NR_futimesat, __NR_utimensat,
    __NR_getxattr, __NR_lgetxattr, __NR_fgetxattr, __NR_listxattr, __NR_llistxattr,
    __NR_flistxattr, __NR_setxattr, __NR_lsetxattr, __NR_fsetxattr, __NR_removexattr,
    __NR_lremovexattr, __NR_fremovexattr,
    /* file descriptors */
    __NR_dup, __NR_dup2, __NR_dup3, __NR_pipe, __NR_pipe2, __NR_fcntl, __NR_flock,
    /* waiting for events: the event loops of libuv, Go, the JVM, asyncio */
    __NR_poll, __NR_ppoll, __NR_select, __NR_pselect6,
    __NR_epoll_create, __NR_epoll_create1, __NR_epoll_ctl, __NR_epoll_wait,
    __NR_epoll_pwait, __NR_epoll_pwait2, __NR_eventfd, __NR_eventfd2,
    __NR_signalfd, __NR_signalfd4, __NR_timerfd_create, __NR_timerfd_settime,
    __NR_timerfd_gettime, __NR_inotify_init, __NR_inotify_init1,
    __NR_inotify_add_watch, __NR_inotify_rm_watch,
    /* the old asynchronous I/O (libaio); io_uring is refused below */
    __NR_io_setup, __NR_io_destroy, __NR_io_submit, __NR_io_cancel, __NR_io_getevents,
    __NR_io_pgetevents,
    /* memory: JITs (V8, HotSpot, Mono) map, protect and advise their own */
    __NR_brk, __NR_mmap, __NR_munmap, __NR_mremap, __NR_mprotect, __NR_msync,
    __NR_madvise, __NR_mincore, __NR_mlock, __NR_mlock2, __NR_munlock, __NR_mlockall,
    __NR_munlockall, __NR_memfd_create, __NR_pkey_alloc, __NR_pkey_free, __NR_pkey_mprotect,
    __NR_mseal, __NR_map_shadow_stack,
    /* processes and threads (clone and clone3: see the rules) */
    __NR_fork, __NR_vfork, __NR_execve, __NR_execveat, __NR_exit, __NR_exit_group,
    __NR_wait4, __NR_waitid, __NR_kill, __NR_tkill, __NR_tgkill,
    __NR_pidfd_open, __NR_pidfd_send_signal,
    __NR_getpid, __NR_getppid, __NR_gettid, __NR_getpgid, __NR_setpgid, __NR_getpgrp,
    __NR_getsid, __NR_setsid, __NR_set_tid_address, __NR_set_robust_list, __NR_rseq,
    __NR_futex, __NR_futex_waitv, __NR_futex_wake, __NR_futex_wait, __NR_futex_requeue,
    /* the JVM, Mono and .NET make other threads' stores visible with it */
    __NR_membarrier,
    /* identity: the user namespace maps two ids and grants no capability,
     * so these can only move between ids the sandbox already has */
    __NR_getuid, __NR_geteuid, __NR_getgid, __NR_getegid, __NR_getresuid, __NR_getresgid,
    __NR_getgroups, __NR_setuid, __NR_setgid, __NR_setreuid, __NR_setregid, __NR_setresuid,
    __NR_setresgid, __NR_setfsuid, __NR_setfsgid, __NR_setgroups, __NR_capget, __NR_capset,
    /* signals */
    __NR_rt_sigaction, __NR_rt_sigprocmask, __NR_rt_sigreturn, __NR_rt_sigpending,
    __NR_rt_sigtimedwait, __NR_rt_sigqueueinfo, __NR_rt_tgsigqueueinfo, __NR_rt_sigsuspend,
    __NR_sigaltstack, __NR_pause, __NR_restart_syscall,
    /* time (clock_gettime usually never leaves the vDSO) */
    __NR_time, __NR_gettimeofday, __NR_clock_gettime, __NR_clock_getres,
    __NR_clock_nanosleep, __NR_nanosleep, __NR_alarm, __NR_getitimer, __NR_setitimer,
    __NR_timer_create, __NR_timer_settime, __NR_timer_gettime, __NR_timer_getoverrun,
    __NR_timer_delete, __NR_times,
    /* scheduling: bounded by the cgroup, and RLIMIT_RTPRIO is 0 */
    __NR_sched_yield, __NR_sched_getparam, __NR_sched_setparam, __NR_sched_getscheduler,
    __NR_sched_setscheduler, __NR_sched_get_priority_max, __NR_sched_get_priority_min,
    __NR_sched_rr_get_interval, __NR_sched_getattr, __NR_sched_setattr,
    __NR_sched_getaffinity, __NR_sched_setaffinity, __NR_getpriority, __NR_setpriority,
    __NR_ioprio_get, __NR_ioprio_set, __NR_getcpu,
    /* limits and facts about the machine (glibc's sysconf reads sysinfo) */
    __NR_getrlimit, __NR_setrlimit, __NR_prlimit64, __NR_getrusage, __NR_sysinfo,
    __NR_uname, __NR_getrandom,
    /* a process may narrow itself further */
    __NR_seccomp,
    /* x86_64's thread pointer (TLS), CPUID faulting and shadow stacks */
    __NR_arch_prctl,
    /* only the kernel's uprobe trampolines can make these (from anywhere
     * else they fail or raise SIGILL), and recent kernels skip the filter
     * for them; refusing them would break host tools that trace with
     * uprobes (bpftrace, perf) on older ones */
    __NR_uretprobe, __NR_uprobe,
    /* sockets (socket and socketpair: see the rules) */
    __NR_bind, __NR_listen, __NR_accept, __NR_accept4, __NR_connect, __NR_getsockname,
    __NR_getpeername, __NR_sendto, __NR_recvfrom, __NR_sendmsg, __NR_recvmsg,
    __NR_sendmmsg, __NR_recvmmsg, __NR_shutdown, __NR_setsockopt, __NR_getsockopt,
    /* System V and POSIX IPC: private to the sandbox's IPC namespace */
    __NR_shmget, __NR_shmat, __NR_shmdt, __NR_shmctl, __NR_semget, __NR_semop,
    __NR_semtimedop, __NR_semctl, __NR_msgget, __NR_msgsnd, __NR_msgrcv, __NR_msgctl,
    __NR_mq_open, __NR_mq_unlink, __NR_mq_timedsend, __NR_mq_timedreceive, __NR_mq_notify,
    __NR_mq_getsetattr,
};

/* Known and refused with EPERM. */
static const int refused[] = {
    /* the mount table and namespaces: the sandbox's shape is fixed */
    __NR_mount, __NR_umount2, __NR_pivot_root, __NR_chroot, __NR_unshare, __NR_setns,
    __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick, __NR_open_tree, __NR_open_tree_attr,
    __NR_move_mount, __NR_mount_setattr, __NR_listmount, __NR_statmount,
    __NR_sethostname, __NR_setdomainname,
    /* reaching into other processes */
    __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_kcmp, __NR_pidfd_getfd,
    __NR_process_madvise, __NR_process_mrelease,
    /* memory placement of other processes, and NUMA policy (Docker's
     * default refuses these too, so the runtimes cope) */
    __NR_migrate_pages, __NR_move_pages, __NR_mbind, __NR_set_mempolicy, __NR_get_mempolicy,
    __NR_set_mempolicy_home_node,
    /* the kernel itself */
    __NR_kexec_load, __NR_kexec_file_load, __NR_init_module, __NR_finit_module,
    __NR_delete_module, __NR_reboot, __NR_swapon, __NR_swapoff, __NR_acct, __NR_syslog,
    __NR_quotactl, __NR_quotactl_fd, __NR_vhangup, __NR_lookup_dcookie,
    __NR_iopl, __NR_ioperm, __NR_modify_ldt,
    __NR_settimeofday, __NR_clock_settime, __NR_clock_adjtime, __NR_adjtimex,
    /* large kernel surfaces nothing here needs */
    __NR_bpf, __NR_perf_event_open, __NR_userfaultfd, __NR_fanotify_init, __NR_fanotify_mark,
    __NR_keyctl, __NR_add_key, __NR_request_key,
    __NR_open_by_handle_at, __NR_name_to_handle_at, __NR_vmsplice,
    /* io_uring runs operations where this filter cannot see them */
    __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
};

/* The calls decided by their arguments, each by a rule of its own. */
enum rule {
    RULE_SOCKET = 1, RULE_CLONE, RULE_CLONE3, RULE_IOCTL, RULE_PRCTL, RULE_PERSONALITY,
    RULE_SYNC, N_RULES
};
static const struct { int nr; enum rule rule; } ruled[] = {
    { __NR_socket, RULE_SOCKET }, { __NR_socketpair, RULE_SOCKET },
    { __NR_clone, RULE_CLONE }, { __NR_clone3, RULE_CLONE3 },
    { __NR_ioctl, RULE_IOCTL }, { __NR_prctl, RULE_PRCTL },
    { __NR_personality, RULE_PERSONALITY },
    { __NR_sync, RULE_SYNC }, { __NR_syncfs, RULE_SYNC },
};

/* clone's low byte is the exit signal, so CLONE_NEWTIME (0x80) cannot be
 * asked for through clone: only through clone3 (ENOSYS) and unshare. */
#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET)

/* prctl options a process may use on itself, as inclusive ranges. Left out:
 * PR_SET_MM (35), PR_SET_IO_FLUSHER (57-58), syscall user dispatch (59),
 * core scheduling cookies (62), KSM page merging (67-68, a side channel
 * between tenants), CRIU's timer ids (77), PR_SET_PTRACER, other
 * architectures' options; they get EINVAL, as from a kernel without them. */
static const struct { unsigned lo, hi; } prctl_options[] = {
    { 1, 34 },        /* PR_SET_PDEATHSIG .. PR_MCE_KILL_GET: PR_SET_NAME, PR_SET_SECCOMP... */
    { 36, 42 },       /* child subreaper, no_new_privs, THP */
    { 45, 47 },       /* FP mode, PR_CAP_AMBIENT (raising needs a capability) */
    { 50, 56 },       /* SVE, speculation control, pointer authentication, tagged addresses */
    { 60, 61 },       /* pointer authentication keys */
    { 63, 66 },       /* SME, memory-deny-write-execute */
    { 74, 76 },       /* shadow stacks */
    { 78, 78 },       /* PR_FUTEX_HASH */
    { 0x41555856, 0x41555856 }, /* PR_GET_AUXV */
    { 0x53564d41, 0x53564d41 }, /* PR_SET_VMA: naming anonymous mappings */
};

/* personality: querying, and the values that change only what uname
 * reports (PER_LINUX32, UNAME26). Nothing that changes how memory is laid
 * out for the next exec (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE...). */
static const unsigned personalities[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define N_ENTRIES (N(allowed) + N(refused) + N(ruled))
/* 6 instructions per run of equal verdicts at most, plus the rules. */
#define MAX_FILTER (N_ENTRIES * 6 + 128)

enum verdict { V_ALLOW = 0, V_EPERM = 1000, V_RULE = 2000 }; /* V_RULE + enum rule */

struct entry { unsigned nr; int verdict; };
struct run { unsigned lo, hi; int verdict; };

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
/* Arguments are 64-bit; the low word sits first on little-endian machines,
 * and every argument the rules read is an int or a 32-bit flag word in the
 * kernel (socket's family and protocol, clone's flags once truncated,
 * ioctl's request, prctl's option, personality). */
#define LOAD_ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define RET_ERRNO(e) RET(SECCOMP_RET_ERRNO | ((e) & SECCOMP_RET_DATA))
#define RET_ALLOW RET(SECCOMP_RET_ALLOW)

struct program {
    struct sock_filter f[MAX_FILTER];
    int n;
    int too_long;
};

static void emit(struct program *p, struct sock_filter insn)
{
    if (p->n < MAX_FILTER)
        p->f[p->n++] = insn;
    else
        p->too_long = 1;
}

static void emit_stmt(struct program *p, unsigned short code, unsigned k)
{
    emit(p, (struct sock_filter)BPF_STMT(code, k));
}

static void emit_jump(struct program *p, unsigned short op, unsigned k, unsigned char jt, unsigned char jf)
{
    emit(p, (struct sock_filter)BPF_JUMP(BPF_JMP | op | BPF_K, k, jt, jf));
}

/* Where the leaves of rule-decided calls jump to, patched once the rule
 * blocks are placed after the search. */
struct patch { int at; enum rule rule; };
struct patches { struct patch at[N(ruled)]; int n; };

/* One run: [lo, hi] -> verdict; anything else that reaches it -> ENOSYS.
 *   JGE lo ? next : enosys;  JGT hi ? enosys : next;  verdict;  enosys */
static void emit_leaf(struct program *p, struct patches *patches, const struct run *r)
{
    emit_jump(p, BPF_JGE, r->lo, 0, 2);
    emit_jump(p, BPF_JGT, r->hi, 1, 0);
    if (r->verdict == V_ALLOW) {
        emit(p, (struct sock_filter)RET_ALLOW);
    } else if (r->verdict == V_EPERM) {
        emit(p, (struct sock_filter)RET_ERRNO(EPERM));
    } else {
        if (patches->n < N(ruled))
            patches->at[patches->n++] = (struct patch){ p->n, (enum rule)(r->verdict - V_RULE) };
        emit_stmt(p, BPF_JMP | BPF_JA, 0);
    }
    emit(p, (struct sock_filter)RET_ERRNO(ENOSYS));
}

/* A binary search over runs[a, b): JGE mid.lo jumps (by a JA, which has
 * a 32-bit reach where jt has 8 bits) to the upper half. */
static void emit_search(struct program *p, struct patches *patches, const struct run *runs, int a, int b)
{
    if (b - a == 1) {
        emit_leaf(p, patches, &runs[a]);
        return;
    }
    int mid = a + (b - a) / 2;
    emit_jump(p, BPF_JGE, runs[mid].lo, 0, 1);
    int ja = p->n;
    emit_stmt(p, BPF_JMP | BPF_JA, 0);
    emit_search(p, patches, runs, a, mid);
    if (ja < p->n)
        p->f[ja].k = (unsigned)(p->n - ja - 1);
    emit_search(p, patches, runs, mid, b);
}

static void emit_rule(struct program *p, enum rule rule)
{
    switch (rule) {
    case RULE_SOCKET:
        /* AF_VSOCK reaches the host's hypervisor sockets, AF_PACKET raw
         * frames, AF_ALG the kernel's crypto API: only the families the
         * runtimes use. EAFNOSUPPORT is what a kernel without the family
         * says, which every runtime handles.
         *   0 ld family  1-3 unix/inet/inet6 -> 9  4 netlink -> 6  5 refuse
         *   6 ld protocol  7 route -> 9  8 refuse  9 allow */
        emit(p, (struct sock_filter)LOAD_ARG_LO(0));
        emit_jump(p, BPF_JEQ, AF_UNIX, 7, 0);
        emit_jump(p, BPF_JEQ, AF_INET, 6, 0);
        emit_jump(p, BPF_JEQ, AF_INET6, 5, 0);
        emit_jump(p, BPF_JEQ, AF_NETLINK, 1, 0);
        emit(p, (struct sock_filter)RET_ERRNO(EAFNOSUPPORT));
        /* Netlink: NETLINK_ROUTE only, scoped to the sandbox's own network
         * namespace (glibc's getifaddrs, if_nameindex and AI_ADDRCONFIG,
         * Node's os.networkInterfaces, Go's net.Interfaces). Not uevents
         * (the host's devices), audit, sock_diag or the rest. */
        emit(p, (struct sock_filter)LOAD_ARG_LO(2));
        emit_jump(p, BPF_JEQ, NETLINK_ROUTE_PROTOCOL, 1, 0);
        emit(p, (struct sock_filter)RET_ERRNO(EPROTONOSUPPORT));
        emit(p, (struct sock_filter)RET_ALLOW);
        return;
    case RULE_CLONE:
        /* Threads and fork are fine, new namespaces are not. */
        emit(p, (struct sock_filter)LOAD_ARG_LO(0));
        emit_jump(p, BPF_JSET, NAMESPACE_FLAGS, 0, 1);
        emit(p, (struct sock_filter)RET_ERRNO(EPERM));
        emit(p, (struct sock_filter)RET_ALLOW);
        return;
    case RULE_CLONE3:
        /* clone3 passes its flags in memory the filter cannot read. ENOSYS
         * makes libc fall back to clone, whose flags can be checked. */
        emit(p, (struct sock_filter)RET_ERRNO(ENOSYS));
        return;
    case RULE_IOCTL:
        /* TIOCSTI and TIOCLINUX push input into a terminal; TIOCSETD loads
         * line disciplines (kernel modules, a history of bugs). */
        emit(p, (struct sock_filter)LOAD_ARG_LO(1));
        emit_jump(p, BPF_JEQ, TIOCSTI, 2, 0);
        emit_jump(p, BPF_JEQ, TIOCLINUX, 1, 0);
        emit_jump(p, BPF_JEQ, TIOCSETD, 0, 1);
        emit(p, (struct sock_filter)RET_ERRNO(EPERM));
        emit(p, (struct sock_filter)RET_ALLOW);
        return;
    case RULE_PRCTL:
        emit(p, (struct sock_filter)LOAD_ARG_LO(0));
        for (int i = 0; i < N(prctl_options); i++) {
            /* lo <= option <= hi -> allow, else try the next range */
            emit_jump(p, BPF_JGE, prctl_options[i].lo, 0, 2);
            emit_jump(p, BPF_JGT, prctl_options[i].hi, 1, 0);
            emit(p, (struct sock_filter)RET_ALLOW);
        }
        emit(p, (struct sock_filter)RET_ERRNO(EINVAL));
        return;
    case RULE_PERSONALITY:
        emit(p, (struct sock_filter)LOAD_ARG_LO(0));
        for (int i = 0; i < N(personalities); i++) {
            emit_jump(p, BPF_JEQ, personalities[i], 0, 1);
            emit(p, (struct sock_filter)RET_ALLOW);
        }
        emit(p, (struct sock_filter)RET_ERRNO(EPERM));
        return;
    case RULE_SYNC:
        /* Answered 0 without running: the sandbox can write only to its own
         * tmpfs, which has nothing to flush, while the real calls flush
         * whole host file systems (syncfs on any fd under /usr). */
        emit(p, (struct sock_filter)RET_ERRNO(0));
        return;
    case N_RULES:
        break;
    }
}

static int by_nr(const void *a, const void *b)
{
    unsigned x = ((const struct entry *)a)->nr, y = ((const struct entry *)b)->nr;
    return (x > y) - (x < y);
}

static struct program program;
static int program_error;
static int allowed_count;

/* Runs once per process, in the parent: the child that installs the filter
 * is a copy of a multithreaded server and may not call qsort (it can
 * malloc). */
static void build(void)
{
    struct entry entries[N_ENTRIES];
    int n = 0;
    for (int i = 0; i < N(allowed); i++)
        if (allowed[i] != ABSENT)
            entries[n++] = (struct entry){ (unsigned)allowed[i], V_ALLOW };
    allowed_count = n;
    for (int i = 0; i < N(refused); i++)
        if (refused[i] != ABSENT)
            entries[n++] = (struct entry){ (unsigned)refused[i], V_EPERM };
    for (int i = 0; i < N(ruled); i++)
        entries[n++] = (struct entry){ (unsigned)ruled[i].nr, V_RULE + ruled[i].rule };
    qsort(entries, (size_t)n, sizeof entries[0], by_nr);

    /* Runs of consecutive numbers with one verdict. A number listed twice
     * is a mistake in the tables: refuse to build rather than guess. */
    struct run runs[N_ENTRIES];
    int r = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && entries[i].nr == entries[i - 1].nr) {
            program_error = -EINVAL;
            return;
        }
        if (r > 0 && runs[r - 1].hi + 1 == entries[i].nr && runs[r - 1].verdict == entries[i].verdict)
            runs[r - 1].hi = entries[i].nr;
        else
            runs[r++] = (struct run){ entries[i].nr, entries[i].nr, entries[i].verdict };
    }

    struct program *p = &program;
    emit(p, (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)));
    emit_jump(p, BPF_JEQ, NATIVE_ARCH, 1, 0);
    emit(p, (struct sock_filter)RET_ERRNO(ENOSYS));
    emit(p, (struct sock_filter)LOAD_NR);
#if defined(__x86_64__)
    /* x32 shares AUDIT_ARCH_X86_64 and is told apart by this bit. */
    emit_jump(p, BPF_JGE, 0x40000000, 0, 1);
    emit(p, (struct sock_filter)RET_ERRNO(ENOSYS));
#endif
    struct patches patches = { .n = 0 };
    emit_search(p, &patches, runs, 0, r);
    int block[N_RULES] = { 0 };
    for (int rule = 1; rule < N_RULES; rule++) {
        block[rule] = p->n;
        emit_rule(p, (enum rule)rule);
    }
    if (p->too_long || p->n > BPF_MAXINSNS) {
        program_error = -E2BIG;
        return;
    }
    for (int i = 0; i < patches.n; i++)
        p->f[patches.at[i].at].k = (unsigned)(block[patches.at[i].rule] - patches.at[i].at - 1);
}

static pthread_once_t built = PTHREAD_ONCE_INIT;

int ll_seccomp_prepare(void)
{
    pthread_once(&built, build);
    return program_error;
}

int ll_seccomp_filter_length(void)
{
    int rc = ll_seccomp_prepare();
    return rc < 0 ? rc : program.n;
}

int ll_seccomp_allowed_count(void)
{
    int rc = ll_seccomp_prepare();
    return rc < 0 ? rc : allowed_count;
}

int ll_seccomp_program(const unsigned char **insns)
{
    int rc = ll_seccomp_prepare();
    if (rc < 0)
        return rc;
    *insns = (const unsigned char *)program.f;
    return program.n;
}

int ll_seccomp_install_prepared(void)
{
    /* No pthread_once here: the child of a multithreaded server must not
     * reach code that may take a lock (tests/test_native_child.py). */
    if (program_error < 0)
        return program_error;
    if (program.n == 0)
        return -EINVAL; /* ll_seccomp_prepare() was not called */
    struct sock_fprog prog = { (unsigned short)program.n, program.f };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        return -errno;
    return 0;
}

int ll_seccomp_install(void)
{
    int rc = ll_seccomp_prepare();
    return rc < 0 ? rc : ll_seccomp_install_prepared();
}
