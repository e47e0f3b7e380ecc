/* memtrace dump format, version 3: the single definition of the file that
 * `memtrace run` writes and `memtrace report` reads. Both sides include this
 * header; nothing else may describe the layout.
 *
 * A dump is:
 *
 *   offset 0   struct mt_file_header (16 bytes, not compressed)
 *   offset 16  one zstd stream (one or more frames, flushed at least every
 *              MT_FLUSH_INTERVAL_MS so that a dump cut short at any byte still
 *              decompresses up to its last flushed block)
 *
 * The decompressed stream is a sequence of records. Each record is one type
 * byte (enum mt_record) followed by its fields, in the order listed below.
 * Field encodings:
 *   u   unsigned LEB128 varint (at most 10 bytes)
 *   s   signed varint: zigzag-encoded, then as u
 *   str u length, then that many bytes (no terminating NUL)
 *   dt  s: time delta in nanoseconds against the previous record that carried
 *       a time (the first such record is against header.start_mono_ns). So
 *       every record's absolute time is known while streaming.
 *
 * Times are CLOCK_MONOTONIC nanoseconds. Events of all threads of a process
 * are merged by the consumer in time order; a free is stamped before the real
 * free runs and an allocation after the real allocator returned, so a block
 * freed on one thread and its address reused on another are always ordered
 * free-then-alloc. RSS samples may be out of order with events, by at most
 * MT_FLUSH_INTERVAL_MS: the writer keeps them until the EVENTS record being
 * gathered when they were taken is written, and writes them after it.
 *
 * Stack addresses are return addresses as captured (innermost first, the
 * caller of the allocation function first); a symbolizer looks up addr - 1.
 * A stack refers to the modules loaded when its STACK record was written.
 */
#ifndef MEMTRACE_FORMAT_H
#define MEMTRACE_FORMAT_H

#include <stdint.h>

#define MT_MAGIC "MEMTRACE"
/* Version 3 gives EVENTS records a 14th column, RECENT_ALLOC (a FREE of a
 * recent allocation), and adds STACK_LIKE records; version 2 wrote 13
 * columns and no FREE with MT_EV_RECENT. Version 2 wrote ALLOC and FREE
 * events in EVENTS records (columns, see below); version 1 wrote one ALLOC
 * or FREE record per event. The reader reads all three. */
#define MT_FORMAT_VERSION 3u
#define MT_FORMAT_OLDEST_READ 1u
#define MT_FLUSH_INTERVAL_MS 200
/* Frames in one stack, at most: 256 native frames (run --max-depth's limit,
 * MT_MAX_DEPTH_LIMIT in ring.h) and as many Python frames. */
#define MT_STACK_DEPTH_MAX 512u

struct mt_file_header {
    char magic[8];    /* MT_MAGIC, no NUL */
    uint32_t version; /* MT_FORMAT_VERSION, little-endian */
    uint32_t flags;   /* reserved, 0 */
};

enum mt_record {
    /* First record of every dump.
     *   u pid, u ppid, u start_mono_ns, u start_realtime_ns,
     *   u flags (MT_PROC_*), u unwind (enum mt_unwind), u max_depth,
     *   str exe, u argc, argc x str argv */
    MT_REC_PROCESS = 1,
    /* A module (executable or shared object) mapped into the process.
     *   dt, u module_id, u load_bias, str path, str build_id (raw bytes),
     *   u nsegments, nsegments x (u vaddr, u memsz, u flags: 1=exec) */
    MT_REC_MODULE_LOAD = 2,
    /* dt, u module_id */
    MT_REC_MODULE_UNLOAD = 3,
    /* u stack_id (1, 2, ... in order of appearance), u depth,
     *   depth x s (address delta against the previous address of this
     *   stack; the first against 0) */
    MT_REC_STACK = 4,
    /* (Stack ids are exactly 1, 2, 3, ... and a stack has at most
     * MT_STACK_DEPTH_MAX frames: a reader refuses a dump that breaks either,
     * so that what it keeps per stack is bounded by the records it read.) */
    /* A thread seen for the first time. u thread_index, u tid */
    MT_REC_THREAD = 5,
    /* One allocation (version 1; version 2 writes EVENTS instead):
     *   dt, u thread_index, u function (enum mt_function), u address,
     *   u size, u stack_id (0 = no stack) */
    MT_REC_ALLOC = 6,
    /* One free (version 1): dt, u thread_index, u function, u address */
    MT_REC_FREE = 7,
    /* dt, u rss_bytes (resident set size of the process) */
    MT_REC_RSS = 8,
    /* A block the process owned from birth: a fork child inherits the
     * parent's heap. u address, u size, u stack_id. Appears before any
     * ALLOC/FREE. */
    MT_REC_INHERIT = 9,
    /* Counters a fork child inherits with its parent's heap, so that its
     * totals match memcheck's (which copies them at fork).
     *   u allocations, u frees, u bytes_allocated */
    MT_REC_INHERIT_TOTALS = 10,
    /* How the process ended. dt, u how (enum mt_exit), s value
     * (exit status, signal number, or 0) */
    MT_REC_EXIT = 11,
    /* Last record of a dump whose consumer finished normally. dt */
    MT_REC_END = 12,
    /* The reachability scan at the end of the process (SPEC section 5):
     * dt, u nblocks; then nblocks LEAK_KIND records, one per block live at
     * that moment. Blocks allocated later have no kind (unknown). */
    MT_REC_SCAN = 13,
    /* u address, u kind (enum mt_leak_kind) */
    MT_REC_LEAK_KIND = 14,
    /* A Python frame (SPEC section 10): u pyframe_id, u line (0 = unknown),
     * str function, str file. Written before the first STACK that holds it;
     * a stack holds it as the address MT_PYFRAME_ADDRESS(id, entry). */
    MT_REC_PYFRAME = 15,
    /* The name of a custom allocator (an inline-hooked function or one
     * annotated with the client API): u function (>= MT_FN_CUSTOM_BASE),
     * str name (at most 255 bytes). Written before the first event that
     * carries that function. Function MT_FN_CUSTOM_BASE is "client" (the
     * client API, memtrace.h). */
    MT_REC_ALLOCATOR = 16,
    /* A named point in time (MEMTRACE_MARK): dt, u thread_index, str label
     * (at most 255 bytes) */
    MT_REC_MARK = 17,
    /* A run of ALLOC and FREE events, 1 to MT_EVENTS_MAX of them, stored by
     * field (column) rather than by event, because each field then
     * compresses with statistics of its own:
     *   u count, then MT_EVENTS_COLUMNS x (u length in bytes), then the
     *   columns' bytes, in enum mt_events_column order (a version 2 dump
     *   has MT_EVENTS_COLUMNS_V2 columns).
     * Event i's fields are the next entries of the columns it uses; every
     * column must be used up exactly. An event is what an ALLOC (or FREE)
     * record says, with its fields encoded as follows:
     *   - its time is a dt like any record's, against the previous record
     *     or event that carried a time; code = zigzag(dt) is split in
     *     TIME_LOW (code & 0xff) and TIME_HIGH (u, code >> 8);
     *   - its thread is that of the previous event of the dump (the first
     *     event's is 0) unless MT_EV_THREAD says it is in THREADS (u);
     *   - its function is the head's MT_EV_FUNCTION bits, or, when they are
     *     0, in FUNCTIONS (u);
     *   - an ALLOC with MT_EV_RECENT has the address of a recent FREE: the
     *     d-th newest of the dump's last MT_RECENT_FREES FREE events (d = 0
     *     the newest; d in RECENT, u). Allocators hand back what was just
     *     freed: an index of a few bits instead of an address;
     *   - a FREE with MT_EV_RECENT has the address of a recent ALLOC: the
     *     d-th newest of the dump's last MT_RECENT_ALLOCS ALLOC events (d in
     *     RECENT_ALLOC, u). Most blocks die young, and the distance from
     *     their allocation repeats with the program's loops;
     *   - otherwise its address is a delta against the previous event's
     *     address (ALLOC or FREE, in this record or an earlier one; the
     *     first is against 0), modulo 2^64: code = zigzag(delta / 16), or,
     *     with MT_EV_ODD_ADDRESS, zigzag(delta); split in ADDRESS_0
     *     (code & 0xff), ADDRESS_1 ((code >> 8) & 0xff) and ADDRESS_HIGH
     *     (u, code >> 16);
     *   - an ALLOC's size is split in SIZE_LOW (size & 0xff) and SIZE_HIGH
     *     (u, size >> 8), its stack in STACK_LOW and STACK_HIGH likewise. */
    MT_REC_EVENTS = 18,
    /* A stack like the one before it (version 3): the stack of the last
     * STACK or STACK_LIKE record of the dump, with the frames between its
     * innermost `inner` and its outermost `outer` replaced.
     *   u stack_id, u inner, u outer, u n, n x s (the new frames, innermost
     *   first, as address deltas: the first against the last kept inner
     *   frame, or 0 if none). Its depth is inner + n + outer.
     * Stacks written one after the other share most of their frames (a
     * Python program's stack keeps the interpreter's native frames and its
     * own outer Python frames). A reader returns it as a STACK record. */
    MT_REC_STACK_LIKE = 19,
    /* Something this process's figures lack (enum mt_incomplete):
     *   dt, u reason, u count. */
    MT_REC_INCOMPLETE = 20,
};

/* The frames a stack (ips, depth frames) shares with the last one (last, n
 * frames) at its innermost end, *inner, and then at its outermost, *outer:
 * the frames a STACK_LIKE record keeps. */
static inline void mt_stack_shared_ends(const uint64_t *ips, uint64_t depth, const uint64_t *last,
                                        uint64_t n, uint64_t *inner, uint64_t *outer)
{
    uint64_t i = 0, o = 0, common = depth < n ? depth : n;
    while (i < common && ips[i] == last[i])
        i++;
    while (o < common - i && ips[depth - 1 - o] == last[n - 1 - o])
        o++;
    *inner = i;
    *outer = o;
}

/* The columns of an EVENTS record: the byte ones hold one byte for each
 * event that has the field, the others a varint. */
enum mt_events_column {
    MT_EVC_HEAD = 0,      /* byte, every event: MT_EV_* bits */
    MT_EVC_THREADS,       /* u: events with MT_EV_THREAD */
    MT_EVC_FUNCTIONS,     /* u: events whose MT_EV_FUNCTION bits are 0 */
    MT_EVC_TIME_LOW,      /* byte, every event */
    MT_EVC_TIME_HIGH,     /* u, every event */
    MT_EVC_ADDRESS_0,     /* byte: events without MT_EV_RECENT */
    MT_EVC_ADDRESS_1,     /* byte: events without MT_EV_RECENT */
    MT_EVC_ADDRESS_HIGH,  /* u: events without MT_EV_RECENT */
    MT_EVC_RECENT,        /* u: ALLOC events with MT_EV_RECENT */
    MT_EVC_SIZE_LOW,      /* byte: ALLOC events */
    MT_EVC_SIZE_HIGH,     /* u: ALLOC events */
    MT_EVC_STACK_LOW,     /* byte: ALLOC events */
    MT_EVC_STACK_HIGH,    /* u: ALLOC events */
    MT_EVC_RECENT_ALLOC,  /* u: FREE events with MT_EV_RECENT (version 3) */
    MT_EVENTS_COLUMNS
};
#define MT_EVENTS_COLUMNS_V2 13
#define MT_EVENTS_MAX 65536u
#define MT_RECENT_FREES 256u
#define MT_RECENT_ALLOCS 4096u
/* The head byte of an event. */
#define MT_EV_FUNCTION 0x0fu    /* enum mt_function if below 16, else 0 */
#define MT_EV_RECENT 0x10u      /* an ALLOC at a recently freed address, or
                                 * a FREE of a recent ALLOC */
#define MT_EV_FREE 0x20u        /* a FREE (else an ALLOC) */
#define MT_EV_ODD_ADDRESS 0x40u /* the address delta is not a multiple of 16 */
#define MT_EV_THREAD 0x80u      /* the thread changes */

/* Python frames inside stacks: addresses no user-space code can return to
 * (x86-64 user addresses are below 2^47). Bit 32 is set on the frame that
 * entered the interpreter loop (the Python frames between two such frames
 * were all run by one native _PyEval_EvalFrameDefault call). */
#define MT_PYFRAME_TAG 0xF700000000000000ull
#define MT_PYFRAME_TAG_MASK 0xFF00000000000000ull
#define MT_PYFRAME_ENTRY (1ull << 32)
#define MT_PYFRAME_ADDRESS(id, entry) \
    (MT_PYFRAME_TAG | ((entry) ? MT_PYFRAME_ENTRY : 0) | (uint64_t)(uint32_t)(id))
#define MT_IS_PYFRAME(address) (((address) & MT_PYFRAME_TAG_MASK) == MT_PYFRAME_TAG)
#define MT_PYFRAME_ID(address) ((uint32_t)(address))
#define MT_PYFRAME_IS_ENTRY(address) (((address) & MT_PYFRAME_ENTRY) != 0)

/* Leak kinds, memcheck's semantics (SPEC section 5). */
enum mt_leak_kind {
    MT_KIND_DEFINITE = 0,
    MT_KIND_INDIRECT = 1,
    MT_KIND_POSSIBLE = 2,
    MT_KIND_REACHABLE = 3,
    MT_KIND_UNKNOWN = 4, /* not scanned: the process died first, or allocated after */
    MT_KIND_COUNT = 5
};

enum mt_exit {
    MT_EXIT_STATUS = 1, /* exit(value) or return from main */
    MT_EXIT_SIGNAL = 2, /* killed by signal value */
    MT_EXIT_EXEC = 3,   /* replaced its image with execve */
    MT_EXIT_UNKNOWN = 4 /* the process vanished; how is not known */
};

/* What memtrace could not record or check in a process (MT_REC_INCOMPLETE,
 * MT_RING_INCOMPLETE). Any of them makes every gate fail unless the user
 * accepts it explicitly (SPEC sections 5 and 6). Append only. */
/* MT_INCOMPLETE_SCAN_NOT_SERVED's count when the process, not the consumer,
 * failed (+ the errno: EMFILE, no descriptor free for the blocks' memfd) */
#define MT_SCAN_NOT_RECEIVED 0x10000u

enum mt_incomplete {
    MT_INCOMPLETE_NO_RING = 1,         /* count: threads that found no ring: events lost */
    MT_INCOMPLETE_HANDLER_EVENTS = 2,  /* count: signal-handler events that found no room */
    MT_INCOMPLETE_CHILD_UNTRACED = 3,  /* count: fork children that could not connect */
    MT_INCOMPLETE_SCAN_FAILED = 4,     /* the reachability scan could not be made */
    /* The values from 5 are written by the consumer. SCAN_FAILED,
     * SCAN_NOT_ASKED, SCAN_NOT_SERVED and NOT_SCANNED only say why the
     * process has no scan: they fail the leak gates of a process that left
     * blocks of kind unknown, not the others (report/analyze/summary.c, rule in
     * summary.h). */
    MT_INCOMPLETE_SCAN_NOT_ASKED = 5,  /* count: the run's enum mt_leak_check (summary or
                                          none): no scan was asked for */
    MT_INCOMPLETE_SCAN_NOT_SERVED = 6, /* count: the errno (0 if none) that kept the
                                          consumer from handing the process its blocks;
                                          MT_SCAN_NOT_RECEIVED + errno: the process
                                          could not receive them (their memfd) */
    MT_INCOMPLETE_MALFORMED_RING = 7,  /* count 1: a ring held a malformed record: the
                                          events after it are lost */
    MT_INCOMPLETE_NOT_SCANNED = 8,     /* count: MT_UNSCANNED_* bits, what the consumer saw
                                          of a process that ended unscanned */
    MT_INCOMPLETE_EXEC_UNTRACED = 9,   /* in an image replaced by exec, count: MT_EXEC_* (why):
                                          the program it exec'd never connected, so its
                                          allocations are unchecked */
};
#define MT_UNSCANNED_SAID_EXIT 1u  /* it went through exit, _exit or _Exit */
#define MT_UNSCANNED_ASKED_SCAN 2u /* it asked for its scan and never finished it */
/* MT_INCOMPLETE_EXEC_UNTRACED's count: what the consumer could tell of the
 * exec'd file (0: nothing, it was gone) */
#define MT_EXEC_STATIC 1u  /* statically linked: no LD_PRELOAD */
#define MT_EXEC_SETID 2u   /* set-uid or set-gid: the loader drops LD_PRELOAD */
#define MT_EXEC_NO_HELLO 3u /* dynamic: never connected (LD_PRELOAD taken out of its
                               environment, a seccomp filter, a descriptor limit) */
#define MT_EXEC_RUNNING 4u /* still running unconnected when the run's program ended */

enum mt_unwind { MT_UNWIND_DWARF = 1, MT_UNWIND_FP = 2 };

/* MT_REC_PROCESS flags */
#define MT_PROC_FORKED 1u /* started by fork() of a traced parent */

/* The interposed function an event came from. */
enum mt_function {
    MT_FN_MALLOC = 1,
    MT_FN_CALLOC,
    MT_FN_REALLOC,
    MT_FN_REALLOCARRAY,
    MT_FN_FREE,
    MT_FN_POSIX_MEMALIGN,
    MT_FN_ALIGNED_ALLOC,
    MT_FN_MEMALIGN,
    MT_FN_VALLOC,
    MT_FN_PVALLOC,
    MT_FN_NEW,
    MT_FN_NEW_ARRAY,
    MT_FN_DELETE,
    MT_FN_DELETE_ARRAY,
    MT_FN_COUNT_,
    /* Custom allocators (hooked functions, client API) are numbered from
     * here; an ALLOCATOR record names each. */
    MT_FN_CUSTOM_BASE = 64,
};
/* Custom function ids are below this. */
#define MT_FN_CUSTOM_LIMIT (MT_FN_CUSTOM_BASE + 4096)

#endif
