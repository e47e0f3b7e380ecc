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
 * Runs in the report, never in the traced process: it may link the C++
 * runtime (for __cxa_demangle) and allocate with malloc. Strings handed out
 * live in an arena, interned, until symbolizer_free.
 */
#define _GNU_SOURCE
#include "symbolize.h"

#include "debug_cache.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <libelf.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* From the C++ runtime; declared here so that this file stays C. */
char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

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

static const char *intern(struct symbolizer *s, const char *str)
{
    return str ? intern_len(s, str, strlen(str)) : NULL;
}

/* A function name as people read it: C++ (Itanium ABI) names demangled,
 * anything else as it is. */
static const char *intern_function(struct symbolizer *s, const char *name)
{
    if (!name)
        return NULL;
    if (name[0] == '_' && name[1] == 'Z') {
        int status = -1;
        char *plain = __cxa_demangle(name, NULL, NULL, &status);
        if (plain && status == 0) {
            const char *r = intern(s, plain);
            free(plain);
            return r;
        }
        free(plain);
    }
    return intern(s, name);
}

/* malloc'd "a" "b" "c" (b and c may be NULL), or NULL when out of memory. */
static char *concat(const char *a, const char *b, const char *c)
{
    char *r;
    if (asprintf(&r, "%s%s%s", a, b ? b : "", c ? c : "") < 0)
        return NULL;
    return r;
}

/* ------------------------------------------------------------------ finding files */

/* 1 when path is a regular ELF file whose GNU build id is id (any build id,
 * or none, when len is 0). Never blocks on a FIFO, never trusts a bad file. */
static int elf_file_matches(const char *path, const unsigned char *id, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return 0;
    int ok = elf_fd_matches(fd, id, len);
    close(fd);
    return ok;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* The debug file of build id (id, len) in the local debug directories:
 * DIR/.build-id/xx/yyyy.debug in debug_dir, the sysroot's /usr/lib/debug and
 * /usr/lib/debug, then debug_dir/NAME.debug. malloc'd path, or NULL. */
static char *find_debug_by_build_id(struct symbolizer *s, const char *path, const unsigned char *id,
                                    size_t len)
{
    char hex[2 * 64 + 2];
    if (len == 0 || len > 64)
        return NULL;
    for (size_t i = 0, o = 0; i < len; i++) {
        o += (size_t)sprintf(hex + o, "%02x", id[i]);
        if (i == 0)
            hex[o++] = '/';
    }
    char *sys_debug = s->sysroot ? concat(s->sysroot, "/usr/lib/debug", NULL) : NULL;
    const char *dirs[] = {s->debug_dir, sys_debug, "/usr/lib/debug"};
    char *found = NULL;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0] && !found; i++) {
        if (!dirs[i])
            continue;
        char *dir = concat(dirs[i], "/.build-id/", NULL);
        char *candidate = dir ? concat(dir, hex, ".debug") : NULL;
        free(dir);
        if (candidate && elf_file_matches(candidate, id, len))
            found = candidate;
        else
            free(candidate);
    }
    free(sys_debug);
    if (!found && s->debug_dir) {
        char *dir = concat(s->debug_dir, "/", base_name(path));
        char *candidate = dir ? concat(dir, ".debug", NULL) : NULL;
        free(dir);
        if (candidate && elf_file_matches(candidate, id, len))
            found = candidate;
        else
            free(candidate);
    }
    return found;
}

/* libdwfl's find_debuginfo callback: the standard search (the file itself,
 * .gnu_debuglink beside it and under /usr/lib/debug, .build-id directories of
 * the debuginfo path, debuginfod), then what it cannot know: debug_dir/LINK,
 * SYSROOT/usr/lib/debug/DIR/LINK, and the build id search of
 * find_debug_by_build_id. Those candidates must carry the module's build id. */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
                          const char *file_name, const char *debuglink_file,
                          GElf_Word debuglink_crc, char **debuginfo_file_name)
{
    struct module_file *f = *userdata;
    struct symbolizer *s = f ? f->owner : NULL;
    const unsigned char *id = NULL;
    GElf_Addr id_vaddr;
    int len = dwfl_module_build_id(mod, &id, &id_vaddr);
    int fd = s && len > 0 ? debug_cache_open(s->cache_dir, id, (size_t)len, debuginfo_file_name) : -1;
    if (fd >= 0)
        return fd;
    fd = dwfl_standard_find_debuginfo(mod, userdata, modname, base, file_name, debuglink_file,
                                      debuglink_crc, debuginfo_file_name);
    if (fd >= 0 && s && len > 0 && *debuginfo_file_name)
        debug_cache_add(s->cache_dir, *debuginfo_file_name, id, (size_t)len);
    if (fd >= 0 || !s || len <= 0)
        return fd;
    char *link =
        debuglink_file ? strdup(debuglink_file) : concat(base_name(f->path), ".debug", NULL);
    char *dir = strndup(f->path, (size_t)(base_name(f->path) - f->path));
    char *candidates[3] = {NULL, NULL, NULL};
    if (link && dir) {
        if (s->debug_dir)
            candidates[0] = concat(s->debug_dir, "/", link);
        if (s->sysroot) {
            char *root = concat(s->sysroot, "/usr/lib/debug/", dir);
            candidates[1] = root ? concat(root, "/", link) : NULL;
            free(root);
        }
    }
    candidates[2] = find_debug_by_build_id(s, f->path, id, (size_t)len);
    free(link);
    free(dir);
    for (size_t i = 0; i < 3; i++) {
        if (fd < 0 && candidates[i] && elf_file_matches(candidates[i], id, (size_t)len)) {
            fd = open(candidates[i], O_RDONLY | O_CLOEXEC);
            if (fd >= 0) {
                *debuginfo_file_name = candidates[i];
                continue;
            }
        }
        free(candidates[i]);
    }
    if (fd >= 0)
        debug_cache_add(s->cache_dir, *debuginfo_file_name, id, (size_t)len);
    return fd;
}

/* ------------------------------------------------------------------ opening modules */

/* Makes (dwfl, mod) the module file's view, or ends dwfl when the module
 * has no usable ELF. 0 or -1. */
static int file_adopt(struct module_file *f, Dwfl *dwfl, Dwfl_Module *mod)
{
    void **userdata = NULL;
    Dwarf_Addr bias;
    if (mod && dwfl_module_info(mod, &userdata, NULL, NULL, NULL, NULL, NULL, NULL) && userdata)
        *userdata = f;
    if (!mod || !dwfl_module_getelf(mod, &bias)) {
        dwfl_end(dwfl);
        return -1;
    }
    f->dwfl = dwfl;
    f->mod = mod;
    f->bias = bias;
    return 0;
}

/* Reports one ELF file (the module itself, or a debug file standing in for
 * it) at its link-time addresses. 0 or -1. */
static int file_report_elf(struct symbolizer *s, struct module_file *f, const char *file)
{
    Dwfl *dwfl = dwfl_begin(&s->callbacks);
    if (!dwfl)
        return -1;
    dwfl_report_begin(dwfl);
    Dwfl_Module *mod = dwfl_report_elf(dwfl, f->path, file, -1, 0, false);
    if (dwfl_report_end(dwfl, NULL, NULL) != 0)
        mod = NULL;
    return file_adopt(f, dwfl, mod);
}

/* Reports the module by build id alone: libdwfl then looks for the ELF in
 * .build-id directories and through debuginfod (when DEBUGINFOD_URLS is set),
 * and its debug info as usual. 0 or -1. */
static int file_report_build_id(struct symbolizer *s, struct module_file *f)
{
    if (f->high <= f->low)
        return -1;
    Dwfl *dwfl = dwfl_begin(&s->callbacks);
    if (!dwfl)
        return -1;
    dwfl_report_begin(dwfl);
    Dwfl_Module *mod = dwfl_report_module(dwfl, f->path, f->low, f->high);
    if (mod && dwfl_module_report_build_id(mod, f->build_id, f->build_id_len, 0) != 0)
        mod = NULL;
    if (dwfl_report_end(dwfl, NULL, NULL) != 0)
        mod = NULL;
    return file_adopt(f, dwfl, mod);
}

/* Opens a module file on its first lookup: the file at sysroot + path when
 * its build id matches the recorded one; else a debug file found by build id;
 * else whatever libdwfl finds by build id. When nothing is found, lookups in
 * it give module+offset frames. */
static void file_open(struct symbolizer *s, struct module_file *f)
{
    f->tried = 1;
    if (!f->no_file) {
        char *local;
        if (!s->sysroot)
            local = strdup(f->path);
        else
            local = concat(s->sysroot, f->path[0] == '/' ? "" : "/", f->path);
        if (local && elf_file_matches(local, f->build_id, f->build_id_len))
            file_report_elf(s, f, local);
        free(local);
    }
    if (f->dwfl || f->build_id_len == 0)
        return;
    char *debug = find_debug_by_build_id(s, f->path, f->build_id, f->build_id_len);
    if (debug)
        file_report_elf(s, f, debug);
    free(debug);
    if (!f->dwfl)
        file_report_build_id(s, f);
}

static void file_release(struct module_file *f)
{
    if (f->dwfl)
        dwfl_end(f->dwfl);
    f->dwfl = NULL;
    f->mod = NULL;
    f->tried = 0;
}

/* ------------------------------------------------------------------ DWARF */

/* A source path from DWARF, made absolute with the CU's directory when it
 * is relative. */
static const char *source_path(struct symbolizer *s, Dwarf_Die *cu, const char *src)
{
    if (!src || src[0] == '/' || !cu)
        return intern(s, src);
    Dwarf_Attribute attr;
    const char *dir = dwarf_formstring(dwarf_attr(cu, DW_AT_comp_dir, &attr));
    if (!dir || dir[0] != '/')
        return intern(s, src);
    char *full = concat(dir, "/", src);
    const char *r = intern(s, full ? full : src);
    free(full);
    return r;
}

/* The name of a subprogram or inlined subroutine: a mangled linkage name,
 * demangled, gives C++ its scope and parameters; else DW_AT_name, the name
 * in the source (C linkage names are asm labels, glibc's "__GI_malloc").
 * Both are looked for through DW_AT_abstract_origin and DW_AT_specification. */
static const char *die_function(struct symbolizer *s, Dwarf_Die *die)
{
    Dwarf_Attribute attr;
    const char *linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_linkage_name, &attr));
    if (!linkage)
        linkage = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr));
    if (linkage && linkage[0] == '_' && linkage[1] == 'Z')
        return intern_function(s, linkage);
    const char *name = dwarf_formstring(dwarf_attr_integrate(die, DW_AT_name, &attr));
    return intern_function(s, name ? name : linkage);
}

/* Where an inlined subroutine was called: DW_AT_call_file and
 * DW_AT_call_line, the caller's file and line. */
static void call_site(struct symbolizer *s, Dwarf_Die *die, const char **file, int *line)
{
    Dwarf_Attribute attr;
    Dwarf_Word value;
    Dwarf_Die cu;
    Dwarf_Files *files;
    size_t nfiles;
    *file = NULL;
    *line = 0;
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_file, &attr), &value) == 0 &&
        dwarf_diecu(die, &cu, NULL, NULL) && dwarf_getsrcfiles(&cu, &files, &nfiles) == 0 &&
        value < nfiles)
        *file = source_path(s, &cu, dwarf_filesrc(files, value, NULL, NULL));
    if (dwarf_formudata(dwarf_attr(die, DW_AT_call_line, &attr), &value) == 0 && value <= INT_MAX)
        *line = (int)value;
}

/* Collects in chain[n..] the function-like DIEs (subprograms, inlined
 * subroutines) under parent whose ranges hold pc, outermost first, down to
 * the innermost. Namespaces, classes and modules have no ranges but may hold
 * functions (Rust, some C++): they are searched through. Returns the new n.
 *
 * Our own walk rather than dwarf_getscopes: in elfutils 0.188 that leaks its
 * result and returns nothing when it cannot find an inline's abstract origin
 * (often, in LTO builds), and it gives the abstract nesting where we want the
 * concrete one. */
static int scope_chain(Dwarf_Die *parent, Dwarf_Addr pc, Dwarf_Die *chain, int n, int depth)
{
    Dwarf_Die child;
    if (depth > 2 * MAX_FRAMES || dwarf_child(parent, &child) != 0)
        return n;
    do {
        switch (dwarf_tag(&child)) {
        case DW_TAG_namespace:
        case DW_TAG_module:
        case DW_TAG_class_type:
        case DW_TAG_structure_type:
        case DW_TAG_union_type:
        case DW_TAG_interface_type: {
            int found = scope_chain(&child, pc, chain, n, depth + 1);
            if (found > n)
                return found;
            break;
        }
        case DW_TAG_subprogram:
        case DW_TAG_inlined_subroutine:
        case DW_TAG_entry_point:
        case DW_TAG_lexical_block:
        case DW_TAG_try_block:
        case DW_TAG_catch_block:
        case DW_TAG_with_stmt:
            if (dwarf_haspc(&child, pc) != 1)
                break;
            if (dwarf_tag(&child) != DW_TAG_lexical_block && n < MAX_FRAMES)
                chain[n++] = child;
            return scope_chain(&child, pc, chain, n, depth + 1);
        default:
            break;
        }
    } while (dwarf_siblingof(&child, &child) == 0);
    return n;
}

/* The frames of pc (a CU-relative address): the innermost inlined
 * subroutine first, with the line of pc, then each caller with the line of
 * its call, up to the innermost subprogram. Returns how many frames, 0 when
 * no function of the CU holds pc. */
static int expand_scopes(struct symbolizer *s, Dwarf_Die *cudie, Dwarf_Addr pc, const char *file,
                         int line, struct cached_frame *frames)
{
    Dwarf_Die chain[MAX_FRAMES];
    int nchain = scope_chain(cudie, pc, chain, 0, 0);
    int n = 0;
    for (int i = nchain - 1; i >= 0; i--) {
        Dwarf_Die *die = &chain[i];
        if (dwarf_tag(die) == DW_TAG_inlined_subroutine) {
            frames[n++] = (struct cached_frame){die_function(s, die), file, line, 1};
            call_site(s, die, &file, &line);
        } else {
            frames[n++] = (struct cached_frame){die_function(s, die), file, line, 0};
            break;
        }
    }
    return n;
}

/* Symbolizes pc, a link-time address of an open module file, into frames.
 * DWARF when there is some; else the ELF symbol table. Returns >= 1. */
static int resolve(struct symbolizer *s, struct module_file *f, uint64_t pc,
                   struct cached_frame *frames)
{
    Dwarf_Addr addr = pc + f->bias;
    const char *file = NULL;
    int line = 0;
    Dwfl_Line *row = dwfl_module_getsrc(f->mod, addr);
    if (row) {
        const char *src = dwfl_lineinfo(row, NULL, &line, NULL, NULL, NULL);
        file = source_path(s, dwfl_linecu(row), src);
    }
    int n = 0;
    Dwarf_Addr cu_bias = 0;
    Dwarf_Die *cudie = dwfl_module_addrdie(f->mod, addr, &cu_bias), split;
    uint8_t unit_type;
    /* -gsplit-dwarf: the functions are in the skeleton's split unit (.dwo) */
    if (cudie && dwarf_cu_info(cudie->cu, NULL, &unit_type, NULL, &split, NULL, NULL, NULL) == 0 &&
        unit_type == DW_UT_skeleton && split.cu)
        cudie = &split;
    if (cudie)
        n = expand_scopes(s, cudie, addr - cu_bias, file, line, frames);
    if (n == 0)
        frames[n++] = (struct cached_frame){NULL, file, line, 0};
    if (!frames[n - 1].function)
        frames[n - 1].function = intern_function(s, dwfl_module_addrname(f->mod, addr));
    return n;
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
    const char *base = base_name(name);
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
    char *sys_debug = s->sysroot ? concat(s->sysroot, "/usr/lib/debug:", NULL) : NULL;
    if (asprintf(&s->debuginfo_path, "%s%s%s:.debug:/usr/lib/debug",
                 s->debug_dir ? s->debug_dir : "", s->debug_dir ? ":" : "",
                 sys_debug ? sys_debug : "") < 0)
        s->debuginfo_path = NULL;
    free(sys_debug);
    if (!s->debuginfo_path)
        goto fail;
    s->callbacks.find_elf = dwfl_build_id_find_elf;
    s->callbacks.find_debuginfo = find_debuginfo;
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
        file_release(f);
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
        file_release(m->file); /* its memo stays: the strings must anyway */
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
            file_open(s, f);
        /* the call instruction ends just before the return address */
        uint64_t pc = offset ? offset - 1 : 0;
        n = f->mod ? resolve(s, f, pc, fresh) : 0;
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
