/* Victim of the stress test (tests/e2e/test_stress.py, case fork_exec), exec'd
 * by stress_fork with its index K: mallocs K + 1 blocks of 100, 200, ...,
 * (K + 1) * 100 bytes and frees all but the last. So: K + 1 allocations, K
 * frees, 50 (K + 1)(K + 2) bytes allocated, (K + 1) * 100 in use in 1 block.
 * No stdio.
 */
#include <stdlib.h>

void *volatile keep[128];

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    int k = atoi(argv[1]);
    if (k < 0 || k > 126)
        return 2;
    for (int j = 0; j <= k; j++)
        keep[j] = malloc((size_t)(j + 1) * 100);
    for (int j = 0; j < k; j++)
        free(keep[j]);
    return 0;
}
