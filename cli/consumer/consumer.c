/* The consumer's event loop (see consumer.h): connections from traced
 * processes accepted and verified, then served until each has ended; the
 * messages they send are read by messages.c, their dumps made and ended by
 * process_life.c (consumer_state.h says which file holds what).
 *
 * A process has ended when its socket reaches EOF: every fd is closed only
 * once all its threads are gone (or it exec'd: the exec record says so).
 * Then its rings are drained completely, so the dump holds every event made
 * before death, SIGKILL included.
 */
#define _GNU_SOURCE
#include "consumer_state.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"

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

/* ---- the loop ----------------------------------------------------------- */

/* 1 if n more descriptors can be opened now (a process's dump, its RSS
 * file, its pidfd): pending connections hold descriptors of their own, so
 * the room an accept found may be gone by the HELLO. */
int consumer_descriptors_free(int fd, int n)
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
void consumer_remember_traced(struct consumer *c, pid_t pid)
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
        consumer_remember_traced(c, h->pid);
        consumer_on_hello(c, fd, h);
        return;
    }
    static unsigned refused; /* a flood of them says so once, not a line each */
    if (++refused <= 5)
        fprintf(stderr, "memtrace: pid %d connected and is not traced: %s%s\n", (int)pid, why,
                refused == 5 ? " (further refusals are not shown)" : "");
    consumer_reply(fd, MT_REPLY_UNTRACED, c->opt, NULL);
    close(fd);
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
            consumer_on_kit(c, q->fd, &h, memfd, !q->no_room && consumer_descriptors_free(q->fd, 4));
            q->fd = -1; /* kept or closed there */
        } else if (memfd >= 0) {
            close(memfd);
        }
        if (q->fd >= 0 && n == (ssize_t)sizeof h && h.type == MT_MSG_HELLO) {
            c->accepted_any = 1;
            c->fd_room = !q->no_room && consumer_descriptors_free(q->fd, 3);
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
    consumer_detach_reset();
    consumer_refusals_reset();
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
            consumer_read_kits(&c);
        long moved = 0;
        for (size_t i = 0; i < c.nprocs; i++) {
            struct process *p = c.procs[i];
            if (p->phase == PHASE_DONE)
                continue;
            int reading = p->conn >= 0 && p->conn_ready;
            if (reading)
                fd_budget_take(); /* a free slot for a ring a message carries */
            while (p->conn >= 0 && p->conn_ready) {
                int r = consumer_read_message(&c, p);
                if (r == 0)
                    consumer_on_connection_closed(p);
                if (r != 1)
                    p->conn_ready = 0;
            }
            if (reading)
                fd_budget_restore();
            if (p->waiting_for_fork)
                consumer_try_inherit(&c, p);
            consumer_serve_deferred_scan(&c, p);
            if (p->detached)
                consumer_check_detached(p);
            moved += process_drain(p, 0, &c.snapshots);
            if (p->nwatches && p->phase == PHASE_RUNNING) /* its vfork children's images */
                consumer_settle_watches(&c, p, now);
            process_sample_rss(p, now);
            dump_writer_tick(&p->dump, now);
            if (p->phase == PHASE_CLOSING && !p->waiting_for_fork)
                consumer_finish(&c, p);
        }
        /* Drop finished processes that no one can refer to any more. */
        size_t kept = 0;
        for (size_t i = 0; i < c.nprocs; i++) {
            if (c.procs[i]->phase == PHASE_DONE)
                consumer_release(c.procs[i]);
            else
                c.procs[kept++] = c.procs[i];
        }
        c.nprocs = kept;
        if (c.nunclaimed)
            consumer_drop_unclaimed(&c);
        int done = all_done(&c);
        if (opt.direct_child) {
            if (c.child_reaped && done && (!opt.detach || !c.snapshots))
                break;
            /* the program is gone and its dump complete: wait a little for
             * its descendants, then leave them to a detached copy */
            if (c.child_reaped && opt.detach && !consumer_program_running(&c)) {
                if (!program_done_ns)
                    program_done_ns = now;
                if (now - program_done_ns > DETACH_GRACE_NS && consumer_leave_to_background(&c, &opt))
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
        consumer_kit_free(&c.kits[i]);
    free(c.kits);
    free(c.traced);
    free(c.hellos);
    if (consumer_role() == CONSUMER_LEFT_BEHIND) { /* the detached copy serves them */
        for (size_t i = 0; i < c.nprocs; i++)
            consumer_release(c.procs[i]);
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
