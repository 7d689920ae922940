#ifndef LAMBDALET_SECCOMP_H
#define LAMBDALET_SECCOMP_H
/* Build the filter (once per process; thread-safe). ll_spawn calls it in
 * the parent, so that the child only installs what it inherited. Returns
 * 0 or -errno (E2BIG or EINVAL: the tables in seccomp.c are wrong). */
int ll_seccomp_prepare(void);
/* Install the sandbox's seccomp-bpf filter on the calling thread.
 * Requires no_new_privs (or CAP_SYS_ADMIN). Returns 0 or -errno. */
int ll_seccomp_install(void);
/* The same, for a process that may not build the filter itself (a child of
 * a multithreaded server): installs what ll_seccomp_prepare() built before
 * the clone. Returns 0 or -errno (-EINVAL if nothing was prepared). */
int ll_seccomp_install_prepared(void);
/* Number of BPF instructions in the filter, for tests and doctor output. */
int ll_seccomp_filter_length(void);
/* The filter itself (struct sock_filter[], 8 bytes each) and its length,
 * so that tests and doctor can run it on a system call without a sandbox. */
int ll_seccomp_program(const unsigned char **insns);
/* Number of system calls allowed whatever their arguments. */
int ll_seccomp_allowed_count(void);
#endif
