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
#include <stdio.h> /* snprintf, in ll_template_build only: never in a sandbox */
#include <stdlib.h> /* malloc, likewise */
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h> /* ST_* flags, which statfs's f_flags uses too */
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

/* After the system headers: it defines only what they left out. */
#include "mount_api.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

struct ll_mount_attr {
    unsigned long long attr_set, attr_clr, propagation, userns_fd;
};

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
 * a bind whose host parents are private (/root/.pyenv under a 0700 /root).
 * The sandbox's own paths, in its own mount namespace; the prepared root
 * makes its paths with dirs_in_template. */
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
static unsigned long kept_flags_of(const struct statfs *sf)
{
    unsigned long flags = 0;
    if (sf->f_flags & ST_NOSUID) flags |= MS_NOSUID;
    if (sf->f_flags & ST_NODEV) flags |= MS_NODEV;
    if (sf->f_flags & ST_NOEXEC) flags |= MS_NOEXEC;
    if (sf->f_flags & ST_NOATIME) flags |= MS_NOATIME;
    if (sf->f_flags & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (sf->f_flags & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

static unsigned long kept_flags(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) < 0 ? 0 : kept_flags_of(&sf);
}

static int remount_readonly(const char *path, unsigned long extra)
{
    return mount(NULL, path, NULL,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | extra | kept_flags(path), NULL);
}

static int write_all(int fd, const char *text)
{
    for (size_t left = strlen(text); left > 0;) {
        ssize_t w = LL_RETRY(write(fd, text, left));
        if (w < 0)
            return -1;
        text += w;
        left -= (size_t)w;
    }
    return 0;
}

static int write_text(const char *path, const char *text, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, text);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static void close_keep_errno(int fd)
{
    int saved = errno;
    if (fd >= 0)
        close(fd);
    errno = saved;
}

/* Name the step, keep errno (or set err), and leave through the function's
 * one cleanup exit. */
#define OUT(name) do { *step = (name); rc = -errno; goto out; } while (0)
#define OUT_ERR(name, err) do { *step = (name); rc = -(err); goto out; } while (0)

/* --- paths inside a root being built -------------------------------------
 *
 * A root being built binds host trees, and whoever builds it still sees the
 * host's tree: the server builds a prepared root in the host's mount
 * namespace, and the sandbox's first process has the host under OLDROOT
 * until its last pivot. A symlink inside a bound host tree (x -> /etc,
 * x -> /oldroot/tmp, ../../../oldroot) on the way to a path the root makes
 * would take a plain walk onto the host, and the mkdir, file, symlink,
 * chmod or mount made there with it, with the builder's credentials. So
 * every path is resolved inside the root, as a process in it will resolve
 * it (openat2 with RESOLVE_IN_ROOT), and only its last component is made,
 * by name against its parent's fd, and never followed. */

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
/* openat2's arguments (linux/openat2.h, which older hosts lack). */
struct ll_open_how {
    unsigned long long flags, mode, resolve;
};
#define LL_RESOLVE_NO_MAGICLINKS 0x02
#define LL_RESOLVE_NO_SYMLINKS 0x04
#define LL_RESOLVE_BENEATH 0x08
#define LL_RESOLVE_IN_ROOT 0x10

/* A test's switch (ll_mounts_openat2_fault): the next count openat2 calls
 * (every one while count is negative) fail with err without reaching the
 * kernel, as they would on a kernel without openat2 (ENOSYS) or in a
 * system-wide mount or rename storm (EAGAIN). Zero outside the tests. */
static int openat2_fault_err, openat2_fault_count;

void ll_mounts_openat2_fault(int err, int count)
{
    openat2_fault_err = err;
    openat2_fault_count = count;
}

static int openat2_once(int dir, const char *rel, int flags, unsigned long long resolve)
{
    struct ll_open_how how;
    if (openat2_fault_count != 0) {
        if (openat2_fault_count > 0)
            openat2_fault_count--;
        errno = openat2_fault_err;
        return -1;
    }
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)(O_CLOEXEC | flags);
    how.resolve = resolve;
    return (int)syscall(SYS_openat2, dir, *rel ? rel : ".", &how, sizeof how);
}

/* With RESOLVE_IN_ROOT or RESOLVE_BENEATH the kernel answers EAGAIN when a
 * `..` was walked while any mount or rename happened, anywhere on the
 * system (concurrent spawns mount all the time): asked again, a few times. */
#define OPENAT2_TRIES 16

static int sys_openat2(int dir, const char *rel, int flags, unsigned long long resolve)
{
    int fd = -1;
    for (int i = 0; i < OPENAT2_TRIES; i++) {
        fd = openat2_once(dir, rel, flags, resolve);
        if (fd >= 0 || errno != EAGAIN)
            break;
    }
    return fd;
}

static int openat2_in_root(int root, const char *rel, int flags)
{
    return sys_openat2(root, rel, flags, LL_RESOLVE_IN_ROOT | LL_RESOLVE_NO_MAGICLINKS);
}

#ifndef PROC_SUPER_MAGIC
#define PROC_SUPER_MAGIC 0x9fa0
#endif
#define MAX_LINKS 40 /* the kernel's own limit on symlinks in one walk */

/* What openat2_in_root does, in user space, for a kernel without openat2
 * (before 5.6) or a seccomp profile that answers ENOSYS: one component at a
 * time, never following anything by itself (O_NOFOLLOW); a symlink's text
 * walked in its place, from the root when it is absolute; `..` never above
 * the root (at the root it stays there); at most MAX_LINKS symlinks (ELOOP);
 * procfs' symlinks (its magic links among them) refused with ELOOP. Only
 * O_PATH opens, with O_DIRECTORY or O_NOFOLLOW (what this file asks for):
 * anything else is EINVAL. An O_PATH fd, or -1 with errno; anything odd
 * fails. Stack buffers and system calls only: the sandbox's first process
 * runs it. */
static int walk_in_root(int root, const char *rel, int flags)
{
    char path[PATH_BUF], link[PATH_BUF];
    struct stat root_st, st;
    struct statfs sf;
    int links = 0, depth = 0, err = 0, cur, next;
    size_t n = strlen(rel);
    if (!(flags & O_PATH) || (flags & ~(O_PATH | O_DIRECTORY | O_NOFOLLOW)) != 0) {
        errno = EINVAL;
        return -1;
    }
    if (n >= PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(path, rel, n + 1);
    if (fstat(root, &root_st) < 0)
        return -1;
    if ((cur = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        return -1;
    for (char *p = path; err == 0;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        char *end = p;
        while (*end && *end != '/')
            end++;
        char *rest = end;
        while (*rest == '/')
            rest++;
        /* A trailing slash asks for a directory, followed. */
        int slash = *end == '/', last = *rest == '\0';
        *end = '\0';
        if (strcmp(p, ".") == 0) {
            p = rest;
            continue;
        }
        if (strcmp(p, "..") == 0) {
            if (fstat(cur, &st) < 0) {
                err = errno;
            } else if (st.st_dev == root_st.st_dev && st.st_ino == root_st.st_ino) {
                depth = 0; /* the root's `..` is the root */
            } else if (depth == 0) {
                err = EXDEV; /* not at the root, yet no level below it: moved */
            } else if ((next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
                err = errno;
            } else {
                close(cur);
                cur = next;
                depth--;
            }
            p = rest;
            continue;
        }
        if ((next = openat(cur, p, O_PATH | O_NOFOLLOW | O_CLOEXEC)) < 0) {
            err = errno;
            break;
        }
        if (fstat(next, &st) < 0) {
            err = errno;
        } else if (S_ISLNK(st.st_mode) && (!last || slash || !(flags & O_NOFOLLOW))) {
            long len = 0;
            size_t tail = slash ? 1 + strlen(rest) : 0;
            if (++links > MAX_LINKS)
                err = ELOOP;
            else if (fstatfs(next, &sf) < 0)
                err = errno;
            else if (sf.f_type == PROC_SUPER_MAGIC)
                err = ELOOP;
            else if ((len = syscall(SYS_readlinkat, next, "", link, sizeof link)) < 0)
                err = errno;
            else if (len == 0)
                err = ENOENT;
            else if ((size_t)len + tail >= PATH_BUF)
                err = ENAMETOOLONG;
            close(next);
            if (err)
                break;
            /* The link's text, then what was left of the path. */
            if (slash) {
                memmove(path + len + 1, rest, tail);
                path[len] = '/';
            } else {
                path[len] = '\0';
            }
            memcpy(path, link, (size_t)len);
            if (link[0] == '/') {
                close(cur);
                depth = 0;
                if ((cur = openat(root, ".", O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
                    return -1;
            }
            p = path;
            continue;
        } else if ((!last || slash) && !S_ISDIR(st.st_mode)) {
            err = ENOTDIR;
        }
        if (err) {
            close(next);
            break;
        }
        close(cur);
        cur = next;
        depth++;
        p = rest;
    }
    if (err == 0 && (flags & O_DIRECTORY)) {
        if (fstat(cur, &st) < 0)
            err = errno;
        else if (!S_ISDIR(st.st_mode))
            err = ENOTDIR;
    }
    if (err) {
        close(cur);
        errno = err;
        return -1;
    }
    return cur;
}

/* rel resolved inside the tree whose root is root: an O_PATH fd (flags:
 * O_PATH, with O_DIRECTORY or O_NOFOLLOW), or -1 with errno. Without
 * openat2 (ENOSYS) the same walk in user space (walk_in_root); a prepared
 * root is never built there (ll_template_build asks for openat2 itself). */
static int open_in_root(int root, const char *rel, int flags)
{
    int fd = openat2_in_root(root, rel, flags);
    if (fd < 0 && errno == ENOSYS)
        fd = walk_in_root(root, rel, flags);
    return fd;
}

/* The directory rel inside the root, made where missing (mkdir -p, 0755
 * each level, see mkdirs): each level is made by name against its parent's
 * fd, then the path so far is opened inside the root, so a symlink on the
 * way is followed as a process in the root would follow it. An O_PATH fd,
 * or -1 with errno. */
static int dirs_in_root(int root, const char *rel)
{
    char buf[PATH_BUF];
    size_t n = strlen(rel);
    int dir = open_in_root(root, rel, O_PATH | O_DIRECTORY);
    if (dir >= 0 || errno != ENOENT)
        return dir; /* the common case: it is there */
    if (n >= PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, rel, n + 1);
    dir = open_in_root(root, "", O_PATH | O_DIRECTORY);
    for (char *p = buf; dir >= 0 && *p;) {
        char *end = p;
        while (*end && *end != '/')
            end++;
        char sep = *end;
        *end = '\0';
        if (*p && mkdirat(dir, p, 0755) < 0 && errno != EEXIST) {
            close_keep_errno(dir);
            return -1;
        }
        int next = open_in_root(root, buf, O_PATH | O_DIRECTORY);
        close_keep_errno(dir);
        dir = next;
        *end = sep;
        p = sep ? end + 1 : end;
    }
    return dir;
}

/* rel's parent directory inside the root, made where missing
 * (dirs_in_root), and rel's last component, in *name (inside buf, of
 * PATH_BUF bytes): the one thing the caller makes, by name against the
 * parent's fd. An O_PATH fd, or -1 with errno. */
static int parent_in_root(int root, const char *rel, char *buf, const char **name)
{
    size_t n = strlen(rel);
    if (n >= PATH_BUF) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(buf, rel, n + 1);
    while (n > 1 && buf[n - 1] == '/')
        buf[--n] = '\0';
    char *slash = strrchr(buf, '/');
    *name = slash ? slash + 1 : buf;
    /* A name to make: not a way up, nor the directory itself. */
    if (**name == '\0' || strcmp(*name, ".") == 0 || strcmp(*name, "..") == 0) {
        errno = EINVAL;
        return -1;
    }
    if (slash == NULL)
        return dirs_in_root(root, "");
    *slash = '\0';
    return dirs_in_root(root, buf);
}

/* name in dir, never followed: an O_PATH fd of it, or -1 with errno: ELOOP
 * for a symlink, ENOTDIR or EISDIR when it is not the type wanted (want_dir
 * 1 for a directory, 0 for anything else). */
static int open_last(int dir, const char *name, int want_dir)
{
    struct stat st;
    int err = 0;
    int fd = openat(dir, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0)
        err = errno;
    else if (S_ISLNK(st.st_mode))
        err = ELOOP;
    else if (want_dir && !S_ISDIR(st.st_mode))
        err = ENOTDIR;
    else if (!want_dir && S_ISDIR(st.st_mode))
        err = EISDIR;
    if (err) {
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

/* An empty directory (of mode, when made) or file at rel inside the root to
 * mount on, matching the mount's type; one there before is used, a symlink
 * there is refused (ELOOP). An O_PATH fd of it, or -errno with *step. */
static int mountpoint_in_root(int root, const char *rel, int is_dir, mode_t mode, const char **step)
{
    char buf[PATH_BUF];
    const char *name;
    int rc = 0, made = -1;
    int parent = parent_in_root(root, rel, buf, &name);
    if (parent < 0)
        OUT("mountpoint: parent");
    if (is_dir) {
        if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
            OUT("create mountpoint");
    } else {
        made = openat(parent, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
        if (made < 0 && errno != EEXIST)
            OUT("create mountpoint");
    }
    rc = open_last(parent, name, is_dir);
    if (rc < 0)
        OUT("open mountpoint");
out:
    close_keep_errno(made);
    close_keep_errno(parent);
    return rc;
}

/* A directory at rel inside the root, of mode (an existing one too). mkdir
 * honours the umask, and the mode was chosen on purpose: fchmod, on the
 * directory itself, reopened through its O_PATH fd. */
static int make_dir_in_root(int root, const char *rel, mode_t mode, const char **step)
{
    char buf[PATH_BUF];
    const char *name;
    int rc = 0, at = -1, dir = -1;
    int parent = parent_in_root(root, rel, buf, &name);
    if (parent < 0)
        OUT("mkdir: parent");
    if (mkdirat(parent, name, mode) < 0 && errno != EEXIST)
        OUT("mkdir");
    if ((at = open_last(parent, name, 1)) < 0)
        OUT("mkdir: open");
    if ((dir = openat(at, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        OUT("mkdir: open");
    if (fchmod(dir, mode) < 0)
        OUT("mkdir: chmod");
out:
    close_keep_errno(dir);
    close_keep_errno(at);
    close_keep_errno(parent);
    return rc;
}

/* A file at rel inside the root holding text, of mode. O_NOFOLLOW: a
 * symlink there is refused (ELOOP), not written through; O_NONBLOCK: a FIFO
 * there is refused (ENXIO), not waited on; anything else but a regular file
 * (a device: O_TRUNC leaves it alone) is refused with EEXIST. */
static int write_file_in_root(int root, const char *rel, const char *text, mode_t mode, const char **step)
{
    char buf[PATH_BUF];
    const char *name;
    struct stat st;
    int rc = 0, fd = -1;
    int parent = parent_in_root(root, rel, buf, &name);
    if (parent < 0)
        OUT("write file: parent");
    fd = openat(parent, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, mode);
    if (fd < 0)
        OUT("write file: open");
    if (fstat(fd, &st) < 0)
        OUT("write file: stat");
    if (!S_ISREG(st.st_mode))
        OUT_ERR("write file: not a regular file", EEXIST);
    if (write_all(fd, text) < 0)
        OUT("write file");
    if (fchmod(fd, mode) < 0)
        OUT("write file: chmod");
out:
    close_keep_errno(fd);
    close_keep_errno(parent);
    return rc;
}

/* A symlink at rel inside the root; one already there is kept (nothing
 * follows it here). */
static int symlink_in_root(int root, const char *rel, const char *target, const char **step)
{
    char buf[PATH_BUF];
    const char *name;
    int rc = 0;
    int parent = parent_in_root(root, rel, buf, &name);
    if (parent < 0)
        OUT("symlink: parent");
    if (symlinkat(target, parent, name) < 0 && errno != EEXIST)
        OUT("symlink");
out:
    close_keep_errno(parent);
    return rc;
}

/* What exists at rel inside the new root (followed there): its O_PATH fd
 * (its stat in *st); ABSENT when there is nothing there; or -errno with
 * *step. */
#define ABSENT (-ENOENT - 4096) /* no errno */

static int existing_at(int top, const char *rel, struct stat *st, const char *what, const char **step)
{
    int rc = 0;
    int at = open_in_root(top, rel, O_PATH);
    if (at < 0 && errno == ENOENT)
        return ABSENT;
    if (at < 0) {
        *step = what;
        return -errno;
    }
    if (fstat(at, st) < 0)
        OUT(what);
    return at;
out:
    close_keep_errno(at);
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

/* The staging root: private propagation, the host at OLDROOT, an empty
 * NEWROOT directory to build the root on. */
static int stage_root(const char **step)
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
    return 0;
}

int ll_mounts_begin(const char **step)
{
    int rc = stage_root(step);
    if (rc < 0)
        return rc;
    if (mount("tmpfs", LL_NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV,
              "mode=0755,size=1m,nr_inodes=4096") < 0)
        FAIL("mount root tmpfs");
    return 0;
}

/* The fd's own path: "self" resolves in the host's procfs, which is still
 * reachable under OLDROOT while the new root is being built. */
static void fd_path_under(char *out, const char *prefix, int fd)
{
    char digits[16];
    int n = 0;
    do
        digits[n++] = (char)('0' + fd % 10);
    while ((fd /= 10) > 0);
    size_t len = strlen(prefix);
    memcpy(out, prefix, len);
    while (n > 0)
        out[len++] = digits[--n];
    out[len] = '\0';
}

static void fd_path(char *out, int fd)
{
    fd_path_under(out, LL_OLDROOT "/proc/self/fd/", fd);
}

/* mount(2) takes paths, and a path walked again after the walk inside the
 * new root could lead elsewhere (out of it, through a symlink of a bound
 * tree, from the staging root): each mount of the new root is made on the
 * file that walk found, by its fd's link in the host's procfs (fd_path),
 * which the kernel follows to that very file. The mount then on top of
 * rel: its O_PATH fd, its root checked to be want (what was mounted), or
 * -errno with *step. */
static int mounted_at(int top, const char *rel, const struct stat *want, const char **step)
{
    struct stat st;
    int rc = 0;
    int m = open_in_root(top, rel, O_PATH);
    if (m < 0)
        OUT("mount op: open the mount");
    if (fstat(m, &st) < 0)
        OUT("mount op: stat the mount");
    if (st.st_dev != want->st_dev || st.st_ino != want->st_ino)
        OUT_ERR("mount op: not the mount just made", EXDEV);
    return m;
out:
    close_keep_errno(m);
    return rc;
}

/* The mount whose root m is, remounted with flags (and those it must
 * keep, from its own fstatfs). */
static int remount_fd(int m, unsigned long flags)
{
    char path[PATH_BUF];
    struct statfs sf;
    if (fstatfs(m, &sf) < 0)
        return -1;
    fd_path(path, m);
    return mount(NULL, path, NULL, MS_REMOUNT | MS_BIND | flags | kept_flags_of(&sf), NULL);
}

/* One step per kind of mount op. dst is the op's destination inside the
 * new root (or the staging root, for LL_STAGE_BIND); top is the new root's
 * fd (-1 for LL_STAGE_BIND) and rel the destination inside it. Each returns
 * 0 or -errno with *step naming what failed. */

static int apply_mkdir(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    return make_dir_in_root(top, rel, op->mode ? op->mode : 0755, step);
}

static long sys_mount_setattr(int dfd, const char *path, unsigned int flags, unsigned long long set,
                              unsigned long long propagation);

/* A read-only bind of a host tree binds the mounts under it too (MS_REC),
 * and a remount changes only the top one: every mount of the tree made
 * read-only (mount_setattr, Linux 5.12). Before 5.12 (ENOSYS) the top
 * mount alone is, as the remount left it. */
static int readonly_tree(int m, const char **step)
{
    if (sys_mount_setattr(m, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0) < 0 &&
        errno != ENOSYS)
        FAIL("bind: submounts read-only");
    return 0;
}

static int apply_bind(const struct ll_mount_op *op, int src_fd, int top, const char *rel, const char *dst,
                      const char **step)
{
    char src[PATH_BUF], target[PATH_BUF];
    struct stat st;
    int rc = 0, at = -1, m = -1;
    if (src_fd < 0)
        OUT_ERR("bind: source not opened", EBADF);
    if (fstat(src_fd, &st) < 0)
        OUT("bind: stat source");
    fd_path(src, src_fd);
    /* A staged bind's path is in the staging root, which only this process
     * has made: no bound tree on its way. */
    if (top < 0) {
        if (make_mountpoint(dst, S_ISDIR(st.st_mode)) < 0)
            OUT("bind: create mountpoint");
        if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0)
            OUT("bind");
        if (remount_readonly(dst, MS_NOSUID | MS_NODEV) < 0)
            OUT("bind: remount read-only");
        goto out;
    }
    if ((at = mountpoint_in_root(top, rel, S_ISDIR(st.st_mode), 0755, step)) < 0) {
        rc = at;
        goto out;
    }
    fd_path(target, at);
    if (mount(src, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        OUT("bind");
    if ((m = mounted_at(top, rel, &st, step)) < 0) {
        rc = m;
        goto out;
    }
    if (op->kind != LL_BIND_DEV) {
        if (remount_fd(m, MS_RDONLY | MS_NOSUID | MS_NODEV) < 0)
            OUT("bind: remount read-only");
        rc = readonly_tree(m, step);
    } else if (remount_fd(m, MS_NOSUID | MS_NOEXEC) < 0) {
        OUT("bind device: remount");
    }
out:
    close_keep_errno(m);
    close_keep_errno(at);
    return rc;
}

/* A new file system of type (with data) on an empty directory made at rel
 * inside the new root, of mode. */
static int mount_new_fs(int top, const char *rel, mode_t mode, const char *type, unsigned long flags,
                        const char *data, const char *what, const char **step)
{
    char target[PATH_BUF];
    int rc = 0;
    int at = mountpoint_in_root(top, rel, 1, mode, step);
    if (at < 0)
        return at;
    fd_path(target, at);
    if (mount(type, target, type, flags, data) < 0)
        OUT(what);
out:
    close_keep_errno(at);
    return rc;
}

static int apply_tmpfs(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    return mount_new_fs(top, rel, 0755, "tmpfs", MS_NOSUID | MS_NODEV, op->data, "mount tmpfs", step);
}

static int apply_proc(int top, const char *rel, const char **step)
{
    return mount_new_fs(top, rel, 0555, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, "mount proc", step);
}

static int apply_symlink(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    if (op->data == NULL) {
        errno = EINVAL;
        FAIL("symlink: no target");
    }
    return symlink_in_root(top, rel, op->data, step);
}

static int apply_write_file(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    if (op->data == NULL) {
        errno = EINVAL;
        FAIL("write file: no contents");
    }
    return write_file_in_root(top, rel, op->data, op->mode ? op->mode : 0644, step);
}

static int apply_mask(int top, const char *rel, const char **step)
{
    char target[PATH_BUF], null_path[PATH_BUF];
    struct stat st, null_st;
    int rc = 0, null_fd = -1, m = -1;
    int at = existing_at(top, rel, &st, "mask: open", step);
    /* Absent paths differ between kernels; nothing to hide then. */
    if (at < 0)
        return at == ABSENT ? 0 : at;
    fd_path(target, at);
    if (S_ISDIR(st.st_mode)) {
        if (mount("tmpfs", target, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                  "size=0,nr_inodes=1,mode=0555") < 0)
            OUT("mask directory");
        goto out;
    }
    /* The new root's /dev/null: the plan's own /dev, bound from the host's. */
    if ((null_fd = open_in_root(top, "dev/null", O_PATH)) < 0)
        OUT("mask file: open /dev/null");
    if (fstat(null_fd, &null_st) < 0)
        OUT("mask file: stat /dev/null");
    if (!S_ISCHR(null_st.st_mode))
        OUT_ERR("mask file: /dev/null is no device", ENODEV);
    fd_path(null_path, null_fd);
    if (mount(null_path, target, NULL, MS_BIND, NULL) < 0)
        OUT("mask file");
    if ((m = mounted_at(top, rel, &null_st, step)) < 0) {
        rc = m;
        goto out;
    }
    if (remount_fd(m, MS_RDONLY | MS_NOSUID | MS_NOEXEC) < 0)
        OUT("mask file: read-only");
out:
    close_keep_errno(m);
    close_keep_errno(null_fd);
    close_keep_errno(at);
    return rc;
}

static int apply_readonly(int top, const char *rel, const char **step)
{
    char target[PATH_BUF];
    struct stat st;
    int rc = 0, m = -1;
    int at = existing_at(top, rel, &st, "read-only: open", step);
    if (at < 0)
        return at == ABSENT ? 0 : at;
    /* A mount point is remounted in place (the walk ends on the root of the
     * mount on top); anything else first becomes a mount point by binding
     * it onto itself. */
    if (remount_fd(at, MS_RDONLY | MS_NOSUID | MS_NODEV) == 0)
        goto out;
    if (errno != EINVAL)
        OUT("read-only: remount");
    fd_path(target, at);
    if (mount(target, target, NULL, MS_BIND | MS_REC, NULL) < 0)
        OUT("read-only: bind");
    if ((m = mounted_at(top, rel, &st, step)) < 0) {
        rc = m;
        goto out;
    }
    if (remount_fd(m, MS_RDONLY | MS_NOSUID | MS_NODEV) < 0)
        OUT("read-only: remount");
out:
    close_keep_errno(m);
    close_keep_errno(at);
    return rc;
}

/* A bind shows its source's path inside the host's file system in
 * /proc/self/mountinfo (the data directory, the server's install). An
 * overlay shows only its lowerdir strings: here the source's fd as the
 * host's procfs named it, meaningless once the host root is gone, and the
 * empty staging directory (overlayfs wants two lower layers when it has no
 * upper one). */
static int apply_view(int src_fd, int top, const char *rel, const char **step)
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
    return mount_new_fs(top, rel, 0755, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, opts, "view: mount overlay", step);
}

/* The file lives in the staging root, which stays alive after the pivot for
 * as long as this bind refers to it. */
static int apply_fixed_file(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    char staged[PATH_BUF], target[PATH_BUF];
    struct stat st, staged_st;
    int rc = 0, m = -1;
    if (op->data == NULL) {
        errno = EINVAL;
        FAIL("fixed file: no contents");
    }
    int at = existing_at(top, rel, &st, "fixed file: open", step);
    if (at < 0)
        return at == ABSENT ? 0 : at;
    if (join(staged, LL_FIXED_DIR, op->dst) < 0)
        OUT("fixed file: path too long");
    if (parent_dirs(staged) < 0)
        OUT("fixed file: staging directory");
    if (write_text(staged, op->data, 0444) < 0)
        OUT("fixed file: write");
    if (lstat(staged, &staged_st) < 0)
        OUT("fixed file: stat");
    fd_path(target, at);
    if (mount(staged, target, NULL, MS_BIND, NULL) < 0)
        OUT("fixed file: bind");
    if ((m = mounted_at(top, rel, &staged_st, step)) < 0) {
        rc = m;
        goto out;
    }
    if (remount_fd(m, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC) < 0)
        OUT("fixed file: read-only");
out:
    close_keep_errno(m);
    close_keep_errno(at);
    return rc;
}

static int apply_overlay(const struct ll_mount_op *op, int top, const char *rel, const char **step)
{
    return mount_new_fs(top, rel, 0755, "overlay", MS_RDONLY | MS_NOSUID | MS_NODEV, op->data, "mount overlay", step);
}

static int apply_op(const struct ll_mount_op *op, int src_fd, int top, const char *rel, const char *dst,
                    const char **step)
{
    switch (op->kind) {
    case LL_MKDIR:
        return apply_mkdir(op, top, rel, step);
    case LL_BIND_RO:
    case LL_BIND_DEV:
    case LL_STAGE_BIND:
        return apply_bind(op, src_fd, top, rel, dst, step);
    case LL_TMPFS:
        return apply_tmpfs(op, top, rel, step);
    case LL_PROC:
        return apply_proc(top, rel, step);
    case LL_SYMLINK:
        return apply_symlink(op, top, rel, step);
    case LL_WRITE_FILE:
        return apply_write_file(op, top, rel, step);
    case LL_MASK:
        return apply_mask(top, rel, step);
    case LL_READONLY:
        return apply_readonly(top, rel, step);
    case LL_VIEW_RO:
        return apply_view(src_fd, top, rel, step);
    case LL_FIXED_FILE:
        return apply_fixed_file(op, top, rel, step);
    case LL_OVERLAY_RO:
        return apply_overlay(op, top, rel, step);
    }
    errno = EINVAL;
    FAIL("mount op: unknown kind");
}

/* The new root's fd, for the ops' walks inside it: opened by the first op
 * that needs it, closed by ll_mounts_finish. Only the sandbox's first
 * process builds a root with these, one root, in its own copy of this. */
static int newroot_fd = -1;

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
    if (op->kind == LL_STAGE_BIND)
        return apply_op(op, src_fd, -1, op->dst + 1, dst, step);
    /* Everything else is resolved inside the new root (see "paths inside a
     * root being built" above). */
    if (newroot_fd < 0 && (newroot_fd = open(LL_NEWROOT, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
        FAIL("mount op: open new root");
    return apply_op(op, src_fd, newroot_fd, op->dst + 1, dst, step);
}

int ll_mounts_finish(const char **step)
{
    close_keep_errno(newroot_fd);
    newroot_fd = -1;
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

/* --- the prepared root ---------------------------------------------------
 *
 * What every sandbox of a runtime shares (/usr, the interpreter, /etc, /dev,
 * /var/runtime) is built once, as a detached mount tree: a tmpfs made with
 * fsmount (an anonymous mount namespace with no origin, so any mount
 * namespace may clone it) with binds and overlays moved onto it. Each
 * sandbox clones the whole tree in one open_tree call and moves it to
 * NEWROOT (ll_mounts_begin_from), then mounts only its own parts (/proc,
 * /tmp, /var/task, /opt). The clones share the template's superblocks, so
 * every tmpfs of the template is made read-only at the superblock, which
 * only the init user namespace could undo, not only at the mount.
 *
 * ll_template_build runs in the server (or a zygote), in the host's mount
 * namespace and with its credentials: the same sources the child would open
 * before leaving the host's view. */

static long sys_open_tree(int dfd, const char *path, unsigned int flags)
{
    return syscall(SYS_open_tree, dfd, path, flags);
}

static long sys_move_mount(int from_dfd, const char *from, int to_dfd, const char *to, unsigned int flags)
{
    return syscall(SYS_move_mount, from_dfd, from, to_dfd, to, flags);
}

/* propagation: 0 to leave it, or one of MS_PRIVATE, MS_SLAVE, ... */
static long sys_mount_setattr(int dfd, const char *path, unsigned int flags, unsigned long long set,
                              unsigned long long propagation)
{
    struct ll_mount_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.attr_set = set;
    attr.propagation = propagation;
    return syscall(SYS_mount_setattr, dfd, path, flags, &attr, sizeof attr);
}

static long sys_fsconfig(int fd, unsigned int cmd, const char *key, const char *value)
{
    return syscall(SYS_fsconfig, fd, cmd, key, value, 0);
}

/* Who the template's own files belong to: the sandbox's root, as if the
 * sandbox had made them (its uid map's host id for 0). */
struct owner {
    unsigned int uid, gid;
};

/* A new file system of type, configured by "key=value,key" options (each
 * one handed to fsconfig as it stands), detached, with mount attributes.
 * Returns the mount's fd or -errno. */
static int new_detached_fs(const char *type, const char *options, const struct owner *owner,
                           unsigned long long attrs, const char **step)
{
    char opts[PATH_BUF], uid[24], gid[24];
    int rc = 0;
    int fs = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0)
        OUT("template: fsopen");
    if (join(opts, "", options ? options : "") < 0)
        OUT("template: options too long");
    for (char *key = opts; key != NULL && *key;) {
        char *comma = strchr(key, ',');
        if (comma)
            *comma = '\0';
        char *eq = strchr(key, '=');
        if (eq)
            *eq = '\0';
        if (sys_fsconfig(fs, eq ? FSCONFIG_SET_STRING : FSCONFIG_SET_FLAG, key, eq ? eq + 1 : NULL) < 0)
            OUT("template: fsconfig");
        key = comma ? comma + 1 : NULL;
    }
    if (owner != NULL) {
        snprintf(uid, sizeof uid, "%u", owner->uid);
        snprintf(gid, sizeof gid, "%u", owner->gid);
        if (sys_fsconfig(fs, FSCONFIG_SET_STRING, "uid", uid) < 0 ||
            sys_fsconfig(fs, FSCONFIG_SET_STRING, "gid", gid) < 0)
            OUT("template: fsconfig owner");
    }
    if (sys_fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL) < 0)
        OUT("template: create file system");
    rc = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
    if (rc < 0)
        OUT("template: fsmount");
out:
    close_keep_errno(fs);
    return rc;
}

/* The superblock of a tmpfs made here (dir: its root), read-only for good:
 * its mount flag alone could be cleared by a sandbox that kept
 * CAP_SYS_ADMIN in its own user namespace, and every sandbox shares the
 * superblock. */
static int seal_fd(int dir, const char **step)
{
    struct statfs sf;
    int rc = 0, ctx = -1;
    /* Only a tmpfs this template made: never a bound host file system. */
    if (fstatfs(dir, &sf) < 0)
        OUT("template: seal: statfs");
    if (sf.f_type != TMPFS_MAGIC)
        OUT_ERR("template: seal: not a tmpfs", EINVAL);
    ctx = (int)syscall(SYS_fspick, dir, "", FSPICK_CLOEXEC | FSPICK_EMPTY_PATH);
    if (ctx < 0)
        OUT("template: seal: fspick");
    if (sys_fsconfig(ctx, FSCONFIG_SET_FLAG, "ro", NULL) < 0 || sys_fsconfig(ctx, FSCONFIG_CMD_RECONFIGURE, NULL, NULL) < 0)
        OUT("template: seal: read-only superblock");
out:
    close_keep_errno(ctx);
    return rc;
}

/* A new empty directory, sealed: a mask, or an overlay's second layer. */
static int new_empty_fs(const struct owner *owner, unsigned long long attrs, const char **step)
{
    int mnt = new_detached_fs("tmpfs", "size=0,nr_inodes=1,mode=0555", owner, attrs, step);
    int rc = mnt < 0 ? mnt : seal_fd(mnt, step);
    if (rc < 0) {
        close_keep_errno(mnt);
        return rc;
    }
    return mnt;
}

/* Attach the detached mount mnt on the mountpoint at (closing mnt). */
static int attach_to(int at, int mnt, const char **step)
{
    int rc = 0;
    if (sys_move_mount(mnt, "", at, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
        OUT("template: move_mount");
out:
    close_keep_errno(mnt);
    return rc;
}

/* Attach the detached mount mnt at rel inside the template, on an empty
 * directory or file made for it, matching the mount's type (closing mnt). */
static int attach_at(int root, const char *rel, int mnt, int is_dir, const char **step)
{
    int rc = 0;
    int at = mountpoint_in_root(root, rel, is_dir, 0755, step);
    if (at < 0) {
        close_keep_errno(mnt);
        return at;
    }
    rc = attach_to(at, mnt, step);
    close_keep_errno(at);
    return rc;
}

/* A detached clone of the host's src, its mount flags attrs; its stat in
 * *st. Returns the mount's fd or -errno. */
static int clone_bind(const char *src, unsigned long long attrs, struct stat *st, const char **step)
{
    int rc = 0;
    int mnt = (int)sys_open_tree(AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (mnt < 0)
        OUT("template: bind: open_tree");
    if (fstat(mnt, st) < 0)
        OUT("template: bind: stat source");
    /* Set while the bind is its own tree's root: inside the template only
     * the root's mount flags can change. A clone of a shared host mount is
     * its peer, and so would be every sandbox's clone of the template: on a
     * host whose mounts are shared (systemd's) the host's mount events would
     * reach the sandboxes. Private, the whole bound tree. */
    if (sys_mount_setattr(mnt, "", AT_EMPTY_PATH | AT_RECURSIVE, attrs, MS_PRIVATE) < 0)
        OUT("template: bind: mount flags");
    return mnt;
out:
    close_keep_errno(mnt);
    return rc;
}

static int template_bind(int root, const char *rel, const char *src, unsigned long long attrs, const char **step)
{
    struct stat st;
    int mnt = clone_bind(src, attrs, &st, step);
    return mnt < 0 ? mnt : attach_at(root, rel, mnt, S_ISDIR(st.st_mode), step);
}

/* An overlay whose only layers are the source (by its fd, so that
 * mountinfo shows no host path) and an empty directory. */
static int template_view(int root, const char *rel, const char *src, int empty, const char **step)
{
    char opts[PATH_BUF], lower_a[64], lower_b[64];
    struct stat st;
    int rc = 0;
    int src_fd = open(src, O_PATH | O_CLOEXEC);
    if (src_fd < 0)
        OUT("template: view: open source");
    if (fstat(src_fd, &st) < 0)
        OUT("template: view: stat source");
    if (!S_ISDIR(st.st_mode))
        OUT_ERR("template: view: source is not a directory", ENOTDIR);
    /* This process's own /proc: the host's. */
    fd_path_under(lower_a, "/proc/self/fd/", src_fd);
    fd_path_under(lower_b, "/proc/self/fd/", empty);
    if (join(opts, "lowerdir=", lower_a) < 0 || join(opts + strlen(opts), ":", lower_b) < 0)
        OUT("template: view: options too long");
    rc = new_detached_fs("overlay", opts, NULL, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, step);
    if (rc >= 0)
        rc = attach_at(root, rel, rc, 1, step);
out:
    close_keep_errno(src_fd);
    return rc;
}

/* rel hidden where a sandbox would find it (symlinks on the way followed
 * inside the template): an empty directory over a directory, /dev/null
 * over anything else. */
static int template_mask(int root, const char *rel, const struct owner *owner, const char **step)
{
    struct stat st, null_st;
    int rc = 0, mnt;
    int at = open_in_root(root, rel, O_PATH);
    /* Absent paths differ between hosts; nothing to hide then. */
    if (at < 0)
        return errno == ENOENT ? 0 : (*step = "template: mask: open", -errno);
    if (fstat(at, &st) < 0)
        OUT("template: mask: stat");
    if (S_ISDIR(st.st_mode))
        mnt = new_empty_fs(owner, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, step);
    else
        mnt = clone_bind("/dev/null", MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, &null_st, step);
    rc = mnt < 0 ? mnt : attach_to(at, mnt, step);
out:
    close_keep_errno(at);
    return rc;
}

/* Give what the template made in one of its tmpfs (dir, of device dev) to
 * the owner, without crossing into anything mounted on it. */
static int chown_tree(int dir, dev_t dev, const struct owner *owner, int depth, const char **step)
{
    char buf[4096];
    int rc = 0, sub = -1;
    if (depth > 16)
        OUT_ERR("template: chown: too deep", ELOOP);
    for (;;) {
        long n = syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n < 0)
            OUT("template: chown: read directory");
        if (n == 0)
            break;
        for (long off = 0; off < n;) {
            struct {
                unsigned long long ino;
                long long off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *d = (void *)(buf + off);
            struct stat st;
            off += d->reclen;
            if (strcmp(d->name, ".") == 0 || strcmp(d->name, "..") == 0)
                continue;
            if (fstatat(dir, d->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                OUT("template: chown: stat");
            if (st.st_dev != dev)
                continue; /* a mount point: not ours to change */
            if (fchownat(dir, d->name, owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) < 0)
                OUT("template: chown");
            if (!S_ISDIR(st.st_mode))
                continue;
            sub = openat(dir, d->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub < 0)
                OUT("template: chown: open directory");
            if ((rc = chown_tree(sub, dev, owner, depth + 1, step)) < 0)
                goto out;
            close(sub);
            sub = -1;
        }
    }
out:
    close_keep_errno(sub);
    return rc;
}

/* One of the template's own tmpfs, by the fd fsmount gave (kept since: a
 * path to it, taken again, could lead elsewhere once later ops have run,
 * onto a host tmpfs bound over it, say): what was made in it given to the
 * owner, then its superblock sealed. */
static int finish_tmpfs(int mnt, const struct owner *owner, const char **step)
{
    struct stat st;
    int rc = 0;
    /* "." from the mount's own fd: its root, whatever is mounted over it. */
    int dir = openat(mnt, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        OUT("template: chown: open");
    if (fstat(dir, &st) < 0)
        OUT("template: chown: stat");
    if ((rc = chown_tree(dir, st.st_dev, owner, 0, step)) == 0)
        rc = seal_fd(mnt, step);
out:
    close_keep_errno(dir);
    return rc;
}

/* kept: where an LL_TMPFS op leaves its mount's fd, for finish_tmpfs. */
static int template_apply(int root, int empty, const struct owner *owner, const struct ll_mount_op *op, int *kept,
                          const char **step)
{
    const char *rel = op->dst + 1;
    switch (op->kind) {
    case LL_MKDIR:
        return make_dir_in_root(root, rel, op->mode ? op->mode : 0755, step);
    case LL_BIND_RO:
        return template_bind(root, rel, op->src, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, step);
    case LL_BIND_DEV:
        return template_bind(root, rel, op->src, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, step);
    case LL_TMPFS: {
        int mnt = new_detached_fs("tmpfs", op->data, owner, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, step);
        if (mnt < 0)
            return mnt;
        if ((*kept = fcntl(mnt, F_DUPFD_CLOEXEC, 0)) < 0) {
            close_keep_errno(mnt);
            FAIL("template: tmpfs: keep its fd");
        }
        return attach_at(root, rel, mnt, 1, step);
    }
    case LL_SYMLINK:
        if (op->data == NULL) {
            errno = EINVAL;
            FAIL("template: symlink: no target");
        }
        return symlink_in_root(root, rel, op->data, step);
    case LL_WRITE_FILE:
        if (op->data == NULL) {
            errno = EINVAL;
            FAIL("template: write file: no contents");
        }
        return write_file_in_root(root, rel, op->data, op->mode ? op->mode : 0644, step);
    case LL_MASK:
        return template_mask(root, rel, owner, step);
    case LL_VIEW_RO:
        return template_view(root, rel, op->src, empty, step);
    }
    /* /proc, a layer's overlay, a fixed file: each sandbox's own. So is
     * LL_READONLY: mount_setattr changes no mount inside a detached tree
     * but its root (each sandbox remounts its clone's instead). */
    errno = EINVAL;
    FAIL("template: not a shared mount op");
}

int ll_template_build(const struct ll_mount_op *ops, int n_ops, unsigned int owner_uid, unsigned int owner_gid,
                      int *failed, const char **step)
{
    const struct owner owner = { owner_uid, owner_gid };
    int rc = 0, empty = -1, root = -1, probe;
    *failed = -1;
    /* Each op's tmpfs, if it makes one (the server's side: it may allocate). */
    int *kept = malloc(sizeof *kept * (size_t)(n_ops > 0 ? n_ops : 1));
    if (kept == NULL)
        OUT_ERR("template: allocate", ENOMEM);
    for (int i = 0; i < n_ops; i++)
        kept[i] = -1;
    root = new_detached_fs("tmpfs", "mode=0755,size=1m,nr_inodes=4096", &owner, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, step);
    if (root < 0) {
        rc = root;
        goto out;
    }
    /* Built with the server's credentials in the host's mount namespace:
     * never with a plain walk (open_in_root's fallback). */
    if ((probe = openat2_in_root(root, "", O_PATH)) < 0)
        OUT("template: openat2");
    close(probe);
    /* An overlay's second layer (it needs two without an upper one). */
    empty = new_empty_fs(&owner, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, step);
    if (empty < 0) {
        rc = empty;
        goto out;
    }
    for (int i = 0; i < n_ops && rc == 0; i++) {
        *failed = i;
        if (ops[i].dst == NULL || ops[i].dst[0] != '/' || ops[i].dst[1] == '\0')
            OUT_ERR("template: destination must be absolute, not /", EINVAL);
        rc = template_apply(root, empty, &owner, &ops[i], &kept[i], step);
    }
    /* Its own tmpfs, each given to the owner and then made read-only at the
     * superblock; the root last. */
    for (int i = 0; i < n_ops && rc == 0; i++) {
        *failed = i;
        if (kept[i] >= 0)
            rc = finish_tmpfs(kept[i], &owner, step);
    }
    if (rc < 0)
        goto out;
    *failed = -1;
    if ((rc = finish_tmpfs(root, &owner, step)) < 0)
        goto out;
    if (sys_mount_setattr(root, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, 0) < 0)
        OUT("template: root read-only");
out:
    if (kept != NULL) {
        for (int i = 0; i < n_ops; i++)
            close_keep_errno(kept[i]);
        free(kept);
    }
    close_keep_errno(empty);
    if (rc < 0) {
        close_keep_errno(root);
        return rc;
    }
    return root;
}

int ll_template_probe(int template_fd)
{
    /* A sandbox clones the template from a mount namespace of its own, owned
     * by a user namespace of its own: whether the kernel lets it (6.15 and
     * later let any namespace clone a tree made by fsmount; a kernel may
     * come to ask for privilege over the tree's owner) is asked of a child
     * in just that position. Raw clone, as in ll_clone_floor: the child runs
     * system calls only. */
    int status;
    pid_t pid = (pid_t)syscall(SYS_clone, (unsigned long)(CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD), 0, 0, 0, 0);
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        int mnt = (int)sys_open_tree(template_fd, "", OPEN_TREE_CLONE | AT_RECURSIVE | AT_EMPTY_PATH);
        _exit(mnt < 0 ? (errno > 0 && errno < 256 ? errno : EINVAL) : 0);
    }
    if (LL_RETRY(waitpid(pid, &status, 0)) < 0)
        return -errno;
    if (!WIFEXITED(status))
        return -ECHILD;
    return -WEXITSTATUS(status);
}

int ll_mounts_begin_from(int template_fd, uint64_t dev, uint64_t ino, const char **step)
{
    struct statfs sf;
    struct stat st;
    int mnt = -1;
    int rc = stage_root(step);
    if (rc < 0)
        goto out;
    /* The whole shared tree in one call, cloned in this mount namespace
     * (the template is anonymous: it belongs to none). */
    mnt = (int)sys_open_tree(template_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
    if (mnt < 0)
        OUT("clone prepared root");
    /* Whatever mount the fd names is cloned: make sure it is a template (a
     * sealed tmpfs), not a host mount that an fd number mix-up would expose. */
    if (fstatfs(mnt, &sf) < 0)
        OUT("prepared root: statfs");
    if (sf.f_type != TMPFS_MAGIC || !(sf.f_flags & ST_RDONLY))
        OUT_ERR("prepared root: not a sealed tmpfs", EINVAL);
    /* Any read-only tmpfs passes that (another runtime's template too): the
     * clone shares the template's superblock and root, so it shows the
     * device and inode its builder recorded. */
    if (fstat(mnt, &st) < 0)
        OUT("prepared root: stat");
    if ((uint64_t)st.st_dev != dev || (uint64_t)st.st_ino != ino)
        OUT_ERR("prepared root: not the template built for this sandbox", EINVAL);
    if (sys_move_mount(mnt, "", AT_FDCWD, LL_NEWROOT, MOVE_MOUNT_F_EMPTY_PATH) < 0)
        OUT("move prepared root");
    /* stage_root made this namespace's mounts private before the clone
     * existed: whatever propagation the template's mounts carried, none of
     * the root's may share events with a mount outside the sandbox. */
    if (mount(NULL, LL_NEWROOT, NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        OUT("prepared root: make mounts private");
out:
    close_keep_errno(mnt);
    return rc;
}
