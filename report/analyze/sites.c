/* The stacks of a dump made sites (see sites.h).
 *
 * The log the pass hands the worker is a queue of chunks of bytes: the pass
 * fills one and hands it over when the next record does not fit in it (and
 * at the end), under the mutex; the worker takes them in order and replays
 * their records. A record in the log is a type byte (enum mt_record) and
 * its fields as varints (u) and strings (u length, then the bytes):
 *   MODULE_LOAD    u id, u load bias, str path, str build id, u nsegments,
 *                  nsegments x (u vaddr, u memsz, u flags)
 *   MODULE_UNLOAD  u id
 *   STACK          u depth, depth x zigzag(address - previous address)
 *   PYFRAME        u id, u line, str function, str file
 * When no thread can be started, the pass replays each chunk itself.
 */
#define _GNU_SOURCE
#include "sites.h"

#include <fnmatch.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memtrace/varint.h"
#include "util.h"

#define MAX_FRAMES_PER_ADDRESS 32
#define LOG_CHUNK (64u << 10)

/* ---- frames: each distinct frame once ------------------------------------ */

/* What tells apart frames with no function: the offset in their module,
 * or the address itself when no module holds it. */
static uint64_t frame_place(const struct sym_frame *f)
{
    return f->module ? f->module_offset : f->address;
}

static uint64_t frame_hash(const struct sym_frame *f)
{
    /* strings are interned by the symbolizer: pointers compare */
    uint64_t h = hash_mix(0x9e3779b97f4a7c15ull, (uintptr_t)f->function);
    h = hash_mix(h, (uintptr_t)f->file);
    h = hash_mix(h, (uint64_t)f->line);
    h = hash_mix(h, (uintptr_t)f->module);
    h = hash_mix(h, (uint64_t)f->inlined);
    h = hash_mix(h, (uint64_t)f->is_python);
    if (!f->function)
        h = hash_mix(h, frame_place(f));
    return h;
}

static int frame_equal(const struct sym_frame *a, const struct sym_frame *b)
{
    return a->function == b->function && a->file == b->file && a->line == b->line &&
           a->module == b->module && a->inlined == b->inlined && a->is_python == b->is_python &&
           (a->function || frame_place(a) == frame_place(b));
}

static uint64_t frame_hash_at(const void *a, uint32_t i)
{
    return frame_hash(&((const struct analysis *)a)->frames[i]);
}

static uint64_t site_hash_at(const void *a, uint32_t i)
{
    return ((const struct analysis *)a)->sites[i].hash;
}

/* Returns the index of frame f, adding it when new; UINT32_MAX on failure. */
static uint32_t intern_frame(struct analysis *a, const struct sym_frame *f)
{
    if ((a->nframes + 1) * 4 >= (a->frame_index_mask + 1) * 3 &&
        index_grow(&a->frame_index, &a->frame_index_mask, a->nframes, 1023, frame_hash_at, a) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)frame_hash(f) & a->frame_index_mask;
    for (; a->frame_index[i]; i = (i + 1) & a->frame_index_mask)
        if (frame_equal(&a->frames[a->frame_index[i] - 1], f))
            return a->frame_index[i] - 1;
    if (array_grow((void **)&a->frames, &a->frames_cap, sizeof *a->frames, a->nframes + 1) != 0)
        return UINT32_MAX;
    a->frames[a->nframes] = *f;
    a->frame_index[i] = ++a->nframes;
    return a->nframes - 1;
}

/* ---- sites: each distinct symbolized stack once -------------------------- */

static int frame_matches(const struct sym_frame *f, const char *pattern)
{
    const char *module_base = f->module ? strrchr(f->module, '/') : NULL;
    return (f->function && fnmatch(pattern, f->function, 0) == 0) ||
           (f->file && fnmatch(pattern, f->file, 0) == 0) ||
           (f->module && fnmatch(pattern, f->module, 0) == 0) ||
           (module_base && fnmatch(pattern, module_base + 1, 0) == 0);
}

static int filtered_out(const struct analysis *a, const uint32_t *frames, uint32_t n,
                        const struct analysis_options *o)
{
    for (int p = 0; p < o->nexclude; p++)
        for (uint32_t k = 0; k < n; k++)
            if (frame_matches(&a->frames[frames[k]], o->exclude[p]))
                return 1;
    if (o->ninclude == 0)
        return 0;
    for (int p = 0; p < o->ninclude; p++)
        for (uint32_t k = 0; k < n; k++)
            if (frame_matches(&a->frames[frames[k]], o->include[p]))
                return 0;
    return 1;
}

/* The site of a stack's frames (already appended at the end of
 * site_frames); a new site keeps them, an existing one drops them. */
static uint32_t intern_site(struct analysis *a, uint32_t first, uint32_t n,
                            const struct analysis_options *o)
{
    uint64_t h = 0x51afd7ed558ccdffull ^ n;
    for (uint32_t k = 0; k < n; k++)
        h = hash_mix(h, a->site_frames[first + k]);
    if ((a->nsites + 1) * 4 >= (a->site_index_mask + 1) * 3 &&
        index_grow(&a->site_index, &a->site_index_mask, a->nsites, 1023, site_hash_at, a) != 0)
        return UINT32_MAX;
    uint32_t i = (uint32_t)h & a->site_index_mask;
    for (; a->site_index[i]; i = (i + 1) & a->site_index_mask) {
        const struct site *s = &a->sites[a->site_index[i] - 1];
        if (s->hash == h && s->nframes == n &&
            memcmp(a->site_frames + s->first_frame, a->site_frames + first, n * 4ull) == 0) {
            a->site_frames_len = first; /* drop the copy */
            return a->site_index[i] - 1;
        }
    }
    if (array_grow((void **)&a->sites, &a->sites_cap, sizeof *a->sites, a->nsites + 1) != 0)
        return UINT32_MAX;
    struct site *s = &a->sites[a->nsites];
    memset(s, 0, sizeof *s);
    s->first_frame = first;
    s->nframes = n;
    s->hash = h;
    s->filtered_out = filtered_out(a, a->site_frames + first, n, o);
    a->site_index[i] = ++a->nsites;
    return a->nsites - 1;
}

/* ---- what each address's frames came to --------------------------------- */

/* Return address -> the frames stack_site appends for it (indexes of
 * a->frames, our own dropped), so that an address met in many stacks is
 * symbolized and its frames interned once: Python programs' stacks repeat
 * the interpreter's dozens of native frames. The interpreter loop's frame
 * is kept marked, as it stands for the stack's next Python call. Emptied
 * when a module is loaded or unloaded: what an address means follows the
 * modules of the moment. Also each Python frame's interned frame. */
struct memo_entry {
    uint64_t ip;
    uint32_t first, count; /* its frames: frames[first, first + count) */
    int eval;              /* one of them has MEMO_EVAL */
};

/* On a memo frame: the interpreter loop, replaced by the stack's next
 * Python call when it has one left. */
#define MEMO_EVAL 0x80000000u

struct ip_memo {
    struct memo_entry *entries;
    uint32_t nentries, entries_cap;
    uint32_t *index; /* entry ids (i + 1, 0 = empty) by a hash of ip */
    uint32_t index_mask;
    uint32_t *frames;
    uint32_t frames_len, frames_cap;
    /* the interned frame + 1 of each Python frame entry (0: not yet) */
    uint32_t *python;
    uint32_t python_cap;
};

static void memo_clear(struct ip_memo *m)
{
    if (m->index)
        memset(m->index, 0, ((size_t)m->index_mask + 1) * sizeof *m->index);
    m->nentries = 0;
    m->frames_len = 0;
}

static void memo_free(struct ip_memo *m)
{
    free(m->entries);
    free(m->index);
    free(m->frames);
    free(m->python);
    memset(m, 0, sizeof *m);
}

static inline uint64_t memo_hash(uint64_t ip) { return hash_mix(0x243f6a8885a308d3ull, ip); }

static uint64_t memo_hash_at(const void *m, uint32_t i)
{
    return memo_hash(((const struct ip_memo *)m)->entries[i].ip);
}

/* ip's entry, or NULL if it is not kept. */
static inline const struct memo_entry *memo_find(const struct ip_memo *m, uint64_t ip)
{
    if (!m->nentries)
        return NULL;
    for (uint32_t i = (uint32_t)memo_hash(ip) & m->index_mask; m->index[i];
         i = (i + 1) & m->index_mask)
        if (m->entries[m->index[i] - 1].ip == ip)
            return &m->entries[m->index[i] - 1];
    return NULL;
}

/* Keeps ip's frames (n of them, at the end of site_frames); nothing is
 * lost if there is no memory for it. */
static void memo_put(struct ip_memo *m, uint64_t ip, const uint32_t *frames, uint32_t n, int eval)
{
    if (((m->nentries + 1) * 4 >= (m->index_mask + 1) * 3 &&
         index_grow(&m->index, &m->index_mask, m->nentries, 4095, memo_hash_at, m) != 0) ||
        array_grow((void **)&m->entries, &m->entries_cap, sizeof *m->entries,
                   (uint64_t)m->nentries + 1) != 0 ||
        array_grow((void **)&m->frames, &m->frames_cap, sizeof *m->frames,
                   (uint64_t)m->frames_len + n) != 0)
        return;
    uint32_t i = (uint32_t)memo_hash(ip) & m->index_mask;
    while (m->index[i])
        i = (i + 1) & m->index_mask;
    m->entries[m->nentries] = (struct memo_entry){ip, m->frames_len, n, eval};
    m->index[i] = ++m->nentries;
    memcpy(m->frames + m->frames_len, frames, n * sizeof *frames);
    m->frames_len += n;
}

static int append_index(struct analysis *a, uint32_t f)
{
    if (array_grow((void **)&a->site_frames, &a->site_frames_cap, sizeof *a->site_frames,
                   (uint64_t)a->site_frames_len + 1) != 0)
        return -1;
    a->site_frames[a->site_frames_len++] = f;
    return 0;
}

/* Appends the Python frames ips[*next..] up to and including the next one
 * that entered the interpreter loop (all that are left if none did). */
static int append_python(struct analysis *a, struct ip_memo *memo, const uint64_t *ips,
                         uint64_t depth, uint64_t *next, int one_call)
{
    for (; *next < depth; (*next)++) {
        uint64_t ip = ips[*next];
        if (!MT_IS_PYFRAME(ip))
            continue;
        uint32_t e = python_frames_entry(&a->python, ip);
        uint32_t f = e < memo->python_cap && memo->python[e] ? memo->python[e] - 1 : UINT32_MAX;
        if (f == UINT32_MAX) {
            struct sym_frame unknown = {.function = NULL, .is_python = 1};
            f = intern_frame(a, e != UINT32_MAX ? &a->python.frames[e] : &unknown);
            if (f == UINT32_MAX)
                return -1;
            uint32_t cap = memo->python_cap;
            if (e != UINT32_MAX &&
                array_grow((void **)&memo->python, &cap, sizeof *memo->python, (uint64_t)e + 1) == 0) {
                memo->python_cap = cap;
                memo->python[e] = f + 1;
            }
        }
        if (append_index(a, f) != 0)
            return -1;
        if (one_call && MT_PYFRAME_IS_ENTRY(ip)) {
            (*next)++;
            break;
        }
    }
    return 0;
}

/* Appends an address's frames (as memo_put keeps them): each marked
 * interpreter loop replaced by the stack's next Python call, if any. */
static int append_frames(struct analysis *a, struct ip_memo *memo, const uint32_t *frames,
                         uint32_t n, int eval, const uint64_t *ips, uint64_t depth,
                         uint64_t *next_python)
{
    if (!eval) {
        if (array_grow((void **)&a->site_frames, &a->site_frames_cap, sizeof *a->site_frames,
                       (uint64_t)a->site_frames_len + n) != 0)
            return -1;
        memcpy(a->site_frames + a->site_frames_len, frames, n * sizeof *frames);
        a->site_frames_len += n;
        return 0;
    }
    for (uint32_t j = 0; j < n; j++) {
        int rc = !(frames[j] & MEMO_EVAL) ? append_index(a, frames[j])
                 : *next_python < depth   ? append_python(a, memo, ips, depth, next_python, 1)
                                          : append_index(a, frames[j] & ~MEMO_EVAL);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* The site of a stack: its frames, innermost first: native frames
 * symbolized (inlined ones expanded, our own dropped), each interpreter-loop
 * frame replaced by the Python frames it ran. UINT32_MAX when out of
 * memory. */
static uint32_t stack_site(struct analysis *a, const struct analysis_options *o,
                           struct ip_memo *memo, const uint64_t *ips, uint64_t depth)
{
    uint32_t first = a->site_frames_len;
    struct sym_frame out[MAX_FRAMES_PER_ADDRESS];
    uint32_t frames[MAX_FRAMES_PER_ADDRESS];
    uint64_t next_python = 0;
    while (next_python < depth && !MT_IS_PYFRAME(ips[next_python]))
        next_python++;
    for (uint64_t k = 0; k < depth; k++) {
        if (MT_IS_PYFRAME(ips[k]))
            continue;
        const struct memo_entry *known = memo_find(memo, ips[k]);
        if (known) {
            if (append_frames(a, memo, memo->frames + known->first, known->count, known->eval, ips,
                              depth, &next_python) != 0)
                return UINT32_MAX;
            continue;
        }
        uint32_t n = 0;
        int eval = 0;
        int found = symbolizer_lookup(a->symbolizer, ips[k], out, MAX_FRAMES_PER_ADDRESS);
        for (int j = 0; j < found; j++) {
            if (out[j].is_memtrace)
                continue;
            uint32_t f = intern_frame(a, &out[j]);
            if (f == UINT32_MAX || f >= MEMO_EVAL)
                return UINT32_MAX;
            int is_eval = python_frames_is_eval(&out[j]);
            eval |= is_eval;
            frames[n++] = f | (is_eval ? MEMO_EVAL : 0);
        }
        memo_put(memo, ips[k], frames, n, eval);
        if (append_frames(a, memo, frames, n, eval, ips, depth, &next_python) != 0)
            return UINT32_MAX;
    }
    /* native frames cut by --max-depth, or an interpreter not recognized */
    if (append_python(a, memo, ips, depth, &next_python, 0) != 0)
        return UINT32_MAX;
    return intern_site(a, first, a->site_frames_len - first, o);
}

/* ---- the log ------------------------------------------------------------- */

struct log_chunk {
    struct log_chunk *next;
    size_t len, cap;
    unsigned char bytes[];
};

struct site_builder {
    struct analysis *a;
    const struct analysis_options *o;
    struct log_chunk *filling; /* the pass's */
    int threaded;
    pthread_t thread;
    pthread_mutex_t lock; /* over head, tail and closed */
    pthread_cond_t wake;
    struct log_chunk *head, *tail;
    int closed;
    /* the worker's */
    int failed;
    uint32_t *site_of, nstacks, site_of_cap;
    uint64_t *ips;
    uint32_t ips_cap;
    struct dump_segment *segments;
    uint32_t segments_cap;
    struct ip_memo memo;
};

/* Reads a varint the pass wrote (a whole one: the log is never cut). */
static const unsigned char *get_u(const unsigned char *p, const unsigned char *end, uint64_t *v)
{
    *v = 0;
    int n = mt_varint_get(p, end, v);
    return p + (n > 0 ? n : 0);
}

static const unsigned char *get_str(const unsigned char *p, const unsigned char *end,
                                    const char **s, size_t *len)
{
    uint64_t n;
    p = get_u(p, end, &n);
    *s = (const char *)p;
    *len = (size_t)n;
    return p + n;
}

/* Replays the records of chunk c into the analysis (the worker's side).
 * 0, or -1 when out of memory. */
static int replay_chunk(struct site_builder *b, const struct log_chunk *c)
{
    struct analysis *a = b->a;
    const unsigned char *p = c->bytes, *end = c->bytes + c->len;
    while (p < end) {
        unsigned type = *p++;
        uint64_t id, bias, n, line, prev = 0;
        const char *path, *build_id, *function;
        size_t path_len, build_id_len, function_len;
        switch (type) {
        case MT_REC_MODULE_LOAD:
            p = get_u(p, end, &id);
            p = get_u(p, end, &bias);
            p = get_str(p, end, &path, &path_len);
            p = get_str(p, end, &build_id, &build_id_len);
            p = get_u(p, end, &n);
            if (array_grow((void **)&b->segments, &b->segments_cap, sizeof *b->segments, n) != 0)
                return -1;
            for (uint64_t i = 0; i < n; i++) {
                p = get_u(p, end, &b->segments[i].vaddr);
                p = get_u(p, end, &b->segments[i].memsz);
                p = get_u(p, end, &b->segments[i].flags);
            }
            symbolizer_module_load(a->symbolizer, id, path, path_len,
                                   (const unsigned char *)build_id, build_id_len, bias, n,
                                   b->segments);
            memo_clear(&b->memo);
            break;
        case MT_REC_MODULE_UNLOAD:
            p = get_u(p, end, &id);
            symbolizer_module_unload(a->symbolizer, id);
            memo_clear(&b->memo);
            break;
        case MT_REC_STACK:
            p = get_u(p, end, &n);
            if (array_grow((void **)&b->ips, &b->ips_cap, sizeof *b->ips, n) != 0 ||
                array_grow((void **)&b->site_of, &b->site_of_cap, sizeof *b->site_of,
                           (uint64_t)b->nstacks + 1) != 0)
                return -1;
            for (uint64_t i = 0; i < n; i++) {
                uint64_t delta;
                p = get_u(p, end, &delta);
                b->ips[i] = prev = prev + (uint64_t)mt_unzigzag(delta);
            }
            b->site_of[b->nstacks] = stack_site(a, b->o, &b->memo, b->ips, n);
            if (b->site_of[b->nstacks++] == UINT32_MAX)
                return -1;
            break;
        case MT_REC_PYFRAME:
            p = get_u(p, end, &id);
            p = get_u(p, end, &line);
            p = get_str(p, end, &function, &function_len);
            p = get_str(p, end, &path, &path_len);
            if (python_frames_add(&a->python, a->symbolizer, id, function, function_len, path,
                                  path_len, line) != 0)
                return -1;
            /* a frame named again: its interned frame changes */
            uint32_t e = python_frames_entry(&a->python, MT_PYFRAME_ADDRESS(id, 0));
            if (e < b->memo.python_cap)
                b->memo.python[e] = 0;
            break;
        default: /* cannot be: only the above are logged */
            return -1;
        }
    }
    return 0;
}

static void *worker(void *arg)
{
    struct site_builder *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->lock);
        while (!b->head && !b->closed)
            pthread_cond_wait(&b->wake, &b->lock);
        struct log_chunk *c = b->head;
        if (c && !(b->head = c->next))
            b->tail = NULL;
        pthread_mutex_unlock(&b->lock);
        if (!c)
            return NULL;
        if (!b->failed && replay_chunk(b, c) != 0)
            b->failed = 1;
        free(c);
    }
}

/* Hands the chunk being filled over to the worker (or replays it here). */
static void publish(struct site_builder *b)
{
    struct log_chunk *c = b->filling;
    b->filling = NULL;
    if (!c)
        return;
    if (!b->threaded) {
        if (!b->failed && replay_chunk(b, c) != 0)
            b->failed = 1;
        free(c);
        return;
    }
    pthread_mutex_lock(&b->lock);
    if (b->tail)
        b->tail->next = c;
    else
        b->head = c;
    b->tail = c;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
}

/* Where the next record, of at most n bytes, goes; NULL when out of memory. */
static unsigned char *log_room(struct site_builder *b, size_t n)
{
    struct log_chunk *c = b->filling;
    if (c && c->cap - c->len >= n)
        return c->bytes + c->len;
    publish(b);
    size_t cap = n > LOG_CHUNK ? n : LOG_CHUNK;
    c = malloc(sizeof *c + cap);
    if (!c)
        return NULL;
    *c = (struct log_chunk){NULL, 0, cap};
    b->filling = c;
    return c->bytes;
}

static unsigned char *put_str(unsigned char *q, const void *s, size_t len)
{
    q += mt_varint_put(q, len);
    if (len)
        memcpy(q, s, len);
    return q + len;
}

int site_builder_add(struct site_builder *b, const struct dump_record *rec)
{
    size_t most = 1 + 6 * MT_VARINT_MAX;
    if (rec->type == MT_REC_MODULE_LOAD)
        most += rec->path_len + rec->build_id_len + 3 * MT_VARINT_MAX * rec->nsegments;
    else if (rec->type == MT_REC_STACK)
        most += MT_VARINT_MAX * rec->depth;
    else if (rec->type == MT_REC_PYFRAME)
        most += rec->function_name_len + rec->path_len;
    unsigned char *start = log_room(b, most), *q = start;
    if (!q)
        return -1;
    *q++ = (unsigned char)rec->type;
    switch (rec->type) {
    case MT_REC_MODULE_LOAD:
        q += mt_varint_put(q, rec->id);
        q += mt_varint_put(q, rec->load_bias);
        q = put_str(q, rec->path, rec->path_len);
        q = put_str(q, rec->build_id, rec->build_id_len);
        q += mt_varint_put(q, rec->nsegments);
        for (uint64_t i = 0; i < rec->nsegments; i++) {
            q += mt_varint_put(q, rec->segments[i].vaddr);
            q += mt_varint_put(q, rec->segments[i].memsz);
            q += mt_varint_put(q, rec->segments[i].flags);
        }
        break;
    case MT_REC_MODULE_UNLOAD:
        q += mt_varint_put(q, rec->id);
        break;
    case MT_REC_STACK: {
        q += mt_varint_put(q, rec->depth);
        uint64_t prev = 0;
        for (uint64_t i = 0; i < rec->depth; i++) {
            q += mt_varint_put(q, mt_zigzag((int64_t)(rec->ips[i] - prev)));
            prev = rec->ips[i];
        }
        break;
    }
    case MT_REC_PYFRAME:
        q += mt_varint_put(q, rec->id);
        q += mt_varint_put(q, rec->line);
        q = put_str(q, rec->function_name, rec->function_name_len);
        q = put_str(q, rec->path, rec->path_len);
        break;
    default:
        return 0; /* not a record symbolizing needs */
    }
    b->filling->len += (size_t)(q - start);
    return 0;
}

/* ---- the builder ----------------------------------------------------------- */

struct site_builder *site_builder_new(struct analysis *a, const struct analysis_options *o)
{
    struct site_builder *b = calloc(1, sizeof *b);
    if (!b || !(a->symbolizer = symbolizer_new(&o->symbols))) {
        free(b);
        return NULL;
    }
    b->a = a;
    b->o = o;
    pthread_mutex_init(&b->lock, NULL);
    pthread_cond_init(&b->wake, NULL);
    b->threaded = pthread_create(&b->thread, NULL, worker, b) == 0;
    return b;
}

/* Ends the worker: it replays what it was handed unless drop, then stops. */
static void stop(struct site_builder *b, int drop)
{
    if (!drop)
        publish(b);
    free(b->filling);
    b->filling = NULL;
    if (!b->threaded)
        return;
    pthread_mutex_lock(&b->lock);
    while (drop && b->head) {
        struct log_chunk *c = b->head;
        b->head = c->next;
        free(c);
    }
    if (drop)
        b->tail = NULL;
    b->closed = 1;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->lock);
    pthread_join(b->thread, NULL);
}

static void builder_free(struct site_builder *b)
{
    pthread_mutex_destroy(&b->lock);
    pthread_cond_destroy(&b->wake);
    free(b->site_of);
    free(b->ips);
    free(b->segments);
    memo_free(&b->memo);
    free(b);
}

int site_builder_finish(struct site_builder *b, uint32_t **site_of, uint32_t *nstacks)
{
    stop(b, 0);
    int failed = b->failed;
    if (!failed) {
        *site_of = b->site_of;
        *nstacks = b->nstacks;
        b->site_of = NULL;
    }
    builder_free(b);
    return failed ? -1 : 0;
}

void site_builder_abandon(struct site_builder *b)
{
    stop(b, 1);
    builder_free(b);
}
