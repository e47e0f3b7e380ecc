/* Inline patching of one function (x86-64): its first instructions are
 * decoded with Capstone, copied into a trampoline, and replaced by a jump
 * to the hook's wrapper; the trampoline ends with a jump back to the first
 * instruction not copied, so calling it runs the function as it was.
 *
 * The patch is a 5-byte `jmp rel32` to a relay in a page mapped within
 * +-2 GiB of the function (the relay then jumps anywhere: `jmp [rip]` and
 * the wrapper's address); when no page can be mapped that near, a 14-byte
 * `jmp [rip]` and its target. Copied instructions are relocated: a
 * RIP-relative operand gets a displacement for its new place, relative
 * jumps and calls become absolute ones. Refused, with the reason, and the
 * function left untouched: a function shorter than the patch, a branch
 * that lands inside the bytes the patch overwrites (from the copied
 * instructions or from the rest of the function, which is decoded to its
 * end when its size is known), loop/jrcxz, a RIP-relative operand the
 * trampoline cannot reach, an indirect function (ifunc).
 *
 * Runs inside the traced process, before other threads do (init.c):
 * Capstone's allocations come from an mmap'd arena (CS_OPT_MEM), never
 * from the traced malloc.
 */
#define _GNU_SOURCE
#include <capstone/capstone.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hooks.h"

#define PAGE 4096u
#define NEAR_LIMIT 0x7ff00000ll /* a little less than 2 GiB */
#define MAX_COPY 64             /* bytes of prologue decoded at most */
#define MAX_BODY (1u << 20)     /* functions longer than this are not swept */

/* ---- Capstone's memory ------------------------------------------------- */

static unsigned char *arena;
static size_t arena_used, arena_size;

static void *arena_malloc(size_t n)
{
    if (!arena) {
        arena_size = 4u << 20;
        void *p = mmap(NULL, arena_size, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        arena = p;
        mt_own_add(arena, arena_size); /* never a root of the scan */
    }
    size_t start = (arena_used + 16 + 15) & ~(size_t)15;
    if (start + n > arena_size || start + n < start)
        return NULL;
    memcpy(arena + start - sizeof(size_t), &n, sizeof n);
    arena_used = start + n;
    return arena + start;
}

static void *arena_calloc(size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total))
        return NULL;
    void *p = arena_malloc(total);
    if (p)
        memset(p, 0, total);
    return p;
}

static void *arena_realloc(void *old, size_t n)
{
    void *p = arena_malloc(n);
    if (p && old) {
        size_t had;
        memcpy(&had, (unsigned char *)old - sizeof had, sizeof had);
        memcpy(p, old, had < n ? had : n);
    }
    return p;
}

static void arena_free(void *p) { (void)p; }

static csh handle;
static int capstone_state; /* 0 not opened, 1 open, -1 failed */
static cs_insn *insn;

static int capstone_open(void)
{
    if (capstone_state)
        return capstone_state;
    cs_opt_mem mem = {arena_malloc, arena_calloc, arena_realloc, arena_free, vsnprintf};
    capstone_state = -1;
    if (cs_option(0, CS_OPT_MEM, (size_t)&mem) == CS_ERR_OK &&
        cs_open(CS_ARCH_X86, CS_MODE_64, &handle) == CS_ERR_OK) {
        cs_option(handle, CS_OPT_DETAIL, CS_OPT_ON);
        insn = cs_malloc(handle);
        capstone_state = insn ? 1 : -1;
    }
    return capstone_state;
}

void mt_hook_patch_done(void)
{
    if (capstone_state == 1) {
        cs_free(insn, 1);
        cs_close(&handle);
    }
    capstone_state = 0;
    /* Back to Capstone's defaults, in case the program uses it too. */
    cs_opt_mem mem = {malloc, calloc, realloc, free, vsnprintf};
    cs_option(0, CS_OPT_MEM, (size_t)&mem);
    if (arena)
        mt_unmap(arena, arena_size);
    arena = NULL;
    arena_used = 0;
}

/* ---- a page near the function ------------------------------------------ */

struct gap_search {
    uintptr_t target, best;
    uintptr_t prev_end;
    int prev_is_heap;
};

static long long distance(uintptr_t a, uintptr_t b) { return a > b ? (long long)(a - b) : (long long)(b - a); }

/* Each gap between two mappings offers its highest page (below the target)
 * or its lowest (above), never the page right after the heap (brk grows
 * there) or right under the stack. */
static int gap_line(const char *line, void *arg)
{
    struct gap_search *g = arg;
    const char *c = line;
    uintptr_t lo = mt_parse_hex(&c);
    uintptr_t hi = *c == '-' ? (c++, mt_parse_hex(&c)) : lo;
    int is_stack = strstr(line, "[stack]") != NULL;
    if (lo > g->prev_end + PAGE) {
        uintptr_t candidate = 0;
        if (lo <= g->target && !is_stack)
            candidate = lo - PAGE;
        else if (g->prev_end > g->target && !g->prev_is_heap)
            candidate = g->prev_end;
        if (candidate && distance(candidate, g->target) < NEAR_LIMIT - (long long)PAGE &&
            (!g->best || distance(candidate, g->target) < distance(g->best, g->target)))
            g->best = candidate;
    }
    g->prev_end = hi > g->prev_end ? hi : g->prev_end;
    g->prev_is_heap = strstr(line, "[heap]") != NULL;
    return 0;
}

/* A writable page within reach of a rel32 from target, or NULL. */
static void *near_page(uintptr_t target)
{
    char buf[4096];
    for (int attempt = 0; attempt < 4; attempt++) {
        struct gap_search g = {target, 0, 1u << 16, 0};
        mt_maps_each(buf, sizeof buf, gap_line, &g);
        if (!g.best)
            return NULL;
        void *p = mmap((void *)g.best, PAGE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == (void *)g.best)
            return p;
        if (p != MAP_FAILED)
            munmap(p, PAGE); /* an old kernel took it as a hint */
    }
    return NULL;
}

/* ---- relocation ----------------------------------------------------------- */

static char reason[160];

static const char *refuse(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return reason;
}

static unsigned char *emit_abs_jump(unsigned char *out, uint64_t to)
{
    static const unsigned char jmp_rip[6] = {0xff, 0x25, 0, 0, 0, 0};
    memcpy(out, jmp_rip, 6);
    memcpy(out + 6, &to, 8);
    return out + 14;
}

/* The target of a relative branch, or 0 if insn is none. */
static uint64_t branch_target(const cs_insn *i)
{
    if (!cs_insn_group(handle, i, CS_GRP_BRANCH_RELATIVE))
        return 0;
    const cs_x86 *x = &i->detail->x86;
    return x->op_count == 1 && x->operands[0].type == X86_OP_IMM ? (uint64_t)x->operands[0].imm : 0;
}

/* Copies one instruction from its place (i->address) to out, which will
 * execute at run_at; returns the end of what was written, or NULL. */
static unsigned char *relocate(const cs_insn *i, unsigned char *out, uintptr_t run_at,
                               uintptr_t entry, size_t copied)
{
    const cs_x86 *x = &i->detail->x86;
    uint64_t to = branch_target(i);
    if (to) {
        if (to > entry && to < entry + copied)
            return refuse("the branch at +%#lx lands inside the first %zu bytes, which the patch "
                          "overwrites", (unsigned long)(i->address - entry), copied), NULL;
        unsigned char op = x->opcode[0];
        if (op >= 0xe0 && op <= 0xe3)
            return refuse("its first instructions hold a loop/jrcxz, which cannot be moved"), NULL;
        if (op == 0xe8) { /* call [rip+2]; jmp +8; .quad to */
            static const unsigned char call_rip[8] = {0xff, 0x15, 2, 0, 0, 0, 0xeb, 8};
            memcpy(out, call_rip, 8);
            memcpy(out + 8, &to, 8);
            return out + 16;
        }
        if (op == 0xe9 || op == 0xeb)
            return emit_abs_jump(out, to);
        int cc = op == 0x0f ? x->opcode[1] & 0x0f : op & 0x0f;
        if (!((op >= 0x70 && op <= 0x7f) || (op == 0x0f && (x->opcode[1] & 0xf0) == 0x80)))
            return refuse("cannot move its branch '%s %s'", i->mnemonic, i->op_str), NULL;
        out[0] = (unsigned char)(0x70 | (cc ^ 1)); /* the opposite condition skips the jump */
        out[1] = 14;
        return emit_abs_jump(out + 2, to);
    }
    memcpy(out, i->bytes, i->size);
    for (int k = 0; k < x->op_count; k++) {
        const cs_x86_op *op = &x->operands[k];
        if (op->type != X86_OP_MEM || op->mem.base != X86_REG_RIP)
            continue;
        size_t at = x->encoding.disp_offset ? x->encoding.disp_offset
                                            : (size_t)i->size - x->encoding.imm_size - 4;
        int32_t old;
        memcpy(&old, i->bytes + at, 4);
        if (at + 4 > i->size || old != (int32_t)op->mem.disp)
            return refuse("cannot find the displacement of '%s %s'", i->mnemonic, i->op_str), NULL;
        int64_t absolute = (int64_t)(i->address + i->size) + op->mem.disp;
        int64_t disp = absolute - (int64_t)(run_at + i->size);
        if (disp != (int32_t)disp)
            return refuse("the RIP-relative operand of '%s %s' is out of reach of the trampoline",
                          i->mnemonic, i->op_str), NULL;
        int32_t d = (int32_t)disp;
        memcpy(out + at, &d, 4);
    }
    return out + i->size;
}

/* Sweeps the rest of the function for a branch back into [entry+1,
 * entry+copied): after the patch those bytes are no longer instructions. */
static const char *check_body(const struct mt_symbol *sym, size_t copied)
{
    if (sym->size <= copied || sym->size > MAX_BODY)
        return NULL;
    const uint8_t *code = (const uint8_t *)sym->address + copied;
    size_t left = sym->size - copied;
    uint64_t address = sym->address + copied;
    while (left > 0) {
        if (!cs_disasm_iter(handle, &code, &left, &address, insn)) {
            code++, left--, address++; /* data or padding: step over a byte */
            continue;
        }
        uint64_t to = branch_target(insn);
        if (to > sym->address && to < sym->address + copied)
            return refuse("the jump at +%#lx goes back into the first %zu bytes, which the patch "
                          "overwrites", (unsigned long)(insn->address - sym->address), copied);
    }
    return NULL;
}

static int set_protection(uintptr_t start, size_t len, int prot)
{
    uintptr_t lo = start & ~(uintptr_t)(PAGE - 1);
    uintptr_t hi = (start + len + PAGE - 1) & ~(uintptr_t)(PAGE - 1);
    return mprotect((void *)lo, hi - lo, prot);
}

const char *mt_hook_patch(const struct mt_symbol *sym, void *wrapper, void **original)
{
    if (sym->is_ifunc)
        return "it is an indirect function (ifunc), resolved at load time: hook what it returns";
    if (capstone_open() < 0)
        return "Capstone could not be started";
    uintptr_t entry = sym->address;
    unsigned char *page = near_page(entry);
    size_t patch_len = page ? 5 : 14;
    if (!page) {
        page = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            return "no memory for its trampoline";
    }
    /* Decode whole instructions until they cover the patch. */
    size_t lengths[MAX_COPY];
    int count = 0;
    size_t copied = 0;
    const uint8_t *code = (const uint8_t *)entry;
    size_t avail = sym->size ? (sym->size < MAX_COPY ? sym->size : MAX_COPY) : MAX_COPY;
    size_t left = avail;
    uint64_t address = entry;
    const char *why = NULL;
    while (copied < patch_len && !why) {
        if (!cs_disasm_iter(handle, &code, &left, &address, insn)) {
            why = sym->size && sym->size < patch_len
                      ? refuse("it is %zu bytes long, shorter than the %zu-byte patch",
                               (size_t)sym->size, patch_len)
                      : refuse("cannot decode the instruction at +%#zx", copied);
            break;
        }
        lengths[count++] = insn->size;
        copied += insn->size;
        int ends = cs_insn_group(handle, insn, CS_GRP_RET) ||
                   (cs_insn_group(handle, insn, CS_GRP_JUMP) && insn->id == X86_INS_JMP) ||
                   insn->id == X86_INS_UD2 || insn->id == X86_INS_INT3;
        if (ends && copied < patch_len)
            why = refuse("it ends (%s) after %zu bytes, shorter than the %zu-byte patch",
                         insn->mnemonic, copied, patch_len);
    }
    if (!why)
        why = check_body(sym, copied);
    /* relay: jmp [rip] -> wrapper; then the trampoline */
    unsigned char *out = emit_abs_jump(page, (uint64_t)wrapper);
    unsigned char *trampoline = out = page + 16;
    code = (const uint8_t *)entry;
    for (int k = 0; k < count && !why; k++) {
        left = lengths[k];
        address = (uint64_t)(uintptr_t)code;
        const uint8_t *one = code;
        if (!cs_disasm_iter(handle, &one, &left, &address, insn)) {
            why = "cannot decode its first instructions twice alike";
            break;
        }
        out = relocate(insn, out, (uintptr_t)out, entry, copied);
        if (!out)
            why = reason;
        code += lengths[k];
    }
    if (why) {
        munmap(page, PAGE);
        return why;
    }
    emit_abs_jump(out, entry + copied);
    if (mprotect(page, PAGE, PROT_READ | PROT_EXEC) != 0) {
        munmap(page, PAGE);
        return "cannot make its trampoline executable";
    }
    unsigned char patch[MAX_COPY];
    memset(patch, 0xcc, copied); /* int3 after the jump: never reached */
    if (patch_len == 5) {
        int32_t rel = (int32_t)((intptr_t)page - (intptr_t)(entry + 5));
        patch[0] = 0xe9;
        memcpy(patch + 1, &rel, 4);
    } else {
        emit_abs_jump(patch, (uint64_t)wrapper);
    }
    if (set_protection(entry, copied, PROT_READ | PROT_WRITE | PROT_EXEC) != 0) {
        munmap(page, PAGE);
        return "cannot make its code writable (mprotect refused)";
    }
    memcpy((void *)entry, patch, copied);
    set_protection(entry, copied, PROT_READ | PROT_EXEC);
    __builtin___clear_cache((char *)entry, (char *)entry + copied);
    *original = trampoline;
    return NULL;
}
