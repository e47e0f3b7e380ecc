/* The dump's Python frames by id (see python_frames.h). Memory grows with
 * the distinct (code, line) pairs the program ran, never with events. */
#include "python_frames.h"

#include <string.h>

#include "memtrace/format.h"
#include "util.h"

static uint64_t id_hash(uint64_t id) { return hash_mix(0x9e3779b97f4a7c15ull, id); }

static uint64_t hash_at(const void *ctx, uint32_t i)
{
    return id_hash(((const struct python_frames *)ctx)->ids[i]);
}

static uint32_t *slot_of(const struct python_frames *p, uint64_t id)
{
    if (!p->index)
        return NULL;
    uint32_t i = (uint32_t)id_hash(id) & p->index_mask;
    for (; p->index[i]; i = (i + 1) & p->index_mask)
        if (p->ids[p->index[i] - 1] == id)
            break;
    return &p->index[i];
}

int python_frames_add(struct python_frames *p, struct symbolizer *s, uint64_t id,
                      const char *function, size_t function_len, const char *file,
                      size_t file_len, uint64_t line)
{
    struct sym_frame f = {
        .function = function_len ? symbolizer_intern(s, function, function_len) : NULL,
        .file = file_len ? symbolizer_intern(s, file, file_len) : NULL,
        .line = (int)line, .is_python = 1};
    if ((function_len && !f.function) || (file_len && !f.file))
        return -1;
    uint32_t *slot = slot_of(p, id);
    if (slot && *slot) {
        p->frames[*slot - 1] = f;
        return 0;
    }
    if ((p->count + 1) * 4 >= (p->index_mask + 1) * 3 &&
        index_grow(&p->index, &p->index_mask, p->count, 1023, hash_at, p) != 0)
        return -1;
    uint32_t ids_cap = p->ids_cap;
    if (array_grow((void **)&p->frames, &p->cap, sizeof *p->frames, p->count + 1) != 0 ||
        array_grow((void **)&p->ids, &ids_cap, sizeof *p->ids, p->count + 1) != 0)
        return -1;
    p->ids_cap = ids_cap;
    p->frames[p->count] = f;
    p->ids[p->count] = (uint32_t)id;
    *slot_of(p, id) = ++p->count;
    return 0;
}

uint32_t python_frames_entry(const struct python_frames *p, uint64_t address)
{
    uint32_t *slot = slot_of(p, MT_PYFRAME_ID(address));
    return slot && *slot ? *slot - 1 : UINT32_MAX;
}

const struct sym_frame *python_frames_find(const struct python_frames *p, uint64_t address)
{
    uint32_t e = python_frames_entry(p, address);
    return e != UINT32_MAX ? &p->frames[e] : NULL;
}

void python_frames_free(struct python_frames *p)
{
    free(p->frames);
    free(p->ids);
    free(p->index);
    memset(p, 0, sizeof *p);
}

int python_frames_is_eval(const struct sym_frame *f)
{
    static const char eval[] = "_PyEval_EvalFrameDefault";
    const size_t n = sizeof eval - 1;
    return f->function && strncmp(f->function, eval, n) == 0 &&
           (f->function[n] == '\0' || f->function[n] == '.');
}
