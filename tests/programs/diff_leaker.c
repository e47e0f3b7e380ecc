/* Victim of the diff test (tests/e2e/test_diff.py): `diff_leaker N P`
 * leaks from four sites and peaks with a fifth, by its arguments:
 *
 *   leak_big     N blocks of 100 bytes, never freed
 *   leak_small   N blocks of 8 bytes, never freed
 *   leak_shrink  20 - N blocks of 10 bytes, never freed (fewer as N grows)
 *   leak_stable  4 blocks of 32 bytes, never freed (the same in every run)
 *   peak_hold    P blocks of 1000 bytes, allocated after the leaks and all
 *                freed: the peak is every leak plus these
 *
 * Each site calls malloc from one line and is called from one place. No
 * stdio, no other allocation: two runs with the same arguments are the same.
 */
#include <stdlib.h>

#define MAX_BLOCKS 1000

static void *volatile sink;
static void *volatile held[MAX_BLOCKS];

__attribute__((noinline)) void leak_big(int n)
{
    for (int i = 0; i < n; i++)
        sink = malloc(100);
}

__attribute__((noinline)) void leak_small(int n)
{
    for (int i = 0; i < n; i++)
        sink = malloc(8);
}

__attribute__((noinline)) void leak_shrink(int n)
{
    for (int i = 0; i < n; i++)
        sink = malloc(10);
}

__attribute__((noinline)) void leak_stable(void)
{
    for (int i = 0; i < 4; i++)
        sink = malloc(32);
}

__attribute__((noinline)) void peak_hold(int p)
{
    for (int i = 0; i < p; i++)
        held[i] = malloc(1000);
    for (int i = 0; i < p; i++)
        free(held[i]);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5;
    int p = argc > 2 ? atoi(argv[2]) : 10;
    if (n < 0 || n > 20 || p < 0 || p > MAX_BLOCKS)
        return 2;
    leak_big(n);
    leak_small(n);
    leak_shrink(20 - n);
    leak_stable();
    peak_hold(p);
    sink = NULL;
    return 0;
}
