/* Dump format round trip: every record type written by the consumer's
 * writer is read back with the same fields by the reader; a dump cut at any
 * byte reads a prefix of its records (never an invented one); damaged dumps
 * are refused or read as a prefix, never crash the reader. EVENTS records
 * give back every field of tens of thousands of events (odd addresses,
 * wrapping deltas, recently freed addresses, custom functions, thread
 * switches). Dumps made by hand, byte by byte, are test_dump_handmade.c's. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zstd.h>

#include "../../cli/consumer/dump_writer.h"
#include "check.h"
#include "read/dump_reader.h"
#include "memtrace/varint.h"
#include "dump_fixture.h"

struct expected {
    int type;
    uint64_t a, b, c;
};

static struct expected want[64];
static int nwant;

static void expect(int type, uint64_t a, uint64_t b, uint64_t c)
{
    want[nwant++] = (struct expected){type, a, b, c};
}


static void write_sample(const char *path)
{
    struct dump_writer w;
    char *argv[] = {"./prog", "arg one", "a\"quote"};
    start_dump(&w, path, 42, 3, argv);
    uint64_t segs[] = {0x1000, 0x2000, 1, 0x4000, 0x100, 0};
    dump_write_module_load(&w, START + 10, 1, 0x555500000000ull, "/bin/prog", 9, "\x01\x02\x03", 3,
                           2, segs);
    expect(MT_REC_MODULE_LOAD, 1, 0x555500000000ull, 2);
    dump_write_thread(&w, 1, 4242);
    expect(MT_REC_THREAD, 1, 4242, 0);
    uint64_t ips[] = {0x555500001234ull, 0x7f0000000010ull, 0x555500000100ull};
    dump_write_stack(&w, 1, ips, 3);
    expect(MT_REC_STACK, 1, 3, ips[1]);
    uint64_t ips2[] = {0x555500001300ull, 0x7f0000000010ull, 0x555500000100ull};
    dump_write_stack(&w, 2, ips2, 3); /* a STACK_LIKE record */
    expect(MT_REC_STACK, 2, 3, ips2[1]);
    for (int i = 0; i < 20; i++) {
        dump_write_alloc(&w, START + 100 + i, 1, MT_FN_MALLOC, 0x10000 + 32 * i, 24 + i, 1);
        expect(MT_REC_ALLOC, 0x10000 + 32 * i, 24 + i, START + 100 + i);
    }
    dump_write_allocator(&w, MT_FN_CUSTOM_BASE + 1, "pool_alloc", 10);
    expect(MT_REC_ALLOCATOR, MT_FN_CUSTOM_BASE + 1, 10, 0);
    dump_write_mark(&w, START + 150, 1, "second phase", 12);
    expect(MT_REC_MARK, 1, 12, START + 150);
    dump_write_rss(&w, START + 90, 1 << 20); /* RSS may be a little out of order */
    for (int i = 0; i < 10; i++) {
        dump_write_free(&w, START + 200 + i, 1, MT_FN_FREE, 0x10000 + 32 * i);
        expect(MT_REC_FREE, 0x10000 + 32 * i, START + 200 + i, 0);
    }
    /* the RSS sample waits for the events gathered while it was taken */
    expect(MT_REC_RSS, 1 << 20, START + 90, 0);
    dump_write_module_unload(&w, START + 300, 1);
    expect(MT_REC_MODULE_UNLOAD, 1, START + 300, 0);
    dump_write_inherit(&w, 0x9000, 77, 1);
    expect(MT_REC_INHERIT, 0x9000, 77, 1);
    dump_write_inherit_totals(&w, 5, 4, 300);
    expect(MT_REC_INHERIT_TOTALS, 5, 4, 300);
    dump_write_incomplete(&w, START + 350, MT_INCOMPLETE_NO_RING, 3);
    expect(MT_REC_INCOMPLETE, MT_INCOMPLETE_NO_RING, 3, START + 350);
    dump_write_exit(&w, START + 400, MT_EXIT_SIGNAL, 9);
    expect(MT_REC_EXIT, MT_EXIT_SIGNAL, 9, START + 400);
    dump_write_end(&w, START + 400);
    expect(MT_REC_END, START + 400, 0, 0);
    CHECK(dump_writer_close(&w) == 0);
}

static int matches(const struct dump_record *r, const struct expected *e)
{
    if ((int)r->type != e->type)
        return 0;
    switch (e->type) {
    case MT_REC_MODULE_LOAD:
        return r->id == e->a && r->load_bias == e->b && r->nsegments == e->c &&
               r->path_len == 9 && memcmp(r->path, "/bin/prog", 9) == 0 && r->build_id_len == 3 &&
               r->segments[0].memsz == 0x2000 && r->segments[1].flags == 0;
    case MT_REC_THREAD: return r->id == e->a && r->tid == e->b;
    case MT_REC_STACK: return r->id == e->a && r->depth == e->b && r->ips[1] == e->c;
    case MT_REC_ALLOC: return r->address == e->a && r->size == e->b && r->time == e->c && r->stack == 1;
    case MT_REC_RSS: return r->rss == e->a && r->time == e->b;
    case MT_REC_FREE: return r->address == e->a && r->time == e->b;
    case MT_REC_MODULE_UNLOAD: return r->id == e->a && r->time == e->b;
    case MT_REC_INHERIT: return r->address == e->a && r->size == e->b && r->stack == e->c;
    case MT_REC_INHERIT_TOTALS:
        return r->allocations == e->a && r->frees == e->b && r->bytes_allocated == e->c;
    case MT_REC_EXIT: return r->exit_how == e->a && r->exit_value == (int64_t)e->b && r->time == e->c;
    case MT_REC_END: return r->time == e->a;
    case MT_REC_INCOMPLETE: return r->reason == e->a && r->count == e->b && r->time == e->c;
    case MT_REC_ALLOCATOR:
        return r->function == e->a && r->name_len == e->b && memcmp(r->name, "pool_alloc", 10) == 0;
    case MT_REC_MARK:
        return r->thread == e->a && r->name_len == e->b && r->time == e->c &&
               memcmp(r->name, "second phase", 12) == 0;
    }
    return 0;
}

/* Reads path; returns how many records matched the expected prefix, or -1
 * if a record differed from what was written (an invented record). */
static int read_prefix(const char *path, int *status, int *truncated)
{
    struct dump_reader r;
    *truncated = 0;
    if (dump_open(&r, path) != 0) {
        *status = -1;
        dump_close(&r);
        return 0;
    }
    int n = 0, bad = 0, got;
    struct dump_record rec;
    while ((got = dump_next(&r, &rec)) == 1) {
        if (n >= nwant || !matches(&rec, &want[n]))
            bad = 1;
        n++;
    }
    *status = got;
    *truncated = r.truncated;
    int argv_ok = r.process.argc == 3 && strcmp(r.process.argv[2], "a\"quote") == 0 &&
                  strcmp(r.process.exe, "/bin/prog") == 0 && r.process.pid == 42;
    dump_close(&r);
    return bad || !argv_ok ? -1 : n;
}

/* ---- EVENTS records --------------------------------------------------- */

struct event {
    int free;
    uint64_t time, thread, function, address, size, stack;
};

#define NEVENTS 40000 /* more than one EVENTS record holds */

static uint64_t xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void make_events(struct event *e, int n)
{
    uint64_t x = 88172645463325252ull, t = START;
    for (int i = 0; i < n; i++) {
        uint64_t r = xorshift(&x);
        struct event *v = &e[i];
        v->free = r & 1;
        t += (r >> 8) % 5000;
        if (i % 1000 == 7)
            t -= 300; /* times may step back a little (RSS does): dt is signed */
        v->time = t;
        v->thread = (r >> 20) % 16 == 0 ? 1 + (r >> 24) % 40 : (i ? e[i - 1].thread : 1);
        v->function = (r >> 30) % 8 == 0 ? MT_FN_CUSTOM_BASE + (r >> 33) % 4000
                      : (r >> 30) % 8 == 1 ? 15 + (r >> 33) % 2 /* the edge of the head's bits */
                                           : 1 + (r >> 33) % 14;
        switch ((r >> 40) % 8) {
        case 0: v->address = 0x555500000000ull + ((r >> 12) & 0xffff0); break;
        case 1: v->address = 0x7f0000000000ull + ((r >> 12) & 0xfffff); break; /* odd */
        case 2: v->address = 0xfffffffffffffff0ull - ((r >> 12) & 0xff0); break; /* wraps */
        case 3: v->address = 16 + ((r >> 12) & 0xff0); break;
        case 4: v->address = r | 1; break; /* any 64-bit value */
        case 5: v->address = i ? e[i - 1].address : 0x1000; break;
        default: /* a block freed a little earlier: up to 400 events back */
            v->address = 0x2000;
            for (int k = i - 1, skip = (int)((r >> 12) % 300); k >= 0 && k > i - 400; k--) {
                if (e[k].free && skip-- == 0) {
                    v->address = e[k].address;
                    break;
                }
            }
        }
        v->size = (r >> 50) % 4 == 0 ? r : (r >> 12) % 600;
        v->stack = (r >> 44) % 3 == 0 ? 0 : (r >> 46) % 100000;
    }
}

static void events_round_trip(const char *dir)
{
    static struct event e[NEVENTS];
    make_events(e, NEVENTS);
    char path[256];
    snprintf(path, sizeof path, "%s/events.mtr", dir);
    struct dump_writer w;
    char *argv[] = {"./prog"};
    start_dump(&w, path, 7, 1, argv);
    for (int i = 0; i < NEVENTS; i++) {
        if (i == NEVENTS / 2)
            dump_write_rss(&w, e[i - 1].time, 4096); /* ends one EVENTS record early */
        if (e[i].free)
            dump_write_free(&w, e[i].time, e[i].thread, e[i].function, e[i].address);
        else
            dump_write_alloc(&w, e[i].time, e[i].thread, e[i].function, e[i].address, e[i].size,
                             e[i].stack);
    }
    dump_write_end(&w, e[NEVENTS - 1].time);
    CHECK(dump_writer_close(&w) == 0);

    struct dump_reader r;
    CHECK(dump_open(&r, path) == 0);
    struct dump_record rec;
    int n = 0, wrong = 0, rss = 0, got;
    while ((got = dump_next(&r, &rec)) == 1) {
        if (rec.type == MT_REC_RSS) {
            rss++;
            continue;
        }
        if (rec.type == MT_REC_END)
            continue;
        const struct event *v = &e[n < NEVENTS ? n : NEVENTS - 1];
        int ok = (int)rec.type == (v->free ? MT_REC_FREE : MT_REC_ALLOC) && rec.time == v->time &&
                 rec.thread == v->thread && rec.function == v->function &&
                 rec.address == v->address &&
                 (v->free || (rec.size == v->size && rec.stack == v->stack));
        if (!ok && wrong++ < 5)
            fprintf(stderr, "event %d read back wrong\n", n);
        n++;
    }
    CHECK(got == 0 && !r.truncated);
    CHECK(n == NEVENTS && wrong == 0 && rss == 1);
    dump_close(&r);
    unlink(path);
}

int main(void)
{
    char dir[] = "/tmp/memtrace-unit-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256], cut[256];
    snprintf(path, sizeof path, "%s/full.mtr", dir);
    snprintf(cut, sizeof cut, "%s/cut.mtr", dir);
    write_sample(path);

    /* refuses to overwrite */
    struct dump_writer w2;
    CHECK(dump_writer_create(&w2, path, 0) != 0);

    int status, truncated;
    CHECK(read_prefix(path, &status, &truncated) == nwant);
    CHECK(status == 0 && !truncated);

    FILE *f = fopen(path, "rb");
    static unsigned char data[1 << 16];
    size_t size = fread(data, 1, sizeof data, f);
    fclose(f);
    CHECK(size > 16 && size < sizeof data);

    /* cut at every byte: a prefix of the records, flagged as truncated */
    int prefix_ok = 1, last = -1;
    for (size_t len = 0; len < size; len++) {
        unlink(cut);
        f = fopen(cut, "wb");
        fwrite(data, 1, len, f);
        fclose(f);
        int n = read_prefix(cut, &status, &truncated);
        if (n < 0 || (status == 0 && !truncated && len < size)) {
            fprintf(stderr, "cut at %zu of %zu: %d records, status %d, truncated %d\n", len, size,
                    n, status, truncated);
            prefix_ok = 0;
        }
        if (status == 0 && n < last) /* longer prefixes never read less */
            prefix_ok = 0;
        if (status == 0)
            last = n;
    }
    CHECK(prefix_ok);

    /* damage single bytes: the reader refuses or reads records, never crashes;
     * damage in the header is always refused */
    for (size_t i = 0; i < size; i++) {
        unsigned char saved = data[i];
        data[i] ^= 0x5a;
        unlink(cut);
        f = fopen(cut, "wb");
        fwrite(data, 1, size, f);
        fclose(f);
        struct dump_reader r;
        int opened = dump_open(&r, cut);
        if (i < 16)
            CHECK(opened != 0);
        int refused = opened != 0;
        if (opened == 0) {
            struct dump_record rec;
            int steps = 0, got;
            while ((got = dump_next(&r, &rec)) == 1 && steps < 10000)
                steps++;
            CHECK(steps < 10000);
            refused = got < 0;
        }
        /* the frame checksum catches what the decoder does not */
        if (!refused)
            fprintf(stderr, "damaged byte %zu of %zu was not detected\n", i, size);
        CHECK(refused);
        CHECK(!refused || strstr(r.error, "byte") || strstr(r.error, "offset"));
        dump_close(&r);
        data[i] = saved;
    }
    /* an ALLOCATOR record naming a function outside the custom range */
    unlink(cut);
    struct dump_writer w3;
    char *argv1[] = {"./prog"};
    start_dump(&w3, cut, 1, 1, argv1);
    dump_write_allocator(&w3, MT_FN_MALLOC, "malloc", 6);
    dump_write_end(&w3, START + 1);
    CHECK(dump_writer_close(&w3) == 0);
    {
        struct dump_reader r;
        struct dump_record rec;
        CHECK(dump_open(&r, cut) == 0);
        CHECK(dump_next(&r, &rec) < 0 && strstr(r.error, "offset"));
        dump_close(&r);
    }
    events_round_trip(dir);

    /* a missing file */
    struct dump_reader r;
    CHECK(dump_open(&r, "/nonexistent/x.mtr") != 0 && strstr(r.error, "cannot open"));
    dump_close(&r);
    unlink(cut);
    unlink(path);
    rmdir(dir);
    return check_report();
}
