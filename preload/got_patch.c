/* The dynamic symbol tables and relocations of loaded modules, read where
 * the loader mapped them; and the rebinding of the allocation calls of
 * modules that bypass the shim.
 *
 * A library loaded with RTLD_DEEPBIND looks symbols up in its own
 * dependencies first: its malloc binds to libc's, past the shim, and what it
 * allocates is never seen (memcheck, which replaces libc's malloc itself,
 * counts it). Once such a module is relocated, each slot of its GOT that the
 * loader bound to the function the shim forwards to (a JUMP_SLOT or
 * GLOB_DAT relocation of a name the shim defines: the malloc family,
 * operators new and delete, dlopen...) is pointed at the shim's function
 * instead, as heaptrack's inject mode does; a lazy slot not bound yet is
 * pointed there too, unless the module or the executable defines the name
 * itself. Read-only (RELRO) GOT pages are made writable for the write and
 * read-only again.
 *
 * Runs inside the traced process: no malloc, no stdio; module tables are
 * read in place, the list of modules already looked at is mmap'd.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader.h"

/* glibc 2.35 and later */
extern int _dl_find_object(void *address, struct dl_find_object *result) __attribute__((weak));

/* ---- reading a module's dynamic section --------------------------------- */

static uintptr_t dynamic_address(const struct dl_phdr_info *info, uintptr_t value)
{
    return value < info->dlpi_addr ? value + info->dlpi_addr : value; /* relocated or not */
}

int mt_elf_read(const struct dl_phdr_info *info, struct mt_elf *e)
{
    memset(e, 0, sizeof *e);
    e->bias = info->dlpi_addr;
    e->name = info->dlpi_name ? info->dlpi_name : "";
    const ElfW(Dyn) *dyn = NULL;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(info->dlpi_addr + ph->p_vaddr);
        else if (ph->p_type == PT_GNU_RELRO) {
            e->relro_lo = (info->dlpi_addr + ph->p_vaddr) & ~(page - 1);
            e->relro_hi = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz) & ~(page - 1);
        }
    }
    if (!dyn || strstr(e->name, "linux-vdso"))
        return -1;
    size_t relasz = 0, pltrelsz = 0;
    int pltrel = DT_RELA;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB: e->symtab = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_STRTAB: e->strtab = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_GNU_HASH: e->gnu_hash = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_HASH: e->sysv_hash = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_RELA: e->rela = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_RELASZ: relasz = dyn->d_un.d_val; break;
        case DT_JMPREL: e->jmprel = (const void *)dynamic_address(info, dyn->d_un.d_ptr); break;
        case DT_PLTRELSZ: pltrelsz = dyn->d_un.d_val; break;
        case DT_PLTREL: pltrel = (int)dyn->d_un.d_val; break;
        default: break;
        }
    }
    if (!e->symtab || !e->strtab || (!e->gnu_hash && !e->sysv_hash))
        return -1;
    e->rela_count = e->rela ? relasz / sizeof(ElfW(Rela)) : 0;
    e->jmprel_count = e->jmprel && pltrel == DT_RELA ? pltrelsz / sizeof(ElfW(Rela)) : 0;
    return 0;
}

static int defines(const ElfW(Sym) *sym, const char *strtab, const char *name)
{
    return sym->st_shndx != SHN_UNDEF && ELF64_ST_BIND(sym->st_info) != STB_LOCAL &&
           ELF64_ST_TYPE(sym->st_info) != STT_TLS && strcmp(strtab + sym->st_name, name) == 0;
}

static uint32_t gnu_hash(const char *s)
{
    uint32_t h = 5381;
    for (; *s; s++)
        h = h * 33 + (unsigned char)*s;
    return h;
}

static uint32_t sysv_hash(const char *s)
{
    uint32_t h = 0;
    for (; *s; s++) {
        h = (h << 4) + (unsigned char)*s;
        uint32_t g = h & 0xf0000000u;
        h ^= g >> 24;
        h &= ~g;
    }
    return h;
}

void *mt_elf_lookup(const struct mt_elf *e, const char *name)
{
    if (e->gnu_hash) {
        const uint32_t *hash = e->gnu_hash;
        uint32_t nbuckets = hash[0], symoffset = hash[1], bloom_size = hash[2];
        if (nbuckets == 0)
            return NULL;
        const uint32_t *buckets = (const uint32_t *)((const ElfW(Addr) *)(hash + 4) + bloom_size);
        const uint32_t *chain = buckets + nbuckets;
        uint32_t h = gnu_hash(name);
        for (uint32_t i = buckets[h % nbuckets]; i >= symoffset && i != 0; i++) {
            uint32_t h2 = chain[i - symoffset];
            if ((h | 1) == (h2 | 1) && defines(&e->symtab[i], e->strtab, name))
                return (void *)(e->bias + e->symtab[i].st_value);
            if (h2 & 1)
                break;
        }
        return NULL;
    }
    const uint32_t *hash = e->sysv_hash;
    uint32_t nbuckets = hash[0], nchain = hash[1];
    if (nbuckets == 0)
        return NULL;
    const uint32_t *chain = hash + 2 + nbuckets;
    for (uint32_t i = hash[2 + sysv_hash(name) % nbuckets]; i != 0 && i < nchain; i = chain[i])
        if (defines(&e->symtab[i], e->strtab, name))
            return (void *)(e->bias + e->symtab[i].st_value);
    return NULL;
}

/* ---- rebinding the modules that bypass the shim -------------------------- */

/* The names rebound: every function of the shim that a module can bind
 * past it. */
static const char *const rebound_names[] = {
    "malloc", "free", "cfree", "calloc", "realloc", "reallocarray", "posix_memalign",
    "aligned_alloc", "memalign", "valloc", "pvalloc",
    "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
    "__libc_valloc", "__libc_pvalloc",
    "_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
    "_ZnamSt11align_val_t", "_ZnwmSt11align_val_tRKSt9nothrow_t",
    "_ZnamSt11align_val_tRKSt9nothrow_t",
    "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t", "_ZdaPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t", "_ZdaPvmSt11align_val_t", "_ZdlPvRKSt9nothrow_t",
    "_ZdaPvRKSt9nothrow_t", "_ZdlPvSt11align_val_tRKSt9nothrow_t",
    "_ZdaPvSt11align_val_tRKSt9nothrow_t",
    "dlopen", "dlmopen", "dlclose", "dlsym", "dlvsym",
};
#define REBOUND_COUNT (sizeof rebound_names / sizeof rebound_names[0])

/* For each name: the shim's function, the one it forwards to (the first
 * definition after the shim, as RTLD_NEXT finds it), and whether any other
 * module of the base namespace defines it (then a lazy slot is left alone:
 * where it would bind is not known here). */
struct binding {
    uintptr_t own, next;
    int others;
};

/* A module looked at, by load address and name. */
struct examined {
    uintptr_t bias;
    char name[240];
    uint32_t seen;
};

#define MAX_EXAMINED 16384
static struct examined *examined; /* mmap'd */
static uint32_t examined_count;

struct pass {
    uintptr_t own_base;
    uintptr_t libc_base;
    int after_own; /* the walk has passed the shim */
    struct binding bindings[REBOUND_COUNT];
    unsigned unready;
    uint32_t patched;
};

static uintptr_t first_load(const struct dl_phdr_info *info)
{
    for (int i = 0; i < info->dlpi_phnum; i++)
        if (info->dlpi_phdr[i].p_type == PT_LOAD)
            return info->dlpi_addr + info->dlpi_phdr[i].p_vaddr;
    return 0;
}

/* 1 if the module is relocated and in the base namespace (LM_ID_BASE); 0
 * if in another namespace (its own libc: not the shim's to touch); -1 if
 * not relocated yet. Called inside dl_iterate_phdr, which holds the
 * loader's list lock: _r_debug.r_map, the base namespace's list, cannot
 * change meanwhile. Not dlinfo: any dl* call clears an error the program
 * has yet to read with dlerror. */
static int module_state(const struct dl_phdr_info *info)
{
    uintptr_t at = first_load(info);
    if (!_dl_find_object)
        return 1;
    struct dl_find_object found;
    if (!at || _dl_find_object((void *)at, &found) != 0)
        return -1;
    for (const struct link_map *l = _r_debug.r_map; l; l = l->l_next)
        if (l == found.dlfo_link_map)
            return 1;
    return 0;
}

static int in_module(const struct dl_phdr_info *info, uintptr_t address)
{
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_LOAD && address >= start && address < start + ph->p_memsz)
            return 1;
    }
    return 0;
}

/* First walk: where each name is defined. */
static int learn_bindings(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct pass *ps = data;
    struct mt_elf e;
    int own = in_module(info, ps->own_base);
    if (mt_elf_read(info, &e) != 0 || module_state(info) != 1) {
        ps->after_own |= own;
        return 0;
    }
    for (size_t k = 0; k < REBOUND_COUNT; k++) {
        struct binding *b = &ps->bindings[k];
        uintptr_t f = (uintptr_t)mt_elf_lookup(&e, rebound_names[k]);
        if (!f)
            continue;
        if (own)
            b->own = f;
        else if (ps->after_own && !b->next)
            b->next = f;
        else
            b->others = 1;
    }
    ps->after_own |= own;
    return 0;
}

/* Writes value into a GOT slot, making a read-only (RELRO) page writable
 * for the write. */
static void write_slot(const struct mt_elf *e, uintptr_t slot, uintptr_t value)
{
    uintptr_t page = slot & ~(uintptr_t)4095;
    int relro = slot >= e->relro_lo && slot < e->relro_hi;
    if (relro && mprotect((void *)page, 4096, PROT_READ | PROT_WRITE) != 0)
        return;
    __atomic_store_n((uintptr_t *)slot, value, __ATOMIC_RELAXED);
    if (relro)
        mprotect((void *)page, 4096, PROT_READ);
}

static void patch_table(struct pass *ps, const struct dl_phdr_info *info, const struct mt_elf *e,
                        const ElfW(Rela) *table, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        const ElfW(Rela) *r = &table[i];
        uint32_t type = ELF64_R_TYPE(r->r_info), sym = ELF64_R_SYM(r->r_info);
        if ((type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT && type != R_X86_64_64) ||
            sym == 0 || r->r_addend != 0)
            continue;
        const char *name = e->strtab + e->symtab[sym].st_name;
        size_t k = 0;
        while (k < REBOUND_COUNT && strcmp(rebound_names[k], name) != 0)
            k++;
        if (k == REBOUND_COUNT)
            continue;
        const struct binding *b = &ps->bindings[k];
        uintptr_t slot = e->bias + r->r_offset, value = *(const uintptr_t *)slot;
        if (!b->own || value == b->own)
            continue;
        int bypass = b->next && value == b->next;
        /* a lazy slot not bound yet still points into the module's PLT */
        int lazy = type == R_X86_64_JUMP_SLOT && in_module(info, value) && !b->others &&
                   !mt_elf_lookup(e, name);
        if (bypass || lazy) {
            write_slot(e, slot, b->own);
            ps->patched++;
        }
    }
}

/* 1 if the module was looked at already (and marks it seen). */
static int was_examined(const struct dl_phdr_info *info, const char *name)
{
    for (uint32_t i = 0; i < examined_count; i++) {
        struct examined *m = &examined[i];
        if (m->bias == info->dlpi_addr && strncmp(m->name, name, sizeof m->name - 1) == 0) {
            m->seen = 1;
            return 1;
        }
    }
    return 0;
}

/* First walk, cheap (it is repeated at each event while another thread
 * relocates): are there new modules, and are they relocated? */
static int survey_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct pass *ps = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (was_examined(info, name))
        return 0;
    if (module_state(info) < 0)
        ps->unready = MT_DL_PATCH; /* still being relocated: next time */
    else
        ps->patched++; /* one to look at */
    return 0;
}

static int examine_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct pass *ps = data;
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    if (was_examined(info, name))
        return 0;
    int state = module_state(info);
    if (state < 0 || examined_count == MAX_EXAMINED)
        return 0;
    struct examined *m = &examined[examined_count++];
    m->bias = info->dlpi_addr;
    strncpy(m->name, name, sizeof m->name - 1);
    m->name[sizeof m->name - 1] = '\0';
    m->seen = 1;
    struct mt_elf e;
    /* the executable binds first in every scope; the shim is ours */
    if (state == 0 || !*name || in_module(info, ps->own_base) || mt_elf_read(info, &e) != 0)
        return 0;
    patch_table(ps, info, &e, e.jmprel, e.jmprel_count);
    patch_table(ps, info, &e, e.rela, e.rela_count);
    return 0;
}

unsigned mt_got_patch_new_modules(void)
{
    if (!examined) {
        examined = mt_map(MAX_EXAMINED * sizeof *examined);
        if (!examined)
            return 0;
    }
    static struct pass ps;
    memset(&ps, 0, sizeof ps);
    ps.own_base = (uintptr_t)&mt_got_patch_new_modules;
    for (uint32_t i = 0; i < examined_count; i++)
        examined[i].seen = 0;
    dl_iterate_phdr(survey_module, &ps);
    if (ps.patched) { /* new relocated modules: where each name binds, then patch */
        dl_iterate_phdr(learn_bindings, &ps);
        dl_iterate_phdr(examine_module, &ps);
    }
    uint32_t kept = 0; /* forget the unloaded: a module loaded at their place is new */
    for (uint32_t i = 0; i < examined_count; i++)
        if (examined[i].seen)
            examined[kept++] = examined[i];
    examined_count = kept;
    return ps.unready;
}
