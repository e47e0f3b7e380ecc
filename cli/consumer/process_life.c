/* A traced process from the creation of its dump to its end (see
 * consumer_state.h): what the consumer learns of it from /proc, its dump's
 * first records, and how it ended (exit, signal, exec), with the summary
 * printed for it. */
#define _GNU_SOURCE
#include "consumer_state.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "text_format.h"
#include "fd_budget.h"
#include "memtrace/format.h"
#include "peer.h"

/* ---- process information ---------------------------------------------- */

/* The pid of p as this consumer sees it (SO_PEERCRED), which names its dump
 * and its /proc directory. A process in a pid namespace of its own
 * (unshare -p, a container) says another in its HELLO (1 for the first):
 * that one, p->pid, only matches a fork child with its parent. */
pid_t consumer_seen_pid(const struct process *p)
{
    return p->peer_pid > 0 ? p->peer_pid : p->pid;
}

/* The parent of pid as this consumer sees it; 0 if unknown. */
pid_t consumer_read_parent(pid_t pid)
{
    pid_t ppid = peer_parent_of(pid);
    return ppid > 0 ? ppid : 0;
}

void consumer_read_command_line(struct process *p)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)consumer_seen_pid(p));
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
    snprintf(path, sizeof path, "/proc/%d/exe", (int)consumer_seen_pid(p));
    char exe[PATH_MAX];
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    p->exe = strndup(exe, n > 0 ? (size_t)n : 0);
}

const char *consumer_program_name(const struct process *p)
{
    const char *s = p->exe && *p->exe ? p->exe : (p->argc ? p->argv[0] : "unknown");
    const char *slash = strrchr(s, '/');
    return slash ? slash + 1 : s;
}

/* Creates the dump for p; numbers it when this run already made that path
 * (a pid that execs a program of the same name). */
int consumer_create_dump(struct consumer *c, struct process *p, char *err, size_t errlen)
{
    char path[PATH_MAX], numbered[PATH_MAX + 16];
    if (consumer_expand_pattern(c->opt->output_pattern, consumer_seen_pid(p), consumer_program_name(p), path,
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

void consumer_write_process_record(struct process *p, const struct consumer_options *o, int forked)
{
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    struct dump_process_info info = {
        .pid = (uint64_t)consumer_seen_pid(p), .ppid = (uint64_t)p->ppid, .start_ns = p->start_ns,
        .start_realtime_ns = (uint64_t)real.tv_sec * 1000000000ull + (uint64_t)real.tv_nsec,
        .flags = forked ? MT_PROC_FORKED : 0, .unwind = o->unwind, .max_depth = o->max_depth,
        .exe = p->exe, .argc = p->argc, .argv = p->argv};
    dump_write_process(&p->dump, &info);
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
    fprintf(stderr, "==memtrace== pid %d:", (int)consumer_seen_pid(p));
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
int consumer_pid_ended(pid_t pid)
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
    int ended = consumer_pid_ended(w->pid);
    /* What it runs, once it runs it: a vfork child shares its parent's
     * memory (the same start of code) until its exec is done. */
    if (!w->known && !ended &&
        (w->pid == consumer_seen_pid(p) || proc_startcode(w->pid) != proc_startcode(consumer_seen_pid(p)))) {
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
int consumer_settle_watches(struct consumer *c, struct process *p, uint64_t now)
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
int consumer_finish(struct consumer *c, struct process *p)
{
    int how = MT_EXIT_UNKNOWN, value = 0;
    process_drain(p, 1, &c->snapshots); /* its EXIT and EXEC records first */
    if (p->exec_pending && !p->exec_watched) {
        p->exec_watched = 1;
        process_watch_exec(p, consumer_seen_pid(p), p->start_ns);
    }
    if (p->nwatches && consumer_settle_watches(c, p, consumer_now_ns()))
        return 0; /* its images to come (its own, its vfork children's) */
    if (p->exec_pending) {
        how = MT_EXIT_EXEC;
    } else if (consumer_seen_pid(p) == c->opt->direct_child) {
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
        exit_from_proc(consumer_seen_pid(p), &how, &value);
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
                (int)consumer_seen_pid(p));
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
            consumer_try_inherit(c, c->procs[i]);
    return 1;
}

void consumer_release(struct process *p)
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
