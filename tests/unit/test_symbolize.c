/* Unit test of the symbolizer (report/symbolize/symbolize.c) on real dumps: runs each
 * victim of tests/unit/symbolize_victims under `memtrace run`, streams its
 * dump through the reader, feeds the module records to the symbolizer and
 * symbolizes every stack, then checks the innermost frames of the victim's
 * allocations against the "SITE size function line" lines it printed.
 * Then the odd cases on the same modules: wrong build id, missing, truncated
 * and junk files, sysroot, debug_dir, unload, the vdso, libmemtrace itself.
 *
 * usage: test_symbolize MEMTRACE WORKDIR PLAIN INLINE CXX STRIPPED STRIPPED_DEBUG INLINE_SPLIT
 * (STRIPPED_DEBUG: the debug info objcopy kept of STRIPPED before the strip;
 * INLINE_SPLIT: INLINE built with -gsplit-dwarf)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "read/dump_reader.h"
#include "symbolize/symbolize.h"

#define KEEP 4 /* frames kept per stack, once libmemtrace's are dropped */
#define MAX_MODULES 64
#define MAX_SITES 8
#define FIRST_SIZE 1001 /* the victims' allocation sizes: 1001 ... 1008 */

static const char *workdir;

/* ------------------------------------------------------------------ running victims */

struct site {
    char function[128];
    int line;        /* SITE: the allocation's line */
    int caller_line; /* CALLER: the line of the call that was inlined, or 0 */
    char caller[128];
    unsigned long func_offset; /* FUNC: the allocating function's offset, or 0 */
};

struct victim {
    char path[PATH_MAX]; /* as the loader names it: absolute */
    char dump[PATH_MAX];
    struct site sites[MAX_SITES]; /* by size - FIRST_SIZE */
};

/* Runs `memtrace run -o DUMP victim`, its output in WORKDIR/NAME.out and
 * .err, and reads the SITE, CALLER and FUNC lines. 0 or -1. */
static int run_victim(const char *memtrace, const char *program, const char *name, struct victim *v)
{
    char out[PATH_MAX], err[PATH_MAX];
    memset(v, 0, sizeof *v);
    if (!realpath(program, v->path)) {
        fprintf(stderr, "%s: %s\n", program, strerror(errno));
        return -1;
    }
    snprintf(v->dump, sizeof v->dump, "%s/%s.mtr", workdir, name);
    snprintf(out, sizeof out, "%s/%s.out", workdir, name);
    snprintf(err, sizeof err, "%s/%s.err", workdir, name);
    pid_t pid = fork();
    if (pid == 0) {
        int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        execl(memtrace, memtrace, "run", "-o", v->dump, v->path, (char *)NULL);
        _exit(127);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "memtrace run %s failed (see %s)\n", v->path, err);
        return -1;
    }
    FILE *f = fopen(out, "r");
    char line[512], function[128];
    int size, number;
    unsigned long offset;
    while (f && fgets(line, sizeof line, f)) {
        struct site *site;
        if (sscanf(line, "%*s %d", &size) != 1 || size < FIRST_SIZE ||
            size >= FIRST_SIZE + MAX_SITES)
            continue;
        site = &v->sites[size - FIRST_SIZE];
        /* C++ names hold spaces: the function is everything up to the last field */
        char *last = strrchr(line, ' ');
        char *first = strchr(strchr(line, ' ') + 1, ' ');
        if (strncmp(line, "FUNC ", 5) == 0 && sscanf(last, "%lx", &offset) == 1)
            site->func_offset = offset;
        if (!first || last <= first || sscanf(last, "%d", &number) != 1)
            continue;
        snprintf(function, sizeof function, "%.*s", (int)(last - first - 1), first + 1);
        if (strncmp(line, "SITE ", 5) == 0) {
            snprintf(site->function, sizeof site->function, "%s", function);
            site->line = number;
        } else if (strncmp(line, "CALLER ", 7) == 0) {
            snprintf(site->caller, sizeof site->caller, "%s", function);
            site->caller_line = number;
        }
    }
    if (f)
        fclose(f);
    return 0;
}

/* ------------------------------------------------------------------ replaying dumps */

struct module_copy {
    uint64_t id, bias, nsegments;
    char path[PATH_MAX];
    unsigned char build_id[64];
    size_t build_id_len;
    struct dump_segment segments[16];
};

struct stack_frames {
    int n;
    struct sym_frame frames[KEEP];
};

struct replay {
    struct symbolizer *sym;
    struct module_copy modules[MAX_MODULES];
    int nmodules;
    struct stack_frames *stacks; /* by stack id */
    size_t nstacks;
    uint64_t site_stack[MAX_SITES]; /* stack id of the first allocation of each size */
    uint64_t site_address[MAX_SITES];
    long lookups, memtrace_frames, bad_lookups;
};

/* Streams a dump as the report will: module records into the symbolizer,
 * every address of every stack symbolized when its STACK record is read. */
static int replay(const char *dump, const struct symbolizer_options *o, struct replay *r)
{
    memset(r, 0, sizeof *r);
    r->sym = symbolizer_new(o);
    struct dump_reader reader;
    struct dump_record rec;
    if (!r->sym || dump_open(&reader, dump) != 0) {
        fprintf(stderr, "%s: %s\n", dump, r->sym ? reader.error : "symbolizer_new failed");
        return -1;
    }
    int rc;
    while ((rc = dump_next(&reader, &rec)) == 1) {
        if (rec.type == MT_REC_MODULE_LOAD) {
            CHECK(symbolizer_module_load(r->sym, rec.id, rec.path, rec.path_len, rec.build_id,
                                         rec.build_id_len, rec.load_bias, rec.nsegments,
                                         rec.segments) == 0);
            if (r->nmodules == MAX_MODULES)
                continue;
            struct module_copy *m = &r->modules[r->nmodules++];
            m->id = rec.id;
            m->bias = rec.load_bias;
            snprintf(m->path, sizeof m->path, "%.*s", (int)rec.path_len, rec.path);
            m->build_id_len = rec.build_id_len < 64 ? rec.build_id_len : 64;
            memcpy(m->build_id, rec.build_id, m->build_id_len);
            m->nsegments = rec.nsegments < 16 ? rec.nsegments : 16;
            memcpy(m->segments, rec.segments, m->nsegments * sizeof *m->segments);
        } else if (rec.type == MT_REC_MODULE_UNLOAD) {
            symbolizer_module_unload(r->sym, rec.id);
        } else if (rec.type == MT_REC_STACK) {
            if (rec.id >= r->nstacks) {
                size_t n = rec.id + 64;
                r->stacks = realloc(r->stacks, n * sizeof *r->stacks);
                memset(r->stacks + r->nstacks, 0, (n - r->nstacks) * sizeof *r->stacks);
                r->nstacks = n;
            }
            struct stack_frames *st = &r->stacks[rec.id];
            for (uint64_t i = 0; i < rec.depth; i++) {
                struct sym_frame f[16];
                int n = symbolizer_lookup(r->sym, rec.ips[i], f, 16);
                r->lookups++;
                if (n < 1 || n > 16 || f[0].address != rec.ips[i])
                    r->bad_lookups++;
                for (int j = 0; j < n; j++) {
                    if (f[j].is_memtrace)
                        r->memtrace_frames++;
                    else if (st->n < KEEP)
                        st->frames[st->n++] = f[j];
                }
            }
        } else if (rec.type == MT_REC_ALLOC && rec.size >= FIRST_SIZE &&
                   rec.size < FIRST_SIZE + MAX_SITES) {
            size_t k = rec.size - FIRST_SIZE;
            if (!r->site_stack[k] && rec.stack < r->nstacks) {
                r->site_stack[k] = rec.stack;
                r->site_address[k] = 0;
            }
        }
    }
    dump_close(&reader);
    CHECK(rc == 0);
    CHECK(r->bad_lookups == 0);
    return rc == 0 ? 0 : -1;
}

static void replay_free(struct replay *r)
{
    symbolizer_free(r->sym);
    free(r->stacks);
}

/* The kept frames of the first allocation of size, or an empty stack. */
static const struct stack_frames *site_frames(const struct replay *r, int size)
{
    static const struct stack_frames none;
    uint64_t id = r->site_stack[size - FIRST_SIZE];
    return id && id < r->nstacks ? &r->stacks[id] : &none;
}

static const struct module_copy *module_named(const struct replay *r, const char *path)
{
    for (int i = 0; i < r->nmodules; i++)
        if (strcmp(r->modules[i].path, path) == 0)
            return &r->modules[i];
    return NULL;
}

static const struct module_copy *module_ending(const struct replay *r, const char *suffix)
{
    for (int i = 0; i < r->nmodules; i++) {
        size_t n = strlen(r->modules[i].path), k = strlen(suffix);
        if (n >= k && strcmp(r->modules[i].path + n - k, suffix) == 0)
            return &r->modules[i];
    }
    return NULL;
}

/* An address inside m's first executable segment. */
static uint64_t exec_address(const struct module_copy *m, uint64_t into)
{
    for (uint64_t i = 0; i < m->nsegments; i++)
        if (m->segments[i].flags & 1)
            return m->bias + m->segments[i].vaddr + into;
    return 0;
}

/* ------------------------------------------------------------------ checks */

static int streq(const char *a, const char *b)
{
    return a && b && strcmp(a, b) == 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = s ? strlen(s) : 0, k = strlen(suffix);
    return s && n >= k && strcmp(s + n - k, suffix) == 0;
}

/* The frame is function at file:line, in module, as the victim said. */
static void check_frame(const struct sym_frame *f, const char *function, const char *source,
                        int line, const char *module, int inlined)
{
    int ok = streq(f->function, function) && f->line == line && line > 0 &&
             ends_with(f->file, source) && f->file[0] == '/' && streq(f->module, module) &&
             f->inlined == inlined && !f->is_memtrace && f->address != 0 && f->module_offset != 0;
    if (!ok)
        fprintf(
            stderr, "  expected %s at %s:%d in %s inlined=%d; got %s at %s:%d in %s inlined=%d\n",
            function, source, line, module, inlined, f->function ? f->function : "(null)",
            f->file ? f->file : "(null)", f->line, f->module ? f->module : "(null)", f->inlined);
    CHECK(ok);
}

/* One lookup of address with a new symbolizer that knows only module m,
 * loaded with the given options (and build id, when id is not NULL). */
static struct sym_frame lookup_alone(const struct module_copy *m, const char *sysroot,
                                     const char *debug_dir, const unsigned char *id, size_t id_len,
                                     uint64_t address)
{
    struct symbolizer_options o = {sysroot, debug_dir};
    struct symbolizer *s = symbolizer_new(&o);
    static char function[256];
    struct sym_frame f[8] = {{0}};
    CHECK(s != NULL);
    if (!s)
        return f[0];
    CHECK(symbolizer_module_load(s, m->id, m->path, strlen(m->path), id ? id : m->build_id,
                                 id ? id_len : m->build_id_len, m->bias, m->nsegments,
                                 m->segments) == 0);
    int n = symbolizer_lookup(s, address, f, 8);
    CHECK(n >= 1 && streq(f[0].module, m->path) && f[0].address == address &&
          f[0].module_offset == address - m->bias);
    /* the strings die with the symbolizer: keep the function name */
    snprintf(function, sizeof function, "%s", f[0].function ? f[0].function : "");
    f[0].function = f[0].function ? function : NULL;
    f[0].file = NULL;
    f[0].module = NULL;
    symbolizer_free(s);
    return f[0];
}

/* Copies src's first limit bytes (all: SIZE_MAX) to root + src, making
 * the directories. 0 or -1. */
static int copy_into_root(const char *root, const char *src, size_t limit)
{
    char dst[PATH_MAX * 2];
    snprintf(dst, sizeof dst, "%s%s", root, src);
    for (char *p = dst + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        mkdir(dst, 0700);
        *p = '/';
    }
    int in = open(src, O_RDONLY), out = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    char buf[65536];
    ssize_t n = 0;
    while (in >= 0 && out >= 0 && limit > 0 && (n = read(in, buf, sizeof buf)) > 0) {
        size_t k = (size_t)n < limit ? (size_t)n : limit;
        if (write(out, buf, k) != (ssize_t)k)
            n = -1;
        limit -= k;
    }
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return in >= 0 && out >= 0 && n >= 0 ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* ------------------------------------------------------------------ victims */

static int run_and_replay(const char *memtrace, const char *program, const char *name,
                          struct victim *v, struct replay *r)
{
    if (run_victim(memtrace, program, name, v) != 0 || replay(v->dump, NULL, r) != 0) {
        fprintf(stderr, "%s: victim did not run or its dump did not read\n", name);
        CHECK(0);
        return -1;
    }
    return 0;
}

/* A plain -O0 function, a call that ends its line, main, libc through libc6-dbg, and what a lookup
 * does with no module, libmemtrace, the vdso, unload and reload, memo. */
static void test_plain(const char *memtrace, const char *program)
{
    struct victim v;
    struct replay r;
    if (run_and_replay(memtrace, program, "plain", &v, &r) != 0)
        return;
    const struct site *record = &v.sites[1001 - FIRST_SIZE], *in_main = &v.sites[1003 - FIRST_SIZE];
    const struct stack_frames *st = site_frames(&r, 1001);
    CHECK(st->n >= 2);
    check_frame(&st->frames[0], "make_record", "/symv_plain.c", record->line, v.path, 0);
    CHECK(streq(st->frames[1].function, "main") && st->frames[1].line > 0);
    const struct sym_frame site = st->frames[0];

    /* the return address is on the next line: the call's line is that of address - 1 */
    const struct site *leak = &v.sites[1006 - FIRST_SIZE];
    check_frame(&site_frames(&r, 1006)->frames[0], "leak_record", "/symv_plain.c", leak->line,
                v.path, 0);

    st = site_frames(&r, 1003);
    CHECK(st->n >= 2);
    check_frame(&st->frames[0], "main", "/symv_plain.c", in_main->line, v.path, 0);
    /* main's caller is in libc: named, with a line, when libc6-dbg is there */
    const struct module_copy *libc = module_ending(&r, "/libc.so.6");
    char debug[PATH_MAX] = "";
    int off = snprintf(debug, sizeof debug, "/usr/lib/debug/.build-id/");
    for (size_t i = 0; libc && i < libc->build_id_len; i++)
        off += snprintf(debug + off, sizeof debug - (size_t)off, i == 0 ? "%02x/" : "%02x",
                        libc->build_id[i]);
    strncat(debug, ".debug", sizeof debug - strlen(debug) - 1);
    if (libc && access(debug, R_OK) == 0) {
        CHECK(st->n >= 2 && streq(st->frames[1].function, "__libc_start_call_main") &&
              st->frames[1].line > 0 && st->frames[1].file &&
              streq(st->frames[1].module, libc->path));
    } else {
        printf("note: no %s (libc6-dbg): libc's lines not checked\n", debug);
    }

    /* memoized: the same strings again; max cuts; max 0 writes nothing */
    struct sym_frame f[8];
    CHECK(symbolizer_lookup(r.sym, site.address, f, 8) >= 1 && f[0].function == site.function &&
          f[0].file == site.file && f[0].line == site.line);
    CHECK(symbolizer_lookup(r.sym, site.address, f, 1) == 1 && f[0].function == site.function);
    CHECK(symbolizer_lookup(r.sym, site.address, f, 0) == 0);
    /* no module: one frame, everything NULL */
    memset(f, 0xff, sizeof f);
    CHECK(symbolizer_lookup(r.sym, 0x10, f, 8) == 1 && !f[0].function && !f[0].file &&
          !f[0].module && f[0].line == 0 && f[0].address == 0x10 && !f[0].is_memtrace);
    /* libmemtrace.so itself is marked */
    const struct module_copy *shim = module_ending(&r, "/libmemtrace.so");
    CHECK(shim != NULL);
    if (shim) {
        CHECK(symbolizer_lookup(r.sym, exec_address(shim, 0x10), f, 8) >= 1 && f[0].is_memtrace &&
              streq(f[0].module, shim->path));
    }
    CHECK(symbolizer_lookup(r.sym, site.address, f, 8) >= 1 && !f[0].is_memtrace);
    /* the vdso: no file, module+offset */
    const struct module_copy *vdso = module_named(&r, "linux-vdso.so.1");
    if (vdso) {
        uint64_t a = exec_address(vdso, 0x10);
        CHECK(symbolizer_lookup(r.sym, a, f, 8) >= 1 && streq(f[0].module, "linux-vdso.so.1") &&
              f[0].module_offset == a - vdso->bias && !f[0].file);
    }
    /* unloaded: no module; loaded again elsewhere: the same answer */
    const struct module_copy *m = module_named(&r, v.path);
    CHECK(m != NULL);
    if (!m) {
        replay_free(&r);
        return;
    }
    symbolizer_module_unload(r.sym, m->id);
    CHECK(symbolizer_lookup(r.sym, site.address, f, 8) == 1 && !f[0].module && !f[0].function);
    const uint64_t moved = 0x40000000000u;
    CHECK(symbolizer_module_load(r.sym, 99, m->path, strlen(m->path), m->build_id, m->build_id_len,
                                 m->bias + moved, m->nsegments, m->segments) == 0);
    CHECK(symbolizer_lookup(r.sym, site.address + moved, f, 8) >= 1 &&
          f[0].function == site.function && f[0].line == site.line &&
          f[0].module_offset == site.module_offset && f[0].address == site.address + moved);
    symbolizer_module_unload(r.sym, 99);
    symbolizer_module_unload(r.sym, 99); /* twice: ignored */
    CHECK(symbolizer_lookup(r.sym, site.address + moved, f, 8) == 1 && !f[0].module);

    /* files that must not be used: another build id, missing, junk */
    unsigned char other[64];
    memcpy(other, m->build_id, m->build_id_len);
    other[0] ^= 0xff;
    struct sym_frame g = lookup_alone(m, NULL, NULL, other, m->build_id_len, site.address);
    CHECK(!g.function && g.line == 0);
    char root[PATH_MAX * 2];
    snprintf(root, sizeof root, "%s/empty-root", workdir);
    mkdir(root, 0700);
    g = lookup_alone(m, root, NULL, NULL, 0, site.address);
    CHECK(!g.function && g.line == 0);
    /* the same file under a sysroot: used */
    snprintf(root, sizeof root, "%s/root", workdir);
    CHECK(copy_into_root(root, m->path, SIZE_MAX) == 0);
    g = lookup_alone(m, root, NULL, NULL, 0, site.address);
    CHECK(streq(g.function, "make_record") && g.line == record->line);
    /* no build id recorded: the file cannot be checked, and is used */
    g = lookup_alone(m, root, NULL, (const unsigned char *)"", 0, site.address);
    CHECK(streq(g.function, "make_record"));
    /* truncated at every few bytes, and junk: module+offset at worst, no crash */
    struct stat st_file;
    CHECK(stat(m->path, &st_file) == 0);
    for (size_t cut = 0; cut < (size_t)st_file.st_size; cut += 997 + cut / 3) {
        snprintf(root, sizeof root, "%s/cut", workdir);
        CHECK(copy_into_root(root, m->path, cut) == 0);
        lookup_alone(m, root, NULL, NULL, 0, site.address);
    }
    char junk[PATH_MAX * 2];
    snprintf(junk, sizeof junk, "%s/cut%s", workdir, m->path);
    FILE *j = fopen(junk, "w");
    if (j) {
        fputs("\x7f"
              "ELF but not really\n",
              j);
        fclose(j);
    }
    g = lookup_alone(m, root, NULL, NULL, 0, site.address);
    CHECK(!g.function);
    replay_free(&r);
}

/* An always_inline function at -O2: the inlined callee first, marked
 * inlined, then its caller at the line of the call. The same from a
 * -gsplit-dwarf build, whose functions are in a .dwo file. */
static void test_inline(const char *memtrace, const char *program, const char *name)
{
    struct victim v;
    struct replay r;
    if (run_and_replay(memtrace, program, name, &v, &r) != 0)
        return;
    const struct site *site = &v.sites[1002 - FIRST_SIZE];
    const struct stack_frames *st = site_frames(&r, 1002);
    CHECK(st->n >= 3);
    check_frame(&st->frames[0], "fill_buffer", "/symv_inline.c", site->line, v.path, 1);
    check_frame(&st->frames[1], site->caller, "/symv_inline.c", site->caller_line, v.path, 0);
    CHECK(st->frames[0].address == st->frames[1].address);
    CHECK(streq(st->frames[2].function, "main"));
    struct sym_frame f[2];
    CHECK(symbolizer_lookup(r.sym, st->frames[0].address, f, 1) == 1 &&
          streq(f[0].function, "fill_buffer") && f[0].inlined);
    replay_free(&r);
}

/* A C++ method: demangled, with its class and parameters. */
static void test_cxx(const char *memtrace, const char *program)
{
    struct victim v;
    struct replay r;
    if (run_and_replay(memtrace, program, "cxx", &v, &r) != 0)
        return;
    const struct site *site = &v.sites[1004 - FIRST_SIZE];
    const struct stack_frames *st = site_frames(&r, 1004);
    CHECK(st->n >= 2);
    CHECK(strcmp(site->function, "Widget::grow(unsigned long)") == 0);
    check_frame(&st->frames[0], site->function, "/symv_cxx.cc", site->line, v.path, 0);
    CHECK(streq(st->frames[1].function, "main"));
    replay_free(&r);
}

/* A stripped binary: module+offset. Its debug file, by build id in
 * debug_dir (file present or missing) or by name in debug_dir: full frames. */
static void test_stripped(const char *memtrace, const char *program, const char *debug_file)
{
    struct victim v;
    struct replay r;
    if (run_and_replay(memtrace, program, "stripped", &v, &r) != 0)
        return;
    const struct site *site = &v.sites[1005 - FIRST_SIZE];
    const struct stack_frames *st = site_frames(&r, 1005);
    const struct sym_frame f = st->frames[0];
    CHECK(st->n >= 1 && !f.function && !f.file && f.line == 0 && streq(f.module, v.path) &&
          !f.inlined && !f.is_memtrace);
    CHECK(site->func_offset != 0 && f.module_offset > site->func_offset &&
          f.module_offset < site->func_offset + 0x100);
    const struct module_copy *m = module_named(&r, v.path);
    CHECK(m != NULL && m->build_id_len > 1);
    if (!m || m->build_id_len < 2) {
        replay_free(&r);
        return;
    }
    char dir[PATH_MAX], link[PATH_MAX * 2], target[PATH_MAX];
    int n = snprintf(dir, sizeof dir, "%s/debug", workdir);
    mkdir(dir, 0700);
    n += snprintf(dir + n, sizeof dir - (size_t)n, "/.build-id");
    mkdir(dir, 0700);
    snprintf(dir + n, sizeof dir - (size_t)n, "/%02x", m->build_id[0]);
    mkdir(dir, 0700);
    n = snprintf(link, sizeof link, "%s/", dir);
    for (size_t i = 1; i < m->build_id_len; i++)
        n += snprintf(link + n, sizeof link - (size_t)n, "%02x", m->build_id[i]);
    snprintf(link + n, sizeof link - (size_t)n, ".debug");
    CHECK(realpath(debug_file, target) && symlink(target, link) == 0);
    snprintf(dir, sizeof dir, "%s/debug", workdir);
    struct sym_frame g = lookup_alone(m, NULL, dir, NULL, 0, f.address);
    CHECK(streq(g.function, "make_record") && g.line == site->line);
    char root[PATH_MAX];
    snprintf(root, sizeof root, "%s/no-such-root", workdir);
    g = lookup_alone(m, root, dir, NULL, 0, f.address);
    CHECK(streq(g.function, "make_record") && g.line == site->line);
    /* debug_dir/NAME.debug */
    snprintf(dir, sizeof dir, "%s/flat", workdir);
    mkdir(dir, 0700);
    snprintf(link, sizeof link, "%s/flat/%s.debug", workdir, strrchr(v.path, '/') + 1);
    CHECK(symlink(target, link) == 0);
    g = lookup_alone(m, NULL, dir, NULL, 0, f.address);
    CHECK(streq(g.function, "make_record") && g.line == site->line);
    /* the debug file of another build: refused */
    unsigned char other[64];
    memcpy(other, m->build_id, m->build_id_len);
    other[m->build_id_len - 1] ^= 1;
    g = lookup_alone(m, NULL, dir, other, m->build_id_len, f.address);
    CHECK(!g.function);
    replay_free(&r);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(
            stderr,
            "usage: %s MEMTRACE WORKDIR PLAIN INLINE CXX STRIPPED STRIPPED_DEBUG INLINE_SPLIT\n",
            argv[0]);
        return 2;
    }
    /* hermetic: no debuginfod server (Debian's login shells name one) */
    unsetenv("DEBUGINFOD_URLS");
    static char dir[PATH_MAX];
    mkdir(argv[2], 0700);
    snprintf(dir, sizeof dir, "%s/symbolize.XXXXXX", argv[2]);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return 2;
    }
    workdir = dir;
    test_plain(argv[1], argv[3]);
    test_inline(argv[1], argv[4], "inline");
    test_inline(argv[1], argv[8], "inline-split");
    test_cxx(argv[1], argv[5]);
    test_stripped(argv[1], argv[6], argv[7]);
    if (check_failed == 0)
        nftw(workdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    else
        fprintf(stderr, "work files kept in %s\n", workdir);
    return check_report();
}
