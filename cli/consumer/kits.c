/* Kits (ring.h, MT_HELLO_KIT): the idle connection and spare pool that a
 * traced process keeps ready here for its next fork child. */
#define _GNU_SOURCE
#include "consumer_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"

/* ---- kits (ring.h, MT_HELLO_KIT) ---------------------------------------- */

void consumer_kit_free(struct kit *k)
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
void consumer_on_kit(struct consumer *c, int fd, const struct mt_msg_hello *h, int memfd, int room)
{
    pid_t peer = consumer_peer_pid(fd);
    struct process *owner = NULL;
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->phase == PHASE_RUNNING && c->procs[i]->pid == h->pid && peer > 0 &&
            consumer_seen_pid(c->procs[i]) == peer)
            owner = c->procs[i];
    uint64_t cap = (uint64_t)h->reserved << 10;
    size_t size = MT_POOL_SLOTS * (MT_RING_DATA_OFFSET + cap);
    void *pool = MAP_FAILED;
    if (owner && memfd >= 0 && cap >= 4096 && cap <= MT_POOL_CAPACITY_MAX && !(cap & (cap - 1)) &&
        consumer_ring_memfd_usable(memfd, size))
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
        consumer_kit_free(&k);
        return;
    }
    c->kits[c->nkits++] = k;
    struct mt_msg_reply r = {.type = MT_MSG_REPLY, .status = MT_REPLY_OK};
    send(fd, &r, sizeof r, MSG_NOSIGNAL);
}

/* 1 if sender can be the fork child of the kit's owner: its parent is the
 * owner, or the owner has ended. A daemon's middle process forks and exits
 * at once; when its child says HELLO only after that (the child or the
 * consumer slow), the child has been given to another parent already, and
 * must still be traced: only the owner and the child that took its kit
 * ever hold the kit's connection. */
static int kit_child(pid_t sender, pid_t owner)
{
    pid_t parent = consumer_read_parent(sender);
    return parent == owner || (parent > 0 && consumer_pid_ended(owner));
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
        sender > 0 && sender != k->parent_seen && kit_child(sender, k->parent_seen) &&
        peer_claims_own_pid(sender, h.pid)) {
        int fd = k->fd;
        int zero = 0; /* its credentials would crowd out a ring's memfd */
        setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &zero, sizeof zero);
        c->accepted_any = 1;
        c->fd_room = consumer_descriptors_free(fd, 3);
        consumer_remember_traced(c, h.pid);
        c->hello_peer = sender;
        size_t before = c->nprocs;
        consumer_on_hello(c, fd, &h);
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
    consumer_kit_free(k);
    return 1;
}

/* Reads the kits the last poll found readable; drops those gone. */
void consumer_read_kits(struct consumer *c)
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
