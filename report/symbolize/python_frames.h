/* The Python frames of a dump (PYFRAME records, SPEC section 10) and their
 * place in a stack: the recorder appends them, innermost first, after the
 * native frames; a report shows them where the interpreter ran them, in
 * place of the _PyEval_EvalFrameDefault frames. */
#ifndef MEMTRACE_PYTHON_FRAMES_H
#define MEMTRACE_PYTHON_FRAMES_H

#include <stdint.h>

#include "symbolize.h"

struct python_frames {
    struct sym_frame *frames; /* by entry */
    uint32_t *ids;            /* the dump's id of each entry */
    uint32_t count, cap, ids_cap;
    uint32_t *index, index_mask; /* id -> entry + 1 */
};

/* Adds frame id (strings interned by s). 0, or -1 when out of memory. A
 * second record for an id replaces the first. */
int python_frames_add(struct python_frames *p, struct symbolizer *s, uint64_t id,
                      const char *function, size_t function_len, const char *file,
                      size_t file_len, uint64_t line);
/* The entry (index in frames) of a Python stack address, UINT32_MAX if no
 * record named it. An entry keeps its index; a second record for its id
 * changes its frame. */
uint32_t python_frames_entry(const struct python_frames *p, uint64_t address);
/* The frame of a Python stack address, or NULL if no record named it. */
const struct sym_frame *python_frames_find(const struct python_frames *p, uint64_t address);
void python_frames_free(struct python_frames *p);

/* 1 if f is the interpreter loop's C frame (or a compiler's clone of it). */
int python_frames_is_eval(const struct sym_frame *f);

#endif
