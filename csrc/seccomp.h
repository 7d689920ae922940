#ifndef LAMBDALET_SECCOMP_H
#define LAMBDALET_SECCOMP_H
/* Install the sandbox's seccomp-bpf filter on the calling thread.
 * Requires no_new_privs (or CAP_SYS_ADMIN). Returns 0 or -errno. */
int ll_seccomp_install(void);
/* Number of BPF instructions in the filter, for tests and doctor output. */
int ll_seccomp_filter_length(void);
#endif
