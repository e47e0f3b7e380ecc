/* Run mode: once the program has ended, leaving the processes still
 * running to a detached copy of the consumer, and the line that says so. */
#define _GNU_SOURCE
#include "consumer_state.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"

/* ---- leaving the rest to a detached consumer (run mode) ----------------- */

static enum consumer_role role = CONSUMER_ATTACHED;
static char *pending_line;

enum consumer_role consumer_role(void) { return role; }

void consumer_detach_reset(void) { role = CONSUMER_ATTACHED; }

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
        fprintf(f, "%s pid %d (%s) %s", named > 1 ? "," : "", (int)consumer_seen_pid(p), consumer_program_name(p),
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
int consumer_program_running(const struct consumer *c)
{
    for (size_t i = 0; i < c->nprocs; i++)
        if (c->procs[i]->phase != PHASE_DONE && consumer_seen_pid(c->procs[i]) == c->opt->direct_child)
            return 1;
    return 0;
}

/* The program has ended and its dump is complete, but descendants of it
 * still run: fork. The parent returns to run, which exits with the
 * program's status; the child carries on with every connection, ring and
 * dump as the detached consumer of plain mode does, quietly, in a session
 * of its own. 1 in the parent, 0 in the child or when fork failed (then
 * this process simply serves on). */
int consumer_leave_to_background(struct consumer *c, struct consumer_options *opt)
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
            consumer_release(p);
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
