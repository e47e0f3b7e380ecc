/* The rules of the shim's DWARF unwinder (unwind.c), read from .eh_frame.
 *
 * For a code address: the module that holds it (dl_iterate_phdr), its
 * .eh_frame_hdr binary search table, the FDE found there and its CIE, and
 * the CIE's and FDE's CFA programs run up to that address. Of the state the
 * programs build only what a walk needs is kept: where the CFA is (rsp or
 * rbp plus an offset, or the stack-realigning *(rbp + off)), where the
 * return address and the caller's rbp were saved. Anything else gives
 * RULE_FALLBACK and the stack is left to libunwind.
 *
 * Runs inside the traced process on a rule-table miss: it only reads the
 * modules' mapped unwind tables, within the lengths and counts they give,
 * and never calls the traced malloc.
 */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "eh_frame.h"

/* ---- pointer encodings --------------------------------------------------- */

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

/* ---- CIEs and CFA programs ----------------------------------------------- */

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

/* ---- the FDE that holds pc, and its rule --------------------------------- */

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

/* The rule of the frame executing at pc: .eh_frame_hdr's table gives the
 * FDE, whose CIE and CFA program give the rule (see eh_frame.h). */
void mt_eh_frame_rule(uint64_t pc, struct rule *out)
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
