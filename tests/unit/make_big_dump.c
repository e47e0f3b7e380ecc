/* make_big_dump OUT.mtr N [MODULE]: writes, with the consumer's dump writer
 * (cli/consumer/dump_writer.c), a realistic dump of exactly N ALLOC/FREE events, and
 * prints on stdout, as one JSON object, the totals that `memtrace report`
 * must find in it. Used by tests/e2e/test_big_dump.py (SPEC section 11:
 * reading a dump takes memory in proportion to the live heap and the stacks,
 * never to the number of events).
 *
 * The dump: a PROCESS record; a MODULE_LOAD of MODULE (default: this
 * executable, /proc/self/exe) with its real PT_LOAD segments and its build id
 * (read from its PT_NOTE), at a PIE-like load bias; STACKS distinct STACK
 * records whose return addresses all fall in that module's executable
 * segment; THREADS threads; then the events: allocations and frees with
 * increasing times (50 to 177 ns apart), sizes from 0 bytes to 1 MiB (mostly
 * small), malloc/calloc/new/new[] with the matching free/delete, a random
 * live block freed by a random thread (cross-thread frees included), one
 * allocation in 16 freed at once by its own thread (a temporary), addresses
 * reused LIFO, a live set that rises and falls in waves and never exceeds
 * MAX_LIVE blocks, and exactly REMAINDER blocks (or one more, so that the
 * counts add up) still live at the end; an RSS sample every ~10 ms of dump
 * time; EXIT (status 0) and END. Deterministic: the same N gives the same
 * dump and the same totals.
 *
 * Totals printed: allocations, frees, bytes_allocated, in_use_bytes,
 * in_use_blocks, peak_bytes, peak_blocks (live blocks when the peak of bytes
 * was first reached), peak_time_ns (since the process start), temporary_
 * allocations (blocks freed by the thread that allocated them before that
 * thread allocated again), plus events, stacks, threads and the module.
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../cli/consumer/dump_writer.h"
#include "memtrace/format.h"

#define MAX_LIVE 100000u
#define REMAINDER 1000u
#define STACKS 400u
#define THREADS 6u
#define MAX_DEPTH 24u
#define START_NS 1000000000ull
#define LOAD_BIAS 0x555555554000ull
#define HEAP_BASE 0x7f3a00000000ull
#define SLOT_STRIDE (1ull << 20) /* every address slot holds up to 1 MiB */
#define WAVE_EVENTS 6000000ull   /* events per rise-and-fall of the live set */
#define RSS_EVERY_NS 10000000ull

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "make_big_dump: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

/* ---- the module: PT_LOAD segments and build id of a 64-bit ELF file ------ */

#define MAX_SEGMENTS 16

struct module {
    char path[4096];
    uint64_t triples[MAX_SEGMENTS * 3];
    uint64_t nsegments;
    unsigned char build_id[64];
    size_t build_id_len;
    int pie;
    uint64_t text_lo, text_hi; /* the executable segment, unbiased */
};

static void read_exact(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    if (pread(fd, buf, n, (off_t)off) != (ssize_t)n)
        die("cannot read the module", path);
}

static void read_module(struct module *m, const char *path)
{
    memset(m, 0, sizeof *m);
    if (!realpath(path, m->path))
        die("cannot resolve the module", path);
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        die("cannot open the module", m->path);
    Elf64_Ehdr eh;
    read_exact(fd, &eh, sizeof eh, 0, m->path);
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
        eh.e_phentsize != sizeof(Elf64_Phdr))
        die("not a 64-bit ELF file", m->path);
    m->pie = eh.e_type == ET_DYN;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        read_exact(fd, &ph, sizeof ph, eh.e_phoff + (uint64_t)i * sizeof ph, m->path);
        if (ph.p_type == PT_LOAD && m->nsegments < MAX_SEGMENTS) {
            uint64_t *t = &m->triples[m->nsegments++ * 3];
            t[0] = ph.p_vaddr;
            t[1] = ph.p_memsz;
            t[2] = (ph.p_flags & PF_X) ? 1 : 0;
            if ((ph.p_flags & PF_X) && !m->text_hi) {
                m->text_lo = ph.p_vaddr;
                m->text_hi = ph.p_vaddr + ph.p_memsz;
            }
        } else if (ph.p_type == PT_NOTE && !m->build_id_len && ph.p_filesz < (1u << 20)) {
            unsigned char *notes = malloc(ph.p_filesz);
            if (!notes)
                die("out of memory", NULL);
            read_exact(fd, notes, ph.p_filesz, ph.p_offset, m->path);
            uint64_t align = ph.p_align == 8 ? 8 : 4, pos = 0;
            while (pos + sizeof(Elf64_Nhdr) <= ph.p_filesz) {
                Elf64_Nhdr nh;
                memcpy(&nh, notes + pos, sizeof nh);
                uint64_t name = pos + sizeof nh;
                uint64_t desc = name + ((nh.n_namesz + align - 1) & ~(align - 1));
                uint64_t next = desc + ((nh.n_descsz + align - 1) & ~(align - 1));
                if (desc + nh.n_descsz > ph.p_filesz)
                    break;
                if (nh.n_type == NT_GNU_BUILD_ID && nh.n_namesz == 4 &&
                    memcmp(notes + name, "GNU", 4) == 0 && nh.n_descsz <= sizeof m->build_id) {
                    memcpy(m->build_id, notes + desc, nh.n_descsz);
                    m->build_id_len = nh.n_descsz;
                    break;
                }
                pos = next;
            }
            free(notes);
        }
    }
    close(fd);
    if (!m->text_hi || m->text_hi - m->text_lo < 64)
        die("no executable segment in the module", m->path);
}

/* ---- the heap model ------------------------------------------------------ */

/* A live block sits in an address slot; live[] lists the occupied slots (a
 * free picks one at random), free_slots[] the unused ones (LIFO: the address
 * most recently freed is the next one given, as allocators do). */
struct slot {
    uint32_t size;
    uint32_t live_pos;  /* index in live[] */
    uint64_t serial;    /* which allocation this is, 1, 2, ... */
    uint8_t function;   /* MT_FN_* of the allocation */
    uint8_t thread;
};

static struct slot slots[MAX_LIVE];
static uint32_t live[MAX_LIVE], nlive;
static uint32_t free_slots[MAX_LIVE], nfree;

struct totals {
    uint64_t allocations, frees, bytes_allocated, in_use_bytes, in_use_blocks;
    uint64_t peak_bytes, peak_blocks, peak_time_ns, temporary;
};

struct thread_state {
    uint64_t last_serial; /* serial of this thread's latest allocation */
};

static uint64_t slot_address(uint32_t s) { return HEAP_BASE + (uint64_t)s * SLOT_STRIDE + 16; }

static uint32_t pick_size(void)
{
    uint64_t r = rng() % 1000;
    if (r < 5)
        return 0; /* malloc(0) */
    if (r < 700)
        return 8 + (uint32_t)(rng() % 120);
    if (r < 950)
        return 128 + (uint32_t)(rng() % 1920);
    if (r < 998)
        return 2048 + (uint32_t)(rng() % 62000);
    return 65536 + (uint32_t)(rng() % (SLOT_STRIDE - 65536 - 16)); /* mmap'd sizes */
}

static uint8_t pick_alloc_function(void)
{
    uint64_t r = rng() % 100;
    if (r < 70)
        return MT_FN_MALLOC;
    if (r < 80)
        return MT_FN_CALLOC;
    if (r < 95)
        return MT_FN_NEW;
    return MT_FN_NEW_ARRAY;
}

static uint8_t free_function(uint8_t alloc_function)
{
    return alloc_function == MT_FN_NEW         ? MT_FN_DELETE
           : alloc_function == MT_FN_NEW_ARRAY ? MT_FN_DELETE_ARRAY
                                               : MT_FN_FREE;
}

/* A stack id, skewed: a few hot sites make most allocations. */
static uint64_t pick_stack(void)
{
    uint64_t r = rng();
    if ((r & 3) != 0)
        return 1 + (r >> 8) % 16;
    return 1 + (r >> 8) % STACKS;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: make_big_dump OUT.mtr N [MODULE]\n");
        return 2;
    }
    const char *out = argv[1];
    char *end;
    errno = 0;
    unsigned long long n_events = strtoull(argv[2], &end, 10);
    if (errno || *end || n_events < 2 * REMAINDER + 2)
        die("N must be a number of events, at least", "2002");
    static struct module mod;
    read_module(&mod, argc > 3 ? argv[3] : "/proc/self/exe");
    uint64_t bias = mod.pie ? LOAD_BIAS : 0;

    /* a dump of a process that ran this module */
    struct dump_writer w;
    int err = dump_writer_create(&w, out, START_NS);
    if (err)
        die("cannot create the dump", strerror(err));
    char *pargv[] = {mod.path, "--big", argv[2]};
    struct dump_process_info info = {.pid = 4242, .ppid = 1, .start_ns = START_NS,
                                     .start_realtime_ns = 1700000000000000000ull,
                                     .unwind = MT_UNWIND_DWARF, .max_depth = 64,
                                     .exe = mod.path, .argc = 3, .argv = pargv};
    dump_write_process(&w, &info);
    uint64_t t = START_NS + 1000;
    dump_write_rss(&w, t, 2u << 20);
    dump_write_thread(&w, 1, 4242);
    dump_write_module_load(&w, t, 1, bias, mod.path, strlen(mod.path), mod.build_id,
                           mod.build_id_len, mod.nsegments, mod.triples);

    /* STACKS distinct stacks, innermost first, inside the executable segment:
     * each is a chain of "return addresses" that shares its outer frames with
     * others, as real call trees do */
    uint64_t text = mod.text_hi - mod.text_lo;
    uint64_t outer[8];
    for (int i = 0; i < 8; i++)
        outer[i] = bias + mod.text_lo + 1 + rng() % (text - 1);
    for (uint64_t id = 1; id <= STACKS; id++) {
        uint64_t ips[MAX_DEPTH];
        uint64_t depth = 3 + (id * 7) % (MAX_DEPTH - 3);
        for (uint64_t k = 0; k < depth; k++)
            ips[k] = k + 3 >= depth ? outer[(depth - k + id % 3) % 8]
                                    : bias + mod.text_lo + 1 + rng() % (text - 1);
        ips[0] = bias + mod.text_lo + 1 + (id * 104729) % (text - 1); /* distinct innermost */
        dump_write_stack(&w, id, ips, depth);
    }

    for (uint32_t s = 0; s < MAX_LIVE; s++)
        free_slots[s] = MAX_LIVE - 1 - s;
    nfree = MAX_LIVE;

    struct thread_state threads[THREADS + 1];
    memset(threads, 0, sizeof threads);
    unsigned threads_seen = 1;
    struct totals tot;
    memset(&tot, 0, sizeof tot);
    uint64_t serial = 0, events = 0, next_rss = t + RSS_EVERY_NS;
    /* exactly n_events events, and REMAINDER (or one more) live at the end:
     * d = events left - (live - keep) falls by 2 with each allocation and
     * stays with each free, and must reach 0 */
    uint64_t keep = REMAINDER + ((n_events + REMAINDER) & 1);
    int pending_temporary = -1; /* slot allocated just now, to free at once */

    while (events < n_events) {
        uint64_t left = n_events - events;
        int64_t d = (int64_t)left - ((int64_t)nlive - (int64_t)keep);
        int do_alloc;
        int chosen = -1;
        if (d <= 0) {
            do_alloc = 0;
        } else if (pending_temporary >= 0 && nlive > 0) {
            do_alloc = 0;
            chosen = pending_temporary;
        } else if (nlive == 0) {
            do_alloc = 1;
        } else if (nlive >= MAX_LIVE || d < 2) {
            do_alloc = 0;
        } else {
            /* the live set drifts up for half a wave, down for the other */
            uint64_t phase = events % WAVE_EVENTS;
            unsigned up = phase < WAVE_EVENTS / 2 ? 535 : 475; /* per mille */
            do_alloc = rng() % 1000 < up;
        }
        pending_temporary = -1;
        t += 50 + (rng() & 127);
        if (do_alloc) {
            uint32_t s = free_slots[--nfree];
            struct slot *b = &slots[s];
            b->size = pick_size();
            b->function = pick_alloc_function();
            b->thread = (uint8_t)(1 + rng() % THREADS);
            b->serial = ++serial;
            b->live_pos = nlive;
            live[nlive++] = s;
            if (b->thread > threads_seen) { /* threads appear in order */
                b->thread = (uint8_t)++threads_seen;
                dump_write_thread(&w, b->thread, 4242 + b->thread - 1);
            }
            dump_write_alloc(&w, t, b->thread, b->function, slot_address(s), b->size,
                             pick_stack());
            threads[b->thread].last_serial = b->serial;
            tot.allocations++;
            tot.bytes_allocated += b->size;
            tot.in_use_bytes += b->size;
            tot.in_use_blocks++;
            if (tot.in_use_bytes > tot.peak_bytes) {
                tot.peak_bytes = tot.in_use_bytes;
                tot.peak_blocks = tot.in_use_blocks;
                tot.peak_time_ns = t - START_NS;
            }
            if (rng() % 16 == 0 && d >= 4)
                pending_temporary = (int)s;
        } else {
            uint32_t s = chosen >= 0 ? (uint32_t)chosen : live[rng() % nlive];
            struct slot *b = &slots[s];
            /* a temporary is freed by its own thread; others by any thread
             * that has been seen */
            unsigned thread = chosen >= 0 ? b->thread : 1 + (unsigned)(rng() % threads_seen);
            if (threads[thread].last_serial == b->serial && thread == b->thread)
                tot.temporary++;
            dump_write_free(&w, t, thread, free_function(b->function), slot_address(s));
            tot.frees++;
            tot.in_use_bytes -= b->size;
            tot.in_use_blocks--;
            uint32_t last = live[--nlive];
            live[b->live_pos] = last;
            slots[last].live_pos = b->live_pos;
            free_slots[nfree++] = s;
        }
        events++;
        if (t >= next_rss) {
            dump_write_rss(&w, t, (8u << 20) + tot.in_use_bytes + tot.in_use_blocks * 16);
            next_rss += RSS_EVERY_NS;
        }
        if ((events & 0xffff) == 0)
            dump_writer_tick(&w, now_ns());
    }
    t += 1000;
    dump_write_exit(&w, t, MT_EXIT_STATUS, 0);
    dump_write_end(&w, t);
    err = dump_writer_close(&w);
    if (err)
        die("cannot write the dump", strerror(err));

    char build_id[129] = "";
    for (size_t i = 0; i < mod.build_id_len; i++)
        snprintf(build_id + 2 * i, 3, "%02x", mod.build_id[i]);
    printf("{\"events\": %" PRIu64 ", \"allocations\": %" PRIu64 ", \"frees\": %" PRIu64
           ", \"bytes_allocated\": %" PRIu64 ", \"in_use_bytes\": %" PRIu64
           ", \"in_use_blocks\": %" PRIu64 ", \"peak_bytes\": %" PRIu64
           ", \"peak_blocks\": %" PRIu64 ", \"peak_time_ns\": %" PRIu64
           ", \"temporary_allocations\": %" PRIu64 ", \"duration_ns\": %" PRIu64
           ", \"stacks\": %u, \"threads\": %u, \"max_live_blocks\": %u"
           ", \"module\": \"%s\", \"build_id\": \"%s\", \"dump_bytes\": %" PRIu64 "}\n",
           events, tot.allocations, tot.frees, tot.bytes_allocated, tot.in_use_bytes,
           tot.in_use_blocks, tot.peak_bytes, tot.peak_blocks, tot.peak_time_ns, tot.temporary,
           (uint64_t)(t - START_NS), STACKS, threads_seen, MAX_LIVE, mod.path, build_id, w.bytes_on_disk);
    return 0;
}
