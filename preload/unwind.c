/* The shim's own DWARF unwinder for x86-64: the fast path of --unwind dwarf.
 *
 * libunwind's unw_backtrace looks each frame up in its cache and applies the
 * rule it finds; here the same is done with less around it: a per-thread
 * table maps a code address to the rule of its frame (where the CFA is, where
 * the return address and the caller's rbp were saved), filled on a miss from
 * the module's .eh_frame_hdr and .eh_frame. A walk then costs a lookup and
 * two loads a frame, every load checked against the thread's stack bounds.
 *
 * What the rules here cannot express (CFA expressions other than the
 * stack-realigning *(rbp - 8), signal frames, code without unwind data, a
 * stack pointer outside the thread's known stack) makes the capture return
 * -1, and the caller asks libunwind for the whole stack as before.
 * MEMTRACE_UNWIND_VERIFY=1 compares every walk with libunwind's and reports
 * the differences at exit (tests use it as the oracle).
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

#include "shim.h"

/* A frame's rule, for the code address that keys it. */
enum {
    RULE_EMPTY = 0,
    RULE_OK = 1,
    RULE_END = 2,      /* outermost frame: return address undefined */
    RULE_FALLBACK = 3, /* not expressible here: libunwind walks */
};
enum { CFA_RSP = 0, CFA_RBP = 1, CFA_DEREF_RBP = 2 /* *(rbp + off) */ };

struct rule {
    uint64_t ip;
    int32_t cfa_off;
    int16_t rbp_off; /* caller's rbp saved at CFA + rbp_off; 0: not saved */
    int8_t ra_off8;  /* return address at CFA + 8 * ra_off8 */
    uint8_t kind : 2, cfa_mode : 2;
};

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

/* ---- .eh_frame ------------------------------------------------------------ */

#define DW_EH_PE_omit 0xff
#define DW_EH_PE_pcrel 0x10
#define DW_EH_PE_datarel 0x30

struct reader {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t rd_uleb(struct reader *r)
{
    uint64_t v = 0;
    for (int shift = 0; r->p < r->end; shift += 7) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t rd_sleb(struct reader *r)
{
    int64_t v = 0;
    int shift = 0;
    uint8_t b = 0x80;
    while (r->p < r->end && (b & 0x80)) {
        b = *r->p++;
        if (shift < 64)
            v |= (int64_t)((uint64_t)(b & 0x7f) << shift);
        shift += 7;
    }
    if (b & 0x80)
        r->bad = 1;
    else if (shift < 64 && (b & 0x40))
        v |= -((int64_t)1 << shift);
    return v;
}

static uint64_t rd_fixed(struct reader *r, int n)
{
    if (r->end - r->p < n) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    memcpy(&v, r->p, (size_t)n);
    r->p += n;
    return v;
}

/* A pointer encoded as DW_EH_PE_*: absolute, pc-relative or relative to
 * data_base; 'indirect' and text/func-relative are not used by the code
 * this reads and make the reader bad. */
static uint64_t rd_encoded(struct reader *r, uint8_t enc, uint64_t data_base)
{
    if (enc == DW_EH_PE_omit)
        return 0;
    uint64_t here = (uint64_t)(uintptr_t)r->p, v;
    switch (enc & 0x0f) {
    case 0x00: v = rd_fixed(r, 8); break;
    case 0x01: v = rd_uleb(r); break;
    case 0x02: v = rd_fixed(r, 2); break;
    case 0x03: v = rd_fixed(r, 4); break;
    case 0x04: v = rd_fixed(r, 8); break;
    case 0x09: v = (uint64_t)rd_sleb(r); break;
    case 0x0a: v = (uint64_t)(int64_t)(int16_t)rd_fixed(r, 2); break;
    case 0x0b: v = (uint64_t)(int64_t)(int32_t)rd_fixed(r, 4); break;
    case 0x0c: v = rd_fixed(r, 8); break;
    default: r->bad = 1; return 0;
    }
    switch (enc & 0x70) {
    case 0x00: break;
    case DW_EH_PE_pcrel: v += here; break;
    case DW_EH_PE_datarel: v += data_base; break;
    default: r->bad = 1;
    }
    if (enc & 0x80)
        r->bad = 1;
    return v;
}

/* The state the CFA program builds: only what a walk needs. */
struct cfa_state {
    int cfa_reg; /* DWARF register: 6 rbp, 7 rsp; -1 unsupported */
    int deref;   /* CFA = *(reg + off) */
    int64_t cfa_off;
    int rbp_saved, ra_saved, ra_undefined;
    int64_t rbp_off, ra_off;
};

#define REG_RBP 6
#define REG_RSP 7
#define REG_RA 16

struct cie_info {
    uint64_t code_align;
    int64_t data_align;
    uint64_t ra_reg;
    uint8_t fde_enc;
    int has_z, signal;
    const uint8_t *insns, *insns_end;
};

static int parse_cie(const uint8_t *cie, struct cie_info *ci)
{
    uint32_t len32;
    memcpy(&len32, cie, 4);
    if (len32 == 0 || len32 == 0xffffffffu)
        return -1;
    struct reader r = {cie + 4, cie + 4 + len32, 0};
    if (rd_fixed(&r, 4) != 0) /* CIE id */
        return -1;
    uint8_t version = (uint8_t)rd_fixed(&r, 1);
    const char *aug = (const char *)r.p;
    size_t auglen = strnlen(aug, (size_t)(r.end - r.p));
    r.p += auglen + 1;
    if (r.p > r.end || (version != 1 && version != 3 && version != 4))
        return -1;
    if (version == 4)
        r.p += 2; /* address size, segment size */
    ci->code_align = rd_uleb(&r);
    ci->data_align = rd_sleb(&r);
    ci->ra_reg = version == 1 ? rd_fixed(&r, 1) : rd_uleb(&r);
    ci->fde_enc = 0;
    ci->has_z = ci->signal = 0;
    const uint8_t *aug_end = NULL;
    for (size_t i = 0; i < auglen && !r.bad; i++) {
        switch (aug[i]) {
        case 'z': {
            uint64_t n = rd_uleb(&r);
            ci->has_z = 1;
            aug_end = r.p + n;
            break;
        }
        case 'R': ci->fde_enc = (uint8_t)rd_fixed(&r, 1); break;
        case 'L': rd_fixed(&r, 1); break;
        case 'P': {
            uint8_t enc = (uint8_t)rd_fixed(&r, 1);
            rd_encoded(&r, enc & 0x7f, 0); /* only skipped */
            break;
        }
        case 'S': ci->signal = 1; break;
        default:
            if (!aug_end)
                return -1; /* unknown augmentation without 'z' to skip it */
            i = auglen;
        }
    }
    if (aug_end)
        r.p = aug_end;
    if (r.bad || r.p > r.end || ci->ra_reg != REG_RA)
        return -1;
    ci->insns = r.p;
    ci->insns_end = r.end;
    return 0;
}

#define MAX_REMEMBER 8

/* Runs a CFA program up to (not past) code address target. Returns -1 on
 * anything unsupported. */
static int run_cfa(const struct cie_info *ci, const uint8_t *p, const uint8_t *end, uint64_t loc,
                   uint64_t target, struct cfa_state *st, const struct cfa_state *initial)
{
    struct cfa_state stack[MAX_REMEMBER];
    int depth = 0;
    struct reader r = {p, end, 0};
    while (r.p < r.end && !r.bad) {
        uint8_t op = *r.p++;
        uint64_t reg, delta = 0;
        int64_t off;
        switch (op >> 6) {
        case 1: delta = op & 0x3f; goto advance;
        case 2:
            reg = op & 0x3f;
            off = (int64_t)rd_uleb(&r) * ci->data_align;
            goto set_offset;
        case 3:
            reg = op & 0x3f;
            goto restore;
        }
        switch (op) {
        case 0x00: break; /* nop */
        case 0x01: {      /* set_loc */
            uint64_t to = rd_encoded(&r, ci->fde_enc, 0);
            if (to > target)
                return 0;
            loc = to;
            break;
        }
        case 0x02: delta = rd_fixed(&r, 1); goto advance;
        case 0x03: delta = rd_fixed(&r, 2); goto advance;
        case 0x04: delta = rd_fixed(&r, 4); goto advance;
        case 0x05: reg = rd_uleb(&r); off = (int64_t)rd_uleb(&r) * ci->data_align; goto set_offset;
        case 0x06: reg = rd_uleb(&r); goto restore;
        case 0x07: /* undefined */
            reg = rd_uleb(&r);
            if (reg == REG_RA)
                st->ra_undefined = 1;
            else if (reg == REG_RBP)
                st->rbp_saved = 0;
            break;
        case 0x08: /* same_value */
            reg = rd_uleb(&r);
            if (reg == REG_RBP)
                st->rbp_saved = 0;
            else if (reg == REG_RA)
                return -1;
            break;
        case 0x09: /* register */
            reg = rd_uleb(&r);
            rd_uleb(&r);
            if (reg == REG_RBP || reg == REG_RA)
                return -1;
            break;
        case 0x0a:
            if (depth == MAX_REMEMBER)
                return -1;
            stack[depth++] = *st;
            break;
        case 0x0b: {
            if (depth == 0)
                return -1;
            /* the CFA rule is part of the restored state, as in the DWARF spec */
            *st = stack[--depth];
            break;
        }
        case 0x0c: /* def_cfa */
            st->cfa_reg = (int)rd_uleb(&r);
            st->cfa_off = (int64_t)rd_uleb(&r);
            st->deref = 0;
            break;
        case 0x0d: st->cfa_reg = (int)rd_uleb(&r); st->deref = 0; break;
        case 0x0e: st->cfa_off = (int64_t)rd_uleb(&r); break;
        case 0x0f: { /* def_cfa_expression: only DW_OP_breg6 OFF; DW_OP_deref */
            uint64_t n = rd_uleb(&r);
            const uint8_t *e = r.p;
            if ((uint64_t)(r.end - r.p) < n)
                return -1;
            r.p += n;
            struct reader er = {e, e + n, 0};
            if (n < 3 || *er.p++ != 0x76) /* DW_OP_breg6 */
                return -1;
            int64_t eoff = rd_sleb(&er);
            if (er.bad || er.p + 1 != er.end || *er.p != 0x06) /* DW_OP_deref */
                return -1;
            st->cfa_reg = REG_RBP;
            st->cfa_off = eoff;
            st->deref = 1;
            break;
        }
        case 0x10: /* expression */
        case 0x16: /* val_expression */
            reg = rd_uleb(&r);
            r.p += rd_uleb(&r);
            if (reg == REG_RBP || reg == REG_RA)
                return -1;
            break;
        case 0x11:
            reg = rd_uleb(&r);
            off = rd_sleb(&r) * ci->data_align;
            goto set_offset;
        case 0x12:
            st->cfa_reg = (int)rd_uleb(&r);
            st->cfa_off = rd_sleb(&r) * ci->data_align;
            st->deref = 0;
            break;
        case 0x13: st->cfa_off = rd_sleb(&r) * ci->data_align; break;
        case 0x14: /* val_offset */
        case 0x15:
            reg = rd_uleb(&r);
            if (op == 0x14)
                rd_uleb(&r);
            else
                rd_sleb(&r);
            if (reg == REG_RBP || reg == REG_RA)
                return -1;
            break;
        case 0x2e: rd_uleb(&r); break; /* GNU_args_size */
        case 0x2f:                     /* GNU_negative_offset_extended */
            reg = rd_uleb(&r);
            off = -(int64_t)rd_uleb(&r) * ci->data_align;
            goto set_offset;
        default: return -1;
        }
        continue;
    advance:
        loc += delta * ci->code_align;
        if (loc > target)
            return 0;
        continue;
    set_offset:
        if (reg == REG_RBP) {
            st->rbp_saved = 1;
            st->rbp_off = off;
        } else if (reg == REG_RA) {
            st->ra_saved = 1;
            st->ra_off = off;
            st->ra_undefined = 0;
        }
        continue;
    restore:
        if (!initial)
            return -1; /* restore inside the CIE's own program */
        if (reg == REG_RBP) {
            st->rbp_saved = initial->rbp_saved;
            st->rbp_off = initial->rbp_off;
        } else if (reg == REG_RA) {
            st->ra_saved = initial->ra_saved;
            st->ra_off = initial->ra_off;
            st->ra_undefined = initial->ra_undefined;
        }
    }
    return r.bad ? -1 : 0;
}

struct fde_search {
    uint64_t pc;
    const uint8_t *hdr; /* .eh_frame_hdr of the module that holds pc */
};

static int find_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct fde_search *s = arg;
    const uint8_t *hdr = NULL;
    int holds = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uint64_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && s->pc >= start && s->pc < start + ph->p_memsz)
            holds = 1;
        else if (ph->p_type == PT_GNU_EH_FRAME)
            hdr = (const uint8_t *)(uintptr_t)start;
    }
    if (!holds)
        return 0;
    s->hdr = hdr;
    return 1;
}

/* The rule of the frame executing at pc (for a caller's frame, pc is the
 * return address minus one). */
static void compute_rule(uint64_t pc, struct rule *out)
{
    out->kind = RULE_FALLBACK;
    struct fde_search s = {pc, NULL};
    if (dl_iterate_phdr(find_module, &s) == 0 || !s.hdr)
        return;
    const uint8_t *hdr = s.hdr;
    /* version 1; the binary search table as datarel sdata4 pairs */
    if (hdr[0] != 1 || hdr[2] != 0x03 || hdr[3] != 0x3b)
        return;
    struct reader r = {hdr + 4, hdr + 16, 0};
    rd_encoded(&r, hdr[1], 0); /* .eh_frame itself */
    uint32_t count = (uint32_t)rd_fixed(&r, 4);
    if (r.bad || count == 0)
        return;
    const int32_t *table = (const int32_t *)r.p;
    int64_t rel = (int64_t)(pc - (uint64_t)(uintptr_t)hdr);
    uint32_t lo = 0, hi = count;
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((int64_t)table[2 * mid] <= rel)
            lo = mid;
        else
            hi = mid;
    }
    if ((int64_t)table[2 * lo] > rel)
        return;
    const uint8_t *fde = hdr + table[2 * lo + 1];
    uint32_t len32;
    memcpy(&len32, fde, 4);
    if (len32 == 0 || len32 == 0xffffffffu)
        return;
    int32_t cie_ptr;
    memcpy(&cie_ptr, fde + 4, 4);
    struct cie_info ci;
    if (parse_cie(fde + 4 - cie_ptr, &ci) != 0 || ci.signal)
        return;
    struct reader fr = {fde + 8, fde + 4 + len32, 0};
    uint64_t begin = rd_encoded(&fr, ci.fde_enc, 0);
    uint64_t range = rd_encoded(&fr, ci.fde_enc & 0x0f, 0);
    if (ci.has_z)
        fr.p += rd_uleb(&fr);
    if (fr.bad || fr.p > fr.end || pc < begin || pc >= begin + range)
        return;
    struct cfa_state initial = {.cfa_reg = -1}, st;
    if (run_cfa(&ci, ci.insns, ci.insns_end, begin, UINT64_MAX, &initial, NULL) != 0)
        return;
    st = initial;
    if (run_cfa(&ci, fr.p, fr.end, begin, pc, &st, &initial) != 0)
        return;
    if (st.ra_undefined) {
        out->kind = RULE_END;
        return;
    }
    if ((st.cfa_reg != REG_RSP && st.cfa_reg != REG_RBP) || (st.deref && st.cfa_reg != REG_RBP) ||
        !st.ra_saved || st.ra_off % 8 || st.ra_off < -1024 || st.ra_off > 1016 ||
        st.cfa_off < INT32_MIN || st.cfa_off > INT32_MAX ||
        (st.rbp_saved && (st.rbp_off == 0 || st.rbp_off < INT16_MIN || st.rbp_off > INT16_MAX)))
        return;
    out->cfa_mode = st.deref ? CFA_DEREF_RBP : st.cfa_reg == REG_RBP ? CFA_RBP : CFA_RSP;
    out->cfa_off = (int32_t)st.cfa_off;
    out->rbp_off = st.rbp_saved ? (int16_t)st.rbp_off : 0;
    out->ra_off8 = (int8_t)(st.ra_off / 8);
    out->kind = RULE_OK;
}

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
    uint8_t uses_bp;          /* the CFA rule reads rbp */
    uint8_t bp_matters;       /* the walk from here on depends on bp */
};

/* Copies the new walk's frames (innermost first) into last[at..] (outermost
 * first) above the frame last[at - 1]; rbp at a frame's entry matters if its
 * rule reads it, or if it passes it on unsaved to a caller for which it
 * matters. */
static void remember(struct step *last, int at, const struct step *fresh, int n)
{
    int outer = at > 0 ? last[at - 1].bp_matters : 0;
    for (int k = n - 1; k >= 0; k--) {
        struct step *d = &last[at + n - 1 - k];
        *d = fresh[k];
        d->bp_matters = (uint8_t)(d->uses_bp || (!d->bp_at && outer));
        outer = d->bp_matters;
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
        munmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
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
        uint32_t j = (uint32_t)((c->slots[i].ip * 0x9e3779b97f4a7c15ull) >> 32) & mask;
        while (slots[j].kind != RULE_EMPTY)
            j = (j + 1) & mask;
        slots[j] = c->slots[i];
    }
    munmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
    c->slots = slots;
    c->mask = mask;
}

static inline const struct rule *lookup(struct mt_unwind_cache *c, uint64_t pc)
{
    uint32_t i = (uint32_t)((pc * 0x9e3779b97f4a7c15ull) >> 32) & c->mask;
    for (;; i = (i + 1) & c->mask) {
        struct rule *s = &c->slots[i];
        if (MT_LIKELY(s->ip == pc && s->kind != RULE_EMPTY))
            return s;
        if (s->kind == RULE_EMPTY)
            break;
    }
    struct rule fresh = {.ip = pc};
    compute_rule(pc, &fresh);
    if ((c->count + 1) * 4 > (c->mask + 1) * 3) {
        cache_grow(c);
        i = (uint32_t)((pc * 0x9e3779b97f4a7c15ull) >> 32) & c->mask;
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
        munmap(c->slots, ((size_t)c->mask + 1) * sizeof(struct rule));
    if (c->memory)
        munmap(c->memory, sizeof *c->memory);
    munmap(c, sizeof *c);
    t->unwind = NULL;
}

/* ---- the walk ------------------------------------------------------------ */

static inline int on_stack(uint64_t a, uint64_t lo, uint64_t hi) { return a >= lo && a <= hi - 8; }

static struct walk_memory *walk_memory(struct mt_unwind_cache *c)
{
    if (MT_UNLIKELY(!c->memory))
        c->memory = mt_map(sizeof *c->memory);
    return c->memory;
}

uint64_t mt_unwind_stat_reused, mt_unwind_stat_frames;

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
            if (rl->kind != RULE_END) {
                m->n = 0;
                return -1;
            }
            break;
        }
        uint64_t cfa;
        s->uses_bp = rl->cfa_mode != CFA_RSP;
        if (rl->cfa_mode == CFA_RSP) {
            cfa = sp + (uint64_t)(int64_t)rl->cfa_off;
        } else if (rl->cfa_mode == CFA_RBP) {
            cfa = bp + (uint64_t)(int64_t)rl->cfa_off;
        } else {
            uint64_t at = bp + (uint64_t)(int64_t)rl->cfa_off;
            if (!on_stack(at, lo, hi))
                return m->n = 0, -1;
            cfa = *(const uint64_t *)at;
            s->deref = ~cfa;
            s->deref_at = at;
        }
        uint64_t ra_at = cfa + 8 * (int64_t)rl->ra_off8;
        /* the caller's frame lies above ours */
        if (cfa <= sp || !on_stack(ra_at, lo, hi))
            return m->n = 0, -1;
        if (rl->rbp_off) {
            uint64_t at = cfa + (uint64_t)(int64_t)rl->rbp_off;
            if (!on_stack(at, lo, hi))
                return m->n = 0, -1;
            bp = *(const uint64_t *)at;
            s->saved_bp = ~bp;
            s->bp_at = at;
        }
        ip = s->ra = *(const uint64_t *)ra_at;
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
}
