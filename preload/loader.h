/* The loader side of the shim: dlopen and friends as tail calls
 * (dl_stubs.S, dl_track.c), what a newly loaded module needs done
 * (dl_track.c), and the symbol tables and relocations of loaded modules
 * (got_patch.c). */
#ifndef MEMTRACE_LOADER_H
#define MEMTRACE_LOADER_H

#include <link.h>
#include <stddef.h>
#include <stdint.h>

#include "shim.h"

/* ---- dl_track.c ---- */
/* Work a module change left: bits of MT_DL_*, set when the program calls
 * dlopen or dlmopen and when modules.c sees the loader's module count
 * move; done by mt_dl_catch_up at the next event or dl* call. */
#define MT_DL_PYTHON 1u /* look for CPython in the new modules */
#define MT_DL_PATCH 2u  /* bind the new modules' allocation calls to the shim */
extern unsigned mt_dl_pending MT_HIDDEN;
static inline void mt_dl_note_change(void)
{
    __atomic_or_fetch(&mt_dl_pending, MT_DL_PYTHON | MT_DL_PATCH, __ATOMIC_RELAXED);
}
/* Does the pending work that can be done now; what finds a module still
 * being relocated stays pending. Any context but a signal handler's that
 * interrupted the shim; takes no lock of the loader's. */
void mt_dl_catch_up(struct mt_thread *t) MT_HIDDEN;
/* The C library's own definition of name (found in its symbol table, not
 * with dlsym), or NULL. */
void *mt_libc_symbol(const char *name) MT_HIDDEN;
/* In a fork child: lets go of what another thread of the parent held. */
void mt_dl_after_fork(void) MT_HIDDEN;
/* 1 once the module that holds address is relocated (glibc lists it for
 * _dl_find_object only then); 1 where that cannot be told. */
int mt_dl_code_ready(const void *address) MT_HIDDEN;

/* ---- got_patch.c ---- */
/* A loaded module's dynamic section, read where the loader mapped it. */
struct mt_elf {
    uintptr_t bias;
    const char *name;
    const ElfW(Sym) *symtab;
    const char *strtab;
    const uint32_t *gnu_hash;
    const uint32_t *sysv_hash;
    const ElfW(Rela) *rela, *jmprel;
    size_t rela_count, jmprel_count;
    uintptr_t relro_lo, relro_hi; /* PT_GNU_RELRO, page-aligned; 0 if none */
};
/* 0, or -1 for a module without a usable dynamic section (the vdso). */
int mt_elf_read(const struct dl_phdr_info *info, struct mt_elf *e) MT_HIDDEN;
/* The address of the module's own definition of name (default version or
 * any), or NULL. */
void *mt_elf_lookup(const struct mt_elf *e, const char *name) MT_HIDDEN;
/* Points the allocation calls of modules that bypass the shim (RTLD_DEEPBIND)
 * at the shim's functions. Returns MT_DL_PATCH if a module could not be
 * looked at yet (still being relocated), else 0. */
unsigned mt_got_patch_new_modules(void) MT_HIDDEN;

#endif
