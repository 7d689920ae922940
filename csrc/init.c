/* lambdalet-init: the sandbox's PID 1 after set-up, as a freestanding
 * static program (no libc) of a few kilobytes.
 *
 * Why a separate program: the process that builds the sandbox is a copy of
 * the server (its memory holds keys and every other function's state). It
 * execs this image from a sealed memfd so that nothing of the server stays
 * inside the sandbox, and PID 1 costs a few pages instead of a share of
 * the server.
 *
 * Usage: init <worker pid> [<lifeline fd>]. It reaps every child, forwards
 * catchable signals to the worker, SIGKILLs every other process on SIGRTMAX
 * (the server's kill; see LL_SIG_KILL_ALL in spawn.h) and exits with the
 * worker's exit code, or 128 + the signal that killed it. The lifeline is
 * the read end of a pipe whose write end only the server holds: when the
 * server process dies, however it dies and whichever thread spawned the
 * sandbox, the pipe hangs up, raises SIGIO here (see arm()) and init takes
 * the whole sandbox down.
 *
 * Built by build_native.py with -nostdlib -static and embedded in the
 * extension; spawn.c falls back to an in-process loop if it cannot exec. */

typedef unsigned long u64;

#if defined(__x86_64__)
#define NR_KILL 62
#define NR_WAIT4 61
#define NR_EXIT_GROUP 231
#define NR_RT_SIGPROCMASK 14
#define NR_RT_SIGTIMEDWAIT 128
#define NR_PRCTL 157
#define NR_READ 0
#define NR_PPOLL 271
#define NR_SIGNALFD4 289
#define NR_GETPID 39
#define NR_FCNTL 72
static long sys6(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}
static long sys5(long n, long a, long b, long c, long d, long e)
{
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}
__asm__(".text\n.global _start\n_start:\n"
        "  mov %rsp, %rdi\n  and $-16, %rsp\n  call init_main\n  hlt\n");
#elif defined(__aarch64__)
#define NR_KILL 129
#define NR_WAIT4 260
#define NR_EXIT_GROUP 94
#define NR_RT_SIGPROCMASK 135
#define NR_RT_SIGTIMEDWAIT 137
#define NR_PRCTL 167
#define NR_READ 63
#define NR_PPOLL 73
#define NR_SIGNALFD4 74
#define NR_GETPID 172
#define NR_FCNTL 25
static long sys6(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}
static long sys5(long n, long a, long b, long c, long d, long e)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    register long x4 __asm__("x4") = e;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4) : "memory");
    return x0;
}
__asm__(".text\n.global _start\n_start:\n  mov x0, sp\n  bl init_main\n  brk #0\n");
#else
#error "lambdalet-init: x86_64 and aarch64 only"
#endif

#define SIGKILL 9
#define SIGIO 29
#define SIGCHLD 17
#define SIGRTMAX 64
#define WNOHANG 1
#define PR_SET_DUMPABLE 4
#define EINTR 4
#define POLLIN 0x001
#define POLLERR 0x008
#define POLLHUP 0x010
#define F_GETFL 3
#define F_SETFL 4
#define F_SETOWN 8
#define O_ASYNC 020000

struct pollfd_k {
    int fd;
    short events, revents;
};

static long parse(const char *p)
{
    long v = 0;
    for (; *p >= '0' && *p <= '9'; p++)
        v = v * 10 + (*p - '0');
    return v;
}

static void __attribute__((noreturn)) leave(int code)
{
    for (;;)
        sys6(NR_EXIT_GROUP, code, 0, 0, 0);
}

/* The server is gone: nobody is left to enforce a deadline. */
static void __attribute__((noreturn)) take_all_down(void)
{
    sys6(NR_KILL, -1, SIGKILL, 0, 0);
    leave(128 + SIGKILL);
}

/* Whether the lifeline has hung up (or, never written to, holds data). */
static int server_gone(long lifeline)
{
    struct pollfd_k fd = { (int)lifeline, POLLIN, 0 };
    long now[2] = { 0, 0 }; /* a zero timeout: look, do not wait */
    return sys5(NR_PPOLL, (long)&fd, 1, (long)now, 0, 8) > 0 && (fd.revents & (POLLIN | POLLHUP | POLLERR));
}

/* SIGIO to this process when the pipe hangs up. The owner is set as this
 * process's own ids, after spawn.c dropped them, so the kernel's check of
 * who may be sent the signal passes. Returns 0 if the kernel refused. */
static int arm(long lifeline)
{
    long pid = sys6(NR_GETPID, 0, 0, 0, 0);
    if (sys6(NR_FCNTL, lifeline, F_SETOWN, pid, 0) < 0)
        return 0;
    long flags = sys6(NR_FCNTL, lifeline, F_GETFL, 0, 0);
    return flags >= 0 && sys6(NR_FCNTL, lifeline, F_SETFL, flags | O_ASYNC, 0) >= 0;
}

__attribute__((used, noreturn)) void init_main(long *sp)
{
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    if (argc < 2)
        leave(127);
    long worker = parse(argv[1]);
    if (worker <= 1)
        leave(127);
    long lifeline = argc >= 3 ? parse(argv[2]) : -1;

    /* The sandbox's own uid may not read or write this process's memory. */
    sys6(NR_PRCTL, PR_SET_DUMPABLE, 0, 0, 0);
    /* Every signal waits in the queue for sigtimedwait; a pid namespace's
     * init drops unhandled ones, but blocked signals are always queued. */
    u64 all = ~0UL;
    sys6(NR_RT_SIGPROCMASK, 2 /* SIG_SETMASK */, (long)&all, 0, 8);

    /* The lifeline wakes this process only when the server is gone: armed
     * for SIGIO, PID 1 waits in sigtimedwait alone, a sleep the cgroup
     * freezer stops and resumes in place, so freezing and thawing an idle
     * instance never runs it. spawn.c gave it a file description of its
     * own, since a description has a single SIGIO owner. */
    int armed = lifeline >= 0 && arm(lifeline);
    if (armed && server_gone(lifeline))
        take_all_down(); /* it went before the arming: no SIGIO will come */
    /* Otherwise (a kernel that refuses the arming) signals arrive through
     * a signalfd so that one ppoll covers both them and the pipe. */
    long sfd = lifeline >= 0 && !armed ? sys6(NR_SIGNALFD4, -1, (long)&all, 8, 0) : -1;
    if (lifeline >= 0 && !armed && sfd < 0)
        leave(127);

    /* The worker may have exited before this image started: reap first. */
    int sig = SIGCHLD;
    unsigned char info[128];
    for (;;) {
        if (sig == SIGRTMAX) {
            sys6(NR_KILL, -1, SIGKILL, 0, 0);
        } else if (sig == SIGCHLD) {
            for (;;) {
                int status = 0;
                long pid = sys6(NR_WAIT4, -1, (long)&status, WNOHANG, 0);
                if (pid <= 0)
                    break;
                if (pid == worker) {
                    if ((status & 0x7f) == 0)
                        leave((status >> 8) & 0xff);
                    leave(128 + (status & 0x7f));
                }
            }
        } else if (sig > 0) {
            sys6(NR_KILL, worker, sig, 0, 0);
        }
        if (sfd < 0) {
            sig = (int)sys6(NR_RT_SIGTIMEDWAIT, (long)&all, (long)info, 0, 8);
            /* The pipe decides, after every wake and not only on SIGIO:
             * anyone in the sandbox may send SIGIO too, and the kernel
             * hands out the lowest pending signal first, so a sandbox that
             * keeps a lower one pending would otherwise keep the server's
             * SIGIO waiting for ever. A SIGIO from elsewhere is forwarded
             * like any other signal. */
            if (armed && server_gone(lifeline))
                take_all_down();
            continue;
        }
        struct pollfd_k fds[2] = { { (int)sfd, POLLIN, 0 }, { (int)lifeline, POLLIN, 0 } };
        sig = 0;
        if (sys5(NR_PPOLL, (long)fds, 2, 0, 0, 8) <= 0)
            continue;
        if (fds[1].revents & (POLLIN | POLLHUP | POLLERR))
            take_all_down();
        if ((fds[0].revents & POLLIN) && sys6(NR_READ, sfd, (long)info, sizeof info, 0) == (long)sizeof info)
            sig = (int)*(unsigned int *)info; /* ssi_signo comes first */
    }
}
