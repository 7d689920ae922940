#include "meter.h"

/* Relaxed ordering is enough: each slot is independent and readers only
 * need every increment to land exactly once, not an order between slots. */
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta)
{
    return __atomic_add_fetch(slot, delta, __ATOMIC_RELAXED);
}

uint64_t ll_counter_load(const uint64_t *slot)
{
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
}
