/* The sandbox's private root, assembled from read-only binds.
 *
 * The approach follows bubblewrap's: a tmpfs becomes a staging root with
 * the host's tree moved under /oldroot, so host paths stay reachable while
 * /newroot is filled in, even paths that the new tree will hide (the code
 * directory may live under the host's /tmp, for instance). A last
 * pivot_root makes /newroot the root and the host tree is detached.
 *
 * Runs in the sandbox's first process, before exec, in a copy of a
 * multithreaded server: raw system calls and stack buffers only. */
#include "mounts.h"
#include "retry.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h> /* ST_* flags, which statfs's f_flags uses too */
#include <sys/syscall.h>
#include <unistd.h>

#define PATH_BUF 4096
#define FAIL(name) do { *step = (name); return -errno; } while (0)

static int join(char *out, const char *prefix, const char *path)
{
    size_t a = strlen(prefix), b = strlen(path);
    if (a + b + 1 > PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(out, prefix, a);
    memcpy(out + a, path, b + 1);
    return 0;
}

/* mkdir -p, each created level 0755 so an unprivileged uid can traverse to
 * a bind whose host parents are private (/root/.pyenv under a 0700 /root). */
static int mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_BUF];
    size_t n = strlen(path);
    if (n >= PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

static int parent_dirs(const char *path)
{
    char buf[PATH_BUF];
    size_t n = strlen(path);
    if (n >= PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, path, n + 1);
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return 0;
    *slash = '\0';
    return mkdirs(buf, 0755);
}

/* An empty file or directory to mount over, matching the source's type. */
static int make_mountpoint(const char *dst, int is_dir)
{
    if (is_dir)
        return mkdirs(dst, 0755);
    if (parent_dirs(dst) < 0)
        return -1;
    int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0)
        return errno == EEXIST ? 0 : -1;
    close(fd);
    return 0;
}

/* Flags a remount must keep: inside a user namespace the mount inherits
 * locked flags from the host (nosuid, noexec, atime), and a remount that
 * tries to clear one fails with EPERM. statfs, not statvfs: glibc's statvfs
 * falls back to reading /proc/mounts through stdio, which this process
 * may not use (see the top of this file). */
static unsigned long kept_flags(const char *path)
{
    struct statfs sf;
    unsigned long flags = 0;
    if (statfs(path, &sf) < 0)
        return 0;
    if (sf.f_flags & ST_NOSUID) flags |= MS_NOSUID;
    if (sf.f_flags & ST_NODEV) flags |= MS_NODEV;
    if (sf.f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
    if (sf.f_flags & ST_NOATIME) flags |= MS_NOATIME;
    if (sf.f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (sf.f_flags & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

static int remount_readonly(const char *path, unsigned long extra)
{
    return mount(NULL, path, NULL,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | extra | kept_flags(path), NULL);
}

static int write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    int rc = 0;
    for (size_t left = strlen(text); left > 0 && rc == 0;) {
        ssize_t w = LL_RETRY(write(fd, text, left));
        if (w < 0) {
            rc = -1;
        } else {
            text += w;
            left -= (size_t)w;
        }
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static int takes_source(int kind)
{
    return kind == LL_BIND_RO || kind == LL_BIND_DEV || kind == LL_STAGE_BIND || kind == LL_VIEW_RO;
}

int ll_mounts_open_sources(const struct ll_mount_op *ops, int n_ops, int *src_fds,
                           int *failed, const char **step)
{
    for (int i = 0; i < n_ops; i++) {
        *failed = i;
        src_fds[i] = -1;
        if (!takes_source(ops[i].kind))
            continue;
        if (ops[i].src == NULL) {
            errno = EINVAL;
            FAIL("bind: no source");
        }
        src_fds[i] = open(ops[i].src, O_PATH | O_CLOEXEC);
        if (src_fds[i] < 0)
            FAIL("bind: open source");
    }
    return 0;
}

int ll_mounts_begin(const char **step)
{
    /* Nothing mounted from here on may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        FAIL("make mounts private");
    if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0)
        FAIL("mount staging tmpfs");
    if (chdir("/tmp") < 0)
        FAIL("chdir staging");
    if (mkdir("newroot", 0755) < 0 || mkdir("oldroot", 0755) < 0 || mkdir("empty", 0555) < 0)
        FAIL("mkdir staging");
    if (syscall(SYS_pivot_root, "/tmp", "/tmp/oldroot") < 0)
        FAIL("pivot_root staging");
    if (chdir("/") < 0)
        FAIL("chdir /");
    if (mount("tmpfs", LL_NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755,size=1m,nr_inodes=4096") < 0)
        FAIL("mount root tmpfs");
    return 0;
}

/* The fd's own path: "self" resolves in the host's procfs, which is still
 * reachable under OLDROOT while the new root is being built. */
static void fd_path(char *out, int fd)
{
    char digits[16];
    int n = 0;
    do
        digits[n++] = (char)('0' + fd % 10);
    while ((fd /= 10) > 0);
    const char *prefix = LL_OLDROOT "/proc/self/fd/";
    size_t len = strlen(prefix);
    memcpy(out, prefix, len);
    while (n > 0)
        out[len++] = digits[--n];
    out[len] = '\0';
}

/* One step per kind of mount op. dst is the op's destination inside the
 * new root (or the staging root, for LL_STAGE_BIND); each returns 0 or
 * -errno with *step naming what failed. */

static int apply_mkdir(const struct ll_mount_op *op, const char *dst, const char **step)
{
    if (mkdirs(dst, op->mode ? op->mode : 0755) < 0)
        FAIL("mkdir");
    /* mkdir honours the umask; the mode was chosen on purpose. */
    if (chmod(dst, op->mode ? op->mode : 0755) < 0)
        FAIL("chmod");
    return 0;
}

static int apply_bind(const struct ll_mount_op *op, int src_fd, const char *dst, const char **step)
{
    char src[PATH_BUF];
    struct stat st;
    if (src_fd < 0) {
        errno = EBADF;
        FAIL("bind: source not opened");
    }
    if (fstat(src_fd, &st) < 0)
        FAIL("bind: stat source");
    fd_path(src, src_fd);
    if (make_mountpoint(dst, S_ISDIR(st.st_mode)) < 0)
        FAIL("bind: create mountpoint");
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL("bind");
    if (op->kind != LL_BIND_DEV) {
        if (remount_readonly(dst, MS_NOSUID | MS_NODEV) < 0)
            FAIL("bind: remount read-only");
    } else if (mount(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | kept_flags(dst), NULL) < 0) {
        FAIL("bind device: remount");
    }
    return 0;
}

static int apply_tmpfs(const struct ll_mount_op *op, const char *dst, const char **step)
{
    if (mkdirs(dst, 0755) < 0)
        FAIL("tmpfs: mkdir");
    if (mount("tmpfs", dst, "tmpfs", MS_NOSUID | MS_NODEV, op->data) < 0)
        FAIL("mount tmpfs");
    return 0;
}

static int apply_proc(const char *dst, const char **step)
{
    if (mkdirs(dst, 0555) < 0)
        FAIL("proc: mkdir");
    if (mount("proc", dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        FAIL("mount proc");
    return 0;
}

static int apply_symlink(const struct ll_mount_op *op, const char *dst, const char **step)
{
    if (op->data == NULL || parent_dirs(dst) < 0)
        FAIL("symlink: parent");
    if (symlink(op->data, dst) < 0 && errno != EEXIST)
        FAIL("symlink");
    return 0;
}

static int apply_write_file(const struct ll_mount_op *op, const char *dst, const char **step)
{
    if (op->data == NULL || parent_dirs(dst) < 0)
        FAIL("write file: parent");
    if (write_text(dst, op->data, op->mode ? op->mode : 0644) < 0)
        FAIL("write file");
    if (fchmodat(AT_FDCWD, dst, op->mode ? op->mode : 0644, 0) < 0)
        FAIL("write file: chmod");
    return 0;
}

static int apply_mask(const char *dst, const char **step)
{
    struct stat st;
    /* Absent paths differ between kernels; nothing to hide then. */
    if (lstat(dst, &st) < 0)
        return errno == ENOENT ? 0 : (*step = "mask: stat", -errno);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", dst, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=0,nr_inodes=1,mode=0555") < 0)
            FAIL("mask directory");
        return 0;
    }
    if (mount(LL_NEWROOT "/dev/null", dst, NULL, MS_BIND, NULL) < 0)
        FAIL("mask file");
    if (remount_readonly(dst, MS_NOSUID | MS_NOEXEC) < 0)
        FAIL("mask file: read-only");
    return 0;
}

static int apply_readonly(const char *dst, const char **step)
{
    struct stat st;
    if (lstat(dst, &st) < 0)
        return errno == ENOENT ? 0 : (*step = "read-only: stat", -errno);
    /* A mount point is remounted in place; anything else first becomes
     * a mount point by binding it onto itself. */
    if (remount_readonly(dst, MS_NOSUID | MS_NODEV) == 0)
        return 0;
    if (errno != EINVAL)
        FAIL("read-only: remount");
    if (mount(dst, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
        FAIL("read-only: bind");
    if (remount_readonly(dst, MS_NOSUID | MS_NODEV) < 0)
        FAIL("read-only: remount");
    return 0;
}

/* A bind shows its source's path inside the host's file system in
 * /proc/self/mountinfo (the data directory, the server's install). An
 * overlay shows only its lowerdir strings: here the source's fd as the
 * host's procfs named it, meaningless once the host root is gone, and the
 * empty staging directory (overlayfs wants two lower layers when it has no
 * upper one). */
static int apply_view(int src_fd, const char *dst, const char **step)
{
    char src[PATH_BUF], lower[PATH_BUF], opts[PATH_BUF];
    struct stat st;
    if (src_fd < 0) {
        errno = EBADF;
        FAIL("view: source not opened");
    }
    if (fstat(src_fd, &st) < 0)
        FAIL("view: stat source");
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        FAIL("view: source is not a directory");
    }
    fd_path(src, src_fd);
    if (join(lower, src, ":" LL_EMPTY_DIR) < 0 || join(opts, "lowerdir=", lower) < 0)
        FAIL("view: options too long");
    if (mkdirs(dst, 0755) < 0)
        FAIL("view: mkdir");
    if (mount("overlay", dst, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts) < 0)
        FAIL("view: mount overlay");
    return 0;
}

/* The file lives in the staging root, which stays alive after the pivot for
 * as long as this bind refers to it. */
static int apply_fixed_file(const struct ll_mount_op *op, const char *dst, const char **step)
{
    char staged[PATH_BUF];
    struct stat st;
    if (op->data == NULL) {
        errno = EINVAL;
        FAIL("fixed file: no contents");
    }
    if (lstat(dst, &st) < 0)
        return errno == ENOENT ? 0 : (*step = "fixed file: stat", -errno);
    if (join(staged, LL_FIXED_DIR, op->dst) < 0)
        FAIL("fixed file: path too long");
    if (parent_dirs(staged) < 0)
        FAIL("fixed file: staging directory");
    if (write_text(staged, op->data, 0444) < 0)
        FAIL("fixed file: write");
    if (mount(staged, dst, NULL, MS_BIND, NULL) < 0)
        FAIL("fixed file: bind");
    if (remount_readonly(dst, MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        FAIL("fixed file: read-only");
    return 0;
}

static int apply_overlay(const struct ll_mount_op *op, const char *dst, const char **step)
{
    if (mkdirs(dst, 0755) < 0)
        FAIL("overlay: mkdir");
    if (mount("overlay", dst, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, op->data) < 0)
        FAIL("mount overlay");
    return 0;
}

int ll_mount_apply(const struct ll_mount_op *op, int src_fd, const char **step)
{
    char dst[PATH_BUF];

    if (op->dst == NULL || op->dst[0] != '/') {
        errno = EINVAL;
        FAIL("mount op: destination must be absolute");
    }
    /* Staged binds live in the staging root, which pivot_root leaves behind. */
    if (join(dst, op->kind == LL_STAGE_BIND ? "" : LL_NEWROOT, op->dst) < 0)
        FAIL("mount op: destination too long");

    switch (op->kind) {
    case LL_MKDIR:
        return apply_mkdir(op, dst, step);
    case LL_BIND_RO:
    case LL_BIND_DEV:
    case LL_STAGE_BIND:
        return apply_bind(op, src_fd, dst, step);
    case LL_TMPFS:
        return apply_tmpfs(op, dst, step);
    case LL_PROC:
        return apply_proc(dst, step);
    case LL_SYMLINK:
        return apply_symlink(op, dst, step);
    case LL_WRITE_FILE:
        return apply_write_file(op, dst, step);
    case LL_MASK:
        return apply_mask(dst, step);
    case LL_READONLY:
        return apply_readonly(dst, step);
    case LL_VIEW_RO:
        return apply_view(src_fd, dst, step);
    case LL_FIXED_FILE:
        return apply_fixed_file(op, dst, step);
    case LL_OVERLAY_RO:
        return apply_overlay(op, dst, step);
    }
    errno = EINVAL;
    FAIL("mount op: unknown kind");
}

int ll_mounts_finish(const char **step)
{
    if (remount_readonly(LL_NEWROOT, MS_NOSUID | MS_NODEV) < 0)
        FAIL("remount root read-only");
    if (umount2(LL_OLDROOT, MNT_DETACH) < 0)
        FAIL("detach host root");
    if (chdir(LL_NEWROOT) < 0)
        FAIL("chdir new root");
    /* pivot_root(".", ".") stacks the staging root on top of the new one;
     * detaching "." then drops it, with no directory needed for it. */
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        FAIL("pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        FAIL("detach staging root");
    if (chdir("/") < 0)
        FAIL("chdir /");
    return 0;
}
