/* Attaching a function's code to a sandbox that is already running.
 *
 * Spare sandboxes are started before anyone knows which function they will
 * serve, with an empty /var/task. When one is handed to a function, its code
 * is mounted there from outside:
 *
 *   1. open_tree(OPEN_TREE_CLONE) makes a detached copy of the code tree in
 *      the server's own mount namespace, and a read-only overlay is made of
 *      it (plus an empty tmpfs: overlayfs wants two lower layers without an
 *      upper one), its layers named by this process's fds. Doing this before
 *      entering the sandbox means the host path never has to be visible
 *      inside it, not even in /proc/self/mountinfo, where a bind would name
 *      its source's path on the host and the overlay names two fds.
 *   2. A short-lived child, created with CLONE_VM|CLONE_VFORK so that no
 *      page tables are copied, joins the sandbox's mount namespace (setns
 *      refuses a task that shares its fs_struct with another, so the child
 *      has its own) and move_mount()s the detached tree onto dst.
 *
 * The parent waits for the child and returns its verdict. The server is
 * multithreaded, which is why it cannot call setns(CLONE_NEWNS) itself.
 */
#define _GNU_SOURCE
#include "attach.h"
#include "retry.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* After the system headers: it defines only what they left out. */
#include "mount_api.h"

/* A detached mount of a new file system of type, with one string option
 * (or none), or -1 with errno set. */
static int detached_mount(const char *type, const char *key, const char *value, unsigned int attrs)
{
    int fs = (int)syscall(SYS_fsopen, type, FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    int mnt = -1;
    if ((key == NULL || syscall(SYS_fsconfig, fs, FSCONFIG_SET_STRING, key, value, 0) == 0) &&
        syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0)
        mnt = (int)syscall(SYS_fsmount, fs, FSMOUNT_CLOEXEC, attrs);
    int saved = errno;
    close(fs);
    errno = saved;
    return mnt;
}

struct attach_job {
    int ns_fd;
    int tree_fd;
    const char *dst;
    int err;            /* written by the child: 0 or an errno */
    const char *step;   /* written by the child */
};

static int attach_child(void *arg)
{
    struct attach_job *job = arg;
    if (setns(job->ns_fd, CLONE_NEWNS) < 0) {
        job->err = errno;
        job->step = "setns into the sandbox's mount namespace";
        _exit(1);
    }
    if (syscall(SYS_move_mount, job->tree_fd, "", AT_FDCWD, job->dst, MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        job->err = errno;
        job->step = "move_mount onto the task root";
        _exit(1);
    }
    job->err = 0;
    _exit(0);
}

int ll_attach_tree(int pid, int pidfd, const char *src, const char *dst, const char **step)
{
    char path[64];
    int err = 0;
    int tree_fd = -1, ns_fd = -1, empty_fd = -1, view_fd = -1;
    void *stack = MAP_FAILED;
    const size_t stack_size = 64 * 1024;
    struct attach_job job = {0};

    *step = "open_tree on the code directory";
    tree_fd = (int)syscall(SYS_open_tree, AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
    if (tree_fd < 0) {
        err = errno;
        goto out;
    }
    const unsigned int attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    *step = "an empty tmpfs for the overlay";
    empty_fd = detached_mount("tmpfs", "mode", "0555", attrs);
    if (empty_fd < 0) {
        err = errno;
        goto out;
    }
    char lower[64];
    snprintf(lower, sizeof lower, "/proc/self/fd/%d:/proc/self/fd/%d", tree_fd, empty_fd);
    *step = "a read-only overlay of the code directory";
    view_fd = detached_mount("overlay", "lowerdir", lower, attrs);
    if (view_fd < 0) {
        err = errno;
        goto out;
    }
    snprintf(path, sizeof path, "/proc/%d/ns/mnt", pid);
    *step = "open the sandbox's mount namespace";
    ns_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0) {
        err = errno;
        goto out;
    }
    /* A pid is only safe while its process (or zombie) exists: if pidfd's
     * process is still alive now, the namespace just opened is its own and
     * not that of a process that reused the pid. */
    *step = "the sandbox exited";
    if (pidfd >= 0 && syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0) {
        err = errno;
        goto out;
    }
    *step = "mmap a stack for the attaching child";
    stack = mmap(NULL, stack_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        err = errno;
        goto out;
    }
    job.ns_fd = ns_fd;
    job.tree_fd = view_fd;
    job.dst = dst;
    job.err = EINTR;
    job.step = "the attaching child did not report";
    *step = "clone the attaching child";
    int child = clone(attach_child, (char *)stack + stack_size, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
    if (child < 0) {
        err = errno;
        goto out;
    }
    int status;
    if (LL_RETRY(waitpid(child, &status, 0)) < 0) {
        err = errno;
        *step = "wait for the attaching child";
        goto out;
    }
    if (job.err) {
        err = job.err;
        *step = job.step;
    }
out:
    if (stack != MAP_FAILED)
        munmap(stack, stack_size);
    if (ns_fd >= 0)
        close(ns_fd);
    if (view_fd >= 0)
        close(view_fd);
    if (empty_fd >= 0)
        close(empty_fd);
    if (tree_fd >= 0)
        close(tree_fd);
    return err ? -err : 0;
}
