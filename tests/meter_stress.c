/* Threads hammer one meter slot while a reader snapshots it; run under
 * -fsanitize=thread and -fsanitize=address,undefined by test_meter.py.
 * Exits 0 when no increment was lost and every consistent snapshot held
 * whole records only (histogram count == invocations == billed ms). */
#include "meter.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>

#define WRITERS 4
#define RECORDS 100000

static uint64_t slot[LL_SLOT_WORDS];

static void *writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < RECORDS; i++)
        ll_meter_record(slot, 1000 + (uint64_t)i, 1, 128, 0, i % 3, i == 0);
    return NULL;
}

static uint64_t sum(const uint64_t *words, int first, int n)
{
    uint64_t total = 0;
    for (int i = 0; i < n; i++)
        total += words[first + i];
    return total;
}

int main(void)
{
    pthread_t threads[WRITERS];
    for (int i = 0; i < WRITERS; i++)
        if (pthread_create(&threads[i], NULL, writer, NULL) != 0)
            return 2;
    uint64_t out[LL_SLOT_WORDS];
    for (int k = 0; k < 5000; k++) {
        if (ll_meter_snapshot(slot, out, LL_SLOT_WORDS, 100) > 0) {
            uint64_t invocations = sum(out, LL_W_OUTCOMES, LL_OUTCOMES);
            if (sum(out, LL_W_HIST, LL_HIST_BUCKETS) != invocations || out[LL_W_BILLED_MS] != invocations) {
                fprintf(stderr, "torn snapshot\n");
                return 1;
            }
        }
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(threads[i], NULL);
    uint64_t total = sum(slot, LL_W_OUTCOMES, LL_OUTCOMES);
    if (total != (uint64_t)WRITERS * RECORDS || ll_meter_snapshot(slot, out, 1, 1) != -EINVAL) {
        fprintf(stderr, "lost increments: %llu\n", (unsigned long long)total);
        return 1;
    }
    return 0;
}
