#ifndef LAMBDALET_METER_H
#define LAMBDALET_METER_H
#include <stdint.h>
/* Lock-free counters over a shared mapping. Each returns the new value. */
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta);
uint64_t ll_counter_load(const uint64_t *slot);
#endif
