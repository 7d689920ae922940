#ifndef LAMBDALET_NET_H
#define LAMBDALET_NET_H
/* Bring up the loopback interface of the calling process's network
 * namespace. A new namespace starts with lo down. Returns 0 or -errno. */
int ll_net_loopback_up(void);
#endif
