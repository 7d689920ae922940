#ifndef LAMBDALET_ATTACH_H
#define LAMBDALET_ATTACH_H
#include <sys/types.h>

/* Mounts the host directory src, read-only, at dst inside the mount
 * namespace of process pid (a sandbox that is already running), on top of
 * whatever dst holds. pidfd, unless -1, refers to pid and proves it was not
 * reused (for a process that is not the caller's child). Returns 0 or
 * -errno; *step names what failed. */
int ll_attach_tree(int pid, int pidfd, const char *src, const char *dst, const char **step);

#endif
