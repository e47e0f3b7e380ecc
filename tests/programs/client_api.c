/* Victim of the client API test (include/memtrace/memtrace.h): an arena
 * allocator annotated by hand, and marks.
 *
 *   mark "setup"; 10 blocks of 64 bytes, 5 freed, 1 resized to 300;
 *   mark "phase2"; 3 blocks of 200 bytes, 1 freed (2 lost);
 *   mark "done"; 1 block of 50 bytes, lost.
 *
 * So: 15 client allocations (10 + 1 resize + 3 + 1), 7 frees (5 + the
 * block resized + 1), 4 lost (the 300-byte resized block, 2 x 200, 50);
 * blocks 1-4 of the first phase stay reachable from `kept`. Between
 * "phase2" and "done": 3 allocations, 2 of them leaked.
 *
 * The output (stdout) is the same with and without memtrace.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "memtrace/memtrace.h"

static unsigned char *region;
static size_t used;

static void *arena_alloc(size_t n)
{
    void *p = region + used;
    used += (n + 15) & ~(size_t)15;
    MEMTRACE_ALLOC(p, n);
    return p;
}

static void arena_free(void *p) { MEMTRACE_FREE(p); }

static void *arena_resize(void *old, size_t n)
{
    void *p = region + used;
    used += (n + 15) & ~(size_t)15;
    memcpy(p, old, 64);
    MEMTRACE_REALLOC(old, p, n);
    return p;
}

void *volatile kept[8];

int main(void)
{
    region = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
        return 1;
    MEMTRACE_MARK("setup");
    void *v[10];
    for (int i = 0; i < 10; i++)
        v[i] = arena_alloc(64);
    for (int i = 5; i < 10; i++)
        arena_free(v[i]);
    v[0] = arena_resize(v[0], 300);
    for (int i = 1; i < 5; i++)
        kept[i] = v[i];
    memset(v, 0, sizeof v); /* the resized block: lost */
    MEMTRACE_MARK("phase2");
    void *w[3];
    for (int i = 0; i < 3; i++)
        w[i] = arena_alloc(200);
    arena_free(w[1]);
    w[0] = w[1] = w[2] = NULL;
    MEMTRACE_MARK("done");
    kept[5] = arena_alloc(50);
    kept[5] = NULL;
    printf("client_api: used %zu bytes of the arena\n", used);
    return 0;
}
