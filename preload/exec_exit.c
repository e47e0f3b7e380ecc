/* The interposed functions that end a process's image: _exit and _Exit
 * (the exit scan runs first), the exec family and posix_spawn (what the
 * consumer must know before the image is replaced or a child is spawned).
 * The allocation functions are interpose.c's. */
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <unistd.h>

#include "loader.h"
#include "shim.h"

void mt_note_exit(int status) MT_HIDDEN;
extern char **environ;

#define EXPORT __attribute__((visibility("default")))

/* ---- how the process ends ------------------------------------------------- */

EXPORT void _exit(int status)
{
    mt_note_exit(status);
    mt_scan_at_exit(MT_SCAN_UNDERSCORE_EXIT, NULL);
    if (!mt_real._exit)
        mt_init();
    mt_real._exit(status);
    __builtin_unreachable();
}

EXPORT void _Exit(int status)
{
    mt_note_exit(status);
    mt_scan_at_exit(MT_SCAN_UNDERSCORE_EXIT, NULL);
    if (!mt_real._Exit)
        mt_init();
    mt_real._Exit(status);
    __builtin_unreachable();
}

/* Marks an exec attempt (1) or its failure (0), so the consumer can tell a
 * connection closed by exec from a process that died. */
static void note_exec(int attempt)
{
    struct mt_thread *t = &mt_thread_state;
    mt_fatal_signals_exec(attempt); /* the new image inherits the mask */
    if (mt_state != MT_STATE_ACTIVE || t->guard || t->in_record)
        return;
    int saved = errno;
    /* A vfork child shares our memory and thread state: its exec is not
     * ours. It is said in the parent's ring all the same (a = 2, or 3 when
     * it failed; b = the child's pid), which the parent's thread does not
     * write while vfork holds it: the consumer then waits for the image's
     * HELLO, and says if it never comes (statically linked, set-uid...). */
    pid_t pid = getpid();
    if (pid != mt_traced_pid()) {
        t->in_record++;
        if (t->ring) /* never a new ring (nor a message) from the child */
            mt_emit_marker(t, MT_RING_EXEC, attempt ? 2u : 3u, (int32_t)pid);
        t->in_record--;
        errno = saved;
        return;
    }
    t->in_record++;
    mt_emit_marker(t, MT_RING_EXEC, (uint32_t)attempt, 0);
    t->in_record--;
    errno = saved;
}

EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
    if (!mt_real.execve)
        mt_init();
    note_exec(1);
    int rc = mt_real.execve(path, argv, envp);
    note_exec(0);
    return rc;
}

EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
    if (!mt_real.execvpe)
        mt_init();
    note_exec(1);
    int rc = mt_real.execvpe(file, argv, envp);
    note_exec(0);
    return rc;
}

EXPORT int fexecve(int fd, char *const argv[], char *const envp[])
{
    if (!mt_real.fexecve)
        mt_init();
    note_exec(1);
    int rc = mt_real.fexecve(fd, argv, envp);
    note_exec(0);
    return rc;
}

EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags)
{
    if (!mt_real.execveat)
        mt_init();
    note_exec(1);
    int rc = mt_real.execveat(dirfd, path, argv, envp, flags);
    note_exec(0);
    return rc;
}

/* posix_spawn's child execs through glibc's internal __execve, which the
 * shim does not see; posix_spawn returns once that exec is done (or says
 * it failed). The child's pid is then said (MT_RING_EXEC, a = 4), so that
 * the consumer waits for its image's HELLO as for a vfork child's. */
static void note_spawned(pid_t pid)
{
    struct mt_thread *t = &mt_thread_state;
    if (mt_state != MT_STATE_ACTIVE || t->guard || t->in_record)
        return;
    int saved = errno;
    if (getpid() == mt_traced_pid()) {
        t->in_record++;
        mt_emit_marker(t, MT_RING_EXEC, 4u, (int32_t)pid);
        t->in_record--;
    }
    errno = saved;
}

typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *,
                        const posix_spawnattr_t *, char *const[], char *const[]);

/* posix_spawn or posix_spawnp (*real, resolved by mt_init), then the
 * child's pid said. */
static int spawn(spawn_fn *real, pid_t *pid, const char *file,
                 const posix_spawn_file_actions_t *actions, const posix_spawnattr_t *attr,
                 char *const argv[], char *const envp[])
{
    if (!*real)
        mt_init();
    if (!*real)
        return ENOSYS;
    pid_t child = 0;
    int rc = (*real)(&child, file, actions, attr, argv, envp);
    if (rc == 0) {
        if (pid)
            *pid = child;
        note_spawned(child);
    }
    return rc;
}

EXPORT int posix_spawn(pid_t *restrict pid, const char *restrict path,
                       const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *restrict attr, char *const argv[restrict],
                       char *const envp[restrict])
{
    return spawn(&mt_real.posix_spawn, pid, path, actions, attr, argv, envp);
}

EXPORT int posix_spawnp(pid_t *restrict pid, const char *restrict file,
                        const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *restrict attr, char *const argv[restrict],
                        char *const envp[restrict])
{
    return spawn(&mt_real.posix_spawnp, pid, file, actions, attr, argv, envp);
}

EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }

EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }

/* execl, execle, execlp: gather the variadic list, then as above. */
#define GATHER_ARGS(first, ap, argv)                                                               \
    size_t count_ = 1;                                                                             \
    va_start(ap, first);                                                                           \
    while (va_arg(ap, char *))                                                                     \
        count_++;                                                                                  \
    va_end(ap);                                                                                    \
    char *argv[count_ + 1];                                                                        \
    argv[0] = (char *)first;                                                                       \
    va_start(ap, first);                                                                           \
    for (size_t i_ = 1; i_ <= count_; i_++)                                                        \
        argv[i_] = va_arg(ap, char *)

EXPORT int execl(const char *path, const char *arg, ...)
{
    va_list ap;
    GATHER_ARGS(arg, ap, argv);
    va_end(ap);
    return execve(path, argv, environ);
}

EXPORT int execlp(const char *file, const char *arg, ...)
{
    va_list ap;
    GATHER_ARGS(arg, ap, argv);
    va_end(ap);
    return execvpe(file, argv, environ);
}

EXPORT int execle(const char *path, const char *arg, ...)
{
    va_list ap;
    GATHER_ARGS(arg, ap, argv);
    char *const *envp = va_arg(ap, char *const *);
    va_end(ap);
    return execve(path, argv, envp);
}
