/* The symbolizer's own types, shared by symbolize.c (the module map, the
 * memo of lookups, interned strings, the API) and dwarf_walk.c (finding a
 * module's files and debug info, and the DWARF walk from an address to its
 * inlined frames). symbolize.h is what the rest of the report sees. */
#ifndef MEMTRACE_SYMBOLIZE_STATE_H
#define MEMTRACE_SYMBOLIZE_STATE_H

#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize.h"

#define MAX_FRAMES 64     /* frames kept per address: inlining depth */
#define ARENA_BLOCK 65536 /* bytes per string arena block */
#define MEMO_INITIAL 256  /* slots of a module file's memo when first used */

/* ------------------------------------------------------------------ types */

struct cached_frame {
    const char *function, *file;
    int line, inlined;
};

/* count == 0: an empty slot (every answer has at least one frame). */
struct memo_slot {
    uint64_t offset;
    size_t first;
    uint32_t count;
};

struct module_file {
    struct module_file *next;
    struct symbolizer *owner;
    const char *path; /* as recorded, interned */
    unsigned char *build_id;
    size_t build_id_len;
    uint64_t low, high; /* extent of the recorded segments, link-time addresses */
    int refs;           /* loaded modules using this file */
    int tried;          /* opening was attempted since the last release */
    int no_file;        /* the vdso, or a name that is no path: nothing to open */
    int is_memtrace;
    Dwfl *dwfl; /* NULL: not open, or nothing usable found */
    Dwfl_Module *mod;
    Dwarf_Addr bias; /* libdwfl address = module offset + bias */
    struct memo_slot *memo;
    size_t memo_cap, memo_used;
};

struct module {
    uint64_t id, bias;
    struct module_file *file;
};

struct range {
    uint64_t start, end;
    struct module *module;
};

struct interned {
    const char *str;
    size_t len;
    uint64_t hash;
};

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
};

struct symbolizer {
    char *sysroot, *debug_dir, *debuginfo_path;
    char *cache_dir; /* of debug files with their sections inflated; NULL */
    Dwfl_Callbacks callbacks;
    struct arena_block *arena;
    struct interned *strings;
    size_t strings_cap, strings_used;
    struct cached_frame *frames;
    size_t nframes, frames_cap;
    struct module_file *files;
    struct module **modules;
    size_t nmodules, modules_cap;
    struct range *ranges;
    size_t nranges, ranges_cap;
};

int sym_find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name);
void sym_file_open(struct symbolizer *s, struct module_file *f);
void sym_file_release(struct module_file *f);
int sym_resolve(struct symbolizer *s, struct module_file *f, uint64_t pc,
                   struct cached_frame *frames);
/* symbolize.c */
const char *sym_intern(struct symbolizer *s, const char *str);
const char *sym_intern_function(struct symbolizer *s, const char *name);
char *sym_concat(const char *a, const char *b, const char *c);

#endif
