/* Victim for the counting test: a long deterministic mix of every C allocation
 * call on 512 slots (a fixed LCG picks the slot, the call and the size), so
 * addresses are freed and reused all the time, in every size class, with
 * realloc moving blocks around. Argument: number of operations (default
 * 20000). Whatever is in the slots at the end is leaked. No stdio.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>

#define SLOTS 512

static uint64_t lcg_state = 12345;

static uint32_t lcg_next(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(lcg_state >> 33);
}

static size_t pick_size(void)
{
    uint32_t r = lcg_next() % 100;
    if (r < 60)
        return lcg_next() % 128; /* tcache and fastbin sizes, 0 included */
    if (r < 90)
        return 128 + lcg_next() % 4000;
    if (r < 99)
        return 4096 + lcg_next() % 60000;
    return 131072 + lcg_next() % 300000; /* mmap'd */
}

void *volatile slots[SLOTS];

int main(int argc, char **argv)
{
    long ops = argc > 1 ? atol(argv[1]) : 20000;
    for (long i = 0; i < ops; i++) {
        unsigned s = lcg_next() % SLOTS;
        void *p = slots[s];
        size_t n = pick_size();
        switch (lcg_next() % 10) {
        case 0:
        case 1:
        case 2:
            free(p);
            slots[s] = malloc(n);
            break;
        case 3:
            free(p);
            slots[s] = calloc(n / 8 + 1, 8);
            break;
        case 4:
        case 5:
            slots[s] = realloc(p, n); /* n == 0 frees p */
            break;
        case 6:
            free(p);
            slots[s] = NULL;
            break;
        case 7: {
            void *q = NULL;
            free(p);
            slots[s] = posix_memalign(&q, (size_t)16 << (lcg_next() % 6), n) == 0 ? q : NULL;
            break;
        }
        case 8:
            free(p);
            slots[s] = (lcg_next() & 1) ? memalign(64, n) : aligned_alloc(32, n);
            break;
        case 9: {
            void *q = reallocarray(p, n / 4 + 1, 4);
            if (q != NULL)
                slots[s] = q;
            break;
        }
        }
    }
    return 0;
}
