/* Dumps made by hand, byte by byte as the format lists its fields (SPEC
 * section 4): a version 1 dump (one ALLOC or FREE record per event) still
 * reads; damaged EVENTS records are refused, never misread; recently freed
 * addresses and stack records like the consumer's read back. */
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


/* ---- dumps made by hand ----------------------------------------------- */

/* Encodes a PROCESS record (pid 9, program "prog", no arguments) at p, field
 * by field as the format lists them; returns its length. */
static size_t raw_process(unsigned char *p)
{
    unsigned char *start = p;
    *p++ = MT_REC_PROCESS;
    uint64_t process[] = {9, 1, START, 5, 0, MT_UNWIND_DWARF, 64};
    for (int i = 0; i < 7; i++)
        p += mt_varint_put(p, process[i]);
    p += mt_varint_put(p, 4);
    memcpy(p, "prog", 4), p += 4;
    p += mt_varint_put(p, 0); /* argc */
    return (size_t)(p - start);
}

/* Writes a dump file at path: a header of the given version, then the n
 * bytes of records at raw, compressed without a checksum so that only the
 * decoder judges them. */
static void write_file(const char *path, uint32_t version, const unsigned char *raw, size_t n)
{
    static unsigned char file[8192];
    struct mt_file_header h = {.version = version};
    memcpy(h.magic, MT_MAGIC, 8);
    memcpy(file, &h, sizeof h);
    size_t z = ZSTD_compress(file + sizeof h, sizeof file - sizeof h, raw, n, 1);
    CHECK(!ZSTD_isError(z));
    unlink(path);
    FILE *f = fopen(path, "wb");
    fwrite(file, 1, sizeof h + z, f);
    fclose(f);
}

/* A version 1 dump, as memtrace wrote them before EVENTS records: one
 * ALLOC or FREE record per event. */
static void version_1_reads(const char *dir)
{
    unsigned char raw[512], *p = raw;
    p += raw_process(p);
    *p++ = MT_REC_ALLOC; /* dt, thread, function, address, size, stack */
    uint64_t alloc[] = {mt_zigzag(100), 1, MT_FN_MALLOC, 0x5555000010ull, 48, 0};
    for (int i = 0; i < 6; i++)
        p += mt_varint_put(p, alloc[i]);
    *p++ = MT_REC_FREE; /* dt, thread, function, address */
    uint64_t free_[] = {mt_zigzag(50), 1, MT_FN_FREE, 0x5555000010ull};
    for (int i = 0; i < 4; i++)
        p += mt_varint_put(p, free_[i]);
    *p++ = MT_REC_END;
    p += mt_varint_put(p, 0);
    char path[256];
    snprintf(path, sizeof path, "%s/v1.mtr", dir);
    write_file(path, 1, raw, (size_t)(p - raw));
    struct dump_reader r;
    struct dump_record rec;
    CHECK(dump_open(&r, path) == 0);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_ALLOC && rec.address == 0x5555000010ull &&
          rec.size == 48 && rec.time == START + 100);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_FREE && rec.time == START + 150);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_END);
    CHECK(dump_next(&r, &rec) == 0 && !r.truncated);
    dump_close(&r);
    /* and a version this memtrace does not know is refused by name */
    write_file(path, MT_FORMAT_VERSION + 1, raw, (size_t)(p - raw));
    CHECK(dump_open(&r, path) != 0 && strstr(r.error, "version") && strstr(r.error, "byte 8"));
    dump_close(&r);
    unlink(path);
}

/* A dump of this version: a PROCESS record, the given records and (if end)
 * an END. */
static void write_raw_version(const char *path, uint32_t version, const unsigned char *records,
                              size_t n, int end)
{
    static unsigned char raw[4096];
    unsigned char *p = raw;
    p += raw_process(p);
    memcpy(p, records, n), p += n;
    if (end) {
        *p++ = MT_REC_END;
        p += mt_varint_put(p, 0);
    }
    write_file(path, version, raw, (size_t)(p - raw));
}

static void write_raw(const char *path, const unsigned char *records, size_t n, int end)
{
    write_raw_version(path, MT_FORMAT_VERSION, records, n, end);
}

/* Builds an EVENTS record of ncolumns columns from its columns (NULL-terminated strings of
 * bytes would not do: columns hold zeros), with count events. */
static size_t events_record_of(unsigned char *out, uint64_t count, int ncolumns,
                               const unsigned char *const col[MT_EVENTS_COLUMNS],
                               const size_t len[MT_EVENTS_COLUMNS])
{
    unsigned char *p = out;
    *p++ = MT_REC_EVENTS;
    p += mt_varint_put(p, count);
    for (int k = 0; k < ncolumns; k++)
        p += mt_varint_put(p, len[k]);
    for (int k = 0; k < ncolumns; k++)
        memcpy(p, col[k], len[k]), p += len[k];
    return (size_t)(p - out);
}

static size_t events_record(unsigned char *out, uint64_t count,
                            const unsigned char *const col[MT_EVENTS_COLUMNS],
                            const size_t len[MT_EVENTS_COLUMNS])
{
    return events_record_of(out, count, MT_EVENTS_COLUMNS, col, len);
}

/* Reads path to its end: 1 if it read n events and ended cleanly, 0 if it
 * read fewer and was cut short, -1 if refused (with an offset). */
static int read_events(const char *path, int n)
{
    struct dump_reader r;
    struct dump_record rec;
    if (dump_open(&r, path) != 0) {
        dump_close(&r);
        return -2;
    }
    int events = 0, got;
    while ((got = dump_next(&r, &rec)) == 1)
        events += rec.type == MT_REC_ALLOC || rec.type == MT_REC_FREE;
    int result = got < 0 ? (strstr(r.error, "offset") ? -1 : -3)
                 : events == n && !r.truncated ? 1 : r.truncated ? 0 : -4;
    dump_close(&r);
    return result;
}

/* EVENTS records made by hand: a good one reads; each kind of damage the
 * decoder must see is refused with the record's offset; cut inside, the
 * record is not read at all. */
static void events_corrupt(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/raw.mtr", dir);
    /* FREE of 0x1000 (thread 1, function free), then ALLOC of 48 bytes at
     * that address, as a recent free (0 back), stack 3 */
    unsigned char head[] = {MT_EV_FREE | MT_EV_THREAD | MT_FN_FREE, MT_EV_RECENT | MT_FN_MALLOC};
    unsigned char threads[] = {1}, time_low[] = {20, 40}, time_high[] = {0, 0};
    unsigned char a0[] = {0x00}, a1[] = {0x02}, ahigh[] = {0}; /* zigzag(0x1000 / 16) = 0x200 */
    unsigned char recent[] = {0}, size_low[] = {48}, size_high[] = {0}, stack_low[] = {3},
                  stack_high[] = {0};
    const unsigned char *col[MT_EVENTS_COLUMNS] = {
        [MT_EVC_HEAD] = head,         [MT_EVC_THREADS] = threads,   [MT_EVC_FUNCTIONS] = NULL,
        [MT_EVC_TIME_LOW] = time_low, [MT_EVC_TIME_HIGH] = time_high, [MT_EVC_ADDRESS_0] = a0,
        [MT_EVC_ADDRESS_1] = a1,      [MT_EVC_ADDRESS_HIGH] = ahigh, [MT_EVC_RECENT] = recent,
        [MT_EVC_SIZE_LOW] = size_low, [MT_EVC_SIZE_HIGH] = size_high,
        [MT_EVC_STACK_LOW] = stack_low, [MT_EVC_STACK_HIGH] = stack_high};
    size_t len[MT_EVENTS_COLUMNS] = {2, 1, 0, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1};
    unsigned char rec[256];
    size_t n = events_record(rec, 2, col, len);
    write_raw(path, rec, n, 1);
    CHECK(read_events(path, 2) == 1);
    {
        struct dump_reader r;
        struct dump_record e;
        CHECK(dump_open(&r, path) == 0);
        CHECK(dump_next(&r, &e) == 1 && e.type == MT_REC_FREE && e.address == 0x1000 &&
              e.thread == 1 && e.function == MT_FN_FREE && e.time == START + 10);
        CHECK(dump_next(&r, &e) == 1 && e.type == MT_REC_ALLOC && e.address == 0x1000 &&
              e.size == 48 && e.stack == 3 && e.thread == 1 && e.time == START + 30);
        dump_close(&r);
    }
    /* the same record in a version 2 dump, with 13 columns, reads alike;
     * with the 14 of version 3 it is refused */
    write_raw_version(path, 2, rec, events_record_of(rec, 2, MT_EVENTS_COLUMNS_V2, col, len), 1);
    CHECK(read_events(path, 2) == 1);
    write_raw_version(path, 2, rec, n, 1);
    CHECK(read_events(path, 2) == -1);
    write_raw(path, rec, n, 1);
    /* cut inside the record: nothing of it, and no error */
    for (size_t cut = 1; cut < n; cut++) {
        write_raw(path, rec, cut, 0);
        CHECK(read_events(path, 0) == 0);
    }
    /* a varint column with a byte too many */
    unsigned char ahigh2[] = {0, 0};
    col[MT_EVC_ADDRESS_HIGH] = ahigh2, len[MT_EVC_ADDRESS_HIGH] = 2;
    write_raw(path, rec, events_record(rec, 2, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    col[MT_EVC_ADDRESS_HIGH] = ahigh, len[MT_EVC_ADDRESS_HIGH] = 1;
    /* a column too short for its events */
    len[MT_EVC_SIZE_LOW] = 0;
    write_raw(path, rec, events_record(rec, 2, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    len[MT_EVC_SIZE_LOW] = 1;
    /* a recent free further back than there were frees */
    recent[0] = 1;
    write_raw(path, rec, events_record(rec, 2, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    recent[0] = 0;
    /* a FREE claiming a recent allocation's address, with none before it */
    head[0] |= MT_EV_RECENT;
    unsigned char recent_alloc[] = {0};
    col[MT_EVC_RECENT_ALLOC] = recent_alloc, len[MT_EVC_RECENT_ALLOC] = 1;
    write_raw(path, rec, events_record(rec, 2, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    len[MT_EVC_RECENT_ALLOC] = 0;
    head[0] &= (unsigned char)~MT_EV_RECENT;
    /* ALLOC then its FREE as a recent allocation 0 back reads; 1 back (no
     * such allocation) is refused */
    {
        unsigned char h2[] = {MT_EV_THREAD | MT_FN_MALLOC, MT_EV_FREE | MT_EV_RECENT | MT_FN_FREE};
        unsigned char a2_0[] = {0x00}, a2_1[] = {0x02}, a2_h[] = {0};
        const unsigned char *c2[MT_EVENTS_COLUMNS];
        size_t l2[MT_EVENTS_COLUMNS];
        memcpy(c2, col, sizeof c2);
        memcpy(l2, len, sizeof l2);
        c2[MT_EVC_HEAD] = h2, c2[MT_EVC_ADDRESS_0] = a2_0, c2[MT_EVC_ADDRESS_1] = a2_1;
        c2[MT_EVC_ADDRESS_HIGH] = a2_h, c2[MT_EVC_RECENT_ALLOC] = recent_alloc;
        l2[MT_EVC_RECENT] = 0, l2[MT_EVC_RECENT_ALLOC] = 1;
        write_raw(path, rec, events_record(rec, 2, c2, l2), 1);
        CHECK(read_events(path, 2) == 1);
        recent_alloc[0] = 1;
        write_raw(path, rec, events_record(rec, 2, c2, l2), 1);
        CHECK(read_events(path, 2) == -1);
        recent_alloc[0] = 0;
    }
    /* a head column shorter than the count, and a count of 0 */
    write_raw(path, rec, events_record(rec, 3, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    size_t none[MT_EVENTS_COLUMNS] = {0};
    write_raw(path, rec, events_record(rec, 0, col, none), 1);
    CHECK(read_events(path, 0) == -1);
    /* an address that comes to 0 */
    head[1] &= (unsigned char)~MT_EV_RECENT;
    unsigned char a0_2[] = {0x00, 0xff}, a1_2[] = {0x02, 0x01}, ahigh_2[] = {0, 0};
    col[MT_EVC_ADDRESS_0] = a0_2, col[MT_EVC_ADDRESS_1] = a1_2, col[MT_EVC_ADDRESS_HIGH] = ahigh_2;
    len[MT_EVC_ADDRESS_0] = len[MT_EVC_ADDRESS_1] = len[MT_EVC_ADDRESS_HIGH] = 2;
    len[MT_EVC_RECENT] = 0; /* zigzag(-0x1000 / 16) = 0x1ff: back to 0 */
    write_raw(path, rec, events_record(rec, 2, col, len), 1);
    CHECK(read_events(path, 2) == -1);
    unlink(path);
}

/* Writes and reads back events whose addresses take each encoding: FREE
 * events of recent ALLOCs (0 back, and MT_RECENT_ALLOCS - 1 back), of ALLOCs
 * too far back, ALLOCs at recently freed addresses and at new ones; RSS
 * samples wait for the events and are all written, DUMP_RSS_PENDING of
 * them at most at once. */
static void recent_events(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/recent.mtr", dir);
    struct dump_writer w;
    char *argv[] = {"./prog"};
    start_dump(&w, path, 7, 1, argv);
    enum { N = MT_RECENT_ALLOCS + 100, RSS = DUMP_RSS_PENDING * 2 + 3 };
    static uint64_t address[N], order[3 * N];
    uint64_t t = START, n = 0;
    for (int i = 0; i < N; i++) {
        address[i] = 0x700000000000ull + (uint64_t)i * 48 + (i % 7 ? 0 : 8);
        dump_write_alloc(&w, ++t, 1, MT_FN_MALLOC, address[i], 40, 1);
        order[n++] = address[i];
    }
    for (int i = 0; i < RSS; i++)
        dump_write_rss(&w, t, 4096u * (unsigned)(i + 1));
    /* the newest, the one MT_RECENT_ALLOCS - 1 back, then older ones */
    int frees[] = {N - 1, N - (int)MT_RECENT_ALLOCS, N - (int)MT_RECENT_ALLOCS - 1, 0, 50};
    for (size_t k = 0; k < sizeof frees / sizeof *frees; k++) {
        dump_write_free(&w, ++t, 1, MT_FN_FREE, address[frees[k]]);
        order[n++] = address[frees[k]];
        /* and at once again, at that freed address */
        dump_write_alloc(&w, ++t, 1, MT_FN_MALLOC, address[frees[k]], 40, 1);
        order[n++] = address[frees[k]];
    }
    dump_write_end(&w, ++t);
    CHECK(dump_writer_close(&w) == 0);

    struct dump_reader r;
    struct dump_record rec;
    CHECK(dump_open(&r, path) == 0);
    uint64_t events = 0, rss = 0, rss_sum = 0, wrong = 0;
    int got;
    while ((got = dump_next(&r, &rec)) == 1) {
        if (rec.type == MT_REC_ALLOC || rec.type == MT_REC_FREE) {
            int want_free = events >= N && (events - N) % 2 == 0;
            wrong += events >= n || rec.address != order[events] ||
                     (rec.type == MT_REC_FREE) != want_free;
            events++;
        } else if (rec.type == MT_REC_RSS) {
            /* after the events gathered with it: the first 2 x 32 when
             * the 33rd and the 65th came, the rest at the end */
            CHECK(events == (rss < 2 * DUMP_RSS_PENDING ? (uint64_t)N : n));
            rss++;
            rss_sum += rec.rss;
        }
    }
    CHECK(got == 0 && !r.truncated);
    CHECK(events == n && wrong == 0);
    CHECK(rss == RSS && rss_sum == 4096u * RSS * (RSS + 1) / 2);
    dump_close(&r);
    unlink(path);
}

/* Stacks written like the one before them (STACK_LIKE records) read back
 * whole, whatever they share with it: nothing, one end, both ends, all of
 * it, more or fewer frames; a record keeping more frames than the last
 * stack had is refused. */
static void stacks_like(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/stacks.mtr", dir);
    static const uint64_t s[][6] = {
        {0x10, 0x20, 0x30, 0x40}, /* nothing before it */
        {0x11, 0x20, 0x30, 0x40}, /* the outer 3 */
        {0x11, 0x20, 0x35, 0x40}, /* 2 inner, 1 outer */
        {0x11, 0x20, 0x35, 0x40}, /* all of it */
        {0x11, 0x20, 0x35, 0x40, 0x50, 0x60}, /* 4 inner, then 2 more */
        {0x11, 0x60},             /* 1 inner, 1 outer, none new */
        {0x99},                   /* nothing in common */
        {0},                      /* depth 0 */
        {0x99, 0x11},
    };
    static const uint64_t depth[] = {4, 4, 4, 4, 6, 2, 1, 0, 2};
    enum { N = sizeof depth / sizeof *depth };
    struct dump_writer w;
    char *argv[] = {"./prog"};
    start_dump(&w, path, 7, 1, argv);
    for (int i = 0; i < N; i++)
        dump_write_stack(&w, (uint64_t)i + 1, s[i], depth[i]);
    dump_write_end(&w, START + 1);
    CHECK(dump_writer_close(&w) == 0);
    struct dump_reader r;
    struct dump_record rec;
    CHECK(dump_open(&r, path) == 0);
    int n = 0, wrong = 0, got;
    while ((got = dump_next(&r, &rec)) == 1) {
        if (rec.type != MT_REC_STACK)
            continue;
        wrong += n >= N || rec.id != (uint64_t)n + 1 || rec.depth != depth[n] ||
                 (depth[n] && memcmp(rec.ips, s[n], depth[n] * sizeof *rec.ips) != 0);
        n++;
    }
    CHECK(got == 0 && n == N && wrong == 0);
    dump_close(&r);

    /* by hand: a STACK of 2 frames, then a STACK_LIKE keeping 2 inner and
     * 1 outer of them, which it does not have */
    unsigned char raw[64], *p = raw;
    *p++ = MT_REC_STACK;
    p += mt_varint_put(p, 1);
    p += mt_varint_put(p, 2);
    p += mt_varint_put(p, mt_zigzag(0x10));
    p += mt_varint_put(p, mt_zigzag(0x10));
    unsigned char *like = p;
    *p++ = MT_REC_STACK_LIKE;
    p += mt_varint_put(p, 2);
    p += mt_varint_put(p, 1); /* inner */
    p += mt_varint_put(p, 1); /* outer */
    p += mt_varint_put(p, 1); /* n */
    p += mt_varint_put(p, mt_zigzag(5));
    write_raw(path, raw, (size_t)(p - raw), 1);
    CHECK(dump_open(&r, path) == 0);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_STACK && rec.depth == 2);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_STACK && rec.depth == 3 &&
          rec.ips[0] == 0x10 && rec.ips[1] == 0x15 && rec.ips[2] == 0x20);
    dump_close(&r);
    like[3] = 2; /* outer 2: 3 of the 2 frames kept */
    write_raw(path, raw, (size_t)(p - raw), 1);
    CHECK(dump_open(&r, path) == 0);
    CHECK(dump_next(&r, &rec) == 1 && rec.type == MT_REC_STACK);
    CHECK(dump_next(&r, &rec) == -1 && strstr(r.error, "offset"));
    dump_close(&r);
    unlink(path);
}

int main(void)
{
    char dir[] = "/tmp/memtrace-unit-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    events_corrupt(dir);
    recent_events(dir);
    stacks_like(dir);
    version_1_reads(dir);
    rmdir(dir);
    return check_report();
}
