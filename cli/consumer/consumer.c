/* The consumer's event loop (see consumer.h): connections from traced
 * processes, their rings, their life cycle from HELLO to the end of their
 * dump, and the summary printed for each.
 *
 * A process has ended when its socket reaches EOF: every fd is closed only
 * once all its threads are gone (or it exec'd: the exec record says so).
 * Then its rings are drained completely, so the dump holds every event made
 * before death, SIGKILL included.
 */
#define _GNU_SOURCE
#include "consumer.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"
#include "process.h"

/* A fork child, as its HELLO names it: its parent's pid and which fork. */
struct fork_id {
    pid_t parent;
    uint32_t seq;
};

/* An accepted connection before its HELLO: at most PENDING_MAX of them (the
 * others wait in the listening socket's backlog), each for PENDING_NS at
 * most. */
struct pending_conn {
    int fd;
    uint64_t deadline;
    int no_room; /* accepted with a spare descriptor (fd_budget.h) */
};
#define PENDING_MAX 128
#define PENDING_NS 5000000000ull

/* A traced process's kit for its next fork child (ring.h, MT_HELLO_KIT):
 * an idle connection, and the spare pool the child will get, mapped. */
struct kit {
    int fd;
    pid_t parent;      /* the process, as its HELLOs name it */
    pid_t parent_seen; /* and as we see it */
    uint8_t *pool;     /* NULL: none */
    size_t pool_size;
    uint64_t pool_capacity;
    int ready; /* readable at the last poll */
};

/* A HELLO of a new image: its pid as seen here, and when it started. */
struct hello_seen {
    pid_t pid, shim_pid; /* as seen here, as it says */
    uint64_t start_ns;
};

struct consumer {
    const struct consumer_options *opt;
    int listen_fd;
    struct process **procs;
    size_t nprocs, procs_cap;
    struct fork_snapshot *snapshots;
    char **created; /* dump paths made in this run, to number collisions */
    size_t ncreated;
    int child_reaped;
    int child_status;
    int accepted_any;
    int fd_room;        /* accept_new: the connection being accepted fits */
    struct fork_id *unclaimed; /* refused fork children: snapshots to drop */
    size_t nunclaimed, unclaimed_cap;
    int first_hello_done;
    /* connections accepted and not yet verified, waiting for their HELLO
     * (never waited for: a slow or idle peer holds nobody up) */
    struct pending_conn *pending;
    size_t npending;
    int spare_pending; /* one of them holds the spare descriptor */
    pid_t *traced;     /* every pid served in this run: a fork child may name
                        * a parent that has ended already (daemons) */
    size_t ntraced, traced_cap;
    struct kit *kits;  /* kits of the processes traced */
    size_t nkits, kits_cap;
    pid_t hello_peer;  /* on_hello: the peer's pid, when the socket's is not */
    struct hello_seen *hellos; /* every new image's HELLO (exec_untraced) */
    size_t nhellos, hellos_cap;
    int had_error;
};

int consumer_expand_pattern(const char *pattern, pid_t pid, const char *program, char *buf,
                            size_t size)
{
    size_t n = 0;
    for (const char *c = pattern; *c; c++) {
        char tmp[32];
        const char *piece = tmp;
        if (c[0] == '%' && c[1] == 'p') {
            snprintf(tmp, sizeof tmp, "%d", (int)pid);
            c++;
        } else if (c[0] == '%' && c[1] == 'n') {
            piece = program;
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            piece = "%";
            c++;
        } else {
            tmp[0] = *c;
            tmp[1] = '\0';
        }
        size_t k = strlen(piece);
        if (n + k + 1 > size)
            return -1;
        memcpy(buf + n, piece, k);
        n += k;
    }
    buf[n] = '\0';
    return 0;
}

/* ---- process information ---------------------------------------------- */

/* The pid of p as this consumer sees it (SO_PEERCRED), which names its dump
 * and its /proc directory. A process in a pid namespace of its own
 * (unshare -p, a container) says another in its HELLO (1 for the first):
 * that one, p->pid, only matches a fork child with its parent. */
static pid_t seen_pid(const struct process *p)
{
    return p->peer_pid > 0 ? p->peer_pid : p->pid;
}

/* The parent of pid as this consumer sees it; 0 if unknown. */
static pid_t read_parent(pid_t pid)
{
    pid_t ppid = peer_parent_of(pid);
    return ppid > 0 ? ppid : 0;
}

static void read_command_line(struct process *p)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)seen_pid(p));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (fd >= 0 && buf) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len == cap) {
            char *q = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
            if (!q)
                break;
            buf = q;
            cap *= 2;
        }
    }
    if (fd >= 0)
        close(fd);
    int argc = 0;
    for (size_t i = 0; i < len; i++)
        argc += buf[i] == '\0';
    if (len && buf[len - 1] != '\0')
        argc++;
    p->argv = calloc((size_t)argc + 1, sizeof *p->argv);
    for (size_t i = 0, start = 0; p->argv && i <= len && p->argc < argc; i++) {
        if (i == len || buf[i] == '\0') {
            p->argv[p->argc++] = strndup(buf + start, i - start);
            start = i + 1;
        }
    }
    free(buf);
    snprintf(path, sizeof path, "/proc/%d/exe", (int)seen_pid(p));
    char exe[PATH_MAX];
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    p->exe = strndup(exe, n > 0 ? (size_t)n : 0);
}

static const char *program_name(const struct process *p)
{
    const char *s = p->exe && *p->exe ? p->exe : (p->argc ? p->argv[0] : "unknown");
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

/* Creates the dump for p; numbers it when this run already made that path
 * (a pid that execs a program of the same name). */
static int create_dump(struct consumer *c, struct process *p, char *err, size_t errlen)
{
    char path[PATH_MAX], numbered[PATH_MAX + 16];
    if (consumer_expand_pattern(c->opt->output_pattern, seen_pid(p), program_name(p), path,
                                sizeof path) != 0) {
        snprintf(err, errlen, "the output path is too long");
        return -1;
    }
    const char *try = path;
    for (int n = 1;; n++) {
        int e = dump_writer_create(&p->dump, try, p->start_ns);
        if (e == 0)
            break;
        int ours = 0;
        for (size_t i = 0; i < c->ncreated; i++)
            ours |= strcmp(c->created[i], try) == 0;
        if (e != EEXIST || !ours || n > 1000) {
            snprintf(err, errlen, "cannot create the dump %s: %s", try,
                     e == EEXIST ? "the file already exists (dumps are never overwritten)"
                     : e == ELOOP ? "it is a symbolic link (never followed)"
                                  : strerror(e));
            return -1;
        }
        size_t len = strlen(path);
        int has_ext = len > 4 && strcmp(path + len - 4, ".mtr") == 0;
        snprintf(numbered, sizeof numbered, "%.*s.%d%s", (int)(has_ext ? len - 4 : len), path, n,
                 has_ext ? ".mtr" : "");
        try = numbered;
    }
    p->dump_path = strdup(try);
    char **grown = realloc(c->created, (c->ncreated + 1) * sizeof *grown);
    if (grown) {
        c->created = grown;
        c->created[c->ncreated++] = strdup(try);
    }
    return 0;
}

static void write_process_record(struct process *p, const struct consumer_options *o, int forked)
{
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    struct dump_process_info info = {
        .pid = (uint64_t)seen_pid(p), .ppid = (uint64_t)p->ppid, .start_ns = p->start_ns,
        .start_realtime_ns = (uint64_t)real.tv_sec * 1000000000ull + (uint64_t)real.tv_nsec,
        .flags = forked ? MT_PROC_FORKED : 0, .unwind = o->unwind, .max_depth = o->max_depth,
        .exe = p->exe, .argc = p->argc, .argv = p->argv};
    dump_write_process(&p->dump, &info);
}

/* ---- messages ----------------------------------------------------------- */

static void reply(int fd, uint32_t status, const struct consumer_options *o, const char *message)
{
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = status, .unwind = o->unwind,
                             .max_depth = o->max_depth, .follow_fork = (uint32_t)o->follow_fork,
                             .leak_check = o->leak_check, .freeres = (uint32_t)o->freeres,
                             .python = o->python, .ring_kib = o->ring_kib,
                             .unwind_verify = (uint32_t)o->unwind_verify,
                             .python_malloc = (uint32_t)o->python_malloc};
    size_t hooks_len = status == MT_REPLY_OK && o->hooks ? strlen(o->hooks) : 0;
    if (hooks_len > MT_HOOKS_MAX)
        hooks_len = 0;
    r.hooks_len = (uint32_t)hooks_len;
    if (message)
        snprintf(r.message, sizeof r.message, "%s", message);
    send(fd, &r, sizeof r, MSG_NOSIGNAL);
    if (hooks_len)
        send(fd, o->hooks, hooks_len, MSG_NOSIGNAL);
}

/* A notice of the shim: on memtrace's stderr (the program's own stderr is
 * never written), unless -q. */
static void on_notice(const struct consumer *c, const struct mt_msg_notice *m, ssize_t n)
{
    ssize_t head = (ssize_t)offsetof(struct mt_msg_notice, text);
    if (!c->opt->notices || n < head || m->len > MT_NOTICE_MAX || (ssize_t)m->len > n - head)
        return;
    fprintf(stderr, "memtrace: %.*s\n", (int)m->len, m->text);
}

static struct process *find_running(struct consumer *c, pid_t pid)
{
    for (size_t i = c->nprocs; i-- > 0;)
        if (c->procs[i]->pid == pid)
            return c->procs[i];
    return NULL;
}

static void try_inherit(struct consumer *c, struct process *child)
{
    for (struct fork_snapshot **s = &c->snapshots; *s; s = &(*s)->next) {
        if ((*s)->parent == child->fork_parent && (*s)->seq == child->fork_seq) {
            struct fork_snapshot *found = *s;
            *s = found->next;
            process_inherit(child, found);
            fork_snapshot_free(found);
            return;
        }
    }
    /* No snapshot and the parent is gone for good: nothing will come. */
    struct process *parent = find_running(c, child->fork_parent);
    if (!parent || parent->phase == PHASE_DONE)
        child->waiting_for_fork = 0;
}

/* A child made without fork() (clone: fork_seq 0 in its HELLO) has no FORK
 * record in its parent's stream: it gets its parent's heap as it is when
 * it says hello, under a number no fork() of the parent uses. Exact when
 * the parent made no event between the clone and that moment (it waits for
 * the child, or its next event comes after). */
static void clone_snapshot(struct consumer *c, struct process *child)
{
    static uint32_t clones;
    struct process *parent = find_running(c, child->fork_parent);
    if (!parent || parent->phase == PHASE_DONE || parent->waiting_for_fork)
        return;
    process_drain(parent, 0, &c->snapshots);
    child->fork_seq = 0x80000000u | ++clones;
    process_take_snapshot(parent, child->fork_seq, &c->snapshots);
}

static pid_t peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
}

/* A shim whose socket the program closed connects again as the same
 * process: the connection is attached to it, if it is one we trace and
 * detached, and the HELLO comes from that very process. */
static int read_message(struct consumer *c, struct process *p);
static void on_connection_closed(struct process *p);

static void on_reconnect(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    pid_t peer = peer_pid(fd);
    for (size_t i = 0; i < c->nprocs; i++) {
        struct process *p = c->procs[i];
        /* Its old connection's EOF may not be read yet: a process that
         * closes every descriptor and connects again at once (a fork child
         * that closes what it inherited and calls _exit, whose scan
         * connects) is heard here first, in the same round. Read the old
         * connection to its end: closed, the process is detached as the
         * loop would have made it; still open (a copy lives), refused. */
        if (p->pid == h->pid && p->conn >= 0 && !p->detached && p->phase == PHASE_RUNNING &&
            peer != 0 && p->peer_pid == peer) {
            int r;
            fd_budget_take();
            while ((r = read_message(c, p)) == 1 && p->conn >= 0)
                ;
            fd_budget_restore();
            if (r == 0)
                on_connection_closed(p);
        }
        if (p->pid == h->pid && p->detached && p->conn < 0 && p->phase == PHASE_RUNNING &&
            peer != 0 && p->peer_pid == peer) {
            p->conn = fd;
            p->conn_ready = 1;
            p->detached = 0;
            if (p->pidfd >= 0)
                close(p->pidfd);
            p->pidfd = -1;
            reply(fd, MT_REPLY_OK, c->opt, NULL);
            return;
        }
    }
    reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
    close(fd);
}

/* The connection of a process reached EOF. The end of the process, unless
 * it is still running and has not exec'd: then the program closed the
 * socket itself (daemons close every descriptor); its rings go on, and the
 * pidfd says when it ends. */
static void on_connection_closed(struct process *p)
{
    close(p->conn);
    p->conn = -1;
    int pidfd = p->peer_pid > 0 && !p->exec_pending
                    ? (int)syscall(SYS_pidfd_open, p->peer_pid, 0) : -1;
    struct pollfd pf = {.fd = pidfd, .events = POLLIN};
    if (pidfd >= 0 && poll(&pf, 1, 0) == 0) {
        p->pidfd = pidfd;
        p->detached = 1;
        return;
    }
    if (pidfd >= 0)
        close(pidfd);
    p->phase = PHASE_CLOSING;
}

/* A detached process ended (its pidfd became readable), or exec'd. */
static void check_detached(struct process *p)
{
    struct pollfd pf = {.fd = p->pidfd, .events = POLLIN};
    if (!p->exec_pending && poll(&pf, 1, 0) == 0)
        return;
    close(p->pidfd);
    p->pidfd = -1;
    p->detached = 0;
    p->phase = PHASE_CLOSING;
}

/* Fork children that will not be traced: their parent's snapshot is no
 * longer waited for. It may not be made yet (the parent's FORK record still
 * in its ring), so the pair stays listed until it is. */
static void drop_unclaimed(struct consumer *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->nunclaimed; i++) {
        int found = 0;
        /* (break, not a test of found in the loop's condition: the step
         * after an unlink must not take &(*s)->next of the NULL that may
         * now be at *s; UBSan stopped run there) */
        for (struct fork_snapshot **s = &c->snapshots; *s; s = &(*s)->next) {
            if ((*s)->parent == c->unclaimed[i].parent && (*s)->seq == c->unclaimed[i].seq) {
                struct fork_snapshot *snap = *s;
                *s = snap->next;
                fork_snapshot_free(snap);
                found = 1;
                break;
            }
        }
        if (!found)
            c->unclaimed[kept++] = c->unclaimed[i];
    }
    c->nunclaimed = kept;
}

static void drop_snapshot(struct consumer *c, const struct mt_msg_hello *h)
{
    if (!h->fork_parent)
        return;
    if (c->nunclaimed == c->unclaimed_cap) {
        size_t cap = c->unclaimed_cap ? c->unclaimed_cap * 2 : 16;
        void *grown = realloc(c->unclaimed, cap * sizeof *c->unclaimed);
        if (!grown)
            return;
        c->unclaimed = grown;
        c->unclaimed_cap = cap;
    }
    c->unclaimed[c->nunclaimed++] = (struct fork_id){h->fork_parent, h->fork_seq};
    drop_unclaimed(c);
}

static size_t refusals_unrecorded; /* this run's, see consumer.h */

size_t consumer_refusals_unrecorded(void) { return refusals_unrecorded; }

/* No room for one more process under the hard open-file limit: refused
 * whole, before anything of it is made, in one line; its parent's trace
 * says a child of it went untraced, so that no gate passes it. */
static void refuse_at_fd_limit(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    drop_snapshot(c, h);
    size_t running = 0;
    for (size_t i = 0; i < c->nprocs; i++)
        running += c->procs[i]->phase != PHASE_DONE;
    pid_t seen = peer_pid(fd);
    struct process *parent = NULL;
    if (h->fork_parent) {
        parent = find_running(c, h->fork_parent);
    } else if (seen > 0) { /* an exec'd image: the process that forked it */
        pid_t ppid = read_parent(seen);
        for (size_t i = 0; ppid > 0 && i < c->nprocs; i++)
            if (seen_pid(c->procs[i]) == ppid)
                parent = c->procs[i];
    }
    if (parent && parent->phase != PHASE_DONE)
        process_note_incomplete(parent, consumer_now_ns(), MT_INCOMPLETE_CHILD_UNTRACED, 1);
    else
        refusals_unrecorded++;
    char message[320];
    snprintf(message, sizeof message,
             "pid %d cannot be traced: memtrace's open-file limit (%llu, the hard limit) is "
             "reached with %zu processes traced at once; raise the hard limit (ulimit -Hn, "
             "prlimit --nofile) to trace them all",
             (int)seen, fd_budget_limit(), running);
    fprintf(stderr, "memtrace: %s\n", message);
    reply(fd, MT_REPLY_ERROR, c->opt, message);
    close(fd);
    c->had_error = 1;
}

static void on_hello(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    if (h->version != MT_IPC_VERSION) {
        fprintf(stderr, "memtrace: pid %d: the shim and the consumer are of different versions; "
                        "it runs untraced\n", (int)h->pid);
        reply(fd, MT_REPLY_ERROR, c->opt, "the shim and the consumer are of different versions");
        close(fd);
        return;
    }
    if (h->flags & MT_HELLO_RECONNECT) {
        on_reconnect(c, fd, h);
        return;
    }
    if (c->nhellos == c->hellos_cap) { /* an image that exec'd waits for this */
        size_t cap = c->hellos_cap ? 2 * c->hellos_cap : 64;
        struct hello_seen *grown = realloc(c->hellos, cap * sizeof *grown);
        if (grown)
            c->hellos = grown, c->hellos_cap = cap;
    }
    if (c->nhellos < c->hellos_cap) {
        pid_t seen = c->hello_peer ? c->hello_peer : peer_pid(fd);
        c->hellos[c->nhellos++] =
            (struct hello_seen){seen > 0 ? seen : h->pid, h->pid, h->start_mono_ns};
    }
    if (!c->opt->follow_fork && c->first_hello_done) {
        reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
        close(fd);
        return;
    }
    if (!c->fd_room) {
        refuse_at_fd_limit(c, fd, h);
        return;
    }
    struct process *p = calloc(1, sizeof *p);
    if (!p || heap_table_init(&p->live) != 0 || !(p->stacks = stack_store_new())) {
        reply(fd, MT_REPLY_ERROR, c->opt, "out of memory");
        close(fd);
        free(p);
        return;
    }
    p->pid = h->pid;
    p->conn = fd;
    p->peer_pid = c->hello_peer ? c->hello_peer : peer_pid(fd); /* a kit: the child's */
    p->ppid = p->peer_pid > 0 ? read_parent(p->peer_pid) : 0; /* as seen here too */
    if (p->ppid <= 0)
        p->ppid = h->ppid;
    p->pidfd = -1;
    p->start_ns = h->start_mono_ns;
    p->rss_fd = -1;
    p->fork_parent = h->fork_parent;
    p->fork_seq = h->fork_seq;
    read_command_line(p);
    char err[PATH_MAX + 128];
    if (create_dump(c, p, err, sizeof err) != 0) {
        fprintf(stderr, "memtrace: %s\n", err);
        reply(fd, MT_REPLY_ERROR, c->opt, err);
        c->had_error = 1;
        close(fd);
        drop_snapshot(c, h);
        heap_table_free(&p->live);
        stack_store_release(p->stacks);
        free(p);
        return;
    }
    write_process_record(p, c->opt, h->fork_parent != 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)seen_pid(p));
    p->rss_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->nprocs == c->procs_cap) {
        c->procs_cap = c->procs_cap ? c->procs_cap * 2 : 16;
        c->procs = realloc(c->procs, c->procs_cap * sizeof *c->procs);
    }
    p->conn_ready = 1; /* a RING message may follow the HELLO at once */
    c->procs[c->nprocs++] = p;
    c->first_hello_done = 1;
    if (h->fork_parent && h->fork_seq == 0)
        clone_snapshot(c, p);
    if (h->fork_parent) {
        p->waiting_for_fork = 1;
        try_inherit(c, p);
    }
    reply(fd, MT_REPLY_OK, c->opt, NULL);
}

/* A ring's memfd is mapped only if it is a memfd whose size can no longer
 * shrink (F_SEAL_SHRINK: a process that truncated it would make every read
 * of ours a SIGBUS) and holds the whole ring: its size is the kernel's
 * (fstat), never what the message claims. */
static int ring_memfd_usable(int memfd, uint64_t map_size)
{
    struct stat st;
    int seals = fcntl(memfd, F_GET_SEALS);
    return seals >= 0 && (seals & F_SEAL_SHRINK) && fstat(memfd, &st) == 0 &&
           S_ISREG(st.st_mode) && st.st_size >= 0 && (uint64_t)st.st_size >= map_size;
}

/* Rings one process may hand over: far more threads than any program has
 * at once (rings are reused), far fewer than would exhaust our mappings. */
#define RINGS_PER_PROCESS_MAX 16384u

static void on_ring(struct process *p, const struct mt_msg_ring *m, int memfd)
{
    uint64_t cap = m->capacity;
    int ok = memfd >= 0 && cap >= 4096 && (cap & (cap - 1)) == 0 && cap <= (1ull << 32) &&
             p->nrings < RINGS_PER_PROCESS_MAX && ring_memfd_usable(memfd, MT_RING_DATA_OFFSET + cap);
    void *mem = MAP_FAILED;
    if (ok)
        mem = mmap(NULL, MT_RING_DATA_OFFSET + cap, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (memfd >= 0)
        close(memfd);
    struct mt_ring_control *ctl = mem;
    if (mem == MAP_FAILED || ctl->magic != MT_RING_MAGIC || ctl->capacity != cap) {
        if (mem != MAP_FAILED)
            munmap(mem, MT_RING_DATA_OFFSET + cap);
        reply(p->conn, MT_REPLY_ERROR, &(struct consumer_options){0}, NULL);
        return;
    }
    if (p->nrings == p->rings_cap) {
        p->rings_cap = p->rings_cap ? p->rings_cap * 2 : 8;
        p->rings = realloc(p->rings, p->rings_cap * sizeof *p->rings);
    }
    p->rings[p->nrings++] = (struct consumer_ring){
        .ctl = ctl, .data = (uint8_t *)mem + MT_RING_DATA_OFFSET, .capacity = cap,
        .map_size = MT_RING_DATA_OFFSET + cap, .tail = ctl->head, .head_seen = ctl->head};
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_OK};
    send(p->conn, &r, sizeof r, MSG_NOSIGNAL);
}

/* The process's spare pool (ring.h, struct mt_msg_pool): mapped whole, its
 * slots read from their first use on (drain.c process_pool_wake). One per
 * process; its size is the kernel's, as for a ring. */
static void on_pool(struct process *p, const struct mt_msg_pool *m, int memfd)
{
    uint64_t cap = m->capacity;
    size_t size = (size_t)m->nslots * (MT_RING_DATA_OFFSET + cap);
    int ok = memfd >= 0 && !p->pool_map && m->nslots >= 1 && m->nslots <= MT_POOL_SLOTS_MAX &&
             cap >= 4096 && (cap & (cap - 1)) == 0 && cap <= MT_POOL_CAPACITY_MAX &&
             ring_memfd_usable(memfd, size);
    void *mem = ok ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0) : MAP_FAILED;
    if (memfd >= 0)
        close(memfd);
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_ERROR};
    if (mem != MAP_FAILED) {
        p->pool_map = mem;
        p->pool_size = size;
        p->pool_capacity = cap;
        p->pool_slots = m->nslots;
        p->pool_next = 0;
        r.status = MT_REPLY_OK;
    }
    send(p->conn, &r, sizeof r, MSG_NOSIGNAL);
}

static int by_address(const void *x, const void *y)
{
    const struct heap_block *a = x, *b = y;
    return a->address < b->address ? -1 : a->address > b->address;
}

/* The process is about to scan: everything it wrote is in its rings (its
 * other threads are stopped), so drain them and hand over the live blocks,
 * sorted, in a memfd it fills with their kinds. */
static void on_scan_request(struct consumer *c, struct process *p)
{
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_ERROR};
    if (p->waiting_for_fork) {
        /* A fork child that ends at once: its parent's heap at the fork is
         * not here yet (the parent's FORK record may not even be written).
         * Read the parent now; if that is not enough, the reply waits (the
         * child waits for it) until the snapshot comes or the parent is gone
         * for good: serve_deferred_scan. */
        struct process *parent = find_running(c, p->fork_parent);
        if (parent && parent->phase != PHASE_DONE)
            process_drain(parent, 0, &c->snapshots);
        try_inherit(c, p);
        if (p->waiting_for_fork) {
            p->scan_deferred = 1;
            return;
        }
    }
    p->scan_deferred = 0;
    process_drain(p, 1, &c->snapshots);
    struct heap_block *blocks = NULL;
    /* one scan at a time (a second request would leak the first's map) */
    long n = p->waiting_for_fork || p->corrupt || p->scan_map ? -1
                                                               : heap_table_snapshot(&p->live, &blocks);
    int fd = n >= 0 ? memfd_create("memtrace-scan", MFD_CLOEXEC | MFD_ALLOW_SEALING) : -1;
    size_t size = sizeof(struct mt_scan_header) + (size_t)(n > 0 ? n : 0) * (sizeof(struct mt_scan_block) + 1);
    uint8_t *map = MAP_FAILED;
    /* sealed at its size before the process gets it: it cannot truncate
     * the memory we read back (SIGBUS) */
    if (fd >= 0 && ftruncate(fd, (off_t)size) == 0 &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
        map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int err = n < 0 ? (p->waiting_for_fork || p->corrupt ? 0 : ENOMEM) : errno;
    if (map != MAP_FAILED) {
        qsort(blocks, (size_t)n, sizeof *blocks, by_address);
        struct mt_scan_header h = {.count = (uint64_t)n};
        memcpy(map, &h, sizeof h);
        struct mt_scan_block *out = (void *)(map + sizeof h);
        for (long i = 0; i < n; i++)
            out[i] = (struct mt_scan_block){blocks[i].address, blocks[i].size};
        memset(map + sizeof h + (size_t)n * sizeof *out, MT_KIND_UNKNOWN, (size_t)n);
        p->scan_map = map;
        p->scan_size = size;
        p->scan_count = (uint64_t)n;
        r.status = MT_REPLY_OK;
    }
    free(blocks);
    char control[CMSG_SPACE(sizeof(int))];
    memset(control, 0, sizeof control);
    struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (r.status == MT_REPLY_OK) {
        mh.msg_control = control;
        mh.msg_controllen = sizeof control;
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    }
    sendmsg(p->conn, &mh, MSG_NOSIGNAL);
    if (fd >= 0)
        close(fd);
    if (r.status != MT_REPLY_OK) /* no scan: the gates must know why */
        process_note_incomplete(p, consumer_now_ns(), MT_INCOMPLETE_SCAN_NOT_SERVED, (uint64_t)err);
}

/* A scan request that waited for the fork snapshot: answered once it is
 * there (or will never come); dropped if the process went away meanwhile. */
static void serve_deferred_scan(struct consumer *c, struct process *p)
{
    if (!p->scan_deferred || p->waiting_for_fork)
        return;
    if (p->conn < 0) {
        p->scan_deferred = 0;
        return;
    }
    on_scan_request(c, p);
}

/* The process has written a kind for every block: record them. */
static void on_scan_done(struct process *p)
{
    if (!p->scan_map)
        return;
    /* the count is ours: the header in the shared memory is the process's
     * to scribble on (a count of 2^40 there used to crash us) */
    uint64_t count = p->scan_count;
    const struct mt_scan_block *blocks =
        (const void *)(p->scan_map + sizeof(struct mt_scan_header));
    const uint8_t *kinds = (const uint8_t *)(blocks + count);
    dump_write_scan(&p->dump, consumer_now_ns(), count);
    for (uint64_t i = 0; i < count; i++) {
        uint8_t kind = kinds[i] < MT_KIND_COUNT ? kinds[i] : MT_KIND_UNKNOWN;
        p->incomplete.scan_unclassified += kind == MT_KIND_UNKNOWN;
        dump_write_leak_kind(&p->dump, blocks[i].address, kind);
        heap_table_set_kind(&p->live, blocks[i].address, kind);
    }
    munmap(p->scan_map, p->scan_size);
    p->scan_map = NULL;
    p->scanned = 1;
}

/* Reads one message from a process's socket: 1 read, 2 nothing to read,
 * 0 the process closed it. */
static int read_message(struct consumer *c, struct process *p)
{
    union {
        struct mt_msg_hello hello;
        struct mt_msg_ring ring;
        struct mt_msg_pool pool;
        struct mt_msg_notice notice;
        struct mt_msg_incomplete incomplete;
        uint32_t type;
    } msg;
    char control[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {.iov_base = &msg, .iov_len = sizeof msg};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof control};
    ssize_t n = recvmsg(p->conn, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 2;
    if (n <= 0)
        return 0;
    int fd = -1;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
            memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    if (msg.type == MT_MSG_RING && n == (ssize_t)sizeof msg.ring)
        on_ring(p, &msg.ring, fd);
    else if (msg.type == MT_MSG_POOL && n == (ssize_t)sizeof msg.pool)
        on_pool(p, &msg.pool, fd);
    else if (fd >= 0)
        close(fd);
    if (msg.type == MT_MSG_SCAN)
        on_scan_request(c, p);
    else if (msg.type == MT_MSG_SCAN_DONE)
        on_scan_done(p);
    else if (msg.type == MT_MSG_NOTICE)
        on_notice(c, &msg.notice, n);
    else if (msg.type == MT_MSG_INCOMPLETE && n == (ssize_t)sizeof msg.incomplete)
        /* a ringless thread's MT_RING_INCOMPLETE (any reason, any count:
         * summary_add_incomplete bounds both) */
        process_note_incomplete(p, consumer_now_ns(), msg.incomplete.reason,
                                msg.incomplete.count);
    return 1;
}

/* ---- ending ------------------------------------------------------------- */

/* The summary of p on stderr: memcheck's HEAP SUMMARY figures, the leak
 * kinds, and what could not be checked and why, in the words of `memtrace
 * check` (report/analyze/summary.c), from what p's dump says (s). */
static void print_summary(const struct process *p, const char *how, uint32_t leak_check,
                          const struct summary *s)
{
    const struct heap_totals *t = &p->totals;
    char a[32], b[32], d[32], clean[4096];
    fprintf(stderr, "==memtrace== pid %d:", (int)seen_pid(p));
    for (int i = 0; i < p->argc && i < 8; i++)
        fprintf(stderr, " %s", text_clean(p->argv[i], clean, sizeof clean));
    fprintf(stderr, "%s (%s)\n", p->argc > 8 ? " ..." : "", how);
    fprintf(stderr, "==memtrace==   in use at exit: %s bytes in %s blocks\n",
            fmt_count(a, t->in_use_bytes), fmt_count(b, t->in_use_blocks));
    fprintf(stderr, "==memtrace==   total heap usage: %s allocs, %s frees, %s bytes allocated\n",
            fmt_count(a, t->allocations), fmt_count(b, t->frees), fmt_count(d, t->bytes_allocated));
    fprintf(stderr, "==memtrace==   peak: %s bytes in %s blocks at %.3f s\n",
            fmt_count(a, t->peak_bytes), fmt_count(b, t->peak_blocks), t->peak_time_ns / 1e9);
    if (leak_check != MT_LEAK_CHECK_NONE && t->in_use_blocks) {
        static const char *labels[] = {"definitely lost", "indirectly lost", "  possibly lost",
                                       "still reachable", "    not scanned"};
        for (int k = 0; k < MT_KIND_COUNT; k++)
            if (k != MT_KIND_UNKNOWN || s->kind_blocks[k])
                fprintf(stderr, "==memtrace==   %s: %s bytes in %s blocks\n", labels[k],
                        fmt_count(a, s->kind_bytes[k]), fmt_count(b, s->kind_blocks[k]));
    }
    struct unchecked_reason u[UNCHECKED_MAX];
    int n = summary_unchecked(s, u, UNCHECKED_MAX);
    for (int i = 0; i < n; i++)
        if (u[i].scope == UNCHECKED_TRACE || leak_check != MT_LEAK_CHECK_NONE)
            fprintf(stderr, "==memtrace==   not checked: %s\n", u[i].text);
    fprintf(stderr, "==memtrace==   dump: %s\n", p->dump_path);
}

/* Before p's EXIT record: what its dump must say about what could not be
 * checked, that only the consumer knows (format.h, enum mt_incomplete). */
static void note_unchecked(struct consumer *c, struct process *p, int how, uint64_t ts)
{
    if (p->corrupt)
        process_note_incomplete(p, ts, MT_INCOMPLETE_MALFORMED_RING, 1);
    if (p->scanned || how == MT_EXIT_EXEC)
        return;
    if (c->opt->leak_check != MT_LEAK_CHECK_FULL)
        process_note_incomplete(p, ts, MT_INCOMPLETE_SCAN_NOT_ASKED, c->opt->leak_check);
    else
        process_note_incomplete(p, ts, MT_INCOMPLETE_NOT_SCANNED,
                                (p->saw_exit ? MT_UNSCANNED_SAID_EXIT : 0) |
                                    (p->scan_map ? MT_UNSCANNED_ASKED_SCAN : 0));
}

/* How a process that is not our child ended, when it did not say (a raw
 * exit_group, a signal): its parent may not have reaped it yet, and a
 * zombie's /proc/PID/stat holds its wait status (field 52, Linux 3.5).
 * *how and *value are left alone when that cannot be read. */
static void exit_from_proc(pid_t pid, int *how, int *value)
{
    char buf[1024];
    char *at = peer_proc_stat(pid, buf, sizeof buf);
    if (!at || at[0] != ' ' || (at[1] != 'Z' && at[1] != 'X'))
        return;
    at += 1;
    for (int field = 3; field < 52 && at; field++) {
        at = strchr(at, ' ');
        at = at ? at + 1 : NULL;
    }
    char *end;
    long status = at ? strtol(at, &end, 10) : -1;
    if (!at || end == at || status < 0 || status > 0xffff)
        return;
    if (status & 0x7f) {
        *how = MT_EXIT_SIGNAL;
        *value = (int)(status & 0x7f);
    } else {
        *how = MT_EXIT_STATUS;
        *value = (int)((status >> 8) & 0xff);
    }
}

/* What the file a process runs (/proc/PID/exe) says of why it could not
 * be traced: MT_EXEC_*, 0 when it cannot be read (the process is gone). */
static unsigned exec_cause(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    struct stat st;
    Elf64_Ehdr eh;
    unsigned why = 0;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_ISUID | S_ISGID))) {
        why = MT_EXEC_SETID;
    } else if (pread(fd, &eh, sizeof eh, 0) == (ssize_t)sizeof eh &&
               memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
               eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum < 4096) {
        why = MT_EXEC_STATIC;
        for (unsigned i = 0; i < eh.e_phnum; i++) {
            Elf64_Phdr ph;
            if (pread(fd, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != (ssize_t)sizeof ph)
                break;
            if (ph.p_type == PT_INTERP)
                why = MT_EXEC_NO_HELLO;
        }
    } else {
        why = MT_EXEC_NO_HELLO; /* a script, or an ELF of another class */
    }
    close(fd);
    return why;
}

/* The file pid runs (its /proc exe link), or failing that its name (comm,
 * kept while it is a zombie); NULL if it is gone. */
static char *exec_image_name(pid_t pid)
{
    char path[64], buf[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n <= 0) {
        snprintf(path, sizeof path, "/proc/%d/comm", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
        if (fd >= 0)
            close(fd);
        while (n > 0 && buf[n - 1] == '\n')
            n--;
    }
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return strdup(buf);
}

/* How long an exec'd image that has not connected may go on running once
 * the run's program has ended: less than DETACH_GRACE_NS, so that run
 * judges the dump that says so. */
#define EXEC_GRACE_NS 100000000ull

/* pid's start of code (/proc/PID/stat field 26), 0 if it cannot be read. */
static unsigned long long proc_startcode(pid_t pid)
{
    char buf[1024];
    char *at = peer_proc_stat(pid, buf, sizeof buf);
    for (int field = 3; field < 26 && at; field++) /* at: the space before field 3 */
        at = strchr(at + 1, ' ');
    return at ? strtoull(at + 1, NULL, 10) : 0;
}

/* 1 once pid has ended: gone, or a zombie. */
static int pid_ended(pid_t pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    char buf[1024];
    const char *at = peer_proc_stat(pid, buf, sizeof buf);
    return at && at[0] == ' ' && (at[1] == 'Z' || at[1] == 'X');
}

/* An image exec'd by p (w): it says HELLO in turn, unless memtrace could
 * not reach it (statically linked, set-uid or set-gid, LD_PRELOAD taken out
 * of its environment, a seccomp filter or a descriptor limit that kept it
 * from connecting): then its allocations are unchecked, and p's dump says
 * so (SPEC sections 5 and 6). 0 once the new image has said HELLO; 1 once
 * its pid has ended without one (and no connection is left to read), or it
 * still runs unconnected when the run's program has ended; -1 while
 * neither is known. */
static int exec_untraced(struct consumer *c, struct process *p, struct exec_watch *w,
                         uint64_t now)
{
    for (size_t i = 0; i < c->nhellos; i++)
        if ((c->hellos[i].pid == w->pid || c->hellos[i].shim_pid == w->pid) &&
            c->hellos[i].start_ns > w->since_ns)
            return 0;
    if (!w->wait_ns)
        w->wait_ns = now ? now : 1;
    int ended = pid_ended(w->pid);
    /* What it runs, once it runs it: a vfork child shares its parent's
     * memory (the same start of code) until its exec is done. */
    if (!w->known && !ended &&
        (w->pid == seen_pid(p) || proc_startcode(w->pid) != proc_startcode(seen_pid(p)))) {
        w->why = exec_cause(w->pid);
        free(w->image);
        w->image = exec_image_name(w->pid);
        w->known = w->image != NULL;
    }
    if (!w->known && ended && !w->image) /* a zombie keeps its name */
        w->image = exec_image_name(w->pid);
    if (!ended) {
        if (!c->opt->direct_child || !c->child_reaped || now - w->wait_ns < EXEC_GRACE_NS)
            return -1;
        if (!w->why)
            w->why = MT_EXEC_RUNNING;
    }
    /* its HELLO may still wait: accepted and not read, or in the backlog */
    struct pollfd lf = {.fd = c->listen_fd, .events = POLLIN};
    if (c->npending || poll(&lf, 1, 0) > 0)
        return -1;
    return 1;
}

/* Settles p's exec watches that can be: one whose image was not traced is
 * said, once, on stderr and in p's dump. 1 while some are left. */
static int settle_watches(struct consumer *c, struct process *p, uint64_t now)
{
    static const char never_reached[] = "it never reached memtrace: LD_PRELOAD taken out of its "
                                        "environment, a seccomp filter or a descriptor limit";
    static const char *const why[] = {
        "statically linked, set-uid, or it could not reach memtrace", "statically linked",
        "set-uid or set-gid: the loader drops LD_PRELOAD", never_reached,
        "it was still running without reaching memtrace when the program ended"};
    for (size_t i = 0; i < p->nwatches;) {
        struct exec_watch *w = &p->watches[i];
        int r = exec_untraced(c, p, w, now);
        if (r < 0) {
            i++;
            continue;
        }
        if (r > 0) {
            process_note_incomplete(p, now, MT_INCOMPLETE_EXEC_UNTRACED, w->why);
            fprintf(stderr, "memtrace: pid %d: %s, which it exec'd, was not traced (%s): its "
                            "allocations are unchecked\n",
                    (int)w->pid, w->image ? w->image : "the program",
                    why[w->why <= MT_EXEC_RUNNING ? w->why : 0]);
        }
        process_unwatch_exec(p, w->pid);
    }
    return p->nwatches != 0;
}

/* Finishes p's dump once it is known how the process ended. Returns 0 while
 * that is not known yet (the direct child not reaped, an exec'd image not
 * connected yet). */
static int finish(struct consumer *c, struct process *p)
{
    int how = MT_EXIT_UNKNOWN, value = 0;
    process_drain(p, 1, &c->snapshots); /* its EXIT and EXEC records first */
    if (p->exec_pending && !p->exec_watched) {
        p->exec_watched = 1;
        process_watch_exec(p, seen_pid(p), p->start_ns);
    }
    if (p->nwatches && settle_watches(c, p, consumer_now_ns()))
        return 0; /* its images to come (its own, its vfork children's) */
    if (p->exec_pending) {
        how = MT_EXIT_EXEC;
    } else if (seen_pid(p) == c->opt->direct_child) {
        if (!c->child_reaped)
            return 0;
        if (WIFSIGNALED(c->child_status)) {
            how = MT_EXIT_SIGNAL;
            value = WTERMSIG(c->child_status);
        } else {
            how = MT_EXIT_STATUS;
            value = WEXITSTATUS(c->child_status);
        }
    } else if (p->saw_exit) {
        how = p->exit_how == MT_EXIT_SIGNAL ? MT_EXIT_SIGNAL : MT_EXIT_STATUS;
        value = p->exit_value;
    } else {
        exit_from_proc(seen_pid(p), &how, &value);
    }
    uint64_t end = p->last_event_ns > p->start_ns ? p->last_event_ns : p->start_ns;
    uint64_t now = consumer_now_ns();
    if (now > end)
        end = now;
    note_unchecked(c, p, how, end);
    dump_write_exit(&p->dump, end, (uint64_t)how, value);
    dump_write_end(&p->dump, end);
    int e = dump_writer_close(&p->dump);
    if (e) {
        fprintf(stderr, "memtrace: the dump %s is incomplete: %s\n", p->dump_path, strerror(e));
        c->had_error = 1;
    }
    for (uint32_t i = 0; i < p->nrings; i++)
        if (p->rings[i].map_size) /* else a slot of the pool */
            munmap(p->rings[i].ctl, p->rings[i].map_size);
    p->nrings = 0;
    if (p->pool_map)
        munmap(p->pool_map, p->pool_size);
    p->pool_map = NULL;
    p->pool_slots = p->pool_next = 0;
    if (p->rss_fd >= 0)
        close(p->rss_fd);
    p->rss_fd = -1;
    if (p->corrupt)
        fprintf(stderr, "memtrace: pid %d wrote a malformed record; its dump stops there\n",
                (int)seen_pid(p));
    char how_text[64];
    switch (how) {
    case MT_EXIT_STATUS: snprintf(how_text, sizeof how_text, "exited with status %d", value); break;
    case MT_EXIT_SIGNAL: snprintf(how_text, sizeof how_text, "killed by signal %d", value); break;
    case MT_EXIT_EXEC: snprintf(how_text, sizeof how_text, "replaced by exec"); break;
    default: snprintf(how_text, sizeof how_text, "ended");
    }
    if (!c->opt->quiet) {
        struct summary *s = &p->incomplete;
        s->exit_how = (uint64_t)how;
        s->exit_value = value;
        s->scanned = p->scanned;
        s->truncated = e != 0;
        struct heap_block lb;
        for (size_t cursor = 0; heap_table_next(&p->live, &cursor, &lb);) {
            s->kind_bytes[lb.kind] += lb.size;
            s->kind_blocks[lb.kind]++;
        }
        print_summary(p, how_text, c->opt->leak_check, s);
    }
    p->phase = PHASE_DONE;
    /* A fork child still waiting for this process's snapshot gets none. */
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->waiting_for_fork && c->procs[i]->fork_parent == p->pid)
            try_inherit(c, c->procs[i]);
    return 1;
}

static void release(struct process *p)
{
    if (p->pidfd >= 0)
        close(p->pidfd);
    if (p->scan_map)
        munmap(p->scan_map, p->scan_size);
    heap_table_free(&p->live);
    stack_store_release(p->stacks);
    free(p->pyframes.bytes);
    free(p->modules.bytes);
    for (int i = 0; i < p->argc; i++)
        free(p->argv[i]);
    free(p->argv);
    free(p->exe);
    for (size_t i = 0; i < p->nwatches; i++)
        free(p->watches[i].image);
    free(p->watches);
    free(p->dump_path);
    free(p->rings);
    free(p);
}

/* ---- the loop ----------------------------------------------------------- */

/* 1 if n more descriptors can be opened now (a process's dump, its RSS
 * file, its pidfd): pending connections hold descriptors of their own, so
 * the room an accept found may be gone by the HELLO. */
static int descriptors_free(int fd, int n)
{
    int got[4], k = 0;
    while (k < n && k < 4 && (got[k] = fcntl(fd, F_DUPFD_CLOEXEC, 0)) >= 0)
        k++;
    for (int i = 0; i < k; i++)
        close(got[i]);
    return k == n;
}

/* Closes a pending connection (the spare it held comes back). */
static void pending_drop(struct consumer *c, const struct pending_conn *q)
{
    if (q->fd >= 0)
        close(q->fd);
    if (q->no_room) {
        fd_budget_restore();
        c->spare_pending = 0;
    }
}

/* Accepts every connection waiting: a peer of another user is closed at
 * once; the others wait, non-blocking, for their HELLO (read_pending). */
static void accept_new(struct consumer *c)
{
    /* At the open-file limit (no spare in hand: fd_budget.h) a spare is
     * spent to take one connection, refused at its HELLO (on_hello); no
     * other is taken until the spare comes back (pending_drop). */
    while (!c->spare_pending && c->npending < PENDING_MAX) { /* the rest wait in the backlog */
        int room = fd_budget_room();
        int fd = room ? accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK) : -1;
        if (fd < 0 && (!room || errno == EMFILE || errno == ENFILE)) {
            room = 0;
            fd_budget_take();
            fd = accept4(c->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        }
        if (fd < 0) {
            fd_budget_restore();
            return;
        }
        struct ucred cred;
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != geteuid() ||
            (!c->pending && !(c->pending = calloc(PENDING_MAX, sizeof *c->pending)))) {
            close(fd);
            if (!room)
                fd_budget_restore();
            continue;
        }
        c->pending[c->npending++] = (struct pending_conn){fd, consumer_now_ns() + PENDING_NS, !room};
        c->spare_pending = !room;
    }
}

/* The peer's HELLO has come: it is served if it is a process we trace (or
 * the fork child of one it names), else told it is not traced. No file is
 * made for a peer that is not. */
/* A pid that was let in: its fork children may be let in by lineage
 * (verified_hello). Without memory, the list simply stays shorter. */
static void remember_traced(struct consumer *c, pid_t pid)
{
    if (c->ntraced == c->traced_cap) {
        size_t cap = c->traced_cap ? 2 * c->traced_cap : 64;
        pid_t *q = realloc(c->traced, cap * sizeof *q);
        if (q)
            c->traced = q, c->traced_cap = cap;
    }
    if (c->ntraced < c->traced_cap)
        c->traced[c->ntraced++] = pid;
}

static void verified_hello(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    pid_t known_stack[64], *known = c->nprocs <= 64 ? known_stack : malloc(c->nprocs * sizeof *known);
    size_t nknown = 0;
    int parent_known = 0;
    for (size_t i = 0; known && i < c->nprocs; i++) {
        const struct process *p = c->procs[i];
        if (p->phase == PHASE_DONE)
            continue;
        known[nknown++] = p->peer_pid > 0 ? p->peer_pid : p->pid;
    }
    for (size_t i = 0; i < c->ntraced; i++)
        parent_known |= h->fork_parent != 0 && c->traced[i] == h->fork_parent;
    struct peer_lineage l = {.uid = geteuid(),
                             .root = c->opt->direct_child ? c->opt->direct_child : c->opt->root,
                             .known = known, .nknown = nknown};
    pid_t pid;
    const char *why = "";
    int ok = known && (peer_allowed(fd, &l, &pid, &why) || (parent_known && pid > 0));
    if (ok && !peer_claims_own_pid(pid, h->pid)) {
        ok = 0;
        why = "its HELLO names another process";
    }
    if (known != known_stack)
        free(known);
    if (ok) {
        remember_traced(c, h->pid);
        on_hello(c, fd, h);
        return;
    }
    static unsigned refused; /* a flood of them says so once, not a line each */
    if (++refused <= 5)
        fprintf(stderr, "memtrace: pid %d connected and is not traced: %s%s\n", (int)pid, why,
                refused == 5 ? " (further refusals are not shown)" : "");
    reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
    close(fd);
}

/* ---- kits (ring.h, MT_HELLO_KIT) ---------------------------------------- */

static void kit_free(struct kit *k)
{
    if (k->fd >= 0)
        close(k->fd);
    if (k->pool)
        munmap(k->pool, k->pool_size);
    k->fd = -1;
    k->pool = NULL;
}

/* A traced process makes a kit for its next fork child: kept if the
 * connection is that process's own (its pool checked as any ring), and
 * answered with a bare reply; fd is then ours to keep or close. */
static void on_kit(struct consumer *c, int fd, const struct mt_msg_hello *h, int memfd, int room)
{
    pid_t peer = peer_pid(fd);
    struct process *owner = NULL;
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->phase == PHASE_RUNNING && c->procs[i]->pid == h->pid && peer > 0 &&
            seen_pid(c->procs[i]) == peer)
            owner = c->procs[i];
    uint64_t cap = (uint64_t)h->reserved << 10;
    size_t size = MT_POOL_SLOTS * (MT_RING_DATA_OFFSET + cap);
    void *pool = MAP_FAILED;
    if (owner && memfd >= 0 && cap >= 4096 && cap <= MT_POOL_CAPACITY_MAX && !(cap & (cap - 1)) &&
        ring_memfd_usable(memfd, size))
        pool = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (memfd >= 0)
        close(memfd);
    int one = 1;
    struct kit k = {fd, h->pid, peer, pool == MAP_FAILED ? NULL : pool, size, cap, 0};
    if (owner && room && c->nkits == c->kits_cap) {
        size_t more = c->kits_cap ? 2 * c->kits_cap : 16;
        struct kit *q = realloc(c->kits, more * sizeof *q);
        if (q)
            c->kits = q, c->kits_cap = more;
    }
    if (!owner || !room || c->nkits == c->kits_cap ||
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) != 0) {
        /* no kit: its children connect by themselves, if they can */
        struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_UNTRACED};
        send(fd, &r, sizeof r, MSG_NOSIGNAL);
        kit_free(&k);
        return;
    }
    c->kits[c->nkits++] = k;
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_OK};
    send(fd, &r, sizeof r, MSG_NOSIGNAL);
}

/* A message on a kit: the HELLO of the fork child that took it, whose pid
 * the kernel gives with it (SO_PASSCRED: the socket's own credentials are
 * the parent's). Served as any fork child's HELLO, with the kit's pool as
 * its own; anything else ends the kit. 1 if the kit is gone. */
static int kit_read(struct consumer *c, struct kit *k)
{
    struct mt_msg_hello h;
    char control[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(4 * sizeof(int))];
    struct iovec iov = {.iov_base = &h, .iov_len = sizeof h};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                        .msg_controllen = sizeof control};
    ssize_t n = recvmsg(k->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    pid_t sender = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET)
            continue;
        if (cm->cmsg_type == SCM_CREDENTIALS) {
            struct ucred cred;
            memcpy(&cred, CMSG_DATA(cm), sizeof cred);
            sender = cred.uid == geteuid() ? cred.pid : 0;
        } else if (cm->cmsg_type == SCM_RIGHTS) { /* none is wanted */
            size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t i = 0; i < count; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
                close(fd);
            }
        }
    }
    if (n == (ssize_t)sizeof h && h.type == MT_MSG_HELLO && h.version == MT_IPC_VERSION &&
        (h.flags & MT_HELLO_KIT_CHILD) && h.fork_parent == k->parent && h.fork_seq != 0 &&
        sender > 0 && sender != k->parent_seen && read_parent(sender) == k->parent_seen &&
        peer_claims_own_pid(sender, h.pid)) {
        int fd = k->fd;
        int zero = 0; /* its credentials would crowd out a ring's memfd */
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &zero, sizeof zero);
        c->accepted_any = 1;
        c->fd_room = descriptors_free(fd, 3);
        remember_traced(c, h.pid);
        c->hello_peer = sender;
        size_t before = c->nprocs;
        on_hello(c, fd, &h);
        c->hello_peer = 0;
        /* served: the pool is the child's before it can read the reply's
         * effect (no drain of it has run yet) */
        struct process *p = c->nprocs > before ? c->procs[c->nprocs - 1] : NULL;
        if (p && p->conn == fd && k->pool) {
            p->pool_map = k->pool;
            p->pool_size = k->pool_size;
            p->pool_capacity = k->pool_capacity;
            p->pool_slots = MT_POOL_SLOTS;
            p->pool_next = 0;
            k->pool = NULL;
        }
        k->fd = -1; /* the child's connection now, or closed by on_hello */
    } else if (n > 0) {
        struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_UNTRACED};
        send(k->fd, &r, sizeof r, MSG_NOSIGNAL);
    }
    kit_free(k);
    return 1;
}

/* Reads the kits the last poll found readable; drops those gone. */
static void read_kits(struct consumer *c)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->nkits; i++) {
        struct kit *k = &c->kits[i];
        if (k->ready) {
            k->ready = 0;
            if (kit_read(c, k))
                continue;
        }
        c->kits[kept++] = *k;
    }
    c->nkits = kept;
}

/* Reads the HELLO of each pending connection that has one; drops those
 * that sent something else, closed, or waited too long. */
static void read_pending(struct consumer *c, uint64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < c->npending; i++) {
        struct pending_conn *q = &c->pending[i];
        struct mt_msg_hello h;
        char control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = {.iov_base = &h, .iov_len = sizeof h};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                            .msg_controllen = sizeof control};
        ssize_t n;
        do {
            n = recvmsg(q->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN && now < q->deadline) {
            c->pending[kept++] = *q;
            continue;
        }
        int memfd = -1; /* a kit's pool */
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); n > 0 && cm; cm = CMSG_NXTHDR(&mh, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS && memfd < 0)
                memcpy(&memfd, CMSG_DATA(cm), sizeof memfd);
        if (n == (ssize_t)sizeof h && h.type == MT_MSG_HELLO && (h.flags & MT_HELLO_KIT) &&
            h.version == MT_IPC_VERSION) {
            on_kit(c, q->fd, &h, memfd, !q->no_room && descriptors_free(q->fd, 4));
            q->fd = -1; /* kept or closed there */
        } else if (memfd >= 0) {
            close(memfd);
        }
        if (q->fd >= 0 && n == (ssize_t)sizeof h && h.type == MT_MSG_HELLO) {
            c->accepted_any = 1;
            c->fd_room = !q->no_room && descriptors_free(q->fd, 3);
            verified_hello(c, q->fd, &h);
            q->fd = -1; /* served or closed there */
        }
        pending_drop(c, q);
    }
    c->npending = kept;
}

static int all_done(const struct consumer *c)
{
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->phase != PHASE_DONE)
            return 0;
    return 1;
}

static char **served_dumps;
static size_t served_count;

char *const *consumer_dumps(int *count)
{
    *count = (int)served_count;
    return served_dumps;
}

/* ---- leaving the rest to a detached consumer (run mode) ----------------- */

/* How long run waits, once its program has ended and its dump is complete,
 * for the program's descendants to end too before it leaves them to a
 * detached copy of itself. */
#define DETACH_GRACE_NS 200000000ull

static enum consumer_role role = CONSUMER_ATTACHED;
static char *pending_line;

enum consumer_role consumer_role(void) { return role; }

const char *consumer_pending_line(void) { return pending_line; }

/* The line run prints when it leaves processes behind: their pids, names and
 * dumps (the first 8), and what becomes of them, in one line. */
static char *describe_pending(const struct consumer *c, size_t npending, size_t nforks)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (!f)
        return NULL;
    int one;
    one = npending + nforks == 1;
    fprintf(f, "memtrace: %zu process%s still run%s after the program ended:", npending + nforks,
            one ? "" : "es", one ? "s" : "");
    size_t named = 0;
    for (size_t i = 0; i < c->nprocs; i++) {
        const struct process *p = c->procs[i];
        if (p->phase == PHASE_DONE)
            continue;
        if (named++ == 8) {
            fprintf(f, ", ...");
            break;
        }
        fprintf(f, "%s pid %d (%s) %s", named > 1 ? "," : "", (int)seen_pid(p), program_name(p),
                p->dump_path);
    }
    if (nforks)
        fprintf(f, "%s %zu forked process%s not connected yet", npending ? "; and" : "", nforks,
                nforks == 1 ? "" : "es");
    fprintf(f, "; %s in the background when %s (`flock DUMP true` waits for that), and "
               "%s not judged by this run's gates",
            one ? "its dump is completed" : "their dumps are completed",
            one ? "it ends" : "they end", one ? "is" : "are");
    fclose(f);
    return text;
}

/* 1 while an image of the program (run's child) has not ended yet. */
static int program_running(const struct consumer *c)
{
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->phase != PHASE_DONE && seen_pid(c->procs[i]) == c->opt->direct_child)
            return 1;
    return 0;
}

/* The program has ended and its dump is complete, but descendants of it
 * still run: fork. The parent returns to run, which exits with the
 * program's status; the child carries on with every connection, ring and
 * dump as the detached consumer of plain mode does, quietly, in a session
 * of its own. 1 in the parent, 0 in the child or when fork failed (then
 * this process simply serves on). */
static int leave_to_background(struct consumer *c, struct consumer_options *opt)
{
    size_t npending = 0, nforks = 0;
    for (size_t i = 0; i < c->nprocs; i++)
        npending += c->procs[i]->phase != PHASE_DONE;
    /* fork children whose parent's snapshot waits for them: they are about
     * to connect (or were killed before they could) */
    for (const struct fork_snapshot *snap = c->snapshots; snap; snap = snap->next)
        nforks++;
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return 0;
    if (pid > 0) {
        role = CONSUMER_LEFT_BEHIND;
        pending_line = describe_pending(c, npending, nforks);
        /* the dumps run judges: those complete now */
        size_t kept = 0;
        for (size_t i = 0; i < c->ncreated; i++) {
            int pending = 0;
            for (size_t k = 0; k < c->nprocs; k++)
                pending |= c->procs[k]->phase != PHASE_DONE && c->procs[k]->dump_path &&
                           strcmp(c->procs[k]->dump_path, c->created[i]) == 0;
            if (pending)
                free(c->created[i]);
            else
                c->created[kept++] = c->created[i];
        }
        c->ncreated = kept;
        /* the child's copies hold the dumps' locks until they are complete;
         * this copy drops what it knew of those processes and of the fork
         * snapshots (its memory and descriptors, nothing on disk: the dump
         * writer writes nothing once its descriptor is gone), so that run
         * ends holding none of it (LeakSanitizer, in the ASan build) */
        size_t kept_procs = 0;
        for (size_t k = 0; k < c->nprocs; k++) {
            struct process *p = c->procs[k];
            if (p->phase == PHASE_DONE) {
                c->procs[kept_procs++] = p;
                continue;
            }
            if (p->dump.fd >= 0)
                close(p->dump.fd);
            p->dump.fd = -1;
            dump_writer_close(&p->dump);
            if (p->conn >= 0)
                close(p->conn);
            if (p->rss_fd >= 0)
                close(p->rss_fd);
            release(p);
        }
        c->nprocs = kept_procs;
        while (c->snapshots) {
            struct fork_snapshot *s = c->snapshots;
            c->snapshots = s->next;
            fork_snapshot_free(s);
        }
        return 1;
    }
    role = CONSUMER_DETACHED;
    setsid();
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGTERM, SIG_DFL);
    /* Nothing of the terminal or of a pipe someone reads to its end (as
     * $(memtrace run ...) does): stderr is kept only when it is a file or a
     * terminal, for the errors that may still come. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
        struct stat st;
        dup2(devnull, STDIN_FILENO);
        dup2(devnull, STDOUT_FILENO);
        if (fstat(STDERR_FILENO, &st) != 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode)))
            dup2(devnull, STDERR_FILENO);
        close(devnull);
    }
    opt->direct_child = 0;
    opt->quiet = 1;
    c->accepted_any = 1; /* serve mode's rule: stop after a quiet second */
    return 0;
}

/* SIGCHLD from the direct child (run mode): waitpid only after one, and
 * every WAIT_FALLBACK_NS in case one was missed. */
static volatile sig_atomic_t child_signalled;

static void on_sigchld(int sig)
{
    (void)sig;
    child_signalled = 1;
}

#define WAIT_FALLBACK_NS 100000000ull

/* Reaps the direct child if it has ended. */
static void check_child(struct consumer *c, uint64_t now, uint64_t *last_wait)
{
    const struct consumer_options *options = c->opt;
    if (!options->direct_child || c->child_reaped)
        return;
    if (!child_signalled && now - *last_wait < WAIT_FALLBACK_NS)
        return;
    child_signalled = 0;
    *last_wait = now;
    int st;
    pid_t r = waitpid(options->direct_child, &st, WNOHANG);
    if (r == options->direct_child) {
        c->child_reaped = 1;
        c->child_status = st;
    } else if (r < 0 && errno == ECHILD) {
        c->child_reaped = 1;
    }
}

/* The loop makes one syscall of its own per round, a poll: the listening
 * socket is accepted from and a connection read only when that poll said
 * so (accept4 allocates a socket in the kernel even when it fails with
 * EAGAIN). A round that moved records polls without waiting; an idle one
 * waits at most 1 ms, the bound on how long a full ring waits for us. */
int consumer_serve(const struct consumer_options *options, int listen_fd, int *had_error)
{
    struct consumer_options opt = *options; /* a detached consumer changes its copy */
    struct consumer c = {.opt = &opt, .listen_fd = listen_fd};
    role = CONSUMER_ATTACHED;
    refusals_unrecorded = 0;
    fd_budget_init();
    fcntl(listen_fd, F_SETFL, fcntl(listen_fd, F_GETFL) | O_NONBLOCK);
    struct sigaction chld = {.sa_handler = on_sigchld, .sa_flags = SA_RESTART | SA_NOCLDSTOP}, old_chld;
    sigemptyset(&chld.sa_mask);
    sigaction(SIGCHLD, &chld, &old_chld);
    child_signalled = 1; /* the child may have ended before the handler was set */
    uint64_t idle_since = consumer_now_ns(), last_wait = 0, program_done_ns = 0;
    struct pollfd *fds = NULL;
    size_t fds_cap = 0;
    int listen_ready = 1;
    for (;;) {
        uint64_t now = consumer_now_ns();
        check_child(&c, now, &last_wait);
        if (listen_ready)
            accept_new(&c);
        if (c.npending)
            read_pending(&c, now);
        if (c.nkits)
            read_kits(&c);
        long moved = 0;
        for (size_t i = 0; i < c.nprocs; i++) {
            struct process *p = c.procs[i];
            if (p->phase == PHASE_DONE)
                continue;
            int reading = p->conn >= 0 && p->conn_ready;
            if (reading)
                fd_budget_take(); /* a free slot for a ring a message carries */
            while (p->conn >= 0 && p->conn_ready) {
                int r = read_message(&c, p);
                if (r == 0)
                    on_connection_closed(p);
                if (r != 1)
                    p->conn_ready = 0;
            }
            if (reading)
                fd_budget_restore();
            if (p->waiting_for_fork)
                try_inherit(&c, p);
            serve_deferred_scan(&c, p);
            if (p->detached)
                check_detached(p);
            moved += process_drain(p, 0, &c.snapshots);
            if (p->nwatches && p->phase == PHASE_RUNNING) /* its vfork children's images */
                settle_watches(&c, p, now);
            process_sample_rss(p, now);
            dump_writer_tick(&p->dump, now);
            if (p->phase == PHASE_CLOSING && !p->waiting_for_fork)
                finish(&c, p);
        }
        /* Drop finished processes that no one can refer to any more. */
        size_t kept = 0;
        for (size_t i = 0; i < c.nprocs; i++) {
            if (c.procs[i]->phase == PHASE_DONE)
                release(c.procs[i]);
            else
                c.procs[kept++] = c.procs[i];
        }
        c.nprocs = kept;
        if (c.nunclaimed)
            drop_unclaimed(&c);
        int done = all_done(&c);
        if (opt.direct_child) {
            if (c.child_reaped && done && (!opt.detach || !c.snapshots))
                break;
            /* the program is gone and its dump complete: wait a little for
             * its descendants, then leave them to a detached copy */
            if (c.child_reaped && opt.detach && !program_running(&c)) {
                if (!program_done_ns)
                    program_done_ns = now;
                if (now - program_done_ns > DETACH_GRACE_NS && leave_to_background(&c, &opt))
                    break;
            }
        } else {
            if (!done || moved)
                idle_since = now;
            /* serve mode: stop after a quiet second with nobody connected */
            uint64_t quiet = c.accepted_any ? 1000000000ull : 60000000000ull;
            if (done && now - idle_since > quiet)
                break;
        }
        if (fds_cap < 2 * c.nprocs + 1 + PENDING_MAX + c.nkits) {
            fds_cap = (2 * c.nprocs + 1 + c.nkits) * 2 + PENDING_MAX;
            fds = realloc(fds, fds_cap * sizeof *fds);
        }
        size_t nfds = 0;
        fds[nfds++] = (struct pollfd){.fd = listen_fd, .events = POLLIN};
        for (size_t i = 0; i < c.nprocs; i++)
            if (c.procs[i]->conn >= 0)
                fds[nfds++] = (struct pollfd){.fd = c.procs[i]->conn, .events = POLLIN};
        for (size_t i = 0; i < c.nprocs; i++) /* detached: their end wakes us */
            if (c.procs[i]->conn < 0 && c.procs[i]->pidfd >= 0)
                fds[nfds++] = (struct pollfd){.fd = c.procs[i]->pidfd, .events = POLLIN};
        size_t first_kit = nfds; /* kits, then pending: the order is used below */
        for (size_t i = 0; i < c.nkits; i++)
            fds[nfds++] = (struct pollfd){.fd = c.kits[i].fd, .events = POLLIN};
        for (size_t i = 0; i < c.npending; i++)
            fds[nfds++] = (struct pollfd){.fd = c.pending[i].fd, .events = POLLIN};
        /* A child that ends while we wait interrupts the poll (EINTR). */
        int n = poll(fds, nfds, moved || child_signalled ? 0 : 1);
        listen_ready = n > 0 && (fds[0].revents & POLLIN);
        for (size_t i = 0, k = 1; n > 0 && i < c.nprocs; i++)
            if (c.procs[i]->conn >= 0 && fds[k++].revents)
                c.procs[i]->conn_ready = 1;
        for (size_t i = 0; n > 0 && i < c.nkits; i++)
            c.kits[i].ready = fds[first_kit + i].revents != 0;
    }
    sigaction(SIGCHLD, &old_chld, NULL);
    free(fds);
    free(c.unclaimed);
    for (size_t i = 0; i < c.npending; i++)
        pending_drop(&c, &c.pending[i]);
    free(c.pending);
    for (size_t i = 0; i < c.nkits; i++)
        kit_free(&c.kits[i]);
    free(c.kits);
    free(c.traced);
    free(c.hellos);
    if (role == CONSUMER_LEFT_BEHIND) { /* the detached copy serves them */
        for (size_t i = 0; i < c.nprocs; i++)
            release(c.procs[i]);
        free(c.procs);
        served_dumps = c.created;
        served_count = c.ncreated;
        if (had_error)
            *had_error = c.had_error;
        return c.child_status;
    }
    while (c.snapshots) {
        struct fork_snapshot *s = c.snapshots;
        c.snapshots = s->next;
        fork_snapshot_free(s);
    }
    for (size_t i = 0; i < served_count; i++)
        free(served_dumps[i]);
    free(served_dumps);
    served_dumps = c.created; /* kept for consumer_dumps() */
    served_count = c.ncreated;
    free(c.procs);
    if (had_error)
        *had_error = c.had_error;
    return c.child_status;
}
