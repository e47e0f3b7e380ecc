/* Symbolizer (see symbolize.h), over elfutils' libdwfl.
 *
 * It owns the module map of the process being reported: a sorted array of
 * the loaded segments, each pointing to its module. Every module names a
 * module file: one per (path, build id), opened at its first lookup with its
 * own Dwfl, closed when no loaded module uses it, and holding the memo of
 * every lookup made in it, keyed by module offset (address - load bias), so a
 * library loaded again at another address keeps its answers.
 *
 * A Dwfl sees each file at its link-time addresses: a module offset is the
 * address libdwfl knows, plus the bias libdwfl reports (0 but for odd files).
 *
 * This file holds the module map, the memo, the interned strings and the
 * API; finding files and walking DWARF are dwarf_walk.c's.
 *
 * Runs in the report, never in the traced process: it may link the C++
 * runtime (for __cxa_demangle) and allocate with malloc. Strings handed out
 * live in an arena, interned, until symbolizer_free.
 */
#define _GNU_SOURCE
#include "symbolize_state.h"

#include "debug_cache.h"
#include "util.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <libelf.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* From the C++ runtime; declared here so that this file stays C. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

/* ------------------------------------------------------------------ strings */

static uint64_t hash_bytes(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3u;
    return h;
}

static const char *arena_copy(struct symbolizer *s, const char *str, size_t len)
{
    struct arena_block *b = s->arena;
    if (!b || b->cap - b->used < len + 1) {
        size_t cap = len + 1 > ARENA_BLOCK ? len + 1 : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->used = 0;
        b->cap = cap;
        b->next = s->arena;
        s->arena = b;
    }
    char *p = b->data + b->used;
    memcpy(p, str, len);
    p[len] = '\0';
    b->used += len + 1;
    return p;
}

/* The one stored copy of str[0, len): the same pointer for equal strings,
 * so the report can compare frames by pointer. NULL when out of memory. */
static const char *intern_len(struct symbolizer *s, const char *str, size_t len)
{
    if (2 * (s->strings_used + 1) > s->strings_cap) {
        size_t cap = s->strings_cap ? 2 * s->strings_cap : 1024;
        struct interned *t = calloc(cap, sizeof *t);
        if (!t)
            return NULL;
        for (size_t i = 0; i < s->strings_cap; i++) {
            if (!s->strings[i].str)
                continue;
            size_t j = s->strings[i].hash & (cap - 1);
            while (t[j].str)
                j = (j + 1) & (cap - 1);
            t[j] = s->strings[i];
        }
        free(s->strings);
        s->strings = t;
        s->strings_cap = cap;
    }
    uint64_t h = hash_bytes(str, len);
    size_t j = h & (s->strings_cap - 1);
    for (; s->strings[j].str; j = (j + 1) & (s->strings_cap - 1)) {
        struct interned *e = &s->strings[j];
        if (e->hash == h && e->len == len && memcmp(e->str, str, len) == 0)
            return e->str;
    }
    const char *copy = arena_copy(s, str, len);
    if (!copy)
        return NULL;
    s->strings[j] = (struct interned){copy, len, h};
    s->strings_used++;
    return copy;
}

const char *symbolizer_intern(struct symbolizer *s, const char *str, size_t len)
{
    return intern_len(s, str, len);
}

const char *sym_intern(struct symbolizer *s, const char *str)
{
    return str ? intern_len(s, str, strlen(str)) : NULL;
}

/* A function name as people read it: C++ (Itanium ABI) names demangled,
 * anything else as it is. */
const char *sym_intern_function(struct symbolizer *s, const char *name)
{
    if (!name)
        return NULL;
    if (name[0] == '_' && name[1] == 'Z') {
        int status = -1;
        char *plain = __cxa_demangle(name, NULL, NULL, &status);
        if (plain && status == 0) {
            const char *r = sym_intern(s, plain);
            free(plain);
            return r;
        }
        free(plain);
    }
    return sym_intern(s, name);
}

/* malloc'd "a" "b" "c" (b and c may be NULL), or NULL when out of memory. */
char *sym_concat(const char *a, const char *b, const char *c)
{
    char *r;
    if (asprintf(&r, "%s%s%s", a, b ? b : "", c ? c : "") < 0)
        return NULL;
    return r;
}

/* ------------------------------------------------------------------ memo */

static size_t memo_index(const struct module_file *f, uint64_t offset)
{
    return (size_t)((offset * 0x9e3779b97f4a7c15u) >> 17) & (f->memo_cap - 1);
}

/* The memo slot of offset, or NULL when the module file has none yet. */
static struct memo_slot *memo_find(struct module_file *f, uint64_t offset)
{
    if (!f->memo_cap)
        return NULL;
    size_t i = memo_index(f, offset);
    while (f->memo[i].count && f->memo[i].offset != offset)
        i = (i + 1) & (f->memo_cap - 1);
    return f->memo[i].count ? &f->memo[i] : NULL;
}

/* Remembers that offset's frames are s->frames[first, first + count).
 * 0, or -1 when out of memory (the answer is then just not remembered). */
static int memo_insert(struct module_file *f, uint64_t offset, size_t first, uint32_t count)
{
    if (2 * (f->memo_used + 1) > f->memo_cap) {
        size_t old_cap = f->memo_cap, cap = old_cap ? 2 * old_cap : MEMO_INITIAL;
        struct memo_slot *old = f->memo, *t = calloc(cap, sizeof *t);
        if (!t)
            return -1;
        f->memo = t;
        f->memo_cap = cap;
        for (size_t i = 0; i < old_cap; i++) {
            if (!old[i].count)
                continue;
            size_t j = memo_index(f, old[i].offset);
            while (t[j].count)
                j = (j + 1) & (cap - 1);
            t[j] = old[i];
        }
        free(old);
    }
    size_t i = memo_index(f, offset);
    while (f->memo[i].count)
        i = (i + 1) & (f->memo_cap - 1);
    f->memo[i] = (struct memo_slot){offset, first, count};
    f->memo_used++;
    return 0;
}

/* Appends frames to the store. Index of the first, or SIZE_MAX when out of
 * memory. */
static size_t frames_append(struct symbolizer *s, const struct cached_frame *frames, int n)
{
    if (s->nframes + (size_t)n > s->frames_cap) {
        size_t cap = s->frames_cap ? 2 * s->frames_cap : 4096;
        while (cap < s->nframes + (size_t)n)
            cap *= 2;
        struct cached_frame *t = realloc(s->frames, cap * sizeof *t);
        if (!t)
            return SIZE_MAX;
        s->frames = t;
        s->frames_cap = cap;
    }
    memcpy(s->frames + s->nframes, frames, (size_t)n * sizeof *frames);
    s->nframes += (size_t)n;
    return s->nframes - (size_t)n;
}

/* ------------------------------------------------------------------ module map */

/* The module whose segment holds address, or NULL. */
static struct module *module_at(const struct symbolizer *s, uint64_t address)
{
    size_t lo = 0, hi = s->nranges; /* find the last range starting <= address */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->ranges[mid].start <= address)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0 || address >= s->ranges[lo - 1].end)
        return NULL;
    return s->ranges[lo - 1].module;
}

/* Maps [start, end) to m. What it overlaps belonged to a module whose
 * unload was never recorded: the newer mapping wins. 0 or -1. */
static int range_insert(struct symbolizer *s, uint64_t start, uint64_t end, struct module *m)
{
    size_t kept = 0;
    for (size_t i = 0; i < s->nranges; i++)
        if (s->ranges[i].end <= start || s->ranges[i].start >= end)
            s->ranges[kept++] = s->ranges[i];
    s->nranges = kept;
    if (s->nranges == s->ranges_cap) {
        size_t cap = s->ranges_cap ? 2 * s->ranges_cap : 64;
        struct range *t = realloc(s->ranges, cap * sizeof *t);
        if (!t)
            return -1;
        s->ranges = t;
        s->ranges_cap = cap;
    }
    size_t at = s->nranges;
    while (at > 0 && s->ranges[at - 1].start > start)
        at--;
    memmove(s->ranges + at + 1, s->ranges + at, (s->nranges - at) * sizeof *s->ranges);
    s->ranges[at] = (struct range){start, end, m};
    s->nranges++;
    return 0;
}

/* The module file of (path, build id), found or made. NULL when out of
 * memory. */
static struct module_file *file_get(struct symbolizer *s, const char *path, size_t path_len,
                                    const unsigned char *build_id, size_t build_id_len)
{
    const char *name = intern_len(s, path, path_len);
    if (!name)
        return NULL;
    for (struct module_file *f = s->files; f; f = f->next)
        if (f->path == name && f->build_id_len == build_id_len &&
            (build_id_len == 0 || memcmp(f->build_id, build_id, build_id_len) == 0))
            return f;
    struct module_file *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (build_id_len) {
        f->build_id = malloc(build_id_len);
        if (!f->build_id) {
            free(f);
            return NULL;
        }
        memcpy(f->build_id, build_id, build_id_len);
    }
    f->owner = s;
    f->path = name;
    f->build_id_len = build_id_len;
    f->low = UINT64_MAX;
    const char *base = path_base_name(name);
    f->no_file = name[0] == '\0' || name[0] == '[' || strncmp(name, "linux-vdso", 10) == 0 ||
                 strncmp(name, "linux-gate", 10) == 0;
    f->is_memtrace = strncmp(base, "libmemtrace.so", 14) == 0 && (!base[14] || base[14] == '.');
    f->next = s->files;
    s->files = f;
    return f;
}

/* ------------------------------------------------------------------ API */

struct symbolizer *symbolizer_new(const struct symbolizer_options *o)
{
    elf_version(EV_CURRENT);
    struct symbolizer *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (o && o->sysroot && o->sysroot[0]) {
        s->sysroot = strdup(o->sysroot);
        if (!s->sysroot)
            goto fail;
        size_t n = strlen(s->sysroot); /* "/srv/root/" -> "/srv/root"; "/" -> "" */
        while (n > 0 && s->sysroot[n - 1] == '/')
            s->sysroot[--n] = '\0';
    }
    if (o && o->debug_dir && o->debug_dir[0]) {
        /* absolute: libdwfl reads a relative entry as relative to each module */
        s->debug_dir = o->debug_dir[0] == '/' ? strdup(o->debug_dir) : realpath(o->debug_dir, NULL);
        if (!s->debug_dir)
            s->debug_dir = strdup(o->debug_dir);
        if (!s->debug_dir)
            goto fail;
    }
    s->cache_dir = debug_cache_dir();
    /* libdwfl's debuginfo path: absolute entries are searched for
     * DIR/<module's dir>/LINK and DIR/.build-id/xx/yyyy.debug, "" and ".debug"
     * beside the module. */
    char *sys_debug = s->sysroot ? sym_concat(s->sysroot, "/usr/lib/debug:", NULL) : NULL;
    if (asprintf(&s->debuginfo_path, "%s%s%s:.debug:/usr/lib/debug",
                 s->debug_dir ? s->debug_dir : "", s->debug_dir ? ":" : "",
                 sys_debug ? sys_debug : "") < 0)
        s->debuginfo_path = NULL;
    free(sys_debug);
    if (!s->debuginfo_path)
        goto fail;
    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo = sym_find_debuginfo;
    s->callbacks.section_address = dwfl_offline_section_address;
    s->callbacks.debuginfo_path = &s->debuginfo_path;
    return s;
fail:
    symbolizer_free(s);
    return NULL;
}

void symbolizer_free(struct symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nmodules; i++)
        free(s->modules[i]);
    for (struct module_file *f = s->files, *next; f; f = next) {
        next = f->next;
        sym_file_release(f);
        free(f->build_id);
        free(f->memo);
        free(f);
    }
    for (struct arena_block *b = s->arena, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(s->modules);
    free(s->ranges);
    free(s->frames);
    free(s->strings);
    free(s->sysroot);
    free(s->debug_dir);
    free(s->debuginfo_path);
    free(s->cache_dir);
    free(s);
}

int symbolizer_module_load(struct symbolizer *s, uint64_t id, const char *path, size_t path_len,
                           const unsigned char *build_id, size_t build_id_len, uint64_t bias,
                           uint64_t nsegments, const struct dump_segment *segments)
{
    symbolizer_module_unload(s, id); /* an id reused without its unload */
    struct module_file *f =
        file_get(s, path ? path : "", path ? path_len : 0, build_id, build_id ? build_id_len : 0);
    struct module *m = f ? malloc(sizeof *m) : NULL;
    if (!m)
        return -1;
    if (s->nmodules == s->modules_cap) {
        size_t cap = s->modules_cap ? 2 * s->modules_cap : 32;
        struct module **t = realloc(s->modules, cap * sizeof *t);
        if (!t) {
            free(m);
            return -1;
        }
        s->modules = t;
        s->modules_cap = cap;
    }
    *m = (struct module){id, bias, f};
    s->modules[s->nmodules++] = m;
    f->refs++;
    for (uint64_t i = 0; i < nsegments; i++) {
        uint64_t vaddr = segments[i].vaddr, memsz = segments[i].memsz;
        if (memsz == 0 || vaddr + memsz < vaddr || bias + vaddr < bias ||
            bias + vaddr + memsz < bias + vaddr)
            continue; /* empty, or wraps around: not a real mapping */
        if (vaddr < f->low)
            f->low = vaddr & ~(uint64_t)0xfff;
        if (vaddr + memsz > f->high)
            f->high = vaddr + memsz;
        if (range_insert(s, bias + vaddr, bias + vaddr + memsz, m) != 0)
            return -1;
    }
    return 0;
}

void symbolizer_module_unload(struct symbolizer *s, uint64_t id)
{
    size_t i = 0;
    while (i < s->nmodules && s->modules[i]->id != id)
        i++;
    if (i == s->nmodules)
        return;
    struct module *m = s->modules[i];
    s->modules[i] = s->modules[--s->nmodules];
    size_t kept = 0;
    for (size_t r = 0; r < s->nranges; r++)
        if (s->ranges[r].module != m)
            s->ranges[kept++] = s->ranges[r];
    s->nranges = kept;
    if (--m->file->refs == 0)
        sym_file_release(m->file); /* its memo stays: the strings must anyway */
    free(m);
}

int symbolizer_lookup(struct symbolizer *s, uint64_t return_address, struct sym_frame *out, int max)
{
    if (!s || !out || max < 1)
        return 0;
    struct module *m = module_at(s, return_address);
    if (!m) {
        out[0] = (struct sym_frame){.address = return_address};
        return 1;
    }
    struct module_file *f = m->file;
    uint64_t offset = return_address - m->bias;
    struct cached_frame fresh[MAX_FRAMES];
    const struct cached_frame *frames = fresh;
    int n;
    struct memo_slot *slot = memo_find(f, offset);
    if (slot) {
        frames = s->frames + slot->first;
        n = (int)slot->count;
    } else {
        if (!f->tried)
            sym_file_open(s, f);
        /* the call instruction ends just before the return address */
        uint64_t pc = offset ? offset - 1 : 0;
        n = f->mod ? sym_resolve(s, f, pc, fresh) : 0;
        if (n == 0)
            fresh[n++] = (struct cached_frame){NULL, NULL, 0, 0};
        size_t first = frames_append(s, fresh, n);
        if (first != SIZE_MAX)
            memo_insert(f, offset, first, (uint32_t)n);
    }
    if (n > max)
        n = max;
    for (int i = 0; i < n; i++)
        out[i] = (struct sym_frame){.function = frames[i].function,
                                    .file = frames[i].file,
                                    .line = frames[i].line,
                                    .module = f->path,
                                    .address = return_address,
                                    .module_offset = offset,
                                    .inlined = frames[i].inlined,
                                    .is_memtrace = f->is_memtrace};
    return n;
}
