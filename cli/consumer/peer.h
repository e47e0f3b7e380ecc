/* Who may talk to the consumer (issue 18.11): a connection is served only
 * when its peer runs as the consumer's own user and is one of the processes
 * the consumer traces -- the root it was started for, a descendant of it or
 * of a process it traces, or such a process after exec. Nothing a peer
 * says is believed before that. */
#ifndef MEMTRACE_PEER_H
#define MEMTRACE_PEER_H

#include <sys/types.h>

struct peer_lineage {
    uid_t uid;          /* the consumer's effective uid */
    pid_t root;         /* run: the program; plain mode: the process that started us */
    const pid_t *known; /* the processes traced now */
    size_t nknown;
};

/* 1 when the peer on fd may be traced (*pid gets its pid as the kernel
 * says), 0 otherwise, with *why saying what failed. */
int peer_allowed(int fd, const struct peer_lineage *l, pid_t *pid, const char **why);

/* 1 when claimed is pid's own number: pid itself, or its number in its
 * innermost pid namespace (a HELLO names the process as it sees itself). */
int peer_claims_own_pid(pid_t pid, pid_t claimed);

/* The parent of pid as /proc says, or -1. */
pid_t peer_parent_of(pid_t pid);

/* Reads /proc/PID/stat into buf; returns what follows the command's
 * closing parenthesis (" S ppid ..."), or NULL. The command may hold
 * anything, ')' included: the last one ends it. */
char *peer_proc_stat(pid_t pid, char *buf, size_t size);

#endif
