/* The shared-memory ring between a traced thread (producer, in preload/) and
 * the `memtrace run` consumer (cli/), and the messages on the unix socket
 * through which a traced process hands its rings over. Internal to memtrace:
 * both sides are built from the same tree, so only MT_IPC_VERSION guards it.
 *
 * One ring per thread, in its own memfd: a control page, then `capacity`
 * bytes of data (a power of two). head and tail count bytes ever written and
 * ever consumed; the producer owns head, the consumer owns tail, each on its
 * own cache line. Records are 8-byte aligned and never straddle the end of
 * the data area (a PAD record fills the gap).
 *
 * Ordering protocol (why `busy` exists): the consumer merges the rings of a
 * process by timestamp and may only emit a record once no ring can still
 * produce an earlier one. A producer therefore announces an event before it
 * reads the clock:
 *     busy = MT_BUSY_STAMPING; full fence; ts = now(); busy = ts;
 *     ... real free / write record ...; head += len (release); busy = 0
 * and the consumer reads its own clock c, full fence, then each ring's busy:
 *   0        -> any event not yet in the ring will be stamped after c
 *   STAMPING -> wait (a few nanoseconds) until it becomes a time
 *   ts       -> that ring's next event has time ts
 * so every record with time < min(c, busy times, ring heads) is final.
 * now() is CLOCK_MONOTONIC_COARSE while the process has one recording
 * thread, and CLOCK_MONOTONIC from the moment a second thread attaches a
 * ring: coarse stamps may be earlier than c, which does not matter with one
 * ring, and the thread that switches the process to the fine clock waits
 * until no ring is STAMPING before it stamps anything (so every coarse
 * stamp precedes every fine stamp of the other threads).
 */
#ifndef MEMTRACE_RING_H
#define MEMTRACE_RING_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MT_IPC_VERSION 3u
#define MT_RING_MAGIC 0x31474e4952544d4dull /* "MMTRING1" */
#define MT_RING_DATA_OFFSET 4096u
#define MT_RING_DEFAULT_CAPACITY (1u << 20)
#define MT_BUSY_STAMPING 1ull
/* `memtrace run` makes a private directory (mode 0700) holding its socket
 * and a symbolic link to the shim, which LD_PRELOAD names: the shim finds
 * the socket next to its own path (the program's environment gets nothing
 * but LD_PRELOAD). */
#define MT_RUN_SOCKET_NAME "memtrace.sock"
#define MT_RUN_SHIM_NAME "libmemtrace.so"

struct mt_ring_control {
    _Alignas(64) uint64_t head; /* producer: bytes published */
    uint64_t busy;              /* producer: 0, MT_BUSY_STAMPING or a time */
    _Alignas(64) uint64_t tail; /* consumer: bytes consumed */
    _Alignas(64) uint64_t magic;
    uint64_t capacity;
};

enum mt_ring_type {
    MT_RING_PAD = 1,    /* skip to the end of the data area */
    MT_RING_ALLOC,      /* ptr, size, stack_id, function */
    MT_RING_FREE,       /* ptr, function */
    MT_RING_STACK,      /* id, depth, ips[depth] */
    MT_RING_MODULE_LOAD,
    MT_RING_MODULE_UNLOAD,
    MT_RING_THREAD_START, /* a thread took this ring: thread_index, tid */
    MT_RING_THREAD_END,   /* that thread let it go (it may be reused) */
    MT_RING_EXIT,         /* how, value */
    MT_RING_FORK,         /* a = fork_seq: the parent side of a fork(); b = 1: the
                             child cannot connect (no kit, no connection: init.c),
                             so no snapshot waits for it */
    MT_RING_EXEC,         /* a = 1: about to execve; a = 0: that execve failed; a = 2:
                             a vfork child, pid b, about to execve; a = 3: its failed;
                             a = 4: posix_spawn made child b (its exec done) */
    MT_RING_PYFRAME,      /* struct mt_ring_pyframe */
    MT_RING_ALLOCATOR,    /* struct mt_ring_name: a = function id, the allocator's name */
    MT_RING_MARK,         /* struct mt_ring_name: a = 0, the label of MEMTRACE_MARK */
    MT_RING_INCOMPLETE,   /* struct mt_ring_u32pair: a = enum mt_incomplete (format.h),
                             b = how many: what this process could not record */
};

/* Every record starts with this header; len is the whole record in bytes,
 * a multiple of 8. */
struct mt_ring_record {
    uint32_t type;
    uint32_t len;
    uint64_t ts;
};

struct mt_ring_alloc {
    struct mt_ring_record hdr;
    uint64_t ptr;
    uint64_t size;
    uint32_t stack_id;
    uint32_t function;
};

struct mt_ring_free {
    struct mt_ring_record hdr;
    uint64_t ptr;
    uint32_t function;
    uint32_t pad;
};

struct mt_ring_stack {
    struct mt_ring_record hdr;
    uint32_t id;
    uint32_t depth;
    uint64_t ips[];
};

/* followed by function_len bytes of function name, then file_len bytes of
 * file name (UTF-8), then padding to 8 */
struct mt_ring_pyframe {
    struct mt_ring_record hdr;
    uint32_t id;
    uint32_t line;
    uint32_t function_len;
    uint32_t file_len;
};

struct mt_ring_segment {
    uint64_t vaddr;
    uint64_t memsz;
    uint64_t flags; /* 1 = executable */
};

/* followed by nsegments segments, then path bytes, then build id bytes */
struct mt_ring_module_load {
    struct mt_ring_record hdr;
    uint32_t module_id;
    uint32_t nsegments;
    uint64_t load_bias;
    uint32_t path_len;
    uint32_t build_id_len;
};

/* ALLOCATOR and MARK: followed by len bytes of text (no NUL), the record
 * padded to a multiple of 8. */
#define MT_RING_NAME_MAX 255
struct mt_ring_name {
    struct mt_ring_record hdr;
    uint32_t a;
    uint32_t len;
    char text[];
};

struct mt_ring_u32pair {
    struct mt_ring_record hdr;
    uint32_t a; /* module id / thread index / exit how / fork seq */
    int32_t b;  /* tid / exit value */
};

/* ---- socket messages (SOCK_SEQPACKET) ---------------------------------- */

enum mt_msg_type {
    MT_MSG_HELLO = 1,
    MT_MSG_REPLY,
    MT_MSG_RING,
    /* process -> consumer at exit: "drain me and send the live blocks".
     * The reply carries a memfd: struct mt_scan_header, then count blocks
     * (address, size) sorted by address, then count kind bytes that the
     * process fills (enum mt_leak_kind) before sending SCAN_DONE. */
    MT_MSG_SCAN,
    MT_MSG_SCAN_DONE,
    /* process -> consumer: a notice of the shim (struct mt_msg_notice), for
     * memtrace's own stderr or --log-file, never the program's fd 2 */
    MT_MSG_NOTICE,
    /* consumer -> process, right after an OK reply to HELLO whose hooks_len
     * is not 0: hooks_len bytes, the --hook-* list (see shim.h) */
    MT_MSG_HOOKS,
    /* process -> consumer, once, right after HELLO: the spare rings
     * (struct mt_msg_pool, with the pool's memfd as SCM_RIGHTS) */
    MT_MSG_POOL,
    /* process -> consumer: something its figures lack (struct
     * mt_msg_incomplete), sent when the thread that knows it has no ring
     * to write MT_RING_INCOMPLETE into (no descriptor was free for one) */
    MT_MSG_INCOMPLETE,
};

enum mt_python_mode { MT_PYTHON_OFF = 0, MT_PYTHON_AUTO = 1, MT_PYTHON_ON = 2 };

enum mt_leak_check { MT_LEAK_CHECK_NONE = 0, MT_LEAK_CHECK_SUMMARY = 1, MT_LEAK_CHECK_FULL = 2 };

struct mt_scan_header {
    uint64_t count;
    uint64_t reserved;
};

struct mt_scan_block {
    uint64_t address;
    uint64_t size;
};

/* process -> consumer, first message of a connection */
struct mt_msg_hello {
    uint32_t type;
    uint32_t version;
    int32_t pid;
    int32_t ppid;
    int32_t fork_parent; /* pid of the traced parent if forked, else 0 */
    uint32_t fork_seq;   /* which fork() of that parent */
    uint64_t start_mono_ns;
    uint32_t flags; /* MT_HELLO_RECONNECT */
    uint32_t reserved;
};

/* The program closed the process's socket (or dup2'd over it) and the shim
 * connects again, as the same process: the consumer attaches the new
 * connection to the process it traces, whose rings it still has. */
#define MT_HELLO_RECONNECT 1u
/* The kit for the next fork child, made by a traced process while it still
 * can (at start, after each fork): a connection of its own, whose HELLO
 * says MT_HELLO_KIT (reserved: the capacity in KiB of the spare pool of
 * MT_POOL_SLOTS rings sent with it as SCM_RIGHTS, 0 for none). The consumer
 * keeps it idle, answered with a bare reply. The next fork child says its
 * own HELLO on it (MT_HELLO_KIT_CHILD): the consumer knows it by the
 * credentials the kernel gives that message (SO_PASSCRED), and the pool
 * becomes the child's. A child needs then no socket, connect, memfd or
 * sendmsg of its own (a seccomp filter may deny them). */
#define MT_HELLO_KIT 2u
#define MT_HELLO_KIT_CHILD 4u
#define MT_POOL_SLOTS 8u

enum mt_reply_status { MT_REPLY_OK = 0, MT_REPLY_UNTRACED = 1, MT_REPLY_ERROR = 2 };

/* consumer -> process, answer to HELLO and to RING */
struct mt_msg_reply {
    uint32_t type;
    uint32_t status; /* enum mt_reply_status */
    uint32_t unwind; /* enum mt_unwind */
    uint32_t max_depth;
    uint32_t follow_fork;
    uint32_t leak_check; /* enum mt_leak_check */
    uint32_t freeres;    /* run __libc_freeres before the scan */
    uint32_t python;     /* enum mt_python_mode */
    /* settings `memtrace run` once passed in the environment (the program's
     * environment is left as it was): */
    uint32_t ring_kib;      /* ring capacity in KiB, 0 = default */
    uint32_t unwind_verify; /* 1: compare every walk with libunwind's */
    uint32_t hooks_len;     /* an MT_MSG_HOOKS message of this length follows */
    uint32_t python_malloc; /* 1: CPython's getenv("PYTHONMALLOC") gets "malloc" */
    char message[208];
};

#define MT_HOOKS_MAX 4096

/* process -> consumer: len bytes of text (no newline, no NUL) */
#define MT_NOTICE_MAX 480
struct mt_msg_notice {
    uint32_t type;
    uint32_t len;
    char text[MT_NOTICE_MAX];
};

/* process -> consumer: MT_MSG_INCOMPLETE; reason is enum mt_incomplete */
struct mt_msg_incomplete {
    uint32_t type;
    uint32_t reason;
    uint64_t count;
};

/* process -> consumer: MT_MSG_SCAN and MT_MSG_SCAN_DONE */
struct mt_msg_simple {
    uint32_t type;
    uint32_t pad;
};

/* process -> consumer, with the ring's memfd as SCM_RIGHTS */
struct mt_msg_ring {
    uint32_t type;
    uint32_t ring_index;
    uint64_t capacity;
};

/* The spare pool: one memfd of nslots rings laid end to end, each a control
 * page and `capacity` bytes of data (MT_RING_DATA_OFFSET + capacity apart),
 * handed over once, when the process connects. A thread that can make no
 * ring of its own (the program lowered RLIMIT_NOFILE, a seccomp filter
 * denies memfd_create or sendmsg) takes a slot with an atomic and no
 * syscall. The consumer knows every slot from the start but reads one only
 * from its first sign of use (a non-zero busy or head, read after its own
 * clock as for any ring), so unused slots cost it nothing; the ordering
 * protocol is that of a ring whose busy is 0. */
#define MT_POOL_SLOTS_MAX 64u
#define MT_POOL_CAPACITY_MAX (1u << 20)
struct mt_msg_pool {
    uint32_t type;
    uint32_t nslots;
    uint64_t capacity;
};

#define MT_MAX_DEPTH_LIMIT 256
/* native frames, then as many Python frames at most */
#define MT_MAX_STACK_ENTRIES (2 * MT_MAX_DEPTH_LIMIT)

/* Gives mh one SCM_RIGHTS descriptor, fd, in control (zeroed here): how a
 * ring's or the spare pool's memfd and the scan's block list travel on the
 * socket. control must outlive the sendmsg. */
#define MT_MSG_FD_SPACE CMSG_SPACE(sizeof(int))
static inline void mt_msg_attach_fd(struct msghdr *mh, char control[MT_MSG_FD_SPACE], int fd)
{
    memset(control, 0, MT_MSG_FD_SPACE);
    mh->msg_control = control;
    mh->msg_controllen = MT_MSG_FD_SPACE;
    struct cmsghdr *cm = CMSG_FIRSTHDR(mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
}


#endif
