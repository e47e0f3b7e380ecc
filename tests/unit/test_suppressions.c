/* The suppression matcher on hand-made stacks, for what the e2e tests'
 * victims cannot easily show: valgrind's "..." in every position, escapes,
 * prefix matching, unknown frames and allocation functions, LeakSanitizer's
 * choice among several matches, kind masks, counting, and the writers. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "analyze/suppressions.h"

#define DEF (1u << MT_KIND_DEFINITE)
#define REACH (1u << MT_KIND_REACHABLE)

static struct sym_frame frames[32];
static uint32_t nframes;
static uint32_t site_frames[256];
static struct site sites[16];
static struct analysis a;

static uint32_t frame(const char *function, const char *file, int line, const char *module)
{
    frames[nframes] = (struct sym_frame){.function = function, .file = file, .line = line,
                                         .module = module};
    return nframes++;
}

/* A site of one definite block of `bytes`, its frames innermost first
 * (ended by UINT32_MAX). */
static uint32_t site(uint32_t alloc_function, uint64_t bytes, ...)
{
    struct site *s = &sites[a.nsites];
    memset(s, 0, sizeof *s);
    s->first_frame = a.site_frames_len;
    va_list ap;
    va_start(ap, bytes);
    for (uint32_t f; (f = va_arg(ap, uint32_t)) != UINT32_MAX;)
        site_frames[a.site_frames_len++] = f;
    va_end(ap);
    s->nframes = a.site_frames_len - s->first_frame;
    s->alloc_function = alloc_function;
    s->kind_bytes[MT_KIND_DEFINITE] = bytes;
    s->kind_blocks[MT_KIND_DEFINITE] = 1;
    return a.nsites++;
}

/* Loads text as a suppression file; 0 or -1 (error in err). */
static int load(struct suppression_set *set, const char *text, char *err, size_t size)
{
    char path[] = "/tmp/test_suppressions.XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text))
        return -2;
    close(fd);
    int rc = suppressions_load(set, path, err, size);
    unlink(path);
    return rc;
}

/* The suppression (by name) that takes site i's definite leak under the
 * suppressions of text, or "" when none does, or "ERROR". */
static const char *taker(const char *text, uint32_t i, unsigned kind)
{
    static char name[256];
    struct suppression_set set = {0};
    char err[512];
    if (load(&set, text, err, sizeof err) != 0) {
        fprintf(stderr, "load failed: %s\n", err);
        suppressions_free(&set);
        return "ERROR";
    }
    struct suppression_matches m;
    name[0] = '\0';
    if (suppressions_apply(&set, &a, DEF | REACH, &m) == 0) {
        int32_t j = suppression_of(&m, i, kind);
        if (j >= 0)
            snprintf(name, sizeof name, "%s", set.items[j].name);
        suppression_matches_free(&m);
    }
    suppressions_free(&set);
    return name;
}

#define VG(name, lines) "{\n" name "\nMemcheck:Leak\n" lines "}\n"

int main(void)
{
    a.frames = frames;
    a.site_frames = site_frames;
    a.sites = sites;
    uint32_t f_a = frame("a", "/src/a.c", 10, "/bin/prog");
    uint32_t f_b = frame("b", "/src/b.c", 20, "/lib/libb.so");
    uint32_t f_main = frame("main", "/src/main.c", 5, "/bin/prog");
    uint32_t f_star = frame("op*", "/src/op.cc", 7, "/bin/prog");
    uint32_t f_unknown = frame(NULL, NULL, 0, NULL);
    uint32_t f_widget = frame("Widget::make()", "/src/w.cc", 3, "/bin/prog");
    uint32_t f_start = frame("_start", NULL, 0, "/bin/prog");
    uint32_t s_abm = site(MT_FN_MALLOC, 100, f_a, f_b, f_main, f_start, UINT32_MAX);
    uint32_t s_star = site(MT_FN_CALLOC, 200, f_star, f_main, UINT32_MAX);
    uint32_t s_unknown = site(MT_FN_MALLOC, 300, f_unknown, f_main, UINT32_MAX);
    uint32_t s_inherited = site(0, 400, f_b, f_main, UINT32_MAX); /* a fork child's */
    uint32_t s_new = site(MT_FN_NEW, 500, f_widget, f_main, UINT32_MAX);
    uint32_t s_mixed = site(MT_FN_MALLOC, 600, f_b, f_main, UINT32_MAX);
    sites[s_mixed].kind_bytes[MT_KIND_REACHABLE] = 50;
    sites[s_mixed].kind_blocks[MT_KIND_REACHABLE] = 2;

    /* valgrind: prefix matching, in order */
    CHECK(strcmp(taker(VG("x", "fun:malloc\nfun:a\nfun:b\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:malloc\nfun:b\n"), s_abm, 0), "") == 0);
    CHECK(strcmp(taker(VG("x", "fun:a\n"), s_abm, 0), "") == 0); /* the allocator comes first */
    CHECK(strcmp(taker(VG("x", "fun:malloc\nfun:a\nfun:b\nfun:main\nfun:_start\nfun:more\n"),
                       s_abm, 0), "") == 0); /* longer than the stack */
    /* "..." first, between, last, twice in a row, alone */
    CHECK(strcmp(taker(VG("x", "...\nfun:main\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:malloc\n...\nfun:main\n...\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:malloc\n...\n...\nfun:b\nfun:main\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "...\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "...\nfun:main\nfun:a\n"), s_abm, 0), "") == 0);
    /* wildcards, escapes, obj: and src: */
    CHECK(strcmp(taker(VG("x", "fun:m?ll*\nfun:*\nobj:/lib/*.so\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:calloc\nfun:op\\*\n"), s_star, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:calloc\nfun:o\\?\\*\n"), s_star, 0), "") == 0);
    CHECK(strcmp(taker(VG("x", "fun:*\nsrc:b.c:20\n"), s_abm, 0), "") == 0);
    CHECK(strcmp(taker(VG("x", "fun:*\nsrc:a.c:10\nsrc:b.c\n"), s_abm, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:*\nsrc:a.c:11\n"), s_abm, 0), "") == 0);
    /* a frame with nothing known is "???" to fun: and obj: */
    CHECK(strcmp(taker(VG("x", "fun:malloc\nobj:*\nfun:main\n"), s_unknown, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:malloc\nfun:\\?\\?\\?\n"), s_unknown, 0), "x") == 0);
    /* an unknown allocation function is any of them, and only them */
    CHECK(strcmp(taker(VG("x", "fun:calloc\nfun:b\n"), s_inherited, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:b\n"), s_inherited, 0), "") == 0);
    /* operator new: mangled or demangled; a mangled function demangled */
    CHECK(strcmp(taker(VG("x", "fun:_Znwm\nfun:_ZN6Widget4makeEv\n"), s_new, 0), "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:operator new(unsigned long)\nfun:Widget::make()\n"), s_new, 0),
                 "x") == 0);
    CHECK(strcmp(taker(VG("x", "fun:_Znam\n"), s_new, 0), "") == 0);
    /* kinds: the same site's blocks of two kinds go to different entries */
    const char *kinds = VG("reach", "match-leak-kinds: reachable\nfun:malloc\n")
        VG("def", "match-leak-kinds: definite,possible\nfun:malloc\n");
    CHECK(strcmp(taker(kinds, s_mixed, MT_KIND_REACHABLE), "reach") == 0);
    CHECK(strcmp(taker(kinds, s_mixed, MT_KIND_DEFINITE), "def") == 0);
    CHECK(strcmp(taker(VG("x", "match-leak-kinds: none\nfun:malloc\n"), s_mixed, 0), "") == 0);
    /* other tools and errors are skipped, a tool list with Memcheck is not */
    CHECK(strcmp(taker("{\nr\nHelgrind:Race\nfun:a\n}\n{\np\nMemcheck:Param\nwrite(buf)\n"
                       "fun:write\n}\n{\nx\nAddrcheck,Memcheck:Leak\nfun:malloc\n}\n", s_abm, 0),
                 "x") == 0);

    /* LeakSanitizer: substring unless anchored, any frame, module, file */
    CHECK(strcmp(taker("leak:ai\n", s_abm, 0), "leak:ai") == 0); /* main */
    CHECK(strcmp(taker("leak:^ai\n", s_abm, 0), "") == 0);
    CHECK(strcmp(taker("leak:^ma*n$\n", s_abm, 0), "leak:^ma*n$") == 0);
    CHECK(strcmp(taker("leak:libb\n", s_abm, 0), "leak:libb") == 0);
    CHECK(strcmp(taker("leak:/src/b.c$\n", s_abm, 0), "leak:/src/b.c$") == 0);
    CHECK(strcmp(taker("leak:^/src/b.c\n", s_abm, 0), "leak:^/src/b.c") == 0);
    CHECK(strcmp(taker("leak:^malloc$\n", s_inherited, 0), "leak:^malloc$") == 0);
    CHECK(strcmp(taker("leak:operator new\n", s_new, 0), "leak:operator new") == 0);
    /* the innermost frame decides, then the module before the function */
    CHECK(strcmp(taker("leak:^main$\nleak:^b$\n", s_abm, 0), "leak:^b$") == 0);
    CHECK(strcmp(taker("leak:^b$\nleak:libb.so$\n", s_abm, 0), "leak:libb.so$") == 0);
    /* between formats, the order they were read in */
    CHECK(strcmp(taker("leak:b\n" VG("v", "...\n"), s_abm, 0), "leak:b") == 0);
    CHECK(strcmp(taker(VG("v", "...\n") "leak:b\n", s_abm, 0), "v") == 0);

    /* counting: over the kinds asked, each leak once */
    struct suppression_set set = {0};
    char err[512];
    CHECK(load(&set, VG("all", "fun:malloc\n"), err, sizeof err) == 0);
    struct suppression_matches m;
    CHECK(suppressions_apply(&set, &a, DEF, &m) == 0);
    /* malloc's sites and the inherited one (any allocation function) */
    CHECK(m.bytes[0] == 100 + 300 + 400 + 600 && m.blocks[0] == 4 && m.sites[0] == 4);
    CHECK(m.total_bytes == 1400 && suppression_of(&m, s_mixed, MT_KIND_REACHABLE) == 0);
    CHECK(suppression_of(&m, s_star, MT_KIND_DEFINITE) == -1);
    suppression_matches_free(&m);
    CHECK(suppressions_apply(&set, &a, DEF | REACH, &m) == 0);
    CHECK(m.bytes[0] == 1450 && m.blocks[0] == 6 && m.sites[0] == 4);
    suppression_matches_free(&m);
    suppressions_free(&set);

    /* the writers: valgrind's entries stop at main; LSan names a function */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    suppression_write_valgrind(out, &a, &sites[s_abm], MT_KIND_DEFINITE, "gen");
    suppression_write_valgrind(out, &a, &sites[s_new], MT_KIND_UNKNOWN, "gen2");
    fclose(out);
    CHECK(strcmp(text, "{\n   gen\n   Memcheck:Leak\n   match-leak-kinds: definite\n"
                       "   fun:malloc\n   fun:a\n   fun:b\n   fun:main\n}\n"
                       "{\n   gen2\n   Memcheck:Leak\n   fun:_Znwm\n   fun:Widget::make()\n"
                       "   fun:main\n}\n") == 0);
    CHECK(strcmp(taker(text, s_abm, 0), "gen") == 0);
    free(text);
    char pattern[64];
    CHECK(suppression_lsan_pattern(&a, &sites[s_unknown], pattern, sizeof pattern) == 0 &&
          strcmp(pattern, "^main$") == 0);

    /* errors name the line */
    struct suppression_set bad = {0};
    CHECK(load(&bad, "leak:x\n\n{\nname\nMemcheck:Leak\nfun:a\n", err, sizeof err) == -1);
    CHECK(strstr(err, ":3: ") != NULL);
    CHECK(bad.n == 0); /* a file is taken whole or not at all */
    suppressions_free(&bad);
    return check_report();
}
