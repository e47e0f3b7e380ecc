/* Children that end by _exit, and a vfork child that does (issue 17, the
 * field test's cmake and multiprocessing children; tests/e2e/test_forks.py).
 *
 *   fork_underscore_exit freeres
 *       one fork child: it keeps 100 bytes (a global holds them), leaks 64,
 *       makes libc allocate its one-time blocks (tzset with TZ set, a line
 *       of stdout left in the buffer: __libc_freeres frees them), and ends
 *       by _exit(3). The parent waits for it and exits 0 leaking nothing.
 *       Under memcheck the child's libc blocks are freed (valgrind runs
 *       __libc_freeres at every exit_group); its pending stdout line is
 *       printed by valgrind's run, never by the bare program.
 *   fork_underscore_exit many CHILDREN BLOCKS
 *       CHILDREN fork children one after the other, without waiting; each
 *       allocates BLOCKS 32-byte blocks kept in a list that a global holds,
 *       leaks one 64-byte block and ends by _exit(1) at once.
 *   fork_underscore_exit many_closefds CHILDREN BLOCKS
 *       the same, but each child closes every descriptor from 3 up first
 *       (close_range), the shim's socket with them.
 *   fork_underscore_exit vfork
 *       a vfork child whose exec fails ends by _exit(127); the parent then
 *       keeps 200 bytes, leaks 100, exits 0. The child shares the parent's
 *       memory: its _exit must not end, scan or free the parent's heap.
 *   fork_underscore_exit vfork_ok
 *       as vfork, but the child execs /bin/true.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *volatile kept;
static void *volatile sink;

struct node {
    struct node *next;
    char pad[24];
};

static int wait_all(int want)
{
    int status, failed = 0;
    while (wait(&status) > 0)
        failed += !WIFEXITED(status) || WEXITSTATUS(status) != want;
    return failed;
}

static int run_freeres(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        kept = malloc(100);
        sink = malloc(64);
        sink = 0;
        setenv("TZ", "UTC0", 1);
        tzset();
        time_t t = 1600000000;
        struct tm tm;
        localtime_r(&t, &tm);
        printf("child: never printed bare (%d)\n", tm.tm_year + 1900);
        _exit(3);
    }
    return wait_all(3) ? 1 : 0;
}

static int run_many(int n, int blocks, int close_fds)
{
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            struct node *head = NULL;
            for (int b = 0; b < blocks; b++) {
                struct node *x = malloc(sizeof *x);
                x->next = head;
                head = x;
            }
            kept = head;
            sink = malloc(64);
            sink = 0;
            if (close_fds) /* as a child that closes what it inherited */
                syscall(SYS_close_range, 3, ~0u, 0);
            _exit(1);
        }
    }
    return wait_all(1) ? 1 : 0;
}

static int run_vfork(int exec_ok)
{
    char *argv[] = {exec_ok ? "/bin/true" : "/nonexistent/fork_underscore_exit", NULL};
    extern char **environ;
    pid_t pid = vfork();
    if (pid < 0)
        return 2;
    if (pid == 0) {
        execve(argv[0], argv, environ);
        _exit(127);
    }
    if (wait_all(exec_ok ? 0 : 127))
        return 1;
    kept = malloc(200);
    sink = malloc(100);
    sink = 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "freeres";
    if (strcmp(mode, "freeres") == 0)
        return run_freeres();
    if (strcmp(mode, "many") == 0)
        return run_many(argc > 2 ? atoi(argv[2]) : 20, argc > 3 ? atoi(argv[3]) : 8000, 0);
    if (strcmp(mode, "many_closefds") == 0)
        return run_many(argc > 2 ? atoi(argv[2]) : 20, argc > 3 ? atoi(argv[3]) : 8000, 1);
    if (strcmp(mode, "vfork") == 0)
        return run_vfork(0);
    if (strcmp(mode, "vfork_ok") == 0)
        return run_vfork(1);
    fprintf(stderr, "usage: fork_underscore_exit freeres|many N BLOCKS|vfork|vfork_ok\n");
    return 2;
}
