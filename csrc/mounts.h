#ifndef LAMBDALET_MOUNTS_H
#define LAMBDALET_MOUNTS_H
#include <stdint.h>
/* Building the sandbox's root file system.
 *
 * The sequence is: ll_mounts_begin (private propagation, a staging tmpfs
 * holding the host at OLDROOT and an empty root at NEWROOT), one
 * ll_mount_apply per planned operation, then ll_mounts_finish (read-only
 * root, pivot_root, old root detached). Every function returns 0 or -errno
 * and names the failed step. Destinations are paths inside the sandbox;
 * sources are host paths, opened up front. */

#define LL_OLDROOT "/oldroot"
#define LL_NEWROOT "/newroot"
#define LL_EMPTY_DIR "/empty"  /* in the staging root: an overlay's second layer */
#define LL_FIXED_DIR "/fixed"  /* in the staging root: LL_FIXED_FILE's files */

enum ll_mount_kind {
    LL_MKDIR = 1,      /* dst, mode */
    LL_BIND_RO = 2,    /* src -> dst, read-only, nosuid, nodev */
    LL_BIND_DEV = 3,   /* src device node -> dst, noexec, nosuid */
    LL_TMPFS = 4,      /* dst, data = tmpfs options, mode = 0 or MS_RDONLY later */
    LL_PROC = 5,       /* dst: a fresh procfs of the sandbox's pid namespace */
    LL_SYMLINK = 6,    /* dst -> data (the link's text) */
    LL_WRITE_FILE = 7, /* dst, data = contents, mode */
    LL_MASK = 8,       /* dst hidden: /dev/null over a file, empty tmpfs over a dir */
    LL_READONLY = 9,   /* dst made read-only in place */
    LL_OVERLAY_RO = 10,/* dst, data = "lowerdir=..." naming LL_STAGE_BIND paths */
    LL_STAGE_BIND = 11,/* src -> dst in the staging root, outside the new root:
                          a layer for an overlay, gone after pivot_root */
    LL_VIEW_RO = 12,   /* src directory -> dst, read-only, like LL_BIND_RO, but
                          /proc/self/mountinfo does not name the host path */
    LL_FIXED_FILE = 13,/* dst (an existing file, e.g. under /proc) covered,
                          read-only, by a file holding data */
};

struct ll_mount_op {
    int kind;
    const char *src;
    const char *dst;
    const char *data;
    unsigned int mode;
};

/* Open every bind source (O_PATH) while the process still has the host's
 * view and credentials: after the switch to the sandbox's setup uid, host
 * directories such as a 0700 /root can no longer be traversed. src_fds[i]
 * is -1 for operations without a source; *failed is the index that failed. */
int ll_mounts_open_sources(const struct ll_mount_op *ops, int n_ops, int *src_fds,
                           int *failed, const char **step);
int ll_mounts_begin(const char **step);
/* ll_mounts_begin, with NEWROOT a clone of a prepared root (template_fd,
 * from ll_template_build) rather than an empty tmpfs; the ops then add
 * only each sandbox's own mounts, on mountpoints the template has. dev and
 * ino: the template root's st_dev and st_ino, which the clone must show
 * (a mix-up of fd numbers must not hand a sandbox another root). */
int ll_mounts_begin_from(int template_fd, uint64_t dev, uint64_t ino, const char **step);
/* A prepared root: ops applied once to a detached tree (every kind but
 * LL_PROC, LL_STAGE_BIND, LL_OVERLAY_RO, LL_FIXED_FILE and LL_READONLY,
 * which are each sandbox's own), made read-only down to its tmpfs superblocks. Runs in
 * the caller's mount namespace with its credentials, not in a sandbox; the
 * files it makes belong to owner_uid/gid (the host ids of the sandbox's 0).
 * Returns the tree's fd (close-on-exec, the caller's), or -errno with
 * *step and *failed (the op's index, or -1) naming what failed. */
int ll_template_build(const struct ll_mount_op *ops, int n_ops, unsigned int owner_uid, unsigned int owner_gid,
                      int *failed, const char **step);
/* 0 if a process in a new user and mount namespace, as a sandbox is, may
 * clone the template; else -errno (the kernel's refusal). */
int ll_template_probe(int template_fd);
int ll_mount_apply(const struct ll_mount_op *op, int src_fd, const char **step);
/* For the tests alone: the next count openat2 calls of this process and of
 * the children it clones from now on (every one while count is negative)
 * fail with err, as on a kernel without openat2 (ENOSYS) or in a storm of
 * mounts and renames (EAGAIN); (0, 0) turns it off. */
void ll_mounts_openat2_fault(int err, int count);
int ll_mounts_finish(const char **step);
#endif
