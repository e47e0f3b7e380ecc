/* Victim of the hook test: a program with its own pool allocator, in static
 * functions that LD_PRELOAD cannot see, built at -O0 and -O2, PIE and not.
 *
 *   pool_alloc(pool, size)          size is argument 1
 *   pool_free(pool, ptr)            ptr is argument 1
 *   pool_realloc(pool, ptr, size)   ptr 1, size 2
 *
 * pool_alloc calls itself for a new chunk when one runs out (a recursive
 * call the trace must not count) and takes chunks from malloc (also not the
 * program's allocation). With an argument N > 0, a SIGALRM handler firing
 * every 200 us allocates from a pool of its own and frees, while the main
 * thread is in and out of its pool (and lingers in pool_free, so that the
 * handler often interrupts a hooked call).
 *
 * Prints a checksum of the data and, last, the number of pool calls made,
 * which the test compares with the dump:
 *   "pool: allocs A frees F reallocs R handler H"
 * Leaks exactly: 3 blocks of 1000 bytes from leak_thousand(), 1 of 2000 from
 * leak_two_thousand(), none else (every other block is freed).
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define CHUNK 4096
#define ALIGN 16
/* Not inlined, and not cloned with other arguments (GCC's IPA; clang has
 * no noclone, and the tests build this victim with GCC) */
#ifdef __clang__
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE __attribute__((noinline, noclone))
#endif

struct block_header {
    size_t size;
    struct block_header *next_free;
};

struct pool {
    char *chunk; /* current chunk, carved from the front */
    size_t left;
    struct block_header *free_list; /* freed blocks of any size, first fit */
    void *chunks[1024];
    int nchunks;
};

static struct pool main_pool, signal_pool;
static volatile sig_atomic_t handler_calls;
static unsigned long allocs, frees, reallocs;
static volatile int slow; /* with signals: linger in pool_free, so that the
                             handler often interrupts the pool itself */

NOINLINE static void *pool_alloc(struct pool *p, size_t size)
{
    if (size >= CHUNK) { /* a new chunk: from malloc */
        void *c = malloc(size);
        if (c && p->nchunks < 1024)
            p->chunks[p->nchunks++] = c;
        return c;
    }
    size = (size + ALIGN - 1) & ~(size_t)(ALIGN - 1);
    for (struct block_header **h = &p->free_list; *h; h = &(*h)->next_free)
        if ((*h)->size == size) {
            struct block_header *b = *h;
            *h = b->next_free;
            return b + 1;
        }
    size_t need = size + sizeof(struct block_header);
    if (p->left < need) {
        p->chunk = pool_alloc(p, CHUNK); /* recursion */
        if (!p->chunk)
            return NULL;
        p->left = CHUNK;
    }
    struct block_header *b = (struct block_header *)p->chunk;
    p->chunk += need;
    p->left -= need;
    b->size = size;
    return b + 1;
}

NOINLINE static void pool_free(struct pool *p, void *ptr)
{
    if (!ptr)
        return;
    struct block_header *b = (struct block_header *)ptr - 1;
    b->next_free = p->free_list;
    p->free_list = b;
    for (int i = 0; i < slow; i++)
        __asm__ volatile("" ::: "memory");
}

NOINLINE static void *pool_realloc(struct pool *p, void *ptr, size_t size)
{
    if (!ptr)
        return pool_alloc(p, size);
    struct block_header *b = (struct block_header *)ptr - 1;
    void *q = pool_alloc(p, size);
    if (q) {
        memcpy(q, ptr, b->size < size ? b->size : size);
        pool_free(p, ptr);
    }
    return q;
}

static void on_alarm(int sig)
{
    (void)sig;
    void *a = pool_alloc(&signal_pool, 24);
    memset(a, 1, 24);
    pool_free(&signal_pool, a);
    handler_calls++;
}

static void *counted_alloc(size_t n) { allocs++; return pool_alloc(&main_pool, n); }
static void counted_free(void *q) { frees++; pool_free(&main_pool, q); }

/* The barrier keeps the call from becoming a tail call (which would leave
 * no frame of these functions on the stack). */
#define NO_TAIL_CALL() __asm__ volatile("" ::: "memory")

NOINLINE static void *leak_thousand(void)
{
    void *p = counted_alloc(1000);
    NO_TAIL_CALL();
    return p;
}

NOINLINE static void *leak_two_thousand(void)
{
    void *p = counted_alloc(2000);
    NO_TAIL_CALL();
    return p;
}

void *volatile keep[8];

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 0;
    if (rounds > 0) {
        slow = 2000;
        /* the handler's pool gets its chunk now: malloc is not
         * async-signal-safe (its blocks are then reused forever) */
        pool_free(&signal_pool, pool_alloc(&signal_pool, 24));
        signal(SIGALRM, on_alarm);
        struct itimerval it = {{0, 200}, {0, 200}};
        setitimer(ITIMER_REAL, &it, NULL);
    }
    unsigned long sum = 0;
    for (long r = 0; r < (rounds > 0 ? rounds : 1); r++) {
        char *v[64];
        for (int i = 0; i < 64; i++) {
            v[i] = counted_alloc((size_t)(8 + i * 5));
            memset(v[i], i, (size_t)(8 + i * 5));
        }
        for (int i = 0; i < 64; i += 2) {
            reallocs++;
            v[i] = pool_realloc(&main_pool, v[i], (size_t)(200 + i));
            sum += (unsigned char)v[i][0];
        }
        for (int i = 0; i < 64; i++)
            counted_free(v[i]);
    }
    if (rounds > 0) {
        struct itimerval off = {{0, 0}, {0, 0}};
        setitimer(ITIMER_REAL, &off, NULL);
    }
    for (int i = 0; i < 3; i++)
        keep[i] = leak_thousand();
    keep[3] = leak_two_thousand();
    keep[0] = keep[1] = keep[2] = keep[3] = NULL; /* lost: definite leaks */
    printf("checksum %lu\n", sum);
    printf("pool: allocs %lu frees %lu reallocs %lu handler %d\n", allocs, frees, reallocs,
           (int)handler_calls + (rounds > 0)); /* and the warm-up */
    return 0;
}
