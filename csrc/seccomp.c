/* The sandbox's seccomp-bpf filter: a deny list on top of namespaces,
 * capabilities and no_new_privs.
 *
 * Denied calls fail with EPERM rather than killing the process, so that a
 * handler probing its environment gets an ordinary exception. Calls made
 * through another ABI (i386 via int 0x80, x32 on x86_64) fail with ENOSYS:
 * their numbers mean different things and the list below does not apply. */
#include "seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <asm/ioctls.h>

#if defined(__x86_64__)
#define NATIVE_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp filter: only x86_64 and aarch64 are supported"
#endif

#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

#define NAMESPACE_FLAGS (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | \
                         CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWTIME)

/* Every entry fails with EPERM. #ifdef keeps the list valid on both
 * architectures (aarch64 has no iopl, ioperm or the legacy module calls). */
static const int denied[] = {
    /* the mount table and namespaces */
    __NR_mount, __NR_umount2, __NR_pivot_root, __NR_unshare, __NR_setns,
#ifdef __NR_fsopen
    __NR_fsopen, __NR_fsconfig, __NR_fsmount, __NR_fspick, __NR_open_tree, __NR_move_mount,
#endif
#ifdef __NR_mount_setattr
    __NR_mount_setattr,
#endif
    __NR_chroot,
    /* reaching into other processes */
    __NR_ptrace, __NR_process_vm_readv, __NR_process_vm_writev, __NR_kcmp,
#ifdef __NR_pidfd_getfd
    __NR_pidfd_getfd,
#endif
    /* the kernel itself */
    __NR_kexec_load,
#ifdef __NR_kexec_file_load
    __NR_kexec_file_load,
#endif
    __NR_init_module, __NR_finit_module, __NR_delete_module,
#ifdef __NR_create_module
    __NR_create_module,
#endif
#ifdef __NR_query_module
    __NR_query_module,
#endif
#ifdef __NR_get_kernel_syms
    __NR_get_kernel_syms,
#endif
    __NR_bpf, __NR_perf_event_open,
    __NR_keyctl, __NR_add_key, __NR_request_key,
    __NR_userfaultfd,
    __NR_open_by_handle_at, __NR_name_to_handle_at,
    __NR_syslog, __NR_reboot, __NR_swapon, __NR_swapoff, __NR_acct,
#ifdef __NR_iopl
    __NR_iopl,
#endif
#ifdef __NR_ioperm
    __NR_ioperm,
#endif
#ifdef __NR_uselib
    __NR_uselib,
#endif
#ifdef __NR__sysctl
    __NR__sysctl,
#endif
#ifdef __NR_lookup_dcookie
    __NR_lookup_dcookie,
#endif
    __NR_quotactl, __NR_vhangup, __NR_settimeofday, __NR_clock_settime, __NR_clock_adjtime,
    __NR_adjtimex,
#ifdef __NR_io_uring_setup
    /* io_uring runs operations outside the reach of this filter. */
    __NR_io_uring_setup, __NR_io_uring_enter, __NR_io_uring_register,
#endif
};

#define LOAD_NR BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr))
/* Arguments are 64-bit; the low word sits first on little-endian machines,
 * and both clone's flags and ioctl's request are 32-bit in the kernel. */
#define LOAD_ARG_LO(i) BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[i]))
#define RET(v) BPF_STMT(BPF_RET | BPF_K, (v))
#define DENY_EPERM RET(SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA))
#define DENY_ENOSYS RET(SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA))

#define N_DENIED ((int)(sizeof(denied) / sizeof(denied[0])))
#define MAX_FILTER (N_DENIED * 2 + 40)

static int build(struct sock_filter *f)
{
    int n = 0;
    f[n++] = (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0);
    f[n++] = (struct sock_filter)DENY_ENOSYS;
    f[n++] = (struct sock_filter)LOAD_NR;
#if defined(__x86_64__)
    /* x32 shares AUDIT_ARCH_X86_64 and is told apart by this bit. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000, 0, 1);
    f[n++] = (struct sock_filter)DENY_ENOSYS;
#endif
    for (int i = 0; i < N_DENIED; i++) {
        f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)denied[i], 0, 1);
        f[n++] = (struct sock_filter)DENY_EPERM;
    }
    /* clone3 passes its flags in memory the filter cannot read. ENOSYS makes
     * libc fall back to clone, whose flags can be checked. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1);
    f[n++] = (struct sock_filter)DENY_ENOSYS;
    /* clone: threads and fork are fine, new namespaces are not. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone, 0, 4);
    f[n++] = (struct sock_filter)LOAD_ARG_LO(0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, NAMESPACE_FLAGS, 0, 1);
    f[n++] = (struct sock_filter)DENY_EPERM;
    f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
    /* ioctl: TIOCSTI pushes input into a terminal, TIOCLINUX can too. */
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_ioctl, 0, 4);
    f[n++] = (struct sock_filter)LOAD_ARG_LO(1);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCSTI, 1, 0);
    f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, TIOCLINUX, 0, 1);
    f[n++] = (struct sock_filter)DENY_EPERM;
    f[n++] = (struct sock_filter)RET(SECCOMP_RET_ALLOW);
    return n;
}

int ll_seccomp_filter_length(void)
{
    struct sock_filter f[MAX_FILTER];
    return build(f);
}

int ll_seccomp_install(void)
{
    struct sock_filter f[MAX_FILTER];
    struct sock_fprog prog = { (unsigned short)build(f), f };
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
        return -errno;
    return 0;
}
