/* Victim for the peak test (tests/e2e/test_peak_massif.py): a heap whose peak
 * is NOT where the most bytes were ever allocated.
 *
 *   1. churn:      10 rounds of 100 blocks of 1000 bytes, all freed after each
 *                  round (1 000 000 bytes allocated, never more than 100 000
 *                  live);
 *   2. hold_big:   100 blocks of 1500 bytes (150 000 bytes) kept,
 *      hold_small: 100 blocks of 300 bytes (30 000 bytes) kept:
 *                  the peak, 180 000 bytes in 200 blocks;
 *   3. release:    frees all but the first KEPT blocks of each, then exits.
 *
 * Every allocating function calls malloc from one line and is called from one
 * place, so valgrind massif's first level (the caller of malloc) groups the
 * blocks exactly as memtrace's sites (identical stacks) do. The peak is
 * followed by a free, where massif takes its peak snapshot. No stdio, no
 * other allocation.
 */
#include <stdlib.h>
#include <string.h>

#define CHURN_ROUNDS 10
#define CHURN_BLOCKS 100
#define CHURN_SIZE 1000
#define BIG_BLOCKS 100
#define BIG_SIZE 1500
#define SMALL_BLOCKS 100
#define SMALL_SIZE 300
#define KEPT 3

void *volatile churn_slots[CHURN_BLOCKS];
void *volatile big_slots[BIG_BLOCKS];
void *volatile small_slots[SMALL_BLOCKS];

__attribute__((noinline)) void churn(void)
{
    for (int i = 0; i < CHURN_BLOCKS; i++)
        churn_slots[i] = malloc(CHURN_SIZE);
}

__attribute__((noinline)) void churn_release(void)
{
    for (int i = 0; i < CHURN_BLOCKS; i++)
        free(churn_slots[i]);
}

__attribute__((noinline)) void hold_big(void)
{
    for (int i = 0; i < BIG_BLOCKS; i++)
        big_slots[i] = malloc(BIG_SIZE);
}

__attribute__((noinline)) void hold_small(void)
{
    for (int i = 0; i < SMALL_BLOCKS; i++)
        small_slots[i] = malloc(SMALL_SIZE);
}

__attribute__((noinline)) void release(void)
{
    for (int i = KEPT; i < BIG_BLOCKS; i++)
        free(big_slots[i]);
    for (int i = KEPT; i < SMALL_BLOCKS; i++)
        free(small_slots[i]);
}

int main(void)
{
    for (int round = 0; round < CHURN_ROUNDS; round++) {
        churn();
        churn_release();
    }
    hold_big();
    hold_small();
    release();
    return 0;
}
