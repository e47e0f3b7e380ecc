/* Python frames in stacks (SPEC section 10): at each recorded allocation,
 * the calling thread's chain of CPython frames is read where the
 * interpreter keeps it, and each frame (code object, line) becomes one
 * MT_PYFRAME_ADDRESS appended after the native frames. The report puts them
 * in place of the _PyEval_EvalFrameDefault frames that ran them.
 *
 * Why read the chain and not keep a shadow stack from a profile hook: the
 * hook costs on every Python call and return whether or not anything is
 * allocated, and must be installed in every thread; the chain is already
 * there, kept by the interpreter, and costs only when an allocation is
 * recorded. A thread only changes its own chain, so reading it from inside
 * that thread's malloc is consistent, with or without the GIL.
 *
 * Nothing here runs for a process without CPython: the symbols are looked up
 * once at start and after each dlopen (never with --python off), in the
 * loaded modules' own symbol tables (not dlsym: see below), and the capture
 * returns at its first test until they are found. Only non-
 * allocating CPython functions are called (Py_IsInitialized,
 * PyGILState_GetThisThreadState, PyCode_Addr2Line, Py_GetVersion).
 *
 * Each distinct (code object, instruction) is resolved to a line once, and
 * each distinct (code object, line) gets a process-unique id sent as one
 * PYFRAME record before any stack that holds it. Tables are mmap'd, under
 * one spinlock (taken once per capture; Python threads rarely contend).
 * A code object freed and another created at its address is told apart by
 * its name, file and first line.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "loader.h"
#include "python_layout.h"
#include "shim.h"

struct py_api {
    int (*is_initialized)(void);
    void *(*this_thread_state)(void);
    int (*addr2line)(void *code, int byte_offset);
    const char *(*version)(void);
    const void *code_type;
};

static struct py_api api;
static const struct mt_py_layout *layout;
static volatile int python_ready; /* api and layout set */
static int python_refused;        /* a version we cannot read: said once */
static int table_lock;
static uint32_t next_pyframe_id = 1;

/* ---- tables ------------------------------------------------------------ */

/* (code, instruction) -> id, and (code, line) -> id: the same shape. */
struct py_slot {
    uintptr_t code, name, file;
    int32_t firstlineno;
    int32_t where; /* instruction byte offset, or line */
    uint32_t id;   /* 0: empty */
    uint32_t pad;
};

struct py_table {
    struct py_slot *slots;
    uint32_t mask, count;
};

static struct py_table by_instruction, by_line;

static int table_init(struct py_table *t, uint32_t size)
{
    void *p = mt_map(size * sizeof(struct py_slot));
    if (!p)
        return -1;
    t->slots = p;
    t->mask = size - 1;
    t->count = 0;
    return 0;
}

static uint32_t slot_hash(uintptr_t code, int32_t where)
{
    uint64_t h = (uint64_t)code * 0x9e3779b97f4a7c15ull ^ (uint32_t)where;
    h *= 0xff51afd7ed558ccdull;
    return (uint32_t)(h ^ (h >> 32));
}

static struct py_slot *table_find(struct py_table *t, const struct py_slot *key)
{
    for (uint32_t i = slot_hash(key->code, key->where) & t->mask;; i = (i + 1) & t->mask) {
        struct py_slot *s = &t->slots[i];
        if (!s->id || (s->code == key->code && s->where == key->where))
            return s;
    }
}

/* Stores key (with its id) in its slot, replacing a stale entry for the
 * same code address; grows the table first when it is 3/4 full. */
static void table_put(struct py_table *t, const struct py_slot *key)
{
    if ((t->count + 1) * 4 > (t->mask + 1) * 3) {
        struct py_table bigger;
        if (table_init(&bigger, (t->mask + 1) * 2) != 0)
            return; /* it stays a cache miss */
        for (uint32_t i = 0; i <= t->mask; i++)
            if (t->slots[i].id) {
                *table_find(&bigger, &t->slots[i]) = t->slots[i];
                bigger.count++;
            }
        mt_unmap(t->slots, (t->mask + 1) * sizeof(struct py_slot));
        *t = bigger;
    }
    struct py_slot *s = table_find(t, key);
    if (!s->id)
        t->count++;
    *s = *key;
}

static int same_code(const struct py_slot *s, const struct py_slot *key)
{
    return s->id && s->name == key->name && s->file == key->file &&
           s->firstlineno == key->firstlineno;
}

/* ---- reading CPython objects ------------------------------------------- */

#define FIELD(base, offset, type) (*(type const *)((const char *)(base) + (offset)))

static int is_code(const void *object)
{
    return object && !((uintptr_t)object & 7) && FIELD(object, MT_PY_OBJECT_TYPE, const void *) == api.code_type;
}

static size_t put_utf8(char *out, size_t room, uint32_t c)
{
    char b[4];
    size_t n;
    if (c < 0x80) {
        b[0] = (char)c, n = 1;
    } else if (c < 0x800) {
        b[0] = (char)(0xc0 | c >> 6), b[1] = (char)(0x80 | (c & 63)), n = 2;
    } else if (c < 0x10000) {
        b[0] = (char)(0xe0 | c >> 12), b[1] = (char)(0x80 | ((c >> 6) & 63));
        b[2] = (char)(0x80 | (c & 63)), n = 3;
    } else {
        b[0] = (char)(0xf0 | c >> 18), b[1] = (char)(0x80 | ((c >> 12) & 63));
        b[2] = (char)(0x80 | ((c >> 6) & 63)), b[3] = (char)(0x80 | (c & 63)), n = 4;
    }
    if (n > room)
        return 0;
    memcpy(out, b, n);
    return n;
}

/* A str object as UTF-8 into out (cut at room bytes); its length. Reads
 * the object's storage directly: PyUnicode_AsUTF8 may allocate. */
static size_t read_str(const void *str, char *out, size_t room)
{
    if (!str)
        return 0;
    int64_t length = FIELD(str, MT_PY_STR_LENGTH, int64_t);
    uint32_t state = FIELD(str, MT_PY_STR_STATE, uint32_t);
    unsigned kind = (state >> 2) & 7, compact = (state >> 5) & 1, ascii = (state >> 6) & 1;
    if (length < 0 || !compact)
        return 0;
    if (ascii) {
        size_t n = (size_t)length < room ? (size_t)length : room;
        memcpy(out, (const char *)str + layout->ascii_size, n);
        return n;
    }
    const char *utf8 = FIELD(str, layout->compact_utf8, const char *);
    if (utf8) {
        int64_t n = FIELD(str, layout->compact_utf8_length, int64_t);
        size_t take = n >= 0 && (size_t)n < room ? (size_t)n : room;
        memcpy(out, utf8, take);
        return take;
    }
    const unsigned char *data = (const unsigned char *)str + layout->compact_size;
    size_t used = 0;
    for (int64_t i = 0; i < length; i++) {
        uint32_t c = kind == 1 ? data[i]
                     : kind == 2 ? ((const uint16_t *)data)[i]
                                 : ((const uint32_t *)data)[i];
        size_t n = put_utf8(out + used, room - used, c);
        if (!n)
            break;
        used += n;
    }
    return used;
}

/* ---- setup ------------------------------------------------------------- */

static int parse_version(const char *v, int *major, int *minor)
{
    char *end;
    *major = (int)strtol(v, &end, 10);
    if (*end != '.')
        return -1;
    *minor = (int)strtol(end + 1, &end, 10);
    return 0;
}

/* ---- finding CPython without dlsym -------------------------------------- */

/* dlsym would do, but a failed lookup (every program without CPython)
 * makes glibc malloc its error message from the program's heap, which must
 * not change. So the dynamic symbol tables of the loaded modules are read
 * where the loader mapped them (mt_elf_read and mt_elf_lookup, got_patch.c:
 * the same reading the rebinding of RTLD_DEEPBIND modules uses). */
struct symbol_search {
    const char *const *names;
    int count;
    void **found;
    int module_found;
};

static int search_module(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    struct symbol_search *s = data;
    struct mt_elf e;
    if (mt_elf_read(info, &e) != 0 || !mt_elf_lookup(&e, s->names[0]))
        return 0;
    for (int k = 0; k < s->count; k++)
        s->found[k] = mt_elf_lookup(&e, s->names[k]);
    s->module_found = 1;
    return 1; /* the module that has the first name has them all */
}

int mt_python_setup(void *handle)
{
    (void)handle; /* every loaded module is searched, RTLD_LOCAL ones too */
    if (python_ready || python_refused || mt_config.python == MT_PYTHON_OFF)
        return 0;
    static const char *const names[] = {"Py_IsInitialized", "PyGILState_GetThisThreadState",
                                        "PyCode_Addr2Line", "Py_GetVersion", "PyCode_Type"};
    void *found[5] = {0};
    struct symbol_search search = {names, 5, found, 0};
    struct mt_thread *t = &mt_thread_state;
    t->guard++;
    dl_iterate_phdr(search_module, &search);
    struct py_api a = {
        .is_initialized = (int (*)(void))found[0],
        .this_thread_state = (void *(*)(void))found[1],
        .addr2line = (int (*)(void *, int))found[2],
        .version = (const char *(*)(void))found[3],
        .code_type = found[4],
    };
    if (search.module_found && a.version && !mt_dl_code_ready((void *)a.version)) {
        t->guard--; /* mapped, not relocated yet: not to be called */
        return 1;
    }
    if (search.module_found && a.is_initialized && a.this_thread_state && a.addr2line &&
        a.version && a.code_type) {
        const char *v = a.version();
        int major = 0, minor = 0;
        const struct mt_py_layout *l =
            parse_version(v, &major, &minor) == 0 ? mt_py_layout_for(major, minor) : NULL;
        if (l && table_init(&by_instruction, 4096) == 0 && table_init(&by_line, 4096) == 0) {
            api = a;
            layout = l;
            __atomic_store_n(&python_ready, 1, __ATOMIC_RELEASE);
        } else if (!l) {
            python_refused = 1;
            mt_log("CPython %d.%d is not supported (3.8 to 3.13): stacks keep native frames only",
                   major, minor);
        }
    }
    t->guard--;
    return 0;
}

void mt_python_after_dlclose(void)
{
    if (!__atomic_load_n(&python_ready, __ATOMIC_ACQUIRE))
        return;
    struct mt_thread *t = &mt_thread_state;
    Dl_info info;
    t->guard++;
    int loaded = dladdr((void *)api.is_initialized, &info) != 0;
    t->guard--;
    if (!loaded) { /* libpython was unloaded: its functions are gone */
        mt_python_lock();
        __atomic_store_n(&python_ready, 0, __ATOMIC_RELEASE);
        mt_python_unlock();
    }
}

void mt_python_lock(void) { mt_spin_lock(&table_lock); }
void mt_python_unlock(void) { mt_spin_unlock(&table_lock); }

/* ---- capture ----------------------------------------------------------- */

struct py_frame {
    const void *frame, *code;
    int32_t lasti; /* bytes */
    uint32_t entry;
};

/* A thread's last captured Python stack and its ids, outermost first:
 * between two allocations usually only the innermost frames change, and the
 * outer frames that are the same frame running the same code at the same
 * instruction as last time keep their ids without a table lookup (a live
 * frame holds its code object, so the code cannot have been replaced).
 * mmap'd at the thread's first capture, unmapped when the thread ends. */
struct mt_py_cache {
    int count;
    struct py_frame frames[MT_MAX_DEPTH_LIMIT];
    uint32_t ids[MT_MAX_DEPTH_LIMIT];
};

/* The thread's frames, innermost first. */
static int walk(const void *tstate, struct py_frame *out, int max)
{
    const struct mt_py_layout *l = layout;
    const void *f = FIELD(tstate, l->tstate_frame, const void *);
    if (f && l->cframe_current >= 0)
        f = FIELD(f, l->cframe_current, const void *);
    int n = 0;
    for (int steps = 0; f && !((uintptr_t)f & 7) && n < max && steps < 4096; steps++) {
        const void *back = FIELD(f, l->frame_back, const void *);
        const void *code = FIELD(f, l->frame_code, const void *);
        if (l->model == MT_PY_FRAME_OBJECTS) {
            if (is_code(code))
                out[n++] = (struct py_frame){f, code, FIELD(f, l->frame_lasti, int) * l->lasti_scale, 1};
            f = back;
            continue;
        }
        uint8_t owner = FIELD(f, l->frame_owner, uint8_t);
        if (l->owner_cstack >= 0 && owner == l->owner_cstack) {
            if (n > 0) /* the frames since the last such one were one eval call */
                out[n - 1].entry = 1;
        } else if (is_code(code)) {
            const char *first = (const char *)code + l->code_adaptive;
            const char *instr = FIELD(f, l->frame_instr, const char *);
            int traceable = FIELD(code, l->code_firsttraceable, int);
            /* a frame still being set up has run none of its code */
            if (owner == l->owner_generator || instr >= first + 2 * (ptrdiff_t)traceable)
                out[n++] = (struct py_frame){f, code, (int32_t)(instr - first),
                                             l->frame_is_entry >= 0 &&
                                                 FIELD(f, l->frame_is_entry, uint8_t)};
        }
        f = back;
    }
    return n;
}

static int write_pyframe(struct mt_ring *r, uint64_t ts, uint32_t id, int line, const void *code)
{
    char function[512], file[1024];
    const void *name = FIELD(code, layout->code_qualname >= 0 ? layout->code_qualname
                                                             : layout->code_name, const void *);
    size_t function_len = read_str(name, function, sizeof function);
    size_t file_len = read_str(FIELD(code, layout->code_filename, const void *), file, sizeof file);
    uint32_t len = (uint32_t)((sizeof(struct mt_ring_pyframe) + function_len + file_len + 7) & ~7ul);
    struct mt_ring_pyframe *rec = mt_ring_reserve(r, len);
    if (!rec)
        return -1;
    rec->hdr = (struct mt_ring_record){MT_RING_PYFRAME, len, ts};
    rec->id = id;
    rec->line = line > 0 ? (uint32_t)line : 0;
    rec->function_len = (uint32_t)function_len;
    rec->file_len = (uint32_t)file_len;
    memcpy(rec + 1, function, function_len);
    memcpy((char *)(rec + 1) + function_len, file, file_len);
    mt_ring_commit(r, len);
    return 0;
}

/* The id of frame f: from the tables, or new (its PYFRAME record written
 * first, stamped later than anything already in the ring). 0 on failure. */
static uint32_t frame_id(struct mt_ring *r, const struct py_frame *f, uint64_t *ts)
{
    const void *code = f->code;
    struct py_slot key = {(uintptr_t)code, (uintptr_t)FIELD(code, layout->code_name, void *),
                          (uintptr_t)FIELD(code, layout->code_filename, void *),
                          FIELD(code, layout->code_firstlineno, int), f->lasti, 0, 0};
    struct py_slot *s = table_find(&by_instruction, &key);
    if (same_code(s, &key))
        return s->id;
    struct py_slot line_key = key;
    line_key.where = api.addr2line((void *)code, f->lasti);
    struct py_slot *ls = table_find(&by_line, &line_key);
    if (same_code(ls, &line_key)) {
        key.id = ls->id;
    } else {
        key.id = line_key.id = __atomic_fetch_add(&next_pyframe_id, 1, __ATOMIC_RELAXED);
        *ts = mt_ring_stamp(r);
        if (write_pyframe(r, *ts, key.id, line_key.where, code) != 0)
            return 0;
        table_put(&by_line, &line_key);
    }
    table_put(&by_instruction, &key);
    return key.id;
}

static int same_frame(const struct py_frame *a, const struct py_frame *b)
{
    return a->frame == b->frame && a->code == b->code && a->lasti == b->lasti &&
           a->entry == b->entry;
}

int mt_python_capture(struct mt_thread *t, struct mt_ring *r, uint64_t *ips, int max, uint64_t *ts)
{
    if (!__atomic_load_n(&python_ready, __ATOMIC_ACQUIRE) || !api.is_initialized())
        return 0;
    const void *tstate = api.this_thread_state();
    if (!tstate)
        return 0;
    struct mt_py_cache *c = t->python;
    if (!c) {
        void *p = mt_map(sizeof *c);
        if (!p)
            return 0;
        c = t->python = p;
    }
    struct py_frame frames[MT_MAX_DEPTH_LIMIT];
    uint32_t ids[MT_MAX_DEPTH_LIMIT];
    int n = walk(tstate, frames, max < MT_MAX_DEPTH_LIMIT ? max : MT_MAX_DEPTH_LIMIT);
    /* the unchanged outer frames, from the outermost in (the cache is
     * outermost first, frames innermost first) */
    int same = 0;
    while (same < n && same < c->count && same_frame(&frames[n - 1 - same], &c->frames[same])) {
        ids[n - 1 - same] = c->ids[same];
        same++;
    }
    int changed = n - same;
    if (changed > 0) {
        mt_python_lock();
        for (int i = 0; i < changed; i++) {
            ids[i] = frame_id(r, &frames[i], ts);
            c->frames[n - 1 - i] = frames[i];
            c->ids[n - 1 - i] = ids[i];
        }
        mt_python_unlock();
    }
    c->count = n;
    int depth = 0;
    for (int i = 0; i < n; i++)
        if (ids[i])
            ips[depth++] = MT_PYFRAME_ADDRESS(ids[i], frames[i].entry);
    return depth;
}

void mt_python_thread_exit(struct mt_thread *t)
{
    if (t->python) {
        mt_unmap(t->python, sizeof *t->python);
        t->python = NULL;
    }
}
