/* The shim's own DWARF unwinder for x86-64: the fast path of --unwind dwarf.
 *
 * libunwind's unw_backtrace looks each frame up in its cache and applies the
 * rule it finds; here the same is done with less around it: a per-thread
 * table maps a code address to the rule of its frame (where the CFA is, where
 * the return address and the caller's rbp were saved), filled on a miss from
 * the module's .eh_frame_hdr and .eh_frame (eh_frame.c). A walk then costs a
 * lookup and two loads a frame, every load checked against the thread's
 * stack bounds. The tables and the last walk live in mmap'd memory, never
 * in the traced malloc's.
 *
 * What the rules here cannot express (CFA expressions other than the
 * stack-realigning *(rbp - 8), signal frames, code without unwind data, a
 * stack pointer outside the thread's known stack) makes the capture return
 * -1, and the caller asks libunwind for the whole stack as before.
 * MEMTRACE_UNWIND_VERIFY=1 compares every walk with libunwind's and reports
 * the differences at exit (tests use it as the oracle).
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/mman.h>

#include "eh_frame.h"
#include "shim.h"

#define MT_WALK_MAX 512
struct walk_memory;

struct mt_unwind_cache {
    struct rule *slots;
    uint32_t mask, count;
    uint32_t generation;
    struct walk_memory *memory; /* the last walk */
};

static uint32_t code_generation = 1;

void mt_unwind_code_changed(void) { __atomic_fetch_add(&code_generation, 1, __ATOMIC_RELAXED); }

/* One step of a walk: the frame's registers at entry, and every stack word
 * the step read (address and value) to find its caller. The walk is a
 * function of the registers and of these words only, so a frame of the last
 * walk with the same registers whose words (and those of all frames above
 * it) still hold the same values unwinds to the same callers: those are
 * taken from the last walk instead of being unwound again. */
struct step {
    uint64_t ip, sp, bp;
    uint64_t ra_at, ra;       /* ra_at 0: the outermost frame (RULE_END) */
    uint64_t bp_at, saved_bp; /* bp_at 0: rbp not saved by this frame */
    /* bp, saved_bp and deref are kept complemented (~value): rbp may hold a
     * heap pointer, and the leak scan must not find it in our memory */
    uint64_t deref_at, deref; /* deref_at 0: CFA not read from the stack */
    uint64_t chain;           /* mt_stack_fold of the frames from the
                                 outermost to this one (in last[] only) */
    uint8_t uses_bp;          /* the CFA rule reads rbp */
    uint8_t bp_matters;       /* the walk from here on depends on bp */
};

/* Copies the new walk's frames (innermost first) into last[at..] (outermost
 * first) above the frame last[at - 1]; rbp at a frame's entry matters if its
 * rule reads it, or if it passes it on unsaved to a caller for which it
 * matters. Extends the stack hash's fold over them. */
static void remember(struct step *last, int at, const struct step *fresh, int n)
{
    int outer = at > 0 ? last[at - 1].bp_matters : 0;
    uint64_t chain = at > 0 ? last[at - 1].chain : MT_STACK_HASH_SEED;
    for (int k = n - 1; k >= 0; k--) {
        struct step *d = &last[at + n - 1 - k];
        *d = fresh[k];
        d->bp_matters = (uint8_t)(d->uses_bp || (!d->bp_at && outer));
        outer = d->bp_matters;
        d->chain = chain = mt_stack_fold(chain, d->ip);
    }
}

static int step_still_true(const struct step *s)
{
    return (!s->ra_at || *(const uint64_t *)s->ra_at == s->ra) &&
           (!s->bp_at || *(const uint64_t *)s->bp_at == ~s->saved_bp) &&
           (!s->deref_at || *(const uint64_t *)s->deref_at == ~s->deref);
}

/* The last whole walk, outermost frame first, so that a new walk that
 * shares its outer part rewrites only the inner frames. */
struct walk_memory {
    uint32_t n;
    uint64_t lo, hi; /* the stack bounds it was made with */
    struct step last[MT_WALK_MAX];
    struct step scratch[MT_WALK_MAX]; /* the new walk's frames, innermost first */
};

/* ---- the per-thread rule table ----------------------------------------- */

#define INITIAL_SLOTS 1024

/* The slot where the search for pc's rule starts (Fibonacci hashing). */
static inline uint32_t slot_of(uint64_t pc, uint32_t mask)
{
    return (uint32_t)((pc * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

static struct mt_unwind_cache *cache_get(struct mt_thread *t)
{
    struct mt_unwind_cache *c = t->unwind;
    uint32_t gen = __atomic_load_n(&code_generation, __ATOMIC_RELAXED);
    if (MT_LIKELY(c && c->generation == gen))
        return c;
    if (!c) {
        c = t->unwind = mt_map(sizeof *c);
        if (!c)
            return NULL;
    }
    if (c->slots)
        mt_unmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
    c->slots = mt_map(INITIAL_SLOTS * sizeof(struct rule));
    c->mask = c->slots ? INITIAL_SLOTS - 1 : 0;
    c->count = 0;
    c->generation = gen;
    if (c->memory)
        c->memory->n = 0; /* its frames may be in unloaded code */
    return c->slots ? c : NULL;
}

static void cache_grow(struct mt_unwind_cache *c)
{
    uint32_t mask = c->mask * 2 + 1;
    struct rule *slots = mt_map(((size_t)mask + 1) * sizeof *slots);
    if (!slots)
        return;
    for (uint32_t i = 0; i <= c->mask; i++) {
        if (c->slots[i].kind == RULE_EMPTY)
            continue;
        uint32_t j = slot_of(c->slots[i].ip, mask);
        while (slots[j].kind != RULE_EMPTY)
            j = (j + 1) & mask;
        slots[j] = c->slots[i];
    }
    mt_unmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
    c->slots = slots;
    c->mask = mask;
}

static inline const struct rule *lookup(struct mt_unwind_cache *c, uint64_t pc)
{
    uint32_t i = slot_of(pc, c->mask);
    for (;; i = (i + 1) & c->mask) {
        struct rule *s = &c->slots[i];
        if (MT_LIKELY(s->ip == pc && s->kind != RULE_EMPTY))
            return s;
        if (s->kind == RULE_EMPTY)
            break;
    }
    struct rule fresh = {.ip = pc};
    mt_eh_frame_rule(pc, &fresh);
    if ((c->count + 1) * 4 > (c->mask + 1) * 3) {
        cache_grow(c);
        i = slot_of(pc, c->mask);
        while (c->slots[i].kind != RULE_EMPTY)
            i = (i + 1) & c->mask;
    }
    if ((c->count + 1) * 4 > (c->mask + 1) * 3) { /* could not grow: keep it uncached */
        static __thread struct rule spare;
        spare = fresh;
        return &spare;
    }
    c->slots[i] = fresh;
    c->count++;
    return &c->slots[i];
}

void mt_unwind_forget(struct mt_thread *t)
{
    struct mt_unwind_cache *c = t->unwind;
    if (!c)
        return;
    if (c->slots)
        mt_unmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
    if (c->memory)
        mt_unmap(c->memory, sizeof *c->memory);
    mt_unmap(c, sizeof *c);
    t->unwind = NULL;
}

/* ---- the walk ------------------------------------------------------------ */

/* Reads the stack word at address at into *v if all of it lies in the
 * thread's stack [lo, hi): 0, or -1 (and *v untouched) if not. */
static inline int read_stack_word(uint64_t at, uint64_t lo, uint64_t hi, uint64_t *v)
{
    if (at < lo || at > hi - 8)
        return -1;
    *v = *(const uint64_t *)at;
    return 0;
}

static struct walk_memory *walk_memory(struct mt_unwind_cache *c)
{
    if (MT_UNLIKELY(!c->memory))
        c->memory = mt_map(sizeof *c->memory);
    return c->memory;
}

uint64_t mt_unwind_stat_reused, mt_unwind_stat_frames;

uint64_t mt_unwind_chain(struct mt_thread *t, int n, int skip)
{
    const struct walk_memory *m = t->unwind ? t->unwind->memory : NULL;
    if (!m || (int)m->n != n || skip < 0 || skip >= n)
        return 0;
    return m->last[n - 1 - skip].chain;
}

__attribute__((noinline)) int mt_unwind_fast(struct mt_thread *t, void **buf, int max)
{
    uint64_t ip, sp, bp;
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
                     : "=r"(ip), "=r"(sp), "=r"(bp));
    if (MT_UNLIKELY(sp < t->stack_lo || sp >= t->stack_hi)) {
        /* First walk, or the main stack grew; a thread that keeps changing
         * stacks (coroutines, sigaltstack) is left to libunwind. */
        if (t->stack_renotes >= 64)
            return -1;
        t->stack_renotes++;
        mt_note_stack_bounds(t);
        if (sp < t->stack_lo || sp >= t->stack_hi)
            return -1;
    }
    struct mt_unwind_cache *c = cache_get(t);
    struct walk_memory *m = c ? walk_memory(c) : NULL;
    if (!m)
        return -1;
    uint64_t lo = t->stack_lo, hi = t->stack_hi;
    if (m->lo != lo || m->hi != hi) {
        m->n = 0;
        m->lo = lo;
        m->hi = hi;
    }
    /* last[cursor] is the outermost frame of the last walk not yet passed */
    int cursor = (int)m->n - 1;
    int n = 0;
    uint64_t pc = ip;
    for (;;) {
        if (n == MT_WALK_MAX) { /* deeper than remembered: this walk only */
            m->n = 0;
            break;
        }
        while (cursor >= 0 && m->last[cursor].sp < sp)
            cursor--;
        if (cursor >= 0 && m->last[cursor].sp == sp && m->last[cursor].ip == ip &&
            (!m->last[cursor].bp_matters || m->last[cursor].bp == ~bp)) {
            int q = cursor;
            while (q >= 0 && step_still_true(&m->last[q]))
                q--;
            if (q < 0) { /* the rest is the last walk's */
                if (MT_UNLIKELY(mt_unwind_verify)) {
                    __atomic_fetch_add(&mt_unwind_stat_reused, 1, __ATOMIC_RELAXED);
                    __atomic_fetch_add(&mt_unwind_stat_frames, (uint64_t)n, __ATOMIC_RELAXED);
                }
                remember(m->last, cursor + 1, m->scratch, n);
                m->n = (uint32_t)(cursor + 1 + n);
                for (int k = cursor; k >= 0 && n < max; k--)
                    buf[n++] = (void *)m->last[k].ip;
                return n;
            }
            cursor = -1; /* changed above us: walk on */
        }
        if (n < max)
            buf[n] = (void *)ip;
        struct step *s = &m->scratch[n++];
        *s = (struct step){.ip = ip, .sp = sp, .bp = ~bp};
        const struct rule *rl = lookup(c, pc);
        if (rl->kind != RULE_OK) {
            if (rl->kind != RULE_END)
                goto fail;
            break;
        }
        uint64_t cfa, ra;
        s->uses_bp = rl->cfa_mode != CFA_RSP;
        if (rl->cfa_mode == CFA_RSP) {
            cfa = sp + (uint64_t)(int64_t)rl->cfa_off;
        } else if (rl->cfa_mode == CFA_RBP) {
            cfa = bp + (uint64_t)(int64_t)rl->cfa_off;
        } else {
            uint64_t at = bp + (uint64_t)(int64_t)rl->cfa_off;
            if (read_stack_word(at, lo, hi, &cfa) != 0)
                goto fail;
            s->deref = ~cfa;
            s->deref_at = at;
        }
        uint64_t ra_at = cfa + 8 * (int64_t)rl->ra_off8;
        /* the caller's frame lies above ours */
        if (cfa <= sp || read_stack_word(ra_at, lo, hi, &ra) != 0)
            goto fail;
        if (rl->rbp_off) {
            uint64_t at = cfa + (uint64_t)(int64_t)rl->rbp_off;
            if (read_stack_word(at, lo, hi, &bp) != 0)
                goto fail;
            s->saved_bp = ~bp;
            s->bp_at = at;
        }
        ip = s->ra = ra;
        s->ra_at = ra_at;
        sp = cfa;
        if (ip == 0)
            break; /* the outermost frame */
        pc = ip - 1;
    }
    if (MT_UNLIKELY(mt_unwind_verify))
        __atomic_fetch_add(&mt_unwind_stat_frames, (uint64_t)n, __ATOMIC_RELAXED);
    if (n < MT_WALK_MAX || m->n) {
        remember(m->last, 0, m->scratch, n);
        m->n = (uint32_t)n;
    }
    return n < max ? n : max;
fail: /* libunwind walks this stack; the last walk is no longer remembered */
    m->n = 0;
    return -1;
}
