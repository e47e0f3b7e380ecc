/* The exit scan's marking (scan_state.h), as memcheck does it
 * (mc_leakcheck.c): the roots -- every writable private mapping that holds
 * no heap block, each thread's stack from its stack pointer, the registers
 * -- and the blocks reached from them; then the cliques of what is left. */
#define _GNU_SOURCE
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <capstone/capstone.h>
#include <dlfcn.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#include "loader.h"
#include "scan_state.h"

/* ---- marking (memcheck's algorithm) ------------------------------------ */

/* The block that value points into (start or interior; a 0-size block
 * only at its start), or -1. */
static int64_t block_of(const struct marker *m, uint64_t value)
{
    if (value < m->lo || value >= m->hi)
        return -1;
    uint64_t lo = 0, hi = m->count; /* first block with address > value */
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (m->blocks[mid].address <= value)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return -1;
    const struct mt_scan_block *b = &m->blocks[lo - 1];
    if (value < b->address + b->size || (b->size == 0 && value == b->address))
        return (int64_t)(lo - 1);
    return -1;
}

static void push(struct marker *m, uint64_t i)
{
    if (m->depth < m->stack_cap)
        m->stack[m->depth++] = (uint32_t)i;
}

/* lc_push_without_clique_if_a_chunk_ptr */
static void consider(struct marker *m, uint64_t value, int prior_definite)
{
    int64_t i = block_of(m, value);
    if (i < 0)
        return;
    int via_start = value == m->blocks[i].address;
    if (m->state[i] == REACHABLE)
        return;
    if (via_start && prior_definite) {
        m->state[i] = REACHABLE;
        push(m, (uint64_t)i);
    } else if (m->state[i] == UNREACHED) {
        m->state[i] = POSSIBLE;
        push(m, (uint64_t)i);
    }
}

static void scan_words(struct marker *m, uintptr_t lo, uintptr_t hi, int prior_definite)
{
    for (uintptr_t p = (lo + 7) & ~(uintptr_t)7; p + 8 <= hi; p += 8)
        consider(m, *(const uint64_t *)p, prior_definite);
}

/* libc's own writable data holds malloc's state: its top-chunk and bin
 * pointers address chunk headers, and the header after a block lies in the
 * block's last 8 bytes, which would make it "possible". memcheck's own
 * allocator keeps no such pointers; skip them. */
static void scan_libc_words(struct marker *m, uintptr_t lo, uintptr_t hi)
{
    for (uintptr_t p = (lo + 7) & ~(uintptr_t)7; p + 8 <= hi; p += 8) {
        uint64_t value = *(const uint64_t *)p;
        int64_t i = block_of(m, value);
        if (i >= 0 && value != m->blocks[i].address &&
            value == m->blocks[i].address + malloc_usable_size((void *)m->blocks[i].address) - 8)
            continue;
        consider(m, value, 1);
    }
}

void mt_scan_drain_marks(struct marker *m)
{
    while (m->depth) {
        uint32_t i = m->stack[--m->depth];
        const struct mt_scan_block *b = &m->blocks[i];
        scan_words(m, b->address, b->address + b->size, m->state[i] == REACHABLE);
    }
}

/* Phase 2: blocks still unreached lead cliques of the blocks they reach;
 * those become indirect (lc_push_with_clique_if_a_chunk_ptr). */
void mt_scan_mark_cliques(struct marker *m)
{
    for (uint64_t leader = 0; leader < m->count; leader++) {
        if (m->state[leader] != UNREACHED)
            continue;
        push(m, leader);
        while (m->depth) {
            uint32_t i = m->stack[--m->depth];
            const struct mt_scan_block *b = &m->blocks[i];
            for (uintptr_t p = (b->address + 7) & ~(uintptr_t)7; p + 8 <= b->address + b->size;
                 p += 8) {
                int64_t j = block_of(m, *(const uint64_t *)p);
                if (j >= 0 && m->state[j] == UNREACHED && (uint64_t)j != leader) {
                    m->state[j] = INDIRECT;
                    push(m, (uint64_t)j);
                }
            }
        }
    }
}

/* ---- roots ---------------------------------------------------------------- */

/* Ranges that are never roots, sorted by start: the shim's own module
 * (its data, bss and bootstrap arena), its mappings (own_memory.c) and each
 * thread's struct mt_thread. */
struct excluded {
    uintptr_t (*ranges)[2];
    size_t count, cap;
};

struct marker_roots {
    struct marker *m;
    const struct program_view *self;
    int nstopped;
    struct excluded *ex;
};

/* The index of the first block that starts at or above lo (count if none). */
static uint64_t first_block_from(const struct marker *m, uint64_t lo)
{
    uint64_t a = 0, b = m->count;
    while (a < b) {
        uint64_t mid = (a + b) / 2;
        if (m->blocks[mid].address < lo)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

/* 1 if [lo, hi) holds the start of a live block: heap memory, not a root. */
static int holds_block(const struct marker *m, uint64_t lo, uint64_t hi)
{
    uint64_t a = first_block_from(m, lo);
    return a < m->count && m->blocks[a].address < hi;
}

static void exclude(struct excluded *ex, uintptr_t lo, uintptr_t hi)
{
    if (lo >= hi || ex->count >= ex->cap)
        return;
    size_t i = ex->count++; /* insertion sort: a few hundred ranges */
    while (i > 0 && ex->ranges[i - 1][0] > lo) {
        ex->ranges[i][0] = ex->ranges[i - 1][0];
        ex->ranges[i][1] = ex->ranges[i - 1][1];
        i--;
    }
    ex->ranges[i][0] = lo;
    ex->ranges[i][1] = hi;
}

static int exclude_own(uintptr_t start, uintptr_t end, void *arg)
{
    exclude(arg, start, end);
    return 0;
}

static void exclude_thread_state(struct mt_thread *t, void *arg)
{
    exclude(arg, (uintptr_t)t, (uintptr_t)(t + 1));
}

/* Scans [lo, hi) but for the excluded ranges. */
static void scan_root_range(struct marker *m, const struct excluded *ex, uintptr_t lo, uintptr_t hi,
                            int libc)
{
    for (size_t i = 0; i < ex->count && lo < hi; i++) {
        uintptr_t a = ex->ranges[i][0], b = ex->ranges[i][1];
        if (b <= lo)
            continue;
        if (a >= hi)
            break;
        if (a > lo) {
            if (libc)
                scan_libc_words(m, lo, a);
            else
                scan_words(m, lo, a, 1);
        }
        if (b > lo)
            lo = b;
    }
    if (lo < hi) {
        if (libc)
            scan_libc_words(m, lo, hi);
        else
            scan_words(m, lo, hi, 1);
    }
}

/* ---- heap memory inside a mapping ---------------------------------------- */

/* The kernel merges adjacent anonymous mappings of the same protection, so
 * one line of /proc/self/maps can hold both a chunk glibc mapped for a large
 * block and memory the program mapped itself (whose pointers are roots).
 * With glibc's allocator the heap's part is known from each block's chunk
 * header (malloc/malloc.c): the word before the block is the chunk's size
 * with flag bits, the word before that prev_size. An IS_MMAPPED chunk is a
 * mapping of its own, [chunk - prev_size, chunk + size); a NON_MAIN_ARENA
 * chunk lies in a heap of HEAP_MAX_SIZE (64 MiB on 64-bit) aligned to that
 * size, all of which is the arena's. A main-arena chunk outside [heap] (glibc
 * fell back to mmap when brk failed) has no known extent. */
#define GLIBC_CHUNK_HEADER 16
#define GLIBC_IS_MMAPPED 0x2
#define GLIBC_NON_MAIN_ARENA 0x4
#define GLIBC_HEAP_MAX (64ull << 20)

static int glibc_heap; /* 1: the allocator the shim forwards to is glibc's */

/* The part of [lo, hi) that the chunk of block b takes, or 0 if unknown. */
static int chunk_extent(const struct mt_scan_block *b, uintptr_t lo, uintptr_t hi, uintptr_t *x0,
                        uintptr_t *x1)
{
    uintptr_t a = b->address;
    if ((a & 15) || a < lo + GLIBC_CHUNK_HEADER || a >= hi)
        return 0;
    uintptr_t chunk = a - GLIBC_CHUNK_HEADER;
    uint64_t prev = ((const uint64_t *)chunk)[0], head = ((const uint64_t *)chunk)[1];
    uint64_t size = head & ~7ull;
    if (head & GLIBC_IS_MMAPPED) {
        uintptr_t start = chunk - prev, end = chunk + size;
        if (prev > chunk || (start & 4095) || (end & 4095) || start < lo || end > hi || end <= a ||
            size < b->size + GLIBC_CHUNK_HEADER)
            return 0;
        *x0 = start;
        *x1 = end;
        return 1;
    }
    if (head & GLIBC_NON_MAIN_ARENA) {
        uintptr_t start = chunk & ~(uintptr_t)(GLIBC_HEAP_MAX - 1);
        *x0 = start > lo ? start : lo;
        *x1 = start + GLIBC_HEAP_MAX < hi ? start + GLIBC_HEAP_MAX : hi;
        return 1;
    }
    return 0;
}

/* Scans [from, hi) of a mapping that holds live blocks, but for the heap's
 * part: only when glibc's chunk headers account for every block in it;
 * else none of it (as all of it might be heap, whose free chunks hold stale
 * addresses that must never count as roots). */
static void scan_around_heap(struct marker *m, const struct excluded *ex, uintptr_t lo,
                             uintptr_t from, uintptr_t hi)
{
    if (!glibc_heap)
        return;
    uint64_t first = first_block_from(m, lo);
    uintptr_t x0, x1;
    for (uint64_t i = first; i < m->count && m->blocks[i].address < hi; i++)
        if (!chunk_extent(&m->blocks[i], lo, hi, &x0, &x1))
            return;
    uintptr_t at = from;
    for (uint64_t i = first; i < m->count && m->blocks[i].address < hi; i++) {
        chunk_extent(&m->blocks[i], lo, hi, &x0, &x1);
        if (x0 > at)
            scan_root_range(m, ex, at, x0, 0);
        if (x1 > at)
            at = x1;
    }
    if (at < hi)
        scan_root_range(m, ex, at, hi, 0);
}

/* Scans one line of /proc/self/maps if it is a root. */
static void scan_mapping(struct marker_roots *w, const char *line)
{
    struct marker *m = w->m;
    const char *s = line;
    uintptr_t lo = mt_parse_hex(&s);
    if (*s++ != '-')
        return;
    uintptr_t hi = mt_parse_hex(&s);
    if (*s++ != ' ' || s[0] != 'r' || s[1] != 'w' || s[3] != 'p')
        return;
    const char *bracket = strchr(s, '[');
    if (bracket && (strncmp(bracket, "[heap]", 6) == 0 || strncmp(bracket, "[vvar]", 6) == 0 ||
                    strncmp(bracket, "[vsyscall]", 10) == 0))
        return;
    /* A thread's stack: only from its stack pointer up. */
    uintptr_t from = lo;
    if (w->self->sp >= lo && w->self->sp < hi)
        from = w->self->sp;
    for (int i = 0; i < w->nstopped; i++) {
        uintptr_t sp = __atomic_load_n(&scan_stopped[i].sp, __ATOMIC_ACQUIRE);
        if (sp >= lo && sp < hi && sp > from)
            from = sp - RED_ZONE > from ? sp - RED_ZONE : from;
    }
    if (holds_block(m, lo, hi)) { /* heap memory: its blocks are scanned as blocks */
        scan_around_heap(m, w->ex, lo, from, hi);
        return;
    }
    const char *path = strchr(s, '/');
    scan_root_range(m, w->ex, from, hi, path && strstr(path, "/libc.so"));
}

static int root_line(const char *line, void *arg)
{
    scan_mapping(arg, line);
    return 0;
}

void mt_scan_roots(struct marker *m, const struct program_view *self)
{
    glibc_heap = mt_real.malloc && (void *)mt_real.malloc == mt_libc_symbol("malloc");
    int nstopped = __atomic_load_n(&scan_stopped_count, __ATOMIC_ACQUIRE);
    if (nstopped > MAX_THREADS)
        nstopped = MAX_THREADS;
    for (int r = 0; r < self->nregs; r++)
        consider(m, self->regs[r], 1);
    for (int i = 0; i < nstopped; i++)
        for (int r = 0; r < NGREG; r++)
            consider(m, scan_stopped[i].regs[r], 1);
    struct excluded ex = {.cap = 2 * MAX_THREADS + 16384 + 16 + (size_t)scan_go_dead_count};
    size_t ex_size = ex.cap * sizeof *ex.ranges;
    ex.ranges = mmap(NULL, ex_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ex.ranges == MAP_FAILED) {
        ex.ranges = NULL;
        ex.cap = 0;
    } else {
        exclude(&ex, (uintptr_t)ex.ranges, (uintptr_t)ex.ranges + ex_size);
    }
    /* the shim's module, and the libraries only it uses (their data holds
     * the shim's caches, never the program's pointers) */
    void *own_code[] = {(void *)mt_scan_roots, (void *)unw_init_local, (void *)cs_open};
    for (size_t i = 0; i < sizeof own_code / sizeof *own_code; i++) {
        Dl_info info;
        uintptr_t own_lo, own_hi;
        if (dladdr(own_code[i], &info) &&
            mt_module_range((uintptr_t)info.dli_fbase, &own_lo, &own_hi) == 0)
            exclude(&ex, own_lo, own_hi);
    }
    mt_own_each(exclude_own, &ex);
    exclude(&ex, (uintptr_t)&mt_thread_state, (uintptr_t)(&mt_thread_state + 1));
    /* every recording thread's, stopped or not (one that blocks the stop
     * signal still holds its last block's address in t->pending) */
    mt_rings_each_owner(exclude_thread_state, &ex);
    for (int i = 0; i < scan_go_dead_count; i++)
        exclude(&ex, scan_go_dead[i][0], scan_go_dead[i][1]);
    for (int i = 0; i < nstopped; i++)
        if (scan_stopped[i].own_tls)
            exclude(&ex, scan_stopped[i].own_tls, scan_stopped[i].own_tls + sizeof(struct mt_thread));
    static char buf[1 << 16];
    struct marker_roots w = {m, self, nstopped, &ex};
    mt_maps_each(buf, sizeof buf, root_line, &w);
    if (ex.ranges)
        munmap(ex.ranges, ex_size);
}
