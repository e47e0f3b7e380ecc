/* Symbolizer: turns the return addresses of a dump's stacks into frames
 * (function, source file, line, inlined calls expanded), from the module map
 * the dump records. Feed it MODULE_LOAD and MODULE_UNLOAD records in dump
 * order; a lookup is made against the modules loaded at that moment.
 *
 * Modules are matched by build id: a file whose build id differs from the
 * recorded one is not used. Debug info is found in the file itself, through
 * .gnu_debuglink or /usr/lib/debug/.build-id (and the sysroot's), in
 * debug_dir, and through debuginfod when DEBUGINFOD_URLS is set. Without any,
 * a frame says module+offset.
 *
 * Each module's ELF and DWARF are opened once, at its first lookup, and
 * every lookup is memoized by address: memory grows with the modules and the
 * distinct addresses looked up only. Not thread-safe: one symbolizer per
 * thread.
 */
#ifndef MEMTRACE_SYMBOLIZE_H
#define MEMTRACE_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "read/dump_reader.h"

struct symbolizer_options {
    const char *sysroot;   /* prefix for module paths, or NULL */
    const char *debug_dir; /* extra debug-file dir, or NULL */
};

/* One frame. Strings are owned by the symbolizer and stay valid until
 * symbolizer_free (module unloads included). */
struct sym_frame {
    const char *function;   /* demangled; NULL if unknown */
    const char *file;       /* source path as in DWARF (absolute if it can be made so); NULL */
    int line;               /* 0 if unknown */
    const char *module;     /* module path as recorded; NULL when no module holds address */
    uint64_t address;       /* the address looked up (a return address as captured) */
    uint64_t module_offset; /* address - load bias: for "module+0xOFFSET"; 0 without module */
    int inlined;            /* 1 for frames produced by inlining expansion */
    int is_memtrace;        /* the module is libmemtrace.so itself */
    int is_python;          /* a Python frame (function, file, line; no module) */
};

struct symbolizer;

/* A new symbolizer (o may be NULL), or NULL when out of memory. */
struct symbolizer *symbolizer_new(const struct symbolizer_options *o);
void symbolizer_free(struct symbolizer *s);

/* Records a module as loaded (nothing is opened yet). An id already loaded
 * is replaced. 0, or -1 when out of memory. */
int symbolizer_module_load(struct symbolizer *s, uint64_t id, const char *path, size_t path_len,
                           const unsigned char *build_id, size_t build_id_len, uint64_t bias,
                           uint64_t nsegments, const struct dump_segment *segments);
/* Marks module id unloaded (dlclose); an unknown id is ignored. */
void symbolizer_module_unload(struct symbolizer *s, uint64_t id);

/* Symbolizes one return address: writes up to max frames (innermost first:
 * the inlined callees first, then the function that contains the call) and
 * returns how many (>= 1: at worst one frame with only module/offset, or
 * with everything NULL when no module contains the address; 0 only when
 * max < 1). Looks up return_address - 1, the call instruction. */
/* The symbolizer's one copy of str[0, len) (equal strings, equal pointers);
 * NULL when out of memory. */
const char *symbolizer_intern(struct symbolizer *s, const char *str, size_t len);

int symbolizer_lookup(struct symbolizer *s, uint64_t return_address, struct sym_frame *out,
                      int max);

#endif
