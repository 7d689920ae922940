#ifndef LAMBDALET_NET_H
#define LAMBDALET_NET_H
/* Bring up the loopback interface of the calling process's network
 * namespace. A new namespace starts with lo down. Returns 0 or -errno. */
int ll_net_loopback_up(void);

/* A new network namespace holding only lo, already up, for a sandbox to be
 * cloned into later. The calling thread returns to its own namespace
 * before this returns. Returns an fd for the namespace, or -errno. */
int ll_netns_create(void);

/* Run the clone in ll_spawn inside netns_fd: enter it on this thread,
 * and leave again with ll_netns_leave(saved). */
int ll_netns_enter(int netns_fd, int *saved_fd);
int ll_netns_leave(int saved_fd);
#endif
