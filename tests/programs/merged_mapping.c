/* Blocks whose only pointers lie in memory the program mapped itself, next
 * to chunks glibc mapped for large blocks: the kernel merges the two
 * anonymous mappings into one line of /proc/self/maps. memcheck counts the
 * program's part as a root; so must the scan (preload/scan.c
 * scan_around_heap). Prints how many of the program's mappings share a
 * line with a large block, so that a test knows the case was made. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define ROUNDS 4
#define BIG (4u << 20)

static void *volatile sink;

static int same_line(uintptr_t a, uintptr_t b)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return 0;
    unsigned long lo, hi;
    int found = 0;
    char rest[512];
    while (fscanf(f, "%lx-%lx", &lo, &hi) == 2 && fgets(rest, sizeof rest, f))
        if (a >= lo && a < hi && b >= lo && b < hi)
            found = 1;
    fclose(f);
    return found;
}

int main(void)
{
    void **bufs[ROUNDS];
    char *bigs[ROUNDS];
    for (int k = 0; k < ROUNDS; k++) {
        bigs[k] = malloc(BIG); /* glibc maps it: the kernel places it below the last mapping */
        bufs[k] = mmap(NULL, BIG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (!bigs[k] || bufs[k] == MAP_FAILED)
            return 2;
        bufs[k][0] = malloc(100); /* reachable only from the program's mapping */
        bufs[k][1] = bigs[k];
    }
    sink = malloc(777); /* and one definite leak */
    sink = NULL;
    int merged = 0;
    for (int k = 0; k < ROUNDS; k++)
        for (int j = 0; j < ROUNDS; j++)
            merged += same_line((uintptr_t)bufs[k], (uintptr_t)bigs[j]);
    printf("merged mappings: %d\n", merged);
    for (int k = 0; k < ROUNDS; k++)
        bigs[k] = NULL;
    return 0;
}
