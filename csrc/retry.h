#ifndef LAMBDALET_RETRY_H
#define LAMBDALET_RETRY_H
#include <errno.h>

/* A system call run again for as long as a signal interrupts it (EINTR):
 * the C core's one retry loop. Its value is the call's own (-1 with errno
 * set on any other failure). A statement expression, not a function, so the
 * child side of spawn.c, which calls nothing that may lock, can use it. */
#define LL_RETRY(call) __extension__({                 \
    long ll_retry_rc_;                                  \
    do                                                  \
        ll_retry_rc_ = (long)(call);                    \
    while (ll_retry_rc_ == -1 && errno == EINTR);       \
    ll_retry_rc_;                                       \
})

#endif
