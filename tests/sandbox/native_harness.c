/* Drives csrc/spawn.c without Python, so that it can be built with
 * -fsanitize=address,undefined and run by test_sandbox_sanitized.py: three
 * full sandboxes (user, pid, mount, uts, ipc namespaces, a pooled network
 * namespace, a private root, seccomp, the exec'd init) and one that fails
 * at a named step. Prints what it saw; the test checks the lines.
 * With "unprivileged" as argv[1] it runs as a non-root user would: one
 * mapped id, setgroups denied, its own network namespace, no cgroups. */
#include "spawn.h"
#include "seccomp.h"
#include "net.h"
#include <stdio.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <string.h>
#include <fcntl.h>
int main(int argc, char **argv_main) {
    int unprivileged = argc > 1 && strcmp(argv_main[1], "unprivileged") == 0;
    int sv[2]; socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    static const struct ll_mount_op ops[] = {
        { LL_BIND_RO, "/usr", "/usr", NULL, 0 },
        { LL_SYMLINK, NULL, "/bin", "usr/bin", 0 },
        { LL_SYMLINK, NULL, "/lib", "usr/lib", 0 },
        { LL_SYMLINK, NULL, "/lib64", "usr/lib64", 0 },
        { LL_TMPFS, NULL, "/dev", "mode=0755,size=16k", 0 },
        { LL_BIND_DEV, "/dev/null", "/dev/null", NULL, 0 },
        { LL_PROC, NULL, "/proc", NULL, 0 },
        { LL_MASK, NULL, "/proc/keys", NULL, 0 },
        { LL_READONLY, NULL, "/proc/sys", NULL, 0 },
        { LL_WRITE_FILE, NULL, "/etc/passwd", "x:x:993:990::/:/bin/sh\n", 0644 },
        { LL_TMPFS, NULL, "/tmp", "mode=1777,size=1m", 0 },
    };
    char *argv[] = { "sh", "-c", "echo uid=$(id -u) >&3; grep Seccomp: /proc/self/status >&3", NULL };
    char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    int nsfd = unprivileged ? -1 : ll_netns_create();
    char uid_map[64], gid_map[64];
    snprintf(uid_map, sizeof uid_map, "993 %u 1\n", (unsigned)getuid());
    snprintf(gid_map, sizeof gid_map, "990 %u 1\n", (unsigned)getgid());
    struct ll_spawn_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.path = "/bin/sh"; cfg.argv = argv; cfg.envp = envp; cfg.hostname = "h";
    cfg.ops = ops; cfg.n_ops = sizeof ops / sizeof ops[0];
    cfg.control_fd = sv[1]; cfg.cgroup_v2_fd = -1;
    cfg.namespaces = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC;
    cfg.unshare_cgroup_late = 1;
    cfg.uid_map = "0 2000000000 1\n993 2000000001 1\n"; cfg.gid_map = "0 2000000000 1\n990 2000000001 1\n";
    cfg.setup_uid = 0; cfg.setup_gid = 0; cfg.sandbox_uid = 993; cfg.sandbox_gid = 990;
    cfg.seccomp = 1; cfg.nofile = 1024; cfg.init_fd = ll_init_memfd(); cfg.netns_fd = nsfd;
    int lifeline[2];
    pipe2(lifeline, O_CLOEXEC); /* the write end stays open: "the server" lives */
    cfg.lifeline_fd = lifeline[0];
    if (unprivileged) {
        cfg.namespaces |= CLONE_NEWNET;
        cfg.loopback_up = 1;
        cfg.uid_map = uid_map;
        cfg.gid_map = gid_map;
        cfg.deny_setgroups = 1;
        cfg.setup_uid = cfg.setup_gid = LL_NO_ID;
    }
    struct ll_spawn_result res;
    for (int i = 0; i < 3; i++) {
        int rc = ll_spawn(&cfg, &res);
        printf("rc=%d pid=%d step=%s clone3=%d\n", rc, res.pid, res.step, res.used_clone3);
        if (rc == 0) { int st; waitpid(res.pid, &st, 0); printf("status=%d\n", st); }
    }
    close(sv[1]);
    char buf[512]; ssize_t n; while ((n = read(sv[0], buf, sizeof buf - 1)) > 0) { buf[n] = 0; fputs(buf, stdout); }
    /* a failing step: a missing bind source */
    struct ll_mount_op bad[] = { { LL_BIND_RO, "/nonexistent", "/x", NULL, 0 } };
    cfg.ops = bad; cfg.n_ops = 1;
    int rc = ll_spawn(&cfg, &res);
    printf("bad rc=%d step=%s\n", rc, res.step);
    printf("filter=%d\n", ll_seccomp_filter_length());
    return 0;
}
