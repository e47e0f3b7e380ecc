/* Internal declarations of the inline hooks: finding a function
 * (elf_symbols.c), moving its first instructions and patching it
 * (hook_patch.c), and the wrappers that record its calls (hooks.c).
 */
#ifndef MEMTRACE_HOOKS_H
#define MEMTRACE_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "shim.h"

struct mt_symbol {
    uintptr_t address;
    uint64_t size; /* st_size; 0 when the symbol does not say */
    int is_ifunc;
    int in_main; /* defined in the executable */
    char module[256];
};

/* Looks name up in the executable, then (unless main_only) in the loaded
 * libraries other than libmemtrace. Returns the number of distinct
 * definitions in the first module that has any (0: not found; more than 1:
 * several `static` functions of that name), *out the first of them. */
int mt_symbol_find(const char *name, int main_only, uintptr_t own_base, struct mt_symbol *out)
    MT_HIDDEN;

/* Moves the first instructions of the function at sym into a trampoline
 * and patches in a jump to wrapper. On success returns NULL and *original
 * is the trampoline: calling it runs the function as it was. Otherwise
 * returns why not, in words for a one-line message ("...: <reason>"), and
 * the function is untouched. Call only while no other thread runs. */
const char *mt_hook_patch(const struct mt_symbol *sym, void *wrapper, void **original) MT_HIDDEN;
/* Capstone's memory comes from an mmap'd arena while hooks are installed;
 * this releases it once they all are. */
void mt_hook_patch_done(void) MT_HIDDEN;

#endif
