#include "meter.h"

#include <errno.h>
#include <stddef.h>

/* Single counters: relaxed ordering is enough, each is independent and
 * only needs every increment to land exactly once. */
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta)
{
    return __atomic_add_fetch(slot, delta, __ATOMIC_RELAXED);
}

uint64_t ll_counter_load(const uint64_t *slot)
{
    return __atomic_load_n(slot, __ATOMIC_RELAXED);
}

void ll_counter_store(uint64_t *slot, uint64_t value)
{
    __atomic_store_n(slot, value, __ATOMIC_RELEASE);
}

int ll_counter_cas(uint64_t *slot, uint64_t expected, uint64_t desired)
{
    return __atomic_compare_exchange_n(slot, &expected, desired, 0,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

int ll_hist_bucket(uint64_t duration_ns)
{
    uint64_t base = 1000; /* 1 us: the first decade */
    if (duration_ns < base)
        return 0;
    for (int decade = 0; decade < LL_HIST_DECADES; decade++) {
        uint64_t next = base * 10;
        if (duration_ns < next)
            return 1 + decade * 9 + (int)(duration_ns / base) - 1;
        base = next;
    }
    return LL_HIST_BUCKETS - 1;
}

/* A record is bracketed by BEGIN and END so that a reader can tell whether
 * any record overlapped its copy (see ll_meter_snapshot). Every access is
 * sequentially consistent: that is what makes the bracket argument hold
 * across processes, and on x86 a locked add costs the same whatever the
 * ordering asked for. */
void ll_meter_record(uint64_t *slot, uint64_t duration_ns, uint64_t billed_ms,
                     uint64_t memory_mb, uint64_t init_ns, int outcome, int cold)
{
    if (outcome < 0 || outcome >= LL_OUTCOMES)
        outcome = LL_OUTCOMES - 1;
    __atomic_add_fetch(&slot[LL_W_BEGIN], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&slot[LL_W_OUTCOMES + outcome], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&slot[LL_W_DURATION_NS], duration_ns, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&slot[LL_W_BILLED_MS], billed_ms, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&slot[LL_W_MB_MS], memory_mb * billed_ms, __ATOMIC_SEQ_CST);
    if (cold) {
        __atomic_add_fetch(&slot[LL_W_COLD], 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&slot[LL_W_INIT_NS], init_ns, __ATOMIC_SEQ_CST);
    }
    __atomic_add_fetch(&slot[LL_W_HIST + ll_hist_bucket(duration_ns)], 1, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&slot[LL_W_END], 1, __ATOMIC_SEQ_CST);
}

/* A multi-writer seqlock without a lock: read END, copy, read BEGIN. Every
 * record that ended before END was read began earlier, so BEGIN >= END; the
 * two are equal only if no record was under way at any point between the
 * two reads, and then the copy holds whole records only. Writers never wait;
 * a reader retries. Throttles and the concurrency gauge are single words
 * written outside the bracket: each is exact on its own. */
int ll_meter_snapshot(const uint64_t *slot, uint64_t *out, int n, int max_tries)
{
    if (slot == NULL || out == NULL || n < 2 || n > LL_SLOT_WORDS || max_tries < 1)
        return -EINVAL;
    for (int attempt = 1; attempt <= max_tries; attempt++) {
        uint64_t end = __atomic_load_n(&slot[LL_W_END], __ATOMIC_SEQ_CST);
        for (int i = 0; i < n; i++)
            out[i] = __atomic_load_n(&slot[i], __ATOMIC_SEQ_CST);
        uint64_t begin = __atomic_load_n(&slot[LL_W_BEGIN], __ATOMIC_SEQ_CST);
        if (begin == end) {
            out[LL_W_BEGIN] = begin;
            out[LL_W_END] = end;
            return attempt;
        }
    }
    return -EAGAIN;
}
