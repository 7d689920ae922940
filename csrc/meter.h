#ifndef LAMBDALET_METER_H
#define LAMBDALET_METER_H
#include <stdint.h>

/* Lock-free counters over a shared, file-backed mapping (see meter.c and
 * gateway/metering/meter.py for the layout). Any number of processes may write the
 * same slot at once; readers never block writers. */

/* Single counters. Each returns the new value. */
uint64_t ll_counter_add(uint64_t *slot, uint64_t delta);
uint64_t ll_counter_load(const uint64_t *slot);
void ll_counter_store(uint64_t *slot, uint64_t value);
/* Compare-and-swap: returns 1 if *slot held expected and now holds desired. */
int ll_counter_cas(uint64_t *slot, uint64_t expected, uint64_t desired);

/* Word offsets inside one slot. gateway/metering/meter.py mirrors these. */
enum {
    LL_W_BEGIN = 0,      /* records begun (snapshot guard) */
    LL_W_END = 1,        /* records finished (snapshot guard) */
    LL_W_THROTTLES = 2,
    LL_W_CONCURRENT = 3, /* gauge: two's-complement adds of +1 / -1 */
    LL_W_COLD = 4,
    LL_W_DURATION_NS = 5,
    LL_W_BILLED_MS = 6,
    LL_W_MB_MS = 7,      /* memory MB x billed ms: GB-s = MB_MS / 1024 / 1000 */
    LL_W_INIT_NS = 8,
    LL_W_OUTCOMES = 9,   /* LL_OUTCOMES counters, one per outcome */
    LL_OUTCOMES = 8,
    LL_W_HIST = 17,      /* LL_HIST_BUCKETS counters */
    LL_HIST_DECADES = 10, /* 1 us .. 10000 s */
    LL_HIST_BUCKETS = 2 + 9 * LL_HIST_DECADES, /* below 1 us, 9 per decade, above */
    LL_SLOT_WORDS = LL_W_HIST + LL_HIST_BUCKETS,
};

/* The histogram bucket for a duration: log-linear, 9 linear steps per
 * decade starting at 1 us (bucket 1 holds [1 us, 2 us), ...). */
int ll_hist_bucket(uint64_t duration_ns);

/* Everything one finished call adds to its slot, in one crossing from
 * Python: the guards, the outcome, the sums and the histogram bucket. */
void ll_meter_record(uint64_t *slot, uint64_t duration_ns, uint64_t billed_ms,
                     uint64_t memory_mb, uint64_t init_ns, int outcome, int cold);

/* Copies n words of a slot into out as one consistent state: no record is
 * half in it. Lock-free: retries while a writer is mid-record, at most
 * max_tries times. Returns the number of tries used, or -EAGAIN if every try
 * overlapped a writer (out then holds the last, possibly torn, copy) or
 * -EINVAL for bad arguments. */
int ll_meter_snapshot(const uint64_t *slot, uint64_t *out, int n, int max_tries);
#endif
