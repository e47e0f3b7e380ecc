/* Victim of the hook test: a program that defines malloc, free, calloc and
 * realloc itself (as one statically linked with jemalloc or mimalloc does).
 * Its definitions win symbol resolution over the shim's for the whole
 * process, libc's own calls included, so LD_PRELOAD alone would see
 * nothing: memtrace must find and hook them.
 *
 * The allocator: a bump pointer in an mmap'd arena, a 16-byte header with
 * the size, freed blocks reused when the size matches. calloc calls malloc
 * and realloc calls malloc and free (inner calls the trace must not count).
 *
 * The four are noinline: at -O2 GCC would inline them into main (an
 * executable's functions cannot be interposed), and an inlined copy never
 * passes through the patched entry. A real allocator lives in other files.
 *
 * Counts what it serves between its constructor and its destructor, and
 * prints it with write(2) (stdio would allocate):
 *   "own: allocs A frees F bytes B"
 * Leaks exactly 3 blocks of 777 bytes (lost) and keeps 1 of 555 in a
 * global (reachable).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define ARENA (64u << 20)

struct header {
    size_t size;
    struct header *next;
};

static char *arena, *top;
static struct header *free_list;
static int counting;
static unsigned long allocs, frees, bytes;

static void *take(size_t n)
{
    for (struct header **h = &free_list; *h; h = &(*h)->next)
        if ((*h)->size == n) {
            struct header *b = *h;
            *h = b->next;
            return b + 1;
        }
    if (!arena) {
        arena = top = mmap(NULL, ARENA, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (arena == MAP_FAILED)
            return NULL;
    }
    size_t need = sizeof(struct header) + ((n + 15) & ~(size_t)15);
    if ((size_t)(arena + ARENA - top) < need)
        return NULL;
    struct header *b = (struct header *)top;
    top += need;
    b->size = n;
    return b + 1;
}

__attribute__((noinline)) void *malloc(size_t n)
{
    void *p = take(n);
    if (p && counting) {
        allocs++;
        bytes += n;
    }
    return p;
}

__attribute__((noinline)) void free(void *p)
{
    if (!p)
        return;
    struct header *b = (struct header *)p - 1;
    b->next = free_list;
    free_list = b;
    if (counting)
        frees++;
}

__attribute__((noinline)) void *calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return NULL;
    int was = counting;
    counting = 0;
    void *p = malloc(total); /* an inner call: one calloc is one allocation */
    counting = was;
    if (p) {
        memset(p, 0, total);
        if (counting) {
            allocs++;
            bytes += total;
        }
    }
    return p;
}

__attribute__((noinline)) void *realloc(void *p, size_t n)
{
    int was = counting;
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    counting = 0;
    void *q = malloc(n);
    if (q) {
        size_t old = ((struct header *)p - 1)->size;
        memcpy(q, p, old < n ? old : n);
        free(p);
    }
    counting = was;
    if (q && counting) {
        allocs++;
        frees++;
        bytes += n;
    }
    return q;
}

__attribute__((constructor)) static void start_counting(void) { counting = 1; }

__attribute__((destructor)) static void report(void)
{
    counting = 0;
    char line[128];
    int len = snprintf(line, sizeof line, "own: allocs %lu frees %lu bytes %lu\n", allocs, frees,
                       bytes);
    ssize_t ignored = write(STDOUT_FILENO, line, (size_t)len);
    (void)ignored;
}

void *volatile kept;

__attribute__((noinline)) static void *leak_777(void)
{
    void *p = malloc(777);
    __asm__ volatile("" ::: "memory"); /* not a tail call: keep this frame */
    return p;
}

int main(void)
{
    void *v[100];
    for (int i = 0; i < 100; i++)
        v[i] = i % 3 == 0 ? calloc(4, (size_t)i + 1) : malloc((size_t)i * 7 + 1);
    for (int i = 0; i < 100; i += 4)
        v[i] = realloc(v[i], (size_t)i * 11 + 5);
    for (int i = 0; i < 100; i++)
        free(v[i]);
    for (int i = 0; i < 3; i++)
        kept = leak_777();
    kept = malloc(555);
    char msg[] = "own_malloc done\n";
    ssize_t ignored = write(STDOUT_FILENO, msg, sizeof msg - 1);
    (void)ignored;
    return 0;
}
