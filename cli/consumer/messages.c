/* The messages of a traced process's shim (ring.h): HELLO, rings, the
 * spare pool, notices, the exit scan's request and result. */
#define _GNU_SOURCE
#include "consumer_state.h"

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
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"

/* ---- messages ----------------------------------------------------------- */

void consumer_reply(int fd, uint32_t status, const struct consumer_options *o, const char *message)
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

void consumer_try_inherit(struct consumer *c, struct process *child)
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

pid_t consumer_peer_pid(int fd)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    return getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 ? cred.pid : 0;
}

/* A shim whose socket the program closed connects again as the same
 * process: the connection is attached to it, if it is one we trace and
 * detached, and the HELLO comes from that very process. */

static void on_reconnect(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    pid_t peer = consumer_peer_pid(fd);
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
            while ((r = consumer_read_message(c, p)) == 1 && p->conn >= 0)
                ;
            fd_budget_restore();
            if (r == 0)
                consumer_on_connection_closed(p);
        }
        if (p->pid == h->pid && p->detached && p->conn < 0 && p->phase == PHASE_RUNNING &&
            peer != 0 && p->peer_pid == peer) {
            p->conn = fd;
            p->conn_ready = 1;
            p->detached = 0;
            if (p->pidfd >= 0)
                close(p->pidfd);
            p->pidfd = -1;
            consumer_reply(fd, MT_REPLY_OK, c->opt, NULL);
            return;
        }
    }
    consumer_reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
    close(fd);
}

/* The connection of a process reached EOF. The end of the process, unless
 * it is still running and has not exec'd: then the program closed the
 * socket itself (daemons close every descriptor); its rings go on, and the
 * pidfd says when it ends. */
void consumer_on_connection_closed(struct process *p)
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
void consumer_check_detached(struct process *p)
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
void consumer_drop_unclaimed(struct consumer *c)
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
    consumer_drop_unclaimed(c);
}

static size_t refusals_unrecorded; /* this run's, see consumer.h */

size_t consumer_refusals_unrecorded(void) { return refusals_unrecorded; }

void consumer_refusals_reset(void) { refusals_unrecorded = 0; }

/* No room for one more process under the hard open-file limit: refused
 * whole, before anything of it is made, in one line; its parent's trace
 * says a child of it went untraced, so that no gate passes it. */
static void refuse_at_fd_limit(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    drop_snapshot(c, h);
    size_t running = 0;
    for (size_t i = 0; i < c->nprocs; i++)
        running += c->procs[i]->phase != PHASE_DONE;
    pid_t seen = consumer_peer_pid(fd);
    struct process *parent = NULL;
    if (h->fork_parent) {
        parent = find_running(c, h->fork_parent);
    } else if (seen > 0) { /* an exec'd image: the process that forked it */
        pid_t ppid = consumer_read_parent(seen);
        for (size_t i = 0; ppid > 0 && i < c->nprocs; i++)
            if (consumer_seen_pid(c->procs[i]) == ppid)
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
    consumer_reply(fd, MT_REPLY_ERROR, c->opt, message);
    close(fd);
    c->had_error = 1;
}

void consumer_on_hello(struct consumer *c, int fd, const struct mt_msg_hello *h)
{
    if (h->version != MT_IPC_VERSION) {
        fprintf(stderr, "memtrace: pid %d: the shim and the consumer are of different versions; "
                        "it runs untraced\n", (int)h->pid);
        consumer_reply(fd, MT_REPLY_ERROR, c->opt, "the shim and the consumer are of different versions");
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
        pid_t seen = c->hello_peer ? c->hello_peer : consumer_peer_pid(fd);
        c->hellos[c->nhellos++] =
            (struct hello_seen){seen > 0 ? seen : h->pid, h->pid, h->start_mono_ns};
    }
    if (!c->opt->follow_fork && c->first_hello_done) {
        consumer_reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
        close(fd);
        return;
    }
    if (!c->fd_room) {
        refuse_at_fd_limit(c, fd, h);
        return;
    }
    struct process *p = calloc(1, sizeof *p);
    if (!p || heap_table_init(&p->live) != 0 || !(p->stacks = stack_store_new())) {
        consumer_reply(fd, MT_REPLY_ERROR, c->opt, "out of memory");
        close(fd);
        free(p);
        return;
    }
    p->pid = h->pid;
    p->conn = fd;
    p->peer_pid = c->hello_peer ? c->hello_peer : consumer_peer_pid(fd); /* a kit: the child's */
    p->ppid = p->peer_pid > 0 ? consumer_read_parent(p->peer_pid) : 0; /* as seen here too */
    if (p->ppid <= 0)
        p->ppid = h->ppid;
    p->pidfd = -1;
    p->start_ns = h->start_mono_ns;
    p->rss_fd = -1;
    p->fork_parent = h->fork_parent;
    p->fork_seq = h->fork_seq;
    consumer_read_command_line(p);
    char err[PATH_MAX + 128];
    if (consumer_create_dump(c, p, err, sizeof err) != 0) {
        fprintf(stderr, "memtrace: %s\n", err);
        consumer_reply(fd, MT_REPLY_ERROR, c->opt, err);
        c->had_error = 1;
        close(fd);
        drop_snapshot(c, h);
        heap_table_free(&p->live);
        stack_store_release(p->stacks);
        free(p);
        return;
    }
    consumer_write_process_record(p, c->opt, h->fork_parent != 0);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/statm", (int)consumer_seen_pid(p));
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
        consumer_try_inherit(c, p);
    }
    consumer_reply(fd, MT_REPLY_OK, c->opt, NULL);
}

/* A ring's memfd is mapped only if it is a memfd whose size can no longer
 * shrink (F_SEAL_SHRINK: a process that truncated it would make every read
 * of ours a SIGBUS) and holds the whole ring: its size is the kernel's
 * (fstat), never what the message claims. */
int consumer_ring_memfd_usable(int memfd, uint64_t map_size)
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
             p->nrings < RINGS_PER_PROCESS_MAX && consumer_ring_memfd_usable(memfd, MT_RING_DATA_OFFSET + cap);
    void *mem = MAP_FAILED;
    if (ok)
        mem = mmap(NULL, MT_RING_DATA_OFFSET + cap, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
    if (memfd >= 0)
        close(memfd);
    struct mt_ring_control *ctl = mem;
    if (mem == MAP_FAILED || ctl->magic != MT_RING_MAGIC || ctl->capacity != cap) {
        if (mem != MAP_FAILED)
            munmap(mem, MT_RING_DATA_OFFSET + cap);
        consumer_reply(p->conn, MT_REPLY_ERROR, &(struct consumer_options){0}, NULL);
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
             consumer_ring_memfd_usable(memfd, size);
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
        consumer_try_inherit(c, p);
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
    char control[MT_MSG_FD_SPACE];
    struct iovec iov = {.iov_base = &r, .iov_len = sizeof r};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (r.status == MT_REPLY_OK)
        mt_msg_attach_fd(&mh, control, fd);
    sendmsg(p->conn, &mh, MSG_NOSIGNAL);
    if (fd >= 0)
        close(fd);
    if (r.status != MT_REPLY_OK) /* no scan: the gates must know why */
        process_note_incomplete(p, consumer_now_ns(), MT_INCOMPLETE_SCAN_NOT_SERVED, (uint64_t)err);
}

/* A scan request that waited for the fork snapshot: answered once it is
 * there (or will never come); dropped if the process went away meanwhile. */
void consumer_serve_deferred_scan(struct consumer *c, struct process *p)
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
int consumer_read_message(struct consumer *c, struct process *p)
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
