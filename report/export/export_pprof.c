/* pprof export (see export_pprof.h): the protobuf is encoded by hand, it is
 * small (Profile, ValueType, Sample, Location, Line, Function, Mapping and
 * the string table), then deflated with zlib's gzip wrapper.
 *
 * The profile is built in memory: it grows with the sites and the distinct
 * frames of the analysis, never with the number of events. Two passes: the
 * first interns every string, function, location and mapping (ids are
 * 1-based, 0 means none); the second encodes the messages.
 */
#include "export_pprof.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "util.h"

/* ---- protobuf writing ---------------------------------------------------- */

/* A growable byte buffer; a failed allocation sets failed and drops writes. */
struct pb {
    unsigned char *data;
    size_t len, cap;
    int failed;
};

static void pb_raw(struct pb *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        unsigned char *d = realloc(b->data, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void pb_varint(struct pb *b, uint64_t v)
{
    unsigned char buf[10];
    size_t n = 0;
    do {
        buf[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    pb_raw(b, buf, n);
}

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void pb_key(struct pb *b, unsigned field, unsigned wire)
{
    pb_varint(b, (uint64_t)field << 3 | wire);
}

/* A varint field; proto3 leaves zeros out. */
static void pb_uint(struct pb *b, unsigned field, uint64_t v)
{
    if (v) {
        pb_key(b, field, WIRE_VARINT);
        pb_varint(b, v);
    }
}

static void pb_bytes(struct pb *b, unsigned field, const void *p, size_t n)
{
    pb_key(b, field, WIRE_LEN);
    pb_varint(b, n);
    pb_raw(b, p, n);
}

/* A submessage already encoded in sub; sub is emptied for reuse. */
static void pb_message(struct pb *b, unsigned field, struct pb *sub)
{
    if (sub->failed)
        b->failed = 1;
    pb_bytes(b, field, sub->data, sub->len);
    sub->len = 0;
}

/* A packed repeated varint field, through the scratch buffer tmp. */
static void pb_packed(struct pb *b, unsigned field, const uint64_t *v, size_t n, struct pb *tmp)
{
    if (!n)
        return;
    for (size_t i = 0; i < n; i++)
        pb_varint(tmp, v[i]);
    pb_message(b, field, tmp);
}

/* ---- interning: tuples of words to 1-based ids --------------------------- */

struct tuple_entry {
    uint64_t hash;
    uint32_t first, n; /* words[first .. first+n) */
};

struct tuple_map {
    uint32_t *slots; /* entry index + 1, 0 = empty */
    uint32_t mask;
    struct tuple_entry *entries;
    uint32_t count, entries_cap;
    uint64_t *words;
    uint32_t nwords, words_cap;
};

static uint64_t tuple_hash(const uint64_t *key, uint32_t n)
{
    uint64_t h = 0x2545f4914f6cdd1dull ^ n;
    for (uint32_t i = 0; i < n; i++)
        h = hash_mix(h, key[i]);
    return h;
}

static uint64_t tuple_hash_at(const void *m, uint32_t e)
{
    return ((const struct tuple_map *)m)->entries[e].hash;
}

/* The id of key (1-based), added when new (*added = 1); 0 when out of
 * memory. */
static uint32_t tuple_intern(struct tuple_map *m, const uint64_t *key, uint32_t n, int *added)
{
    *added = 0;
    if ((m->count + 1) * 4 >= (m->mask + 1) * 3 && index_grow(&m->slots, &m->mask, m->count, 255, tuple_hash_at, m) != 0)
        return 0;
    uint64_t h = tuple_hash(key, n);
    uint32_t i = (uint32_t)h & m->mask;
    for (; m->slots[i]; i = (i + 1) & m->mask) {
        const struct tuple_entry *e = &m->entries[m->slots[i] - 1];
        if (e->hash == h && e->n == n && memcmp(m->words + e->first, key, n * 8ull) == 0)
            return m->slots[i];
    }
    if (array_grow((void **)&m->entries, &m->entries_cap, sizeof *m->entries, m->count + 1) != 0 ||
        array_grow((void **)&m->words, &m->words_cap, sizeof *m->words, (uint64_t)m->nwords + n) !=
            0)
        return 0;
    memcpy(m->words + m->nwords, key, n * 8ull);
    m->entries[m->count] = (struct tuple_entry){h, m->nwords, n};
    m->nwords += n;
    m->slots[i] = ++m->count;
    *added = 1;
    return m->count;
}

static void tuple_free(struct tuple_map *m)
{
    free(m->slots);
    free(m->entries);
    free(m->words);
}

/* ---- the profile being built --------------------------------------------- */

struct pprof_mapping {
    uint32_t filename; /* string index */
    uint64_t bias, low, high;
    int has_functions, all_functions;
};

struct pprof_location {
    uint32_t first, n; /* frames: a->site_frames[first .. first+n) */
    uint32_t mapping;  /* id, 0 = none */
    uint64_t address;
};

struct pprof_sample {
    uint32_t site;
    uint32_t first_location, nlocations; /* into builder.sample_locations */
};

struct builder {
    const struct analysis *a;
    const char **strings; /* the string table; [0] = "" */
    uint32_t nstrings, strings_cap;
    uint32_t *string_slots, string_mask; /* hash of the content -> index */
    struct tuple_map functions;          /* key: name, filename (string indexes) */
    struct tuple_map locations;          /* key: frame indexes */
    struct tuple_map mappings;           /* key: filename, bias */
    struct pprof_location *location_info;
    uint32_t location_cap;
    struct pprof_mapping *mapping_info;
    uint32_t mapping_cap;
    uint64_t *sample_locations;
    uint32_t nsample_locations, sample_locations_cap;
    struct pprof_sample *samples;
    uint32_t nsamples, samples_cap;
    int failed;
};

static uint64_t string_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

/* The index of s in the string table (NULL is ""), added when new. */
static uint32_t intern_string(struct builder *b, const char *s)
{
    if (!s || !*s)
        return 0;
    if ((b->nstrings + 1) * 2 >= b->string_mask + 1) {
        uint32_t mask = b->string_mask ? b->string_mask * 2 + 1 : 1023;
        uint32_t *slots = calloc((size_t)mask + 1, sizeof *slots);
        if (!slots)
            return b->failed = 1, 0;
        for (uint32_t k = 1; k < b->nstrings; k++) {
            uint32_t i = (uint32_t)string_hash(b->strings[k]) & mask;
            while (slots[i])
                i = (i + 1) & mask;
            slots[i] = k;
        }
        free(b->string_slots);
        b->string_slots = slots;
        b->string_mask = mask;
    }
    uint32_t i = (uint32_t)string_hash(s) & b->string_mask;
    for (; b->string_slots[i]; i = (i + 1) & b->string_mask)
        if (strcmp(b->strings[b->string_slots[i]], s) == 0)
            return b->string_slots[i];
    if (array_grow((void **)&b->strings, &b->strings_cap, sizeof *b->strings, b->nstrings + 1) != 0)
        return b->failed = 1, 0;
    b->strings[b->nstrings] = s;
    b->string_slots[i] = b->nstrings;
    return b->nstrings++;
}

/* The mapping of a location's outermost frame (0 when it has no module). */
static uint32_t intern_mapping(struct builder *b, const struct sym_frame *f, uint64_t address,
                               int all_functions)
{
    if (!f->module)
        return 0;
    uint64_t key[2] = {intern_string(b, f->module), f->address - f->module_offset};
    int added;
    uint32_t id = tuple_intern(&b->mappings, key, 2, &added);
    if (!id ||
        array_grow((void **)&b->mapping_info, &b->mapping_cap, sizeof *b->mapping_info, id) != 0)
        return b->failed = 1, 0;
    struct pprof_mapping *m = &b->mapping_info[id - 1];
    if (added)
        *m = (struct pprof_mapping){(uint32_t)key[0], key[1], address, address, 0, 1};
    if (address < m->low)
        m->low = address;
    if (address > m->high)
        m->high = address;
    if (all_functions)
        m->has_functions = 1;
    else
        m->all_functions = 0;
    return id;
}

/* The location of frames [first, first+n) of a->site_frames: the inlined
 * frames and the one they were inlined into. 0 on failure. */
static uint32_t intern_location(struct builder *b, uint32_t first, uint32_t n)
{
    const struct analysis *a = b->a;
    uint64_t key[64];
    if (n > 64)
        n = 64; /* MAX_FRAMES_PER_ADDRESS of the analysis is 32 */
    for (uint32_t k = 0; k < n; k++)
        key[k] = a->site_frames[first + k];
    int added;
    uint32_t id = tuple_intern(&b->locations, key, n, &added);
    if (!id ||
        array_grow((void **)&b->location_info, &b->location_cap, sizeof *b->location_info, id) != 0)
        return b->failed = 1, 0;
    if (!added)
        return id;
    const struct sym_frame *outer = &a->frames[a->site_frames[first + n - 1]];
    int all_functions = 1;
    for (uint32_t k = 0; k < n; k++) {
        const struct sym_frame *f = &a->frames[a->site_frames[first + k]];
        if (!f->function) {
            all_functions = 0;
            continue;
        }
        uint64_t fkey[2] = {intern_string(b, f->function), intern_string(b, f->file)};
        int fadded;
        if (!tuple_intern(&b->functions, fkey, 2, &fadded))
            return b->failed = 1, 0;
    }
    /* a return address: the call is the instruction before it */
    uint64_t address = outer->address ? outer->address - 1 : 0;
    b->location_info[id - 1] = (struct pprof_location){first, n, 0, address};
    b->location_info[id - 1].mapping = intern_mapping(b, outer, address, all_functions);
    return id;
}

static uint32_t function_id(struct builder *b, const struct sym_frame *f)
{
    uint64_t key[2] = {intern_string(b, f->function), intern_string(b, f->file)};
    int added;
    return tuple_intern(&b->functions, key, 2, &added);
}

/* Pass 1 for one site: its locations, innermost first. */
static int add_sample(struct builder *b, uint32_t site)
{
    const struct site *s = &b->a->sites[site];
    const uint32_t *frames = site_frame_list(b->a, s);
    uint32_t start = b->nsample_locations;
    for (uint32_t k = 0; k < s->nframes;) {
        uint32_t n = 1;
        while (k + n - 1 < s->nframes - 1 && b->a->frames[frames[k + n - 1]].inlined)
            n++;
        uint32_t id = intern_location(b, s->first_frame + k, n);
        if (!id || array_grow((void **)&b->sample_locations, &b->sample_locations_cap,
                              sizeof *b->sample_locations, (uint64_t)b->nsample_locations + 1) != 0)
            return -1;
        b->sample_locations[b->nsample_locations++] = id;
        k += n;
    }
    if (array_grow((void **)&b->samples, &b->samples_cap, sizeof *b->samples, b->nsamples + 1) != 0)
        return -1;
    b->samples[b->nsamples++] = (struct pprof_sample){site, start, b->nsample_locations - start};
    return b->failed ? -1 : 0;
}

static void builder_free(struct builder *b)
{
    free(b->strings);
    free(b->string_slots);
    tuple_free(&b->functions);
    tuple_free(&b->locations);
    tuple_free(&b->mappings);
    free(b->location_info);
    free(b->mapping_info);
    free(b->sample_locations);
    free(b->samples);
}

/* ---- metrics ------------------------------------------------------------- */

enum value {
    V_ALLOC_OBJECTS,
    V_ALLOC_SPACE,
    V_INUSE_OBJECTS,
    V_INUSE_SPACE,
    V_EXTRA_OBJECTS,
    V_EXTRA_SPACE
};

struct metric {
    const char *name;
    const char *extra; /* prefix of the two extra sample types, or NULL */
    enum value default_value;
};

static const struct metric metrics[] = {
    {"leaked", NULL, V_INUSE_SPACE},
    {"peak", "peak", V_EXTRA_SPACE},
    {"allocated", NULL, V_ALLOC_SPACE},
    {"allocations", NULL, V_ALLOC_OBJECTS},
    {"temporary", "temporary", V_EXTRA_OBJECTS},
};

static int site_values(const struct analysis *a, const struct site *s, const struct metric *m,
                       uint64_t *v)
{
    v[V_ALLOC_OBJECTS] = s->allocations;
    v[V_ALLOC_SPACE] = s->bytes_allocated;
    v[V_INUSE_OBJECTS] = s->leaked_blocks;
    v[V_INUSE_SPACE] = s->leaked_bytes;
    int n = 4;
    if (m->extra && strcmp(m->extra, "peak") == 0) {
        int64_t blocks = site_peak_blocks(a, s), bytes = site_peak_bytes(a, s);
        v[V_EXTRA_OBJECTS] = blocks > 0 ? (uint64_t)blocks : 0;
        v[V_EXTRA_SPACE] = bytes > 0 ? (uint64_t)bytes : 0;
        n = 6;
    } else if (m->extra) {
        v[V_EXTRA_OBJECTS] = s->temporary;
        v[V_EXTRA_SPACE] = s->temporary_bytes;
        n = 6;
    }
    for (int k = 0; k < n; k++)
        if (v[k])
            return n;
    return 0; /* nothing to show */
}

/* ---- encoding ------------------------------------------------------------ */

static void encode(struct builder *b, const struct dump_reader *r, const struct metric *m,
                   const uint32_t *type_names, int ntypes, const uint32_t *comments, int ncomments,
                   struct pb *out)
{
    const struct analysis *a = b->a;
    struct pb sub = {0}, tmp = {0};
    uint64_t words[64];
    uint32_t bytes_unit = intern_string(b, "bytes"), count_unit = intern_string(b, "count");
    uint32_t space = intern_string(b, "space");
    for (int k = 0; k < ntypes; k++) { /* 1: sample_type */
        pb_uint(&sub, 1, type_names[k]);
        pb_uint(&sub, 2, k % 2 ? bytes_unit : count_unit);
        pb_message(out, 1, &sub);
    }
    for (uint32_t i = 0; i < b->nsamples; i++) { /* 2: sample */
        const struct pprof_sample *s = &b->samples[i];
        pb_packed(&sub, 1, b->sample_locations + s->first_location, s->nlocations, &tmp);
        int n = site_values(a, &a->sites[s->site], m, words);
        pb_packed(&sub, 2, words, (size_t)n, &tmp);
        pb_message(out, 2, &sub);
    }
    for (uint32_t id = 1; id <= b->mappings.count; id++) { /* 3: mapping */
        const struct pprof_mapping *mp = &b->mapping_info[id - 1];
        pb_uint(&sub, 1, id);
        pb_uint(&sub, 2, mp->low);
        pb_uint(&sub, 3, mp->high + 1);
        pb_uint(&sub, 4, mp->low - mp->bias);
        pb_uint(&sub, 5, mp->filename);
        int symbolized = mp->has_functions && mp->all_functions;
        for (unsigned field = 7; field <= 10; field++) /* has_functions ... has_inline_frames */
            pb_uint(&sub, field, (uint64_t)symbolized);
        pb_message(out, 3, &sub);
    }
    for (uint32_t id = 1; id <= b->locations.count; id++) { /* 4: location */
        const struct pprof_location *l = &b->location_info[id - 1];
        pb_uint(&sub, 1, id);
        pb_uint(&sub, 2, l->mapping);
        pb_uint(&sub, 3, l->address);
        for (uint32_t k = 0; k < l->n; k++) { /* Line, innermost first */
            const struct sym_frame *f = &a->frames[a->site_frames[l->first + k]];
            if (!f->function)
                continue;
            pb_uint(&tmp, 1, function_id(b, f));
            pb_uint(&tmp, 2, f->line > 0 ? (uint64_t)f->line : 0);
            pb_message(&sub, 4, &tmp);
        }
        pb_message(out, 4, &sub);
    }
    for (uint32_t id = 1; id <= b->functions.count; id++) { /* 5: function */
        const uint64_t *key = b->functions.words + b->functions.entries[id - 1].first;
        pb_uint(&sub, 1, id);
        pb_uint(&sub, 2, key[0]);
        pb_uint(&sub, 3, key[0]);
        pb_uint(&sub, 4, key[1]);
        pb_message(out, 5, &sub);
    }
    for (uint32_t k = 0; k < b->nstrings; k++) /* 6: string_table */
        pb_bytes(out, 6, b->strings[k], strlen(b->strings[k]));
    pb_uint(out, 9, r->process.start_realtime_ns); /* time_nanos */
    pb_uint(out, 10, a->summary.duration_ns);      /* duration_nanos */
    pb_uint(&sub, 1, space);                       /* period_type: space/bytes */
    pb_uint(&sub, 2, bytes_unit);
    pb_message(out, 11, &sub);
    pb_uint(out, 12, 1); /* period: every allocation is recorded */
    for (int k = 0; k < ncomments; k++)
        words[k] = comments[k];
    pb_packed(out, 13, words, (size_t)ncomments, &tmp);
    pb_uint(out, 14, type_names[m->default_value]); /* default_sample_type */
    if (sub.failed || tmp.failed)
        out->failed = 1;
    free(sub.data);
    free(tmp.data);
}

static int write_gzip(FILE *out, const struct pb *p)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    unsigned char chunk[65536];
    z.next_in = p->data;
    z.avail_in = (uInt)p->len;
    int ret;
    do {
        z.next_out = chunk;
        z.avail_out = sizeof chunk;
        ret = deflate(&z, Z_FINISH);
        size_t n = sizeof chunk - z.avail_out;
        if (ret == Z_STREAM_ERROR || fwrite(chunk, 1, n, out) != n) {
            deflateEnd(&z);
            return -1;
        }
    } while (ret != Z_STREAM_END);
    deflateEnd(&z);
    return fflush(out) == 0 && !ferror(out) ? 0 : -1;
}

int flamegraph_pprof(FILE *out, const struct dump_reader *r, const struct analysis *a,
                     const char *metric)
{
    const struct metric *m = NULL;
    for (size_t k = 0; k < sizeof metrics / sizeof *metrics; k++)
        if (!metric || strcmp(metric, metrics[k].name) == 0) {
            m = &metrics[k];
            break;
        }
    if (!m) {
        fprintf(stderr,
                "memtrace: pprof: unknown metric '%s' (leaked, peak, allocated, "
                "allocations or temporary)\n",
                metric);
        return -1;
    }
    if (a->site_frames_len > UINT32_MAX / 2) {
        fputs("memtrace: pprof: too many frames for one profile\n", stderr);
        return -1;
    }
    struct builder b = {.a = a};
    struct pb proto = {0};
    int rc = -1;
    if (array_grow((void **)&b.strings, &b.strings_cap, sizeof *b.strings, 1) != 0)
        goto oom;
    b.strings[0] = "";
    b.nstrings = 1;
    char extra[2][32];
    uint32_t types[6];
    int ntypes = 4;
    types[V_ALLOC_OBJECTS] = intern_string(&b, "alloc_objects");
    types[V_ALLOC_SPACE] = intern_string(&b, "alloc_space");
    types[V_INUSE_OBJECTS] = intern_string(&b, "inuse_objects");
    types[V_INUSE_SPACE] = intern_string(&b, "inuse_space");
    if (m->extra) {
        snprintf(extra[0], sizeof extra[0], "%s_objects", m->extra);
        snprintf(extra[1], sizeof extra[1], "%s_space", m->extra);
        types[V_EXTRA_OBJECTS] = intern_string(&b, extra[0]);
        types[V_EXTRA_SPACE] = intern_string(&b, extra[1]);
        ntypes = 6;
    }
    uint32_t comments[2] = {
        intern_string(&b, "memtrace: inuse_* are the blocks not freed when the process ended; "
                          "alloc_* every allocation"),
        intern_string(&b, r->process.exe)};
    uint64_t values[6];
    for (uint32_t i = 0; i < a->nsites && !b.failed; i++)
        if (!a->sites[i].filtered_out && site_values(a, &a->sites[i], m, values) &&
            add_sample(&b, i) != 0)
            goto oom;
    if (b.failed)
        goto oom;
    encode(&b, r, m, types, ntypes, comments, r->process.exe ? 2 : 1, &proto);
    if (proto.failed || b.failed)
        goto oom;
    if (write_gzip(out, &proto) != 0)
        fputs("memtrace: pprof: cannot write the profile (disk full?)\n", stderr);
    else
        rc = 0;
    goto done;
oom:
    fputs("memtrace: pprof: out of memory while building the profile\n", stderr);
done:
    free(proto.data);
    builder_free(&b);
    return rc;
}
