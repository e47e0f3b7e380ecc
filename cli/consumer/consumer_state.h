/* The consumer's own state, shared by its files (consumer.h is what the
 * rest of the memtrace command sees): consumer.c the loop, messages.c what
 * the shims send, process_life.c a process from its dump's creation to its
 * end, kits.c the kits kept for fork children, detach.c leaving the rest to
 * a detached copy. */
#ifndef MEMTRACE_CONSUMER_STATE_H
#define MEMTRACE_CONSUMER_STATE_H

#include <stdint.h>
#include <sys/types.h>

#include "consumer.h"
#include "memtrace/ring.h"
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

/* consumer.c */
int consumer_descriptors_free(int fd, int n);
void consumer_remember_traced(struct consumer *c, pid_t pid);
/* detach.c */
int consumer_program_running(const struct consumer *c);
int consumer_leave_to_background(struct consumer *c, struct consumer_options *opt);
/* kits.c */
void consumer_kit_free(struct kit *k);
void consumer_on_kit(struct consumer *c, int fd, const struct mt_msg_hello *h, int memfd, int room);
void consumer_read_kits(struct consumer *c);
/* messages.c */
void consumer_reply(int fd, uint32_t status, const struct consumer_options *o, const char *message);
void consumer_try_inherit(struct consumer *c, struct process *child);
pid_t consumer_peer_pid(int fd);
void consumer_on_connection_closed(struct process *p);
void consumer_check_detached(struct process *p);
void consumer_drop_unclaimed(struct consumer *c);
void consumer_on_hello(struct consumer *c, int fd, const struct mt_msg_hello *h);
int consumer_ring_memfd_usable(int memfd, uint64_t map_size);
void consumer_serve_deferred_scan(struct consumer *c, struct process *p);
int consumer_read_message(struct consumer *c, struct process *p);
/* process_life.c */
pid_t consumer_seen_pid(const struct process *p);
pid_t consumer_read_parent(pid_t pid);
void consumer_read_command_line(struct process *p);
const char *consumer_program_name(const struct process *p);
int consumer_create_dump(struct consumer *c, struct process *p, char *err, size_t errlen);
void consumer_write_process_record(struct process *p, const struct consumer_options *o, int forked);
int consumer_settle_watches(struct consumer *c, struct process *p, uint64_t now);
int consumer_finish(struct consumer *c, struct process *p);
void consumer_release(struct process *p);
int consumer_pid_ended(pid_t pid);

/* A new consumer_serve: this run's role and refusals start again. */
void consumer_detach_reset(void);    /* detach.c */
void consumer_refusals_reset(void);  /* messages.c */

/* How long run waits, once its program has ended and its dump is complete,
 * for the program's descendants to end too before it leaves them to a
 * detached copy of itself. */
#define DETACH_GRACE_NS 200000000ull

#endif
