/* The consumer's check of who connected (peer.h): the kernel's credentials
 * of the socket's peer (SO_PEERCRED, taken at connect and not forgeable),
 * then its lineage through /proc/PID/stat. Runs in the consumer, on every
 * accepted connection, before any byte of the peer is read. */
#define _GNU_SOURCE
#include "peer.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* How many parents are followed at most: deeper than any real tree. */
#define LINEAGE_STEPS 512

char *peer_proc_stat(pid_t pid, char *buf, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    char *close_paren = strrchr(buf, ')');
    return close_paren ? close_paren + 1 : NULL;
}

pid_t peer_parent_of(pid_t pid)
{
    char buf[1024];
    char *fields = peer_proc_stat(pid, buf, sizeof buf);
    int ppid;
    char state;
    if (!fields || sscanf(fields, " %c %d", &state, &ppid) != 2)
        return -1;
    return (pid_t)ppid;
}

static int is_known(const struct peer_lineage *l, pid_t pid)
{
    if (pid == l->root)
        return 1;
    for (size_t i = 0; i < l->nknown; i++)
        if (l->known[i] == pid)
            return 1;
    return 0;
}

int peer_allowed(int fd, const struct peer_lineage *l, pid_t *pid, const char **why)
{
    struct ucred cred;
    socklen_t len = sizeof cred;
    *pid = 0;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred ||
        cred.pid <= 0) {
        *why = "its credentials cannot be read";
        return 0;
    }
    *pid = cred.pid;
    if (cred.uid != l->uid) {
        *why = "it runs as another user";
        return 0;
    }
    pid_t at = cred.pid;
    for (int step = 0; step < LINEAGE_STEPS && at > 1; step++) {
        if (is_known(l, at))
            return 1;
        at = peer_parent_of(at);
    }
    *why = "it is not a process memtrace traces, nor a descendant of one";
    return 0;
}

int peer_claims_own_pid(pid_t pid, pid_t claimed)
{
    if (claimed == pid)
        return 1;
    /* in a pid namespace a process knows itself by its innermost number:
     * NSpid lists it, outermost first */
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *line = strstr(buf, "\nNSpid:");
    if (!line)
        return 0;
    char *end = strchr(line + 1, '\n');
    if (end)
        *end = '\0';
    char *last = strrchr(line, '\t');
    if (!last)
        last = strrchr(line, ' ');
    return last && atoi(last + 1) == (int)claimed;
}
