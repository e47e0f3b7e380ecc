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
#include <elf.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "loader.h"

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

unsigned mt_got_patch_new_modules(void) { return 0; }
