/* Victim of the timeline and pprof tests (tests/e2e/test_timeline.py,
 * test_pprof.py): a heap that rises, spikes and falls over ~150 ms, long
 * enough for the consumer's RSS samples (every 10 ms).
 *
 *   1. tl_ramp:  40 steps of 25 blocks of 4000 bytes, 2 ms apart (4 MB);
 *   2. tl_spike: one block of 8 MB held for 30 ms, then freed: the peak,
 *                12 MB in 1001 blocks;
 *   3. tl_release: frees 3 of every 4 ramp blocks, waits 30 ms, exits: the
 *                other 250 blocks (1 MB) are never freed.
 *
 * Every block is written to, so that RSS follows the heap. No stdio.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RAMP_STEPS 40
#define RAMP_BLOCKS 25
#define RAMP_SIZE 4000
#define SPIKE_SIZE 8000000

static void *volatile ramp[RAMP_STEPS * RAMP_BLOCKS];

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

__attribute__((noinline)) void tl_ramp(void)
{
    for (int step = 0; step < RAMP_STEPS; step++) {
        for (int i = 0; i < RAMP_BLOCKS; i++) {
            char *p = malloc(RAMP_SIZE);
            if (p)
                memset(p, 1, RAMP_SIZE);
            ramp[step * RAMP_BLOCKS + i] = p;
        }
        pause_ms(2);
    }
}

__attribute__((noinline)) void tl_spike(void)
{
    char *volatile p = malloc(SPIKE_SIZE);
    if (p)
        memset(p, 2, SPIKE_SIZE);
    pause_ms(30);
    free(p);
}

__attribute__((noinline)) void tl_release(void)
{
    for (int i = 0; i < RAMP_STEPS * RAMP_BLOCKS; i++)
        if (i % 4 != 0)
            free(ramp[i]);
    pause_ms(30);
}

int main(void)
{
    tl_ramp();
    tl_spike();
    tl_release();
    return 0;
}
