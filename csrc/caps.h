#ifndef LAMBDALET_CAPS_H
#define LAMBDALET_CAPS_H
#include <stdint.h>
/* Privilege dropping for a sandbox process. Each returns 0 or -errno and,
 * on failure, points *step at a short name of what failed. */
/* NOFILE and CORE always; DATA and NPROC (0: leave alone) stand in for
 * memory and pids cgroups where none can be used (no root, no delegation). */
int ll_caps_set_rlimits(int nofile, unsigned long data_bytes, int nproc, const char **step);
int ll_caps_drop_all(uint32_t uid, uint32_t gid, int may_setgroups, const char **step);
int ll_caps_close_fds_except(const int *keep, int n_keep);
#endif
